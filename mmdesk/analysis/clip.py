"""Analyse a recorded clip: decode → windows → per-modality results, streamed with bounded memory.

Decoding runs ahead in a reader thread behind a bounded, blocking queue (a file loses nothing,
unlike a live source): FFmpeg releases the GIL, so decoding overlaps with inference.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mmdesk.analysis.analyzer import Analyzer
from mmdesk.asr.events import ClipSpeechText
from mmdesk.capture.clip import ClipSource
from mmdesk.core.types import (
    AudioChunk,
    CaptureItem,
    TextEvent,
    VideoFrame,
    WindowResult,
)
from mmdesk.sync.windower import Windower, WindowSpec

READ_AHEAD = 32  # decoded items held between the reader thread and the analyser


@dataclass
class ClipRun:
    """What happened while analysing one clip (filled in as the run goes)."""

    path: Path
    info: object = None
    windows: int = 0
    complete: bool = False
    error: str = ""  # why decoding stopped early, if it did
    notes: list[str] = field(default_factory=list)
    media_seconds: float = 0.0


class _Reader(threading.Thread):
    """Pumps a source into a bounded queue; ``None`` marks the end."""

    def __init__(self, source: ClipSource) -> None:
        super().__init__(name="mmdesk-clip-reader", daemon=True)
        self.source = source
        self.items: queue.Queue[CaptureItem | BaseException | None] = queue.Queue(READ_AHEAD)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._decode_ms = 0.0

    def take_decode_ms(self) -> float:
        with self._lock:
            ms, self._decode_ms = self._decode_ms, 0.0
            return ms

    def _put(self, item: CaptureItem | BaseException | None) -> None:
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                t = time.perf_counter()
                item = self.source.read(timeout=1.0)
                with self._lock:
                    self._decode_ms += (time.perf_counter() - t) * 1e3
                if item is not None:
                    self._put(item)
                elif self.source.exhausted:
                    break
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            self._put(exc)
        finally:
            self._put(None)


def _push_text(windower: Windower, step: Callable[..., list[TextEvent]], analyzer: Analyzer, *args: object) -> None:
    t = time.perf_counter()
    for event in step(*args):
        windower.push(event)
    analyzer.times.add("asr", (time.perf_counter() - t) * 1e3)


def analyse_clip(
    clip: str | Path | ClipSource,
    analyzer: Analyzer,
    spec: WindowSpec = WindowSpec(),
    *,
    max_fps: float | None = 5.0,
    subtitles: bool = True,
    run: ClipRun | None = None,
    progress: Callable[[float], None] | None = None,
    speech: ClipSpeechText | None = None,
) -> Iterator[WindowResult]:
    """Yield one result per window as soon as it is complete. ``run`` collects the summary.

    ``clip`` is a path, or a ``ClipSource`` the caller has opened (``max_fps``/``subtitles`` are
    then the source's own); the source is closed when the generator ends.

    ``speech`` transcribes the clip's audio as it streams by: a window is analysed only once every
    word that may overlap it has been transcribed (``speech.settled``), so text and audio stay aligned.

    Opening problems raise ``MediaError``; a clip that breaks partway ends early with
    ``run.error`` set, and every window finished before that is still yielded.
    """
    if isinstance(clip, ClipSource):  # already opened by the caller (which probed it once)
        source = clip
    else:
        source = ClipSource(clip, max_fps=max_fps, subtitles=subtitles)
        source.open()
    run = run if run is not None else ClipRun(source.path)
    reader = _Reader(source)
    try:
        info = source.info
        run.info = info
        run.notes.extend(getattr(info, "notes", []) or [])
        duration = float(getattr(info, "duration", 0.0) or 0.0)
        windower = Windower(spec, has_video=info.has_video, has_audio=info.has_audio)
        analyzer.reset(0.0)
        last_t = 0.0

        def emit(window) -> WindowResult:
            analyzer.times.add("decode", reader.take_decode_ms())
            result = analyzer.analyse(window)
            run.windows += 1
            if progress is not None:
                progress(min(1.0, window.end / duration) if duration > 0 else 0.0)
            return result

        reader.start()
        while (item := reader.items.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, AudioChunk):
                analyzer.feed_audio(item)
                last_t = max(last_t, item.end)
                if speech is not None:
                    _push_text(windower, speech.feed, analyzer, item)
            elif isinstance(item, VideoFrame):
                last_t = max(last_t, item.t)
            t = time.perf_counter()
            windower.push(item)
            ready = windower.ready(None if speech is None else min(windower.watermark, speech.settled))
            analyzer.times.add("windowing", (time.perf_counter() - t) * 1e3)
            for window in ready:
                yield emit(window)
        error = getattr(source, "error", "") or ""
        run.error = error
        end = last_t if (error or duration <= 0) else duration
        run.media_seconds = end
        if speech is not None:
            _push_text(windower, speech.flush, analyzer)
        for window in windower.flush(end):
            yield emit(window)
        run.complete = not error
        # the source adds notes as it reads (subtitle encoding, skipped packets, audio gaps)
        run.notes.extend(n for n in (getattr(source.info, "notes", ()) or ()) if n not in run.notes)
    finally:
        reader.stop.set()
        reader.join(timeout=5)
        source.close()
