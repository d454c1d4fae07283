"""Event-loop stall benchmark of a live session with a real camera stream and a real microphone.

No webcam or microphone is needed: a clip's video is served by ffmpeg as an MJPEG camera on
127.0.0.1 (15 fps, 640 px wide), and its audio feeds an ALSA ``file`` device through a FIFO, paced in
real time, which PortAudio opens as the microphone ``mmdesk_mic``. The app then runs live for
``--seconds`` with ``--stall-report`` and this prints its JSON line.

    .venv/bin/python scripts/bench_live_gui.py ../shared/assets/av/ravdess_actor05/01-01-03-01-01-02-05.mp4

Linux only (ALSA); needs ffmpeg and libportaudio2 (scripts/setup.sh installs both).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RATE = 16_000
BLOCK = RATE // 10  # 100 ms of audio per write

ASOUNDRC = """
pcm.mmdesk_mic_raw {{ type file slave.pcm "null" file "/dev/null" infile "{fifo}" format "raw" }}
pcm.mmdesk_mic {{ type plug slave {{ pcm "mmdesk_mic_raw" format S16_LE rate {rate} channels 1 }} }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pcm_of(clip: Path) -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-ac", "1", "-ar", str(RATE), "-f", "s16le", "-"],
                          check=True, capture_output=True).stdout


def feed(fifo_fd: int, pcm: bytes, stop: threading.Event) -> None:
    """Write the clip's audio in a loop, 100 ms at a time on a real-time schedule (a microphone's pace)."""
    size = BLOCK * 2
    start, i = time.monotonic(), 0
    while not stop.is_set():
        off = (i * size) % max(size, len(pcm) - len(pcm) % size)
        try:
            os.write(fifo_fd, pcm[off:off + size].ljust(size, b"\0"))
        except BlockingIOError:
            pass  # nobody reads yet: the block is lost, as a real device's would be
        i += 1
        stop.wait(max(0.0, start + i * 0.1 - time.monotonic()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--text", default="I can't believe how wonderful this is")
    ap.add_argument("--no-mic", action="store_true", help="camera and text only")
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/cam.mjpg"
    server = subprocess.Popen(
        ["ffmpeg", "-v", "quiet", "-re", "-stream_loop", "-1", "-i", str(args.clip), "-an",
         "-vf", "scale=640:-2,fps=15", "-f", "mpjpeg", "-q:v", "5", "-listen", "1", url])
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        cmd = [str(Path(sys.executable).with_name("mmdesk")), "gui", "--camera", url, "--text", args.text,
               "--live-seconds", str(args.seconds), "--stall-report"]
        if not args.no_mic:
            fifo = Path(tmp) / "mic.fifo"
            os.mkfifo(fifo)
            (Path(tmp) / ".asoundrc").write_text(ASOUNDRC.format(fifo=fifo, rate=RATE))
            fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
            threading.Thread(target=feed, args=(fd, pcm_of(args.clip), stop), daemon=True).start()
            home = Path.home()  # the model pack and settings stay where they are; only ALSA's ~ moves
            for var, default in (("XDG_DATA_HOME", ".local/share"), ("XDG_CACHE_HOME", ".cache"),
                                 ("XDG_CONFIG_HOME", ".config")):
                env.setdefault(var, str(home / default))
            env["HOME"] = tmp  # PortAudio reads ~/.asoundrc
            cmd += ["--microphone", "mmdesk_mic"]
        time.sleep(1.0)  # let ffmpeg listen
        try:
            out = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=args.seconds + 180)
        finally:
            stop.set()
            server.kill()
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        print(out.stderr[-2000:], file=sys.stderr)
        return out.returncode or 1
    print(lines[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
