"""Clip analysis on a worker thread: records, progress and the end, through plain callbacks.

The records are exactly those of ``mmdesk analyze`` (meta, one per window, end). ``cancel()``
stops at the next window; the end record then says ``"complete": false, "error": "cancelled"``
and every finished window is kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdesk import __version__
from mmdesk.analysis.analyzer import Analyzer
from mmdesk.analysis.clip import ClipRun, analyse_clip
from mmdesk.analysis.records import window_record
from mmdesk.capture.clip import ClipSource
from mmdesk.core.labels import LABELS
from mmdesk.errors import MmdeskError
from mmdesk.session.engine import Engine
from mmdesk.session.priority import lower_thread_priority
from mmdesk.sync.windower import WindowSpec

log = logging.getLogger(__name__)

Record = dict[str, Any]

if TYPE_CHECKING:
    from mmdesk.asr.events import ClipSpeechText


@dataclass(frozen=True)
class ClipSettings:
    window: float = 2.0
    hop: float = 0.5
    fps: float = 5.0  # analysed video frames per second; 0 = every frame
    subtitles: bool = True
    asr: bool = True  # transcribe the clip's speech when it has no sidecar subtitles


def clip_meta(path: Path, source: ClipSource, settings: ClipSettings, analyzer: Analyzer, device: str,
              speech: ClipSpeechText | None) -> Record:
    """The meta record, as ``mmdesk analyze`` writes it."""
    info = source.info
    models = analyzer.models()
    if speech is not None:
        choice = speech.transcriber.engine.choice
        models["speech_to_text"] = {"file": choice.name, "sha256": choice.sha256}
    return {
        "type": "meta",
        "version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {"path": str(path.resolve()), "duration": info.duration, "has_video": info.has_video,
                   "has_audio": info.has_audio, "width": info.width, "height": info.height,
                   "fps": info.fps, "audio_rate": info.audio_rate, "audio_channels": info.audio_channels},
        "settings": {**asdict(settings), "device": device},
        "text_source": "subtitle" if source.subtitle_path is not None else ("asr" if speech is not None else "none"),
        "labels": list(LABELS),
        "models": models,
        "providers": analyzer.providers(),
        "fusion": analyzer.fusion_info(),
        "notes": list(info.notes),
    }


class ClipJob:
    """Analyse one clip on a daemon thread.

    ``on_record`` gets the meta record, each window record and the end record, in order;
    ``on_progress`` a fraction 0..1; ``on_failed`` one line when the clip cannot be analysed at all
    (then no end record follows). Callbacks run on the worker thread.
    """

    def __init__(
        self,
        path: str | Path,
        engine: Engine,
        settings: ClipSettings = ClipSettings(),
        *,
        on_record: Callable[[Record], None],
        on_progress: Callable[[float], None] = lambda f: None,
        on_failed: Callable[[str], None] = lambda msg: None,
    ) -> None:
        self.path = Path(path)
        self.engine = engine
        self.settings = settings
        self.on_record = on_record
        self.on_progress = on_progress
        self.on_failed = on_failed
        self._cancel = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mmdesk-clip-analysis", daemon=True)

    def start(self, run: Callable[[Callable[[], None]], None] | None = None) -> ClipJob:
        """Run on a new thread, or hand the work to ``run`` (e.g. ``TaskPool.submit``)."""
        if run is None:
            self._thread.start()
        else:
            run(self._run)
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def join(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def _run(self) -> None:
        lower_thread_priority()
        try:
            with self.engine.busy:
                self._analyse()
        except MmdeskError as e:
            self.on_failed(e.one_line())
        except Exception as e:  # a bug must reach the user as a message, not kill the app silently
            log.exception("clip analysis failed")
            self.on_failed(f"analysis of {self.path.name} failed: {type(e).__name__}: {e}")
        finally:
            self.done.set()

    def _analyse(self) -> None:
        s = self.settings
        try:
            spec = WindowSpec(s.window, s.hop)
        except ValueError as e:
            raise MmdeskError(f"invalid window settings: {e}", "use e.g. window 2.0 s, hop 0.5 s") from None
        source = ClipSource(self.path, max_fps=s.fps or None, subtitles=s.subtitles)
        source.open()  # probes: a bad file fails here with one line
        try:
            analyzer = self.engine.analyzer()
            use_asr = s.asr and source.subtitle_path is None and source.info.has_audio
            speech = self.engine.clip_speech() if use_asr else None
        except BaseException:
            source.close()
            raise
        self.on_record(clip_meta(self.path, source, s, analyzer, self.engine.settings.device, speech))
        run = ClipRun(self.path)
        started = time.perf_counter()
        windows = 0
        results = analyse_clip(source, analyzer, spec, run=run, progress=self.on_progress, speech=speech)
        try:
            for result in results:
                self.on_record(window_record(result))
                windows += 1
                if self._cancel.is_set():
                    break
        finally:
            results.close()  # stops the reader thread and closes the source
        cancelled = self._cancel.is_set() and not run.complete
        if speech is not None:
            run.notes.extend(speech.notes())
        self.on_record({
            "type": "end", "complete": run.complete and not cancelled, "windows": windows,
            "media_seconds": round(run.media_seconds, 3), "seconds": round(time.perf_counter() - started, 3),
            "error": "cancelled" if cancelled else run.error, "notes": [n for n in run.notes if n not in source.info.notes],
            **({"asr": speech.summary()} if speech is not None else {}),
        })
        if not cancelled:
            self.on_progress(1.0)
