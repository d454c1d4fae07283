"""Live analysis fed from a file-backed camera (a RAVDESS clip served as an MJPEG stream)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mmdesk.session.live import DeviceEvent, LiveSession, LiveSettings


class Collector:
    def __init__(self) -> None:
        self.records: list[dict] = []
        self.devices: list[DeviceEvent] = []
        self.texts: list = []
        self.failed: list[str] = []
        self.changed = threading.Event()

    def kw(self) -> dict:
        return {"on_record": self._add(self.records), "on_device": self._add(self.devices),
                "on_text": self._add(self.texts), "on_failed": self._add(self.failed)}

    def _add(self, into: list):
        def add(x) -> None:
            into.append(x)
            self.changed.set()
        return add

    def wait(self, cond, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                return False
            self.changed.wait(0.1)
            self.changed.clear()
        return True

    def windows(self) -> list[dict]:
        return [r for r in self.records if r["type"] == "window"]


def test_live_camera_and_typed_text_then_camera_lost(engine, clip_camera, ravdess_clip: Path) -> None:
    cam = clip_camera(ravdess_clip, seconds=7)
    c = Collector()
    session = LiveSession(engine, LiveSettings(), **c.kw()).start()
    try:
        session.set_camera(cam.url)
        assert c.wait(lambda: c.devices, 15), "camera never reported"
        assert c.devices[0].ok, c.devices[0].message
        session.submit_text("I am so happy to see you again!")
        assert c.wait(lambda: len(c.windows()) >= 4, 20), c.failed
        windows = c.windows()
        assert c.records[0]["type"] == "meta" and c.records[0]["providers"]
        assert [w["index"] for w in windows] == sorted({w["index"] for w in windows})
        assert any(w["face"]["present"] for w in windows), [w["face"] for w in windows]
        face = next(w["face"] for w in windows if w["face"]["present"])
        assert abs(sum(face["probs"].values()) - 1) < 1e-3 and face["box"][2] > 50
        assert all(w["voice"]["reason"] == "no microphone" for w in windows)
        assert any(w["text"]["present"] and w["text"]["origins"] == ["typed"] for w in windows)
        assert c.texts and c.texts[0].text == "I am so happy to see you again!"
        stats = session.stats()
        assert stats.provider == "CPU" and stats.capture_fps > 5 and stats.windows >= 4
        assert stats.latency_ms < 10_000 and session.latest_frame() is not None
        # the stream ends after 7 s: the camera is reported lost, windows go on without it
        assert c.wait(lambda: len(c.devices) >= 2, 20)
        lost = c.devices[-1]
        assert not lost.ok and lost.kind == "camera" and lost.message
        n = len(c.windows())
        assert c.wait(lambda: len(c.windows()) >= n + 2, 10)
        assert c.windows()[-1]["face"]["reason"] == "no camera"
        assert not c.failed
    finally:
        session.stop()


def test_live_microphone_is_judged_and_transcribed(engine, ravdess_clip: Path) -> None:
    """A file-backed microphone playing a RAVDESS sentence: voice judged, speech transcribed."""
    from session_support import FileMicrophone

    c = Collector()
    session = LiveSession(engine, LiveSettings(), **c.kw(),
                          open_microphone=lambda device, clock: _opened(FileMicrophone(ravdess_clip, clock)))
    session.start()
    try:
        assert c.wait(lambda: engine.speech_loaded, 60)  # as when a user starts talking later
        session.set_microphone("file")
        assert c.wait(lambda: any(e.kind == "microphone" and not e.ok for e in c.devices), 90), c.devices
        assert c.wait(lambda: [e for e in c.texts if e.final], 90), c.texts
        finals = [e for e in c.texts if e.final]
        assert "talking by the door" in finals[0].text.lower() and finals[0].origin == "asr"
        windows = c.windows()
        assert any(w["voice"]["present"] for w in windows), [w["voice"] for w in windows]
        assert all(w["face"]["reason"] == "no camera" for w in windows)
        assert session.stats().windows == len(windows) and not c.failed
    finally:
        session.stop()


def _opened(src):
    src.open()
    return src


def test_missing_devices_leave_text_only_analysis(engine) -> None:
    c = Collector()
    session = LiveSession(engine, LiveSettings(), **c.kw()).start()
    try:
        session.set_camera(97)
        session.set_microphone("no such microphone")
        assert c.wait(lambda: len(c.devices) >= 2, 15)
        by_kind = {e.kind: e for e in c.devices}
        assert not by_kind["camera"].ok and "no camera at index 97" in by_kind["camera"].message
        assert not by_kind["microphone"].ok and "microphone" in by_kind["microphone"].message
        session.submit_text("This is terrible, I hate it.")
        assert c.wait(lambda: any(w["text"]["present"] for w in c.windows()), 15), c.failed
        w = next(w for w in c.windows() if w["text"]["present"])
        assert w["text"]["text"] == "This is terrible, I hate it." and not w["face"]["present"]
        assert not c.failed
    finally:
        session.stop()
