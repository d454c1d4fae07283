"""Transcribed utterances as text events for the windower, and the clip-side ASR stage.

Two ways a window gets its text (``context``):

``words`` (default)
    one ``TextEvent`` per word over the word's own time span: a window's text is exactly the
    words spoken inside it.
``utterance``
    one event per utterance, held from its start until the *next* utterance ends: a window's text
    is the utterance being spoken plus the one before it (MUStARD's utterance + context), and in a
    pause the last utterance. An utterance's event is therefore known only once the next one has
    been transcribed (or the clip ends).

Utterances whose mean word probability is below ``min_confidence`` (speech the model does not
know, e.g. another language for an English-only model; mumbling; singing) are not turned into
events: their words would be noise to the text model. They stay in ``held_back`` and are counted
in the records, and ``mmdesk transcribe`` shows them.
"""

from __future__ import annotations

from typing import Literal

from mmdesk.asr.engine import SpeechEngine, choose_model, open_engine
from mmdesk.asr.segmenter import SpeechSegmenter
from mmdesk.asr.transcriber import SpeechTranscriber
from mmdesk.asr.types import Utterance
from mmdesk.core.types import AudioChunk, TextEvent
from mmdesk.inference.manifest import Manifest
from mmdesk.perception.vad import SileroVad

Context = Literal["words", "utterance"]
CONTEXTS: tuple[str, ...] = ("words", "utterance")
#: mean word probability below which an utterance is held back (clear English ~0.9+, German
#: through the English-only tiny.en 0.4-0.56: docs/asr.md)
MIN_CONFIDENCE = 0.6
_MIN_SPAN = 0.01  # a word Whisper gives zero length still covers an instant
#: windows wait for their words, and meanwhile hold their video frames: in clip analysis a batch is
#: decoded once its first utterance is 15 s old (not 30 s as for plain transcription), which halves
#: the frames held (a 720p clip at 5 fps: ~200 MB instead of ~400 MB) for ~1.4x the Whisper time on
#: continuous speech (docs/benchmarks.md)
CLIP_MAX_SPAN = 15.0


def word_events(u: Utterance) -> list[TextEvent]:
    return [TextEvent(w.start, max(w.end, w.start + _MIN_SPAN), w.text, origin="asr") for w in u.words]


class TextTrack:
    """Utterances in, text events out, in the chosen ``context`` mode."""

    def __init__(self, context: Context = "words", min_confidence: float = MIN_CONFIDENCE) -> None:
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
        self.context = context
        self.min_confidence = min_confidence
        self.held_back: list[Utterance] = []
        self.used: list[Utterance] = []  # the transcript the judgements saw, for the end record
        self._last: Utterance | None = None  # utterance mode: its event waits for the next one's end

    def add(self, u: Utterance) -> list[TextEvent]:
        if u.confidence < self.min_confidence:
            self.held_back.append(u)
            return []
        self.used.append(u)
        if self.context == "words":
            return word_events(u)
        out = self._hold_until(u.end)
        self._last = u
        return out

    def finish(self) -> list[TextEvent]:
        return self._hold_until(self._last.end) if self._last is not None else []

    def settled(self, upstream: float) -> float:
        """Events starting before this have all been returned, given the transcriber's mark."""
        return upstream if self._last is None else min(upstream, self._last.start)

    def _hold_until(self, end: float) -> list[TextEvent]:
        last, self._last = self._last, None
        if last is None:
            return []
        return [TextEvent(last.start, max(end, last.start + _MIN_SPAN), last.text, origin="asr")]


class ClipSpeechText:
    """The ASR stage of clip analysis: audio chunks in, text events (and a watermark) out."""

    def __init__(self, transcriber: SpeechTranscriber, track: TextTrack) -> None:
        self.transcriber = transcriber
        self.track = track

    @property
    def settled(self) -> float:
        """Windows ending at or before this time have all their text."""
        return self.track.settled(self.transcriber.settled)

    def feed(self, chunk: AudioChunk) -> list[TextEvent]:
        return [e for u in self.transcriber.feed(chunk) for e in self.track.add(u)]

    def flush(self) -> list[TextEvent]:
        events = [e for u in self.transcriber.flush() for e in self.track.add(u)]
        return events + self.track.finish()

    def summary(self) -> dict[str, object]:
        """For the ``end`` record: what was transcribed and what was held back."""
        s = self.transcriber.stats
        return {
            "model": self.transcriber.engine.name,
            "language": self.transcriber.language or "auto",
            "languages": dict(s.languages),
            "utterances": s.utterances,
            "words": s.words,
            "speech_seconds": round(s.speech_seconds, 3),
            "decode_seconds": round(s.decode_seconds, 3),
            # whole utterances, once each: a window's text is only the words inside it
            "transcript": [
                {"start": round(u.start, 3), "end": round(u.end, 3), "text": u.text} for u in self.track.used
            ],
            "held_back": [
                {"start": u.start, "end": u.end, "text": u.text, "confidence": round(u.confidence, 3)}
                for u in self.track.held_back
            ],
        }

    def notes(self) -> list[str]:
        notes = []
        held = self.track.held_back
        if held:
            english_only = "" if self.transcriber.engine.multilingual else (
                f"; {self.transcriber.engine.name} is English-only, so other languages come out as wrong English words"
            )
            notes.append(
                f"{len(held)} of {self.transcriber.stats.utterances} transcribed utterance(s) were held back from "
                f"the text judgements: mean word probability below {self.track.min_confidence} (speech the model "
                f"does not know{english_only}); the end record lists them"
            )
        other = {lang: n for lang, n in self.transcriber.stats.languages.items() if lang and lang != "en"}
        if other:
            said = ", ".join(f"{lang} ({n} utterance(s))" for lang, n in sorted(other.items()))
            notes.append(f"speech detected as {said}: the text models are English-only, so their judgements of it "
                         "are unreliable")
        if self.transcriber.stats.utterances == 0:
            notes.append("no speech was transcribed: the VAD heard none, or Whisper found no words in it")
        return notes


def open_clip_speech(
    manifest: Manifest,
    *,
    model: str | None = None,
    language: str | None = None,
    context: Context = "words",
    device: str = "auto",
    threads: int | None = None,
) -> ClipSpeechText:
    """Load the Whisper model and the VAD for one clip; ``MmdeskError`` with a fix on failure."""
    engine = open_engine(choose_model(model, manifest), device=device, threads=threads)
    return clip_speech_stage(engine, manifest, language=language, context=context)


def clip_speech_stage(
    engine: SpeechEngine, manifest: Manifest, *, language: str | None = None, context: Context = "words"
) -> ClipSpeechText:
    """A fresh ASR stage for one clip on an already loaded Whisper model (an app reuses one per session)."""
    transcriber = SpeechTranscriber(engine, SpeechSegmenter(SileroVad(manifest)), language=language,
                                    max_span=CLIP_MAX_SPAN)
    return ClipSpeechText(transcriber, TextTrack(context))
