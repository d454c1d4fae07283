"""Streaming, VAD-gated transcription of a continuous signal (a clip's audio, or a long recording).

Whisper always encodes 30 s of audio, so transcribing each short utterance alone would cost a full
30 s pass per sentence. Utterances are therefore batched: their audio is joined (with ``gap`` of
silence between them, so Whisper sees the pause) up to ``batch_seconds``, decoded once, and every
word is mapped back to its utterance and to the timeline. A batch is also decoded when its first
utterance is ``max_span`` seconds old, which bounds both the memory held here and how long the
windows downstream wait for their text.

The gap is a full second because Whisper tends to skip an utterance that repeats the one before it
when they run together: ten RAVDESS clips joined (two sentences said over and over) came out with
30 % WER with 0.3 s gaps and 0 % with 1 s, at no cost on the read speech (docs/benchmarks.md).
"""

from __future__ import annotations

import bisect
import collections
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from mmdesk.asr.engine import SpeechEngine
from mmdesk.asr.segmenter import SpeechSegment, SpeechSegmenter
from mmdesk.asr.types import Utterance, Word
from mmdesk.core.types import AUDIO_RATE, AudioChunk


@dataclass
class TranscriptStats:
    """What the transcription did (for records and benchmarks)."""

    speech_seconds: float = 0.0  # audio the VAD passed to Whisper
    utterances: int = 0
    words: int = 0
    silent_segments: int = 0  # VAD said speech, Whisper heard no words (noise, music, breath)
    batches: int = 0
    decode_seconds: float = 0.0  # wall time inside Whisper
    languages: collections.Counter[str] = field(default_factory=collections.Counter)  # utterances per language


class SpeechTranscriber:
    def __init__(
        self,
        engine: SpeechEngine,
        segmenter: SpeechSegmenter,
        *,
        language: str | None = None,
        batch_seconds: float = 24.0,
        max_span: float = 30.0,
        gap: float = 1.0,
    ) -> None:
        self.engine = engine
        self.segmenter = segmenter
        self.language = engine.check_language(language)
        self.batch_seconds = batch_seconds
        self.max_span = max_span
        self.gap = gap
        self.stats = TranscriptStats()
        self._pending: list[SpeechSegment] = []

    @property
    def settled(self) -> float:
        """Every utterance starting before this time has been returned."""
        mark = self.segmenter.settled
        return min(mark, self._pending[0].start) if self._pending else mark

    def feed(self, chunk: AudioChunk) -> list[Utterance]:
        out: list[Utterance] = []
        for seg in self.segmenter.feed(chunk):
            out.extend(self._add(seg))
        if self._pending and self.segmenter.heard_until - self._pending[0].start >= self.max_span:
            out.extend(self._decode_pending())
        return out

    def flush(self) -> list[Utterance]:
        out: list[Utterance] = []
        for seg in self.segmenter.flush():
            out.extend(self._add(seg))
        out.extend(self._decode_pending())
        return out

    def stream(self, chunks: Iterable[AudioChunk]) -> Iterator[Utterance]:
        """Utterances of a whole signal, yielded batch by batch as its chunks are consumed."""
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.flush()

    def transcribe(self, segments: list[SpeechSegment]) -> list[Utterance]:
        """Decode segments in one Whisper call (their total, with gaps, should fit in 30 s)."""
        if not segments:
            return []
        gap = np.zeros(int(self.gap * AUDIO_RATE), np.float32)
        parts: list[np.ndarray] = []
        offsets: list[float] = []
        for i, seg in enumerate(segments):
            if i:
                parts.append(gap)
            offsets.append(sum(len(p) for p in parts) / AUDIO_RATE)
            parts.append(seg.samples)
        t = time.perf_counter()
        decoded = self.engine.decode(np.concatenate(parts), self.language)
        self.stats.decode_seconds += time.perf_counter() - t
        self.stats.batches += 1
        self.stats.speech_seconds += sum(s.duration for s in segments)
        words: list[list[Word]] = [[] for _ in segments]
        for w in decoded.words:
            i = max(0, bisect.bisect_right(offsets, (w.start + w.end) / 2) - 1)
            seg, off = segments[i], offsets[i]
            start = min(max(seg.start + w.start - off, seg.start), seg.end)
            end = min(max(seg.start + w.end - off, start), seg.end)
            words[i].append(Word(round(start, 3), round(end, 3), w.text, w.probability))
        out = []
        for ws in words:
            if not ws:
                self.stats.silent_segments += 1
                continue
            out.append(Utterance(ws[0].start, ws[-1].end, tuple(ws), decoded.language,
                                 decoded.language_probability))
            self.stats.languages[decoded.language] += 1
        self.stats.utterances += len(out)
        self.stats.words += sum(len(u.words) for u in out)
        return out

    def _add(self, seg: SpeechSegment) -> list[Utterance]:
        out: list[Utterance] = []
        if self._pending and self._batch_seconds() + self.gap + seg.duration > self.batch_seconds:
            out = self._decode_pending()
        self._pending.append(seg)
        return out

    def _batch_seconds(self) -> float:
        return sum(s.duration for s in self._pending) + self.gap * (len(self._pending) - 1)

    def _decode_pending(self) -> list[Utterance]:
        segments, self._pending = self._pending, []
        return self.transcribe(segments)
