"""The clip player engine (mmdesk.playback) on a real RAVDESS clip, without Qt: frame times and
pixels against PyAV's own decode, exact seeks, real-time pace on the silent clock, the end of the clip,
damaged files; the sound through a PortAudio/ALSA output device (see conftest)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter
from conftest import SPEAKER_RATE, run_child

from mmdesk.playback import Frame, Player, PlayerEvents

VIEW = (560, 315)


class Recorder:
    """The engine's callbacks, recorded with the monotonic time they arrived at."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frames: list[tuple[float, Frame]] = []
        self.positions: list[tuple[float, float]] = []
        self.playing: list[bool] = []
        self.problems: list[str] = []

    def events(self) -> PlayerEvents:
        def add(items):
            return lambda x: items.append((time.monotonic(), x))

        return PlayerEvents(frame=add(self.frames), position=add(self.positions),
                            playing=self.playing.append, problem=self.problems.append)

    def wait(self, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)


def reference(clip: Path, size: tuple[int, int] | None = None) -> list[tuple[float, np.ndarray | None]]:
    """Every video frame's time and (for ``size``) RGB pixels, decoded directly with PyAV."""
    out = []
    with av.open(str(clip)) as c:
        start = c.start_time / 1e6 if c.start_time is not None else 0.0
        fmt = VideoReformatter()
        for f in c.decode(video=0):
            px = fmt.reformat(f, width=size[0], height=size[1], format="rgb24").to_ndarray() if size else None
            out.append((float(f.pts * f.time_base) - start, px))
    return out


def fitted(clip: Path, view: tuple[int, int]) -> tuple[int, int]:
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        scale = min(view[0] / s.width, view[1] / s.height, 1.0)
        return int(s.width * scale), int(s.height * scale)


@pytest.fixture
def player():
    rec = Recorder()
    p = Player(rec.events(), output="silent")
    p.set_view_size(*VIEW)
    p.rec = rec  # type: ignore[attr-defined]
    yield p
    p.close()


def test_plays_pyavs_frames_in_order_at_real_time_and_stops_at_the_end(player: Player, clip: Path) -> None:
    rec = player.rec  # type: ignore[attr-defined]
    ref = reference(clip, fitted(clip, VIEW))
    times = [t for t, _ in ref]
    player.load(str(clip))
    rec.wait(lambda: rec.frames and rec.positions, 10, "the first frame after load")
    (_, first), = rec.frames
    assert first.t == times[0] and np.array_equal(first.pixels, ref[0][1])  # load shows the first frame
    assert first.source_size == (640, 360) and first.pixels.shape == (315, 560, 3)
    rec.frames.clear()
    rec.positions.clear()
    t0 = time.monotonic()
    player.play()
    assert player.playing and rec.playing == [True]
    rec.wait(lambda: not player.playing, 20, "the end of the clip")
    wall = time.monotonic() - t0
    duration = times[-1] + (times[1] - times[0])
    assert rec.playing == [True, False] and rec.problems == []
    shown = [f.t for _, f in rec.frames]
    # every frame shown is one PyAV decodes, at its time, in order; late frames may be dropped on a busy
    # machine, but not most of them
    assert all(b > a for a, b in itertools.pairwise(shown)), shown
    index = {t: i for i, t in enumerate(times)}
    assert all(t in index for t in shown), sorted(set(shown) - set(times))
    assert len(shown) >= 0.5 * (len(times) - 1), f"{len(shown)} of {len(times) - 1} frames shown"
    for _, f in rec.frames[:: max(1, len(rec.frames) // 5)]:  # the pixels are PyAV's at the view's size
        assert np.array_equal(f.pixels, ref[index[f.t]][1]), f.t
    # a frame is shown when the clock reaches its time, never before
    clock0 = rec.frames[0][0] - shown[0]
    assert all(arrived >= clock0 + t - 0.05 for arrived, (t) in zip((a for a, _ in rec.frames), shown))
    # ~30 position updates a second, advancing at the wall clock's rate, ending at the clip's duration
    pos = np.array(rec.positions)
    assert np.all(np.diff(pos[:, 1]) >= 0)
    assert 20 <= len(pos) / wall <= 40, len(pos) / wall
    slope = np.polyfit(pos[:-1, 0], pos[:-1, 1], 1)[0]
    assert 0.9 <= slope <= 1.1, slope
    assert pos[-1, 1] == pytest.approx(duration, abs=0.05)
    assert duration * 0.9 <= wall <= duration * 1.5 + 1.0, (wall, duration)
    # play after the end starts again from the beginning
    rec.frames.clear()
    player.play()
    rec.wait(lambda: rec.frames, 5, "a frame after restarting")
    player.pause()
    assert rec.frames[0][1].t == times[0] and not player.playing


@pytest.mark.parametrize("which", ["clip", "big_clip"])
def test_seek_while_paused_shows_exactly_the_frame_at_that_time(player: Player, which: str, request) -> None:
    clip = request.getfixturevalue(which)
    rec = player.rec  # type: ignore[attr-defined]
    ref = reference(clip, fitted(clip, VIEW))
    times = [t for t, _ in ref]
    player.load(str(clip))
    rec.wait(lambda: rec.frames, 10, "the first frame")
    step = times[1] - times[0]
    targets = [1.0, times[40], times[40] - step / 3, 0.0, times[-1] + step / 2, 2.51234, times[7]]
    for t in targets:
        rec.frames.clear()
        rec.positions.clear()
        player.seek(t)
        rec.wait(lambda: rec.frames and rec.positions, 10, f"the frame at {t}")
        want = max(i for i, ft in enumerate(times) if ft <= t + 1e-6)
        (_, f), = rec.frames
        assert f.t == times[want], (t, f.t, times[want])
        assert np.array_equal(f.pixels, ref[want][1]), t  # the same picture a direct PyAV decode gives
        assert rec.positions[-1][1] == pytest.approx(t)
        assert not player.playing
    # from a seek, playing continues with the next frames
    rec.frames.clear()
    player.seek(1.0)
    rec.wait(lambda: rec.frames, 10, "the seek")
    rec.frames.clear()
    player.play()
    rec.wait(lambda: len(rec.frames) >= 5, 10, "frames after the seek")
    player.pause()
    shown = [f.t for _, f in rec.frames]
    assert 1.0 < shown[0] <= 1.0 + 3 * step and shown == sorted(shown)


def test_seek_while_playing_moves_the_clock(player: Player, clip: Path) -> None:
    rec = player.rec  # type: ignore[attr-defined]
    player.load(str(clip))
    rec.wait(lambda: rec.frames, 10, "the first frame")
    player.play()
    time.sleep(0.3)
    player.seek(2.5)
    rec.wait(lambda: any(t >= 2.6 for _, t in rec.positions), 5, "the clock to pass 2.6 s")
    after = [t for _, t in rec.positions[[t for _, t in rec.positions].index(2.5):]]
    assert player.playing and after == sorted(after) and after[-1] < 3.0
    player.pause()


def test_damaged_or_missing_files_report_a_problem_and_never_raise(player: Player, clip: Path,
                                                                   tmp_path: Path) -> None:
    rec = player.rec  # type: ignore[attr-defined]
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    cut = tmp_path / "cut.mp4"  # moov at the end, cut off: the index is gone
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    cases = {tmp_path / "missing.mp4": "does not exist", junk: "not a media file",
             cut: "truncated or corrupt"}
    for path, why in cases.items():
        rec.problems.clear()
        player.load(str(path))
        rec.wait(lambda: rec.problems, 10, f"the problem with {path.name}")
        assert rec.problems[0].startswith("playback: ") and why in rec.problems[0], rec.problems
        player.play()  # nothing loaded: nothing happens
        assert not player.playing
    # a cut-off file whose index is at the front plays what it has, then says it ended early
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is needed to move the index to the front")
    front = tmp_path / "front.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", "-movflags", "+faststart", str(front)],
                   check=True)
    short = tmp_path / "short.mp4"
    short.write_bytes(front.read_bytes()[: front.stat().st_size * 6 // 10])
    rec.problems.clear()
    rec.frames.clear()
    player.load(str(short))
    rec.wait(lambda: rec.frames, 10, "the first frame of the cut file")
    player.play()
    rec.wait(lambda: not player.playing, 20, "the end of the cut file")
    assert rec.problems and "truncated or damaged" in rec.problems[-1], rec.problems
    assert 1.0 < rec.frames[-1][1].t < 3.0
    # and the player still works
    rec.frames.clear()
    player.load(str(clip))
    rec.wait(lambda: rec.frames, 10, "the first frame of a good clip after the bad ones")


def _reference_audio(clip: Path, rate: int) -> np.ndarray:
    with av.open(str(clip)) as c:
        r = av.AudioResampler(format="flt", layout="stereo", rate=rate)
        parts = [f.to_ndarray().reshape(-1, 2) for fr in c.decode(audio=0) for f in r.resample(fr)]
        parts += [f.to_ndarray().reshape(-1, 2) for f in r.resample(None)]
    return np.concatenate(parts)


def _sound(x: np.ndarray) -> np.ndarray:
    """The rows that are not exact silence: the device's priming zeros and underrun gaps (the test
    device runs faster than real time) are left out, the clip's own samples stay in order."""
    return x[np.any(x != 0, axis=1)]


def test_sound_reaches_the_device_sample_for_sample(alsa_speaker, clip: Path) -> None:
    r = run_child(alsa_speaker, clip, "play")
    assert r["device"] and r["note"] == "" and r["device"]["rate"] == SPEAKER_RATE
    assert [e[2] for e in r["events"] if e[0] == "playing"] == [True, False]
    assert not [e for e in r["events"] if e[0] == "problem"]
    written = np.frombuffer(bytes(alsa_speaker.data[: len(alsa_speaker.data) // 8 * 8]), np.float32).reshape(-1, 2)
    want = _sound(_reference_audio(clip, SPEAKER_RATE))
    got = _sound(written)
    # resampled 48 -> 44.1 kHz by the player exactly as PyAV's resampler does in one pass
    assert len(got) == len(want), (len(got), len(want))
    assert np.array_equal(got, want)
    assert r["frames"] == sorted(r["frames"]) and len(r["frames"]) > 10


class _VanishingOutput:
    """Stands in for DeviceOutput: takes samples on a monotonic clock, then its device is gone."""

    silent = False
    rate, channels = 48000, 2

    def __init__(self, device) -> None:
        from mmdesk.playback.output import SilentOutput

        self._clock = SilentOutput()
        self.written = 0
        self.closed = threading.Event()
        _VanishingOutput.last = self

    def __getattr__(self, name):
        return getattr(self._clock, name)

    def write(self, samples) -> None:
        self.written += len(samples)

    def failure(self) -> str:
        return "the audio output device stopped" if self._clock.position() > 1.0 else ""

    def close(self) -> None:
        self.closed.set()


def test_an_output_device_that_vanishes_is_reported_and_playback_goes_on_silently(clip: Path, monkeypatch) -> None:
    from mmdesk.playback import OutputDevice
    from mmdesk.playback import player as engine

    monkeypatch.setattr(engine, "DeviceOutput", _VanishingOutput)
    rec = Recorder()
    p = Player(rec.events(), output=OutputDevice(0, "test", 48000, 2))
    try:
        p.load(str(clip))
        rec.wait(lambda: rec.frames, 10, "the first frame")
        p.play()
        rec.wait(lambda: not p.playing, 20, "the end of the clip")
    finally:
        p.close()
    assert rec.problems == ["playback: the audio output device stopped: playback continues silently"]
    assert rec.playing == [True, False] and _VanishingOutput.last.closed.wait(2)
    assert _VanishingOutput.last.written > 48000  # it was fed until it vanished
    assert rec.positions[-1][1] == pytest.approx(3.27, abs=0.05)  # played to the end on the silent clock
    assert max(f.t for _, f in rec.frames) > 3.0
