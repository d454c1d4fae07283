"""One loaded ``Analyzer`` shared by clip and live analysis (loading the models takes seconds).

Only one analysis uses it at a time: the analyzer keeps per-stream state (frame cache, VAD).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmdesk.analysis.analyzer import Analyzer, AnalyzerSettings
from mmdesk.errors import MmdeskError
from mmdesk.inference.manifest import Manifest
from mmdesk.inference.pack import open_pack, resolve_pack_dir

if TYPE_CHECKING:
    from mmdesk.asr.events import ClipSpeechText
    from mmdesk.asr.live import SpeechTextSource
    from mmdesk.core.clock import SessionClock


@dataclass(frozen=True)
class EngineSettings:
    device: str = "auto"  # auto | cpu | cuda
    models: str | None = None  # model pack folder; None: $MMDESK_MODELS or the user data dir
    threads: int | None = None


class Engine:
    def __init__(self, settings: EngineSettings = EngineSettings()) -> None:
        self.settings = settings
        self._analyzer: Analyzer | None = None
        self._manifest: Manifest | None = None
        self._whisper: object | None = None  # mmdesk.asr speech engine, loaded on first clip needing it
        #: one line, once loading the models failed
        self.load_error = ""
        #: one line, once loading the speech-to-text model failed
        self.speech_error = ""
        self._lock = threading.Lock()
        self._speech_lock = threading.Lock()
        #: held by the analysis currently using the analyzer
        self.busy = threading.Lock()

    @property
    def pack_dir(self) -> str:
        return str(resolve_pack_dir(self.settings.models))

    def analyzer(self) -> Analyzer:
        """The analyzer, loaded on first use (call from a worker thread: it takes seconds)."""
        with self._lock:
            if self._analyzer is None:
                try:
                    manifest = self._manifest = open_pack(self.settings.models)
                    self._analyzer = Analyzer(
                        manifest, AnalyzerSettings(device=self.settings.device, threads=self.settings.threads)
                    )
                except MmdeskError as e:
                    self.load_error = e.one_line()
                    raise
            return self._analyzer

    @property
    def loaded(self) -> Analyzer | None:
        return self._analyzer

    @property
    def speech_loaded(self) -> bool:
        return self._whisper is not None

    def load_speech(self) -> object:
        """The Whisper model (loaded on first use, seconds; then shared by every clip and session)."""
        from mmdesk.asr.engine import choose_model, open_engine

        self.analyzer()
        assert self._manifest is not None
        with self._speech_lock:  # not ``_lock``: a live session must not wait for Whisper to load
            if self._whisper is None:
                try:
                    self._whisper = open_engine(choose_model(None, self._manifest), device=self.settings.device,
                                                  threads=self.settings.threads)
                except MmdeskError as e:
                    self.speech_error = e.one_line()
                    raise
        return self._whisper

    def live_speech(self, clock: SessionClock) -> SpeechTextSource:
        """An opened live transcription source on the session clock (Whisper loaded once)."""
        from mmdesk.asr.live import SpeechTextSource
        from mmdesk.asr.segmenter import SpeechSegmenter
        from mmdesk.asr.transcriber import SpeechTranscriber
        from mmdesk.perception.vad import SileroVad

        whisper = self.load_speech()
        assert self._manifest is not None
        src = SpeechTextSource(SpeechTranscriber(whisper, SpeechSegmenter(SileroVad(self._manifest))),  # type: ignore[arg-type]
                               clock=clock)
        src.open()
        return src

    def clip_speech(self) -> ClipSpeechText:
        """A fresh ASR stage for one clip, with ``mmdesk analyze``'s settings, on a Whisper model loaded once."""
        from mmdesk.asr.events import clip_speech_stage

        whisper = self.load_speech()
        assert self._manifest is not None
        return clip_speech_stage(whisper, self._manifest)  # type: ignore[arg-type]


def active_provider(providers: dict[str, str]) -> str:
    """One word for the status bar: CUDA when any model really runs on it, else CPU."""
    names = set(providers.values())
    if any("CUDA" in n for n in names):
        return "CUDA" if all("CUDA" in n for n in names if n.endswith("ExecutionProvider")) else "CUDA (partly CPU)"
    return "CPU" if names else "—"
