"""Support shared by tests/session and tests/qt: one loaded engine, a RAVDESS clip, a camera stream."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

CAPTURE_TESTS = Path(__file__).resolve().parents[1] / "capture"
if str(CAPTURE_TESTS) not in sys.path:
    sys.path.insert(0, str(CAPTURE_TESTS))

from capture_support import MjpegServer, alsa_mic, serve_mjpeg  # noqa: F401  (fixtures)

from mmdesk.capture.clip import ClipSource
from mmdesk.capture.live import LiveSource
from mmdesk.core.clock import SessionClock
from mmdesk.core.types import AudioChunk

CLIP = "av/ravdess_actor05/01-01-03-01-01-02-05.mp4"  # 3.2 s, happy, 1280x720


@pytest.fixture(scope="session")
def ravdess_clip(assets: Path) -> Path:
    p = assets / CLIP
    if not p.is_file():
        pytest.skip(f"{p} missing")
    return p


@pytest.fixture(scope="session")
def engine(pack_dir: Path):
    from mmdesk.session.engine import Engine, EngineSettings

    e = Engine(EngineSettings(device="cpu", models=str(pack_dir)))
    e.analyzer()
    return e


class FileMicrophone(LiveSource):
    """A microphone that plays a clip's audio track in real time onto the session clock (the
    way a device delivers it: 100 ms blocks, timestamped when they are due)."""

    def __init__(self, path: Path, clock: SessionClock) -> None:
        super().__init__(clock=clock, buffer=64)
        self.path = path
        self.info = {"name": f"file {path.name}"}
        self._thread = threading.Thread(target=self._play, daemon=True)

    def open(self) -> None:
        self._opened = True
        self._thread.start()

    def _play(self) -> None:
        with ClipSource(self.path, video=False, subtitles=False) as src:
            chunks = [c for c in iter(lambda: src.read(timeout=1.0), None) if isinstance(c, AudioChunk)]
        audio = np.concatenate([c.samples for c in chunks])
        t0 = self.clock.now()
        block = 1600
        for i in range(0, len(audio), block):
            due = t0 + (i + block) / 16_000
            while self.clock.now() < due and not self._closed:
                time.sleep(0.01)
            if self._closed:
                return
            self._buffer.put(AudioChunk(t0 + i / 16_000, audio[i : i + block].copy()))
        self._mark_lost(f"{self.path.name} ended")  # like a device unplugged after the clip

    def close(self) -> None:
        self._closed = True
        self._buffer.close()


@pytest.fixture
def clip_camera(ffmpeg: str) -> Iterator[Callable[..., MjpegServer]]:
    """Factory: ``clip_camera(clip, seconds)`` serves a clip's video in real time as an MJPEG
    stream on 127.0.0.1 (what an IP camera sends), looping it, for ``seconds``."""
    servers: list[MjpegServer] = []

    def start(clip: Path, seconds: float = 10.0) -> MjpegServer:
        source = ["-stream_loop", "-1", "-i", str(clip), "-an", "-vf", "scale=640:-2,fps=15"]
        servers.append(serve_mjpeg(ffmpeg, source, seconds))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()
