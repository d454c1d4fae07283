"""Test support for tests/capture: media made with ffmpeg, an MJPEG camera stream, an ALSA mic.

Everything is made on demand into one session-scoped temp folder and cached, so a test only pays
for the files it uses (each file takes ~0.1-0.5 s to make).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # capture_contract.py, importable by tests and the mic child
    sys.path.insert(0, str(HERE))

# The av-sync clip: a white frame and an audio click at EVENT_T (frame 30 at 25 fps).
EVENT_T = 1.2
SYNC_FPS = 25
SINE_HZ = 1000


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(
            f"ffmpeg failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}"
        )


class Media:
    """Lazily generated test media; ``media.get(name)`` makes the file once and returns its path."""

    def __init__(self, ffmpeg: str, root: Path) -> None:
        self.ffmpeg = ffmpeg
        self.root = root
        self._lock = threading.RLock()
        self._made: dict[str, Path] = {}

    def get(self, name: str) -> Path:
        with self._lock:
            if name not in self._made:
                path = self.root / name
                maker = getattr(self, "_make_" + name.replace(".", "_").replace("-", "_"))
                maker(path)
                assert path.exists(), path
                self._made[name] = path
            return self._made[name]

    def ff(self, *args: str) -> None:
        _run([self.ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args])

    # -- clips with both streams ----------------------------------------------------------------

    def _sync_video(self, size: str = "320x240", duration: float = 3.0) -> list[str]:
        n = round(EVENT_T * SYNC_FPS)
        flash = f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(n,{n})'"
        return [
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size={size}:rate={SYNC_FPS}:duration={duration},{flash}",
        ]

    @staticmethod
    def _click_audio(click_at: float, duration: float, rate: int = 48000) -> list[str]:
        expr = f"0.1*sin(2*PI*{SINE_HZ}*t)+0.8*between(t,{click_at},{click_at + 0.0005})"
        return ["-f", "lavfi", "-i", f"aevalsrc='{expr}':s={rate}:d={duration}"]

    _H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]

    def _make_av_sync_mp4(self, path: Path) -> None:
        """3 s 320x240 25 fps testsrc + 1 kHz sine; white frame and click at EVENT_T."""
        self.ff(
            *self._sync_video(),
            *self._click_audio(EVENT_T, 3.0),
            *self._H264,
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-shortest",
            str(path),
        )

    def _make_av_offset_mp4(self, path: Path) -> None:
        """Like av_sync.mp4 but the audio track starts 0.5 s after the video."""
        self.ff(
            *self._sync_video(),
            "-itsoffset",
            "0.5",
            *self._click_audio(EVENT_T - 0.5, 2.5),
            *self._H264,
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            str(path),
        )

    def _make_sidecar_mp4(self, path: Path) -> None:
        """A 2 s clip with a cp1252-encoded sidecar .srt (accented text and an em dash)."""
        self.ff(
            *self._sync_video(duration=2.0),
            *self._click_audio(EVENT_T, 2.0),
            *self._H264,
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        )
        srt = (
            "1\r\n00:00:00,500 --> 00:00:01,250\r\nCafé naïve — déjà vu\r\n\r\n"
            "2\r\n00:00:01,300 --> 00:00:01,900\r\n<i>Très</i> bien, garçon!\r\n"
        )
        path.with_suffix(".srt").write_bytes(srt.encode("cp1252"))

    def _make_vfr_mp4(self, path: Path) -> None:
        """Variable frame rate: 1 s at 10 fps, then 1 s at 30 fps (one stream, -fps_mode vfr)."""
        src = "testsrc=size=160x120:rate={r}:duration=1,settb=1/1000"
        self.ff(
            "-f",
            "lavfi",
            "-i",
            src.format(r=10),
            "-f",
            "lavfi",
            "-i",
            src.format(r=30),
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1:a=0[v]",
            "-map",
            "[v]",
            "-fps_mode",
            "vfr",
            *self._H264,
            "-video_track_timescale",
            "1000",
            str(path),
        )

    def _container(self, path: Path, codecs: list[str]) -> None:
        self.ff(
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={SINE_HZ}:sample_rate=44100:duration=2",
            *codecs,
            str(path),
        )

    def _make_clip_mkv(self, path: Path) -> None:
        self._container(path, [*self._H264, "-c:a", "libvorbis"])

    def _make_clip_webm(self, path: Path) -> None:
        self._container(
            path,
            [
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "200k",
                "-c:a",
                "libopus",
            ],
        )

    def _make_clip_mov(self, path: Path) -> None:
        self._container(path, ["-c:v", "mjpeg", "-q:v", "5", "-c:a", "pcm_s16le"])

    def _make_clip_avi(self, path: Path) -> None:
        self._container(path, ["-c:v", "mpeg4", "-q:v", "5", "-c:a", "libmp3lame"])

    def _make_faststart_mp4(self, path: Path) -> None:
        """4 s, index at the front (so a cut-off copy is still readable), keyframe every second."""
        self.ff(
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=4",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={SINE_HZ}:sample_rate=48000:duration=4",
            *self._H264,
            "-g",
            "25",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            str(path),
        )

    def _make_uhd_mp4(self, path: Path) -> None:
        """4K (3840x2160), 0.5 s at 10 fps."""
        self.ff(
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=3840x2160:rate=10:duration=0.5",
            *self._H264,
            str(path),
        )

    # -- one stream only -------------------------------------------------------------------------

    def _make_video_only_mp4(self, path: Path) -> None:
        self.ff(
            "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=1", *self._H264, str(path)
        )

    def _make_audio_only_mp4(self, path: Path) -> None:
        self.ff(
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={SINE_HZ}:sample_rate=48000:duration=1",
            "-c:a",
            "aac",
            str(path),
        )

    def _make_subtitles_only_mkv(self, path: Path) -> None:
        srt = path.with_name("only.srt")
        srt.write_text("1\n00:00:00,500 --> 00:00:01,000\nhello\n", encoding="utf-8")
        self.ff("-i", str(srt), "-c:s", "srt", str(path))

    def _audio(self, path: Path, rate: int, extra: list[str], channels: int = 1) -> None:
        src = f"sine=frequency={SINE_HZ}:sample_rate={rate}:duration=2"
        if channels > 1:  # the same sine on every channel
            layout = {2: "stereo", 6: "5.1"}[channels]
            pan = "|".join(f"c{i}=c0" for i in range(channels))
            extra = ["-af", f"pan={layout}|{pan}", *extra]
        self.ff("-f", "lavfi", "-i", src, *extra, str(path))

    def _make_tone_wav(self, path: Path) -> None:
        self._audio(path, 44100, [], channels=2)

    def _make_tone_flac(self, path: Path) -> None:
        self._audio(path, 44100, [])

    def _make_tone_mp3(self, path: Path) -> None:
        self._audio(path, 44100, ["-c:a", "libmp3lame"])

    def _make_tone_ogg(self, path: Path) -> None:
        self._audio(path, 44100, ["-c:a", "libvorbis"])

    def _make_tone_m4a(self, path: Path) -> None:
        self._audio(path, 44100, ["-c:a", "aac"])

    def _make_tone_cover_mp3(self, path: Path) -> None:
        """An mp3 with embedded cover art (a one-packet attached-picture "video" stream)."""
        cover = path.with_suffix(".png")
        self.ff(
            "-f", "lavfi", "-i", "testsrc=size=64x64:duration=0.1", "-frames:v", "1", str(cover)
        )
        self.ff(
            "-i",
            str(self.get("tone.mp3")),
            "-i",
            str(cover),
            "-map",
            "0",
            "-map",
            "1",
            "-c",
            "copy",
            "-id3v2_version",
            "3",
            "-disposition:v",
            "attached_pic",
            str(path),
        )

    def _make_tone_8k_wav(self, path: Path) -> None:
        self._audio(path, 8000, [])

    def _make_tone_96k_wav(self, path: Path) -> None:
        self._audio(path, 96000, [])

    def _make_tone_6ch_wav(self, path: Path) -> None:
        self._audio(path, 48000, [], channels=6)

    def _make_tone_s24_wav(self, path: Path) -> None:
        self._audio(path, 44100, ["-c:a", "pcm_s24le"])

    def _make_tone_s32_wav(self, path: Path) -> None:
        self._audio(path, 48000, ["-c:a", "pcm_s32le"])

    def _make_tone_f32_wav(self, path: Path) -> None:
        self._audio(path, 48000, ["-c:a", "pcm_f32le"])

    # -- bad inputs -------------------------------------------------------------------------------

    def _make_empty_mp4(self, path: Path) -> None:
        path.write_bytes(b"")

    def _make_random_mp4(self, path: Path) -> None:
        path.write_bytes(random.Random(7).randbytes(64 * 1024))

    def _make_truncated_mp4(self, path: Path) -> None:
        """av_sync.mp4 cut at 50 %: its index (moov, written last) is gone."""
        data = self.get("av_sync.mp4").read_bytes()
        path.write_bytes(data[: len(data) // 2])

    def _make_truncated_faststart_mp4(self, path: Path) -> None:
        """faststart.mp4 cut at 50 %: index intact, media data missing from ~2 s on."""
        data = self.get("faststart.mp4").read_bytes()
        path.write_bytes(data[: len(data) // 2])

    def _make_corrupt_mp4(self, path: Path) -> None:
        """faststart.mp4 with 64 random bytes every ~1 kB over the middle 10 % of the file."""
        data = bytearray(self.get("faststart.mp4").read_bytes())
        rng = random.Random(1)
        n = len(data)
        for off in range(int(n * 0.45), int(n * 0.55), 997):
            data[off : off + 64] = rng.randbytes(64)
        path.write_bytes(bytes(data))

    def _make_a_directory_mp4(self, path: Path) -> None:
        path.mkdir()


@pytest.fixture(scope="session")
def media(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Media:
    return Media(ffmpeg, tmp_path_factory.mktemp("media"))


# -- helpers for signal checks ---------------------------------------------------------------------


def peak_hz(samples: np.ndarray, rate: int = 16_000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


# -- an MJPEG "camera" over HTTP on 127.0.0.1, served by ffmpeg ------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool | None:
    """Whether a socket listens on 127.0.0.1:port (Linux /proc/net/tcp); None if unknown."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) > 3 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
            return True
    return False


@dataclass
class MjpegServer:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def serve_mjpeg(ffmpeg: str, source: list[str], seconds: float) -> MjpegServer:
    """Start ``ffmpeg -listen 1`` serving ``source`` (its input and filter arguments) in real time as
    multipart JPEG (what IP cameras send) to one client, once it is listening."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/cam.mjpg"
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "quiet", "-nostdin", "-re", *source, "-t", str(seconds),
           "-f", "mpjpeg", "-q:v", "5", "-listen", "1", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = MjpegServer(url, proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until ffmpeg listens (without connecting:
        if proc.poll() is not None:  # ffmpeg serves exactly one client)
            pytest.fail(f"ffmpeg MJPEG server exited early ({proc.returncode})")
        state = _listening(port)
        if state is None:  # no /proc/net/tcp: give ffmpeg a moment
            time.sleep(1.0)
            return server
        if state:
            return server
        time.sleep(0.05)
    server.stop()
    pytest.fail("ffmpeg MJPEG server did not start listening")


@pytest.fixture
def mjpeg_server(ffmpeg: str) -> Iterator[Callable[..., MjpegServer]]:
    """Factory: ``mjpeg_server(seconds=10, fps=15)`` serves a 320x240 testsrc as an MJPEG stream."""
    servers: list[MjpegServer] = []

    def start(seconds: float = 10.0, fps: int = 15) -> MjpegServer:
        servers.append(serve_mjpeg(ffmpeg, ["-f", "lavfi", "-i", f"testsrc=size=320x240:rate={fps}"], seconds))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


# -- an ALSA test microphone for PortAudio ---------------------------------------------------------

MIC_RATE = 44100
MIC_CHANNELS = 2
MIC_HZ = 440.0
MIC_AMP = 0.5


@dataclass
class AlsaMic:
    """A PortAudio-visible ALSA capture device ``mmdesk_mic`` fed in real time from a FIFO.

    ``env`` is the environment for a child process (HOME points at a folder with an
    ``.asoundrc``); PortAudio reads the ALSA configuration once per process, hence the child.
    """

    home: Path
    fifo: Path
    env: dict[str, str]
    writer: threading.Thread
    stop: threading.Event
    pause: threading.Event
    written: list[int]


def mic_signal(n0: int, n: int) -> np.ndarray:
    """Samples n0..n0+n of the test microphone's signal (a 440 Hz sine, same on both channels)."""
    t = (np.arange(n0, n0 + n) / MIC_RATE).astype(np.float64)
    return MIC_AMP * np.sin(2 * np.pi * MIC_HZ * t)


ASOUNDRC = """
pcm.mmdesk_mic_raw {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{fifo}"
    format "raw"
}}
pcm.mmdesk_mic {{
    type plug
    slave {{
        pcm "mmdesk_mic_raw"
        format S16_LE
        rate {rate}
        channels {channels}
    }}
    hint {{ show on description "mmdesk test microphone (ALSA file plugin)" }}
}}
pcm.!default {{
    type plug
    slave.pcm "mmdesk_mic"
}}
"""


@pytest.fixture
def alsa_mic(tmp_path: Path) -> Iterator[AlsaMic]:
    """An ALSA ``file`` PCM whose ``infile`` is a FIFO written in real time by a thread here.

    The FIFO paces PortAudio like a real microphone (the ``null`` slave alone would run free).
    The writer holds the FIFO open read-write, so opening the device never blocks, and writes
    100 ms blocks of ``mic_signal`` until stopped; ``pause`` makes it stop writing (the
    microphone then goes silent without an error, like an unplugged USB device).
    """
    if not sys.platform.startswith("linux"):
        pytest.skip("the ALSA test microphone needs Linux")
    import ctypes.util

    if ctypes.util.find_library("portaudio") is None:
        pytest.skip("PortAudio not installed (apt install libportaudio2)")
    home = tmp_path / "home"
    home.mkdir()
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    (home / ".asoundrc").write_text(
        ASOUNDRC.format(fifo=fifo, rate=MIC_RATE, channels=MIC_CHANNELS)
    )
    fd = os.open(fifo, os.O_RDWR)
    capacity = 65536
    try:  # a small pipe: at most one block waits for the reader, like a device buffer
        import fcntl

        capacity = fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 32768)
    except (ImportError, AttributeError, OSError):
        pass
    stop = threading.Event()
    pause = threading.Event()
    written = [0]

    def queued() -> int:
        try:
            import fcntl
            import termios

            buf = bytearray(4)
            fcntl.ioctl(fd, termios.FIONREAD, buf)
            return int.from_bytes(buf, sys.byteorder)
        except (ImportError, OSError):
            return 0

    def write() -> None:
        """100 ms blocks on a real-time schedule; a block that finds no room is lost (like a
        device nobody records). The file plugin reads whole periods and does not wait for a
        partly filled one, so blocks must be at least the reader's period (block_ms <= 100)."""
        block = MIC_RATE // 10
        size = block * 2 * MIC_CHANNELS
        start = time.monotonic()
        i = 0
        while not stop.is_set():
            if not pause.is_set():
                mono = mic_signal(written[0], block)
                pcm = np.repeat((mono * 32767).astype("<i2"), MIC_CHANNELS)
                if queued() + size <= capacity:
                    try:
                        os.write(fd, pcm.tobytes())
                    except OSError:
                        return
                written[0] += block
            i += 1
            stop.wait(max(0.0, start + i * 0.1 - time.monotonic()))

    writer = threading.Thread(target=write, name="alsa-mic-writer", daemon=True)
    writer.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALSA_", "PULSE_", "JACK_"))}
    env["HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), str(HERE)])
    mic = AlsaMic(home, fifo, env, writer, stop, pause, written)
    try:
        yield mic
    finally:
        stop.set()
        writer.join(2)
        os.close(fd)


def run_child(mic: AlsaMic, *args: str, timeout: float = 60) -> dict[str, object]:
    """Run tests/capture/mic_child.py in a child process seeing the test microphone."""
    import json

    proc = subprocess.run(
        [sys.executable, str(HERE / "mic_child.py"), *args],
        env=mic.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"mic child failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert last, f"no result from mic child:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(last[-1])
