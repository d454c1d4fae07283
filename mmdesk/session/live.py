"""Live analysis: camera, microphone and typed text → windows → analyzer, on worker threads.

Threads:
  * opening a device runs on its own short-lived thread (a camera may take seconds to deliver its
    first frame), so choosing a device never blocks the caller;
  * the capture thread drains the sources every ``POLL_S``, keeps the newest frame for the preview
    and the last seconds of audio for the meter, and cuts windows up to ``now - slack``;
  * the inference thread analyses windows. Between the two sits a one-slot ``NewestWinsBuffer``:
    when inference falls behind, the older window is dropped and counted, so latency stays bounded.

A device that fails or disappears mid-session ends only that device: ``on_device`` reports it,
the windows carry on with the remaining streams, and the device can be chosen again.
Callbacks run on the worker threads; the GUI marshals them to its own thread.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from mmdesk import __version__
from mmdesk.analysis.records import window_record
from mmdesk.capture.live import LiveSource
from mmdesk.capture.text import TypedTextSource
from mmdesk.core.buffer import NewestWinsBuffer
from mmdesk.core.clock import SessionClock
from mmdesk.core.labels import LABELS
from mmdesk.core.types import AUDIO_RATE, AudioChunk, TextEvent, VideoFrame, Window
from mmdesk.errors import MmdeskError
from mmdesk.session.engine import Engine, active_provider
from mmdesk.session.priority import lower_thread_priority
from mmdesk.session.tasks import start_thread
from mmdesk.sync.windower import Windower, WindowSpec

log = logging.getLogger(__name__)

POLL_S = 0.02  # capture thread period: 50 Hz is finer than any window boundary needs
AUDIO_KEEP_S = 5.0  # audio kept for the waveform view
STATS_SPAN_S = 5.0  # rates are averaged over this many seconds

DeviceKind = Literal["camera", "microphone"]
Record = dict[str, Any]


@dataclass(frozen=True)
class LiveSettings:
    window: float = 2.0
    hop: float = 0.5
    fps: float = 5.0  # analysed frames per second (the preview shows every frame)
    slack: float = 0.3  # windows close this long after their end, so late audio blocks still count
    asr: bool = True  # transcribe the microphone (text reaches the windows still open when it arrives)


@dataclass(frozen=True)
class DeviceEvent:
    kind: DeviceKind
    ok: bool
    device: int | str | None
    message: str  # what happened, one line (why it failed, or which device is now active)


@dataclass(frozen=True)
class LiveStats:
    provider: str  # CUDA / CPU: what the models really run on ("—" before they are loaded)
    capture_fps: float
    windows_per_s: float
    latency_ms: float  # median over recent windows: window end → record emitted
    dropped_windows: int
    dropped_items: int  # frames/audio blocks the capture thread missed (device buffers full)
    windows: int


def _open_camera(device: int | str, clock: SessionClock) -> LiveSource:
    from mmdesk.capture.camera import CameraSource

    src = CameraSource(device, clock=clock)
    src.open()
    return src


def _open_microphone(device: int | str | None, clock: SessionClock) -> LiveSource:
    from mmdesk.capture.microphone import MicrophoneSource

    src = MicrophoneSource(device, clock=clock)
    src.open()
    return src


class _Rate:
    """Events per second over the last ``span`` seconds (or since the first event, if sooner)."""

    def __init__(self, span: float = STATS_SPAN_S) -> None:
        self.span = span
        self._t: collections.deque[float] = collections.deque()
        self._first: float | None = None

    def tick(self, t: float) -> None:
        if self._first is None:
            self._first = t
        self._t.append(t)
        while self._t and self._t[0] < t - self.span:
            self._t.popleft()

    def rate(self, now: float) -> float:
        """Safe from another thread: reads a snapshot, never mutates."""
        if self._first is None:
            return 0.0
        recent = [t for t in list(self._t) if t >= now - self.span]
        return len(recent) / max(0.5, min(self.span, now - self._first))


class LiveSession:
    def __init__(
        self,
        engine: Engine,
        settings: LiveSettings = LiveSettings(),
        *,
        on_record: Callable[[Record], None],
        on_device: Callable[[DeviceEvent], None] = lambda e: None,
        on_text: Callable[[TextEvent], None] = lambda e: None,
        on_failed: Callable[[str], None] = lambda msg: None,
        open_camera: Callable[[int | str, SessionClock], LiveSource] = _open_camera,
        open_microphone: Callable[[int | str | None, SessionClock], LiveSource] = _open_microphone,
        run: Callable[..., None] = start_thread,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.spec = WindowSpec(settings.window, settings.hop)
        self.on_record = on_record
        self.on_device = on_device
        self.on_text = on_text
        self.on_failed = on_failed
        self._open_camera = open_camera
        self._open_microphone = open_microphone
        self._run = run  # starts background work: a new thread, or the app's TaskPool
        self.clock = SessionClock()
        self.text = TypedTextSource(clock=self.clock)
        self.text.open()
        self._camera: LiveSource | None = None
        self._microphone: LiveSource | None = None
        self._speech: Any = None  # mmdesk.asr.live.SpeechTextSource while a microphone is on
        self._speech_ending: list[Any] = []  # closing transcribers: drained until their last text
        self._lock = threading.Lock()
        self._generation = {"camera": 0, "microphone": 0}  # a newer choice wins over a slow open
        self._windower = Windower(self.spec, has_video=False, has_audio=False)
        self._windows: NewestWinsBuffer[Window] = NewestWinsBuffer(1)
        self._stop = threading.Event()
        self._started = False
        self._frame: VideoFrame | None = None
        # replaced (never modified) by the capture thread: readers take the reference without a lock
        self._audio = np.zeros(int(AUDIO_KEEP_S * AUDIO_RATE), np.float32)
        self._dropped_items = 0
        self._next_frame_t = -1.0
        self._frame_rate = _Rate(2.0)
        self._window_rate = _Rate()
        self._latencies: collections.deque[float] = collections.deque(maxlen=20)
        self._dropped_items_closed = 0  # drops of devices already closed
        self.windows = 0
        self.provider = "—"
        self._loops_done = [threading.Event(), threading.Event()]

    # -- control (any thread) --------------------------------------------------------------------
    def start(self) -> LiveSession:
        if not self._started:
            self._started = True
            self._run(self._capture_loop)
            self._run(self._inference_loop)
            if self.settings.asr:
                self._run(self._load_speech)  # so a microphone chosen later transcribes at once
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._windows.close()
        if self._started:
            for done in self._loops_done:
                done.wait(timeout)
        with self._lock:
            cam, mic, self._camera, self._microphone = self._camera, self._microphone, None, None
            speech, self._speech = self._speech, None
        for src in (cam, mic):
            if src is not None:
                src.close()
        if speech is not None:
            speech.close(timeout=timeout)
        self.text.close()

    @property
    def running(self) -> bool:
        return self._started and not self._stop.is_set()

    def set_camera(self, device: int | str | None) -> None:
        """Use this camera (None: no camera). Opens on a helper thread; ``on_device`` reports."""
        self._select("camera", device)

    def set_microphone(self, device: int | str | None, *, enabled: bool = True) -> None:
        """Use this microphone (None: the default input) or, with ``enabled=False``, none."""
        self._select("microphone", device if enabled else None, enabled=enabled)

    def submit_text(self, text: str) -> TextEvent | None:
        return self.text.submit(text)

    def _select(self, kind: DeviceKind, device: int | str | None, *, enabled: bool | None = None) -> None:
        enabled = (device is not None) if enabled is None else enabled
        with self._lock:
            self._generation[kind] += 1
            gen = self._generation[kind]
            old = self._camera if kind == "camera" else self._microphone
            self._set_source(kind, None)
        if old is not None:
            self._dropped_items_closed += old.dropped
            old.close()
        if not enabled:
            self._device_event(DeviceEvent(kind, False, None, f"no {kind} selected"))
            return
        self._run(self._open, kind, device, gen)

    def _open(self, kind: DeviceKind, device: int | str | None, gen: int) -> None:
        lower_thread_priority()  # the camera's grab thread and PortAudio's start from here
        try:
            opener = self._open_camera if kind == "camera" else self._open_microphone
            src = opener(device, self.clock)  # type: ignore[arg-type]
        except MmdeskError as e:
            self._device_event(DeviceEvent(kind, False, device, e.one_line()))
            return
        except Exception as e:
            log.exception("opening the %s failed", kind)
            self._device_event(DeviceEvent(kind, False, device, f"cannot open {kind} {device!r}: {e}"))
            return
        with self._lock:
            current = self._generation[kind] == gen and not self._stop.is_set()
            if current:
                self._set_source(kind, src)
        if not current:  # the user chose another device meanwhile, or the session ended
            src.close()
            return
        name = getattr(src, "info", {}).get("name") or device
        self._device_event(DeviceEvent(kind, True, device, f"{kind} {name} active"))
        if kind == "microphone" and self.settings.asr:
            self._start_transcribing(src, device)

    def _load_speech(self) -> None:
        try:
            self.engine.load_speech()
        except MmdeskError:
            pass  # reported when a microphone is chosen

    def _start_transcribing(self, mic: LiveSource, device: int | str | None) -> None:
        """Attach live speech-to-text once its model is loaded (the microphone already runs)."""
        try:
            speech = self.engine.live_speech(self.clock)
        except MmdeskError as e:  # no speech model: the rest of the session still works
            self._device_event(DeviceEvent("microphone", True, device, f"no live transcription: {e.one_line()}"))
            return
        with self._lock:
            attached = self._microphone is mic and not self._stop.is_set()
            if attached:
                self._speech = speech
        if not attached:
            speech.close(timeout=0)

    def _device_event(self, event: DeviceEvent) -> None:
        if not self._stop.is_set():  # after stop() the listener may be gone (a closed window)
            self.on_device(event)

    def _set_source(self, kind: DeviceKind, src: LiveSource | None) -> None:
        """(under the lock) Swap a device; the windower only waits for the streams that exist."""
        if kind == "camera":
            self._camera = src
            self._windower.has_video = src is not None
            if src is None:
                self._frame = None
        else:
            self._microphone = src
            self._windower.has_audio = src is not None
            if src is None and self._speech is not None:
                speech, self._speech = self._speech, None
                self._speech_ending.append(speech)  # its last words still reach the windows
                self._run(speech.close)  # it transcribes what it still holds: never on this thread

    # -- what the GUI polls (any thread) -----------------------------------------------------------
    @property
    def has_microphone(self) -> bool:
        return self._microphone is not None

    def latest_frame(self) -> VideoFrame | None:
        return self._frame

    # Never take ``_lock`` here: the capture thread holds it at a lower priority, and a GUI
    # thread waiting for it would stall as long as the capture thread waits for a core.
    def audio_tail(self, seconds: float) -> np.ndarray:
        n = int(min(seconds, AUDIO_KEEP_S) * AUDIO_RATE)
        return self._audio[-n:]

    def stats(self) -> LiveStats:
        now = time.monotonic()
        lat = float(np.median(list(self._latencies))) * 1e3 if self._latencies else float("nan")
        return LiveStats(self.provider, self._frame_rate.rate(now), self._window_rate.rate(now), lat,
                         self._windows.dropped, self._dropped_items, self.windows)

    def meta_record(self) -> Record:
        a = self.engine.loaded
        return {
            "type": "meta", "version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": {"path": "", "live": True,
                       "camera": getattr(self._camera, "device", None),
                       "microphone": (getattr(self._microphone, "info", None) or {}).get("name")},
            "settings": {"window": self.settings.window, "hop": self.settings.hop, "fps": self.settings.fps,
                         "device": self.engine.settings.device},
            "labels": list(LABELS),
            "models": a.models() if a else {},
            "providers": a.providers() if a else {},
            "fusion": a.fusion_info() if a else {},
            "notes": [],
        }

    # -- capture thread -----------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        lower_thread_priority()
        try:
            while not self._stop.wait(POLL_S):
                with self._lock:
                    sources = [("camera", self._camera), ("microphone", self._microphone), ("text", self.text),
                               ("speech", self._speech)] + [("speech", s) for s in self._speech_ending]
                    for kind, src in sources:
                        if src is not None:
                            self._drain(kind, src)
                    self._speech_ending = [s for s in self._speech_ending if not s.exhausted]
                    windows = self._windower.ready(self.clock.now() - self.settings.slack)
                    self._dropped_items = self._dropped_items_closed + sum(
                        s.dropped for s in (self._camera, self._microphone) if s is not None)
                for w in windows:
                    self._windows.put(w)
        except Exception as e:
            log.exception("live capture failed")
            self.on_failed(f"live capture stopped: {type(e).__name__}: {e}")
        finally:
            self._loops_done[0].set()

    def _drain(self, kind: str, src: Any) -> None:
        """(under the lock) Move everything the source has into the windower."""
        while (item := src.read(timeout=0)) is not None:
            if isinstance(item, VideoFrame):
                self._frame = item
                self._frame_rate.tick(time.monotonic())
                if item.t >= self._next_frame_t:  # analyse at most ``fps`` frames per second
                    self._next_frame_t = item.t + 1.0 / self.settings.fps if self.settings.fps else item.t
                    self._windower.push(item)
            elif isinstance(item, AudioChunk):
                self._keep_audio(item.samples)
                self._windower.push(item)
                if self._speech is not None:
                    self._speech.feed(item)
            elif isinstance(item, TextEvent):
                if item.final:  # partial transcripts are for the screen; the final one is judged
                    self._windower.push(item)
                self.on_text(item)
        if kind in ("camera", "microphone") and getattr(src, "lost", False) and src.exhausted:
            self._dropped_items_closed += src.dropped
            self._set_source(kind, None)  # type: ignore[arg-type]
            self._generation[kind] += 1
            msg = src.error or f"{kind} lost"
            self._run(self._report_lost, kind, src, msg)

    def _report_lost(self, kind: DeviceKind, src: LiveSource, message: str) -> None:
        src.close()  # may wait for a wedged driver: never on the capture thread
        self._device_event(DeviceEvent(kind, False, getattr(src, "device", None), message))

    def _keep_audio(self, samples: np.ndarray) -> None:
        n = min(len(samples), len(self._audio))
        self._audio = np.concatenate([self._audio[n:], samples[-n:]])

    # -- inference thread ---------------------------------------------------------------------------
    def _inference_loop(self) -> None:
        lower_thread_priority()
        try:
            with self.engine.busy:
                analyzer = self.engine.analyzer()
                self.provider = active_provider(analyzer.providers())
                analyzer.reset(0.0)
                self.on_record(self.meta_record())
                while not self._stop.is_set():
                    window = self._windows.get(timeout=0.2)
                    if window is None:
                        continue
                    if window.has_audio:
                        analyzer.feed_audio(AudioChunk(window.start, window.audio))
                    record = window_record(analyzer.analyse(window))
                    if not window.has_video:
                        record["face"]["reason"] = "no camera"
                    if not window.has_audio:
                        record["voice"]["reason"] = "no microphone"
                    self._latencies.append(max(0.0, self.clock.now() - window.end))
                    self.windows += 1
                    self._window_rate.tick(time.monotonic())
                    self.on_record(record)
        except MmdeskError as e:
            self.on_failed(e.one_line())
        except Exception as e:
            log.exception("live analysis failed")
            self.on_failed(f"live analysis stopped: {type(e).__name__}: {e}")
        finally:
            self._loops_done[1].set()
