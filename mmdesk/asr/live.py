"""Live transcription: audio chunks from the microphone in, partial and final text events out.

``SpeechTextSource`` is a text source like ``TypedTextSource``: the pipeline reads
``TextEvent(origin="asr")`` from it on the session clock, next to the typed ones (``origin="typed"``).
Whoever pumps the microphone also calls ``feed(chunk)``; it never blocks (the audio thread must
not wait for Whisper). A worker thread runs the VAD and Whisper:

* while someone speaks, every ``partial_every`` seconds of new speech the utterance so far is
  transcribed and sent as ``final=False``, unless the worker is behind (then it catches up first) or
  the speaker is pausing (the final may be due: it must not wait behind a partial);
* when the VAD has heard ``min_silence`` of silence the utterance is transcribed once more and
  sent as ``final=True``. A consumer shows the latest partial and replaces it with the next partial
  or the final: utterances never overlap, so no id is needed.

Latency, from the end of the speech to the final event, is ``min_silence`` (0.5 s) plus one
Whisper call; ``latencies`` keeps each one measured on the wall clock (docs/benchmarks.md).
Audio waiting for the worker is capped at ``max_backlog`` seconds; beyond that the oldest is
dropped and counted (``dropped_seconds``) rather than growing without bound. ``close()``
transcribes what was still queued and the utterance in progress: nothing heard is lost.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import ClassVar

from mmdesk.asr.events import MIN_CONFIDENCE
from mmdesk.asr.segmenter import SpeechSegment, SpeechSegmenter
from mmdesk.asr.transcriber import SpeechTranscriber
from mmdesk.asr.types import Utterance
from mmdesk.capture.live import LiveSource
from mmdesk.core.clock import SessionClock
from mmdesk.core.types import AudioChunk, TextEvent

log = logging.getLogger(__name__)


class SpeechTextSource(LiveSource):
    modalities: ClassVar[frozenset[str]] = frozenset({"text"})

    def __init__(
        self,
        transcriber: SpeechTranscriber,
        *,
        clock: SessionClock | None = None,
        partial_every: float = 1.0,
        max_backlog: float = 30.0,
        min_confidence: float = MIN_CONFIDENCE,
        buffer: int = 256,
    ) -> None:
        super().__init__(clock=clock, buffer=buffer)
        self.transcriber = transcriber
        self.segmenter: SpeechSegmenter = transcriber.segmenter
        self.partial_every = partial_every
        self.max_backlog = max_backlog
        self.min_confidence = min_confidence
        #: seconds from the end of an utterance's speech being fed to its final event
        self.latencies: list[float] = []
        #: process CPU seconds of each final's Whisper call (what the latency costs without other load)
        self.final_cpu_seconds: list[float] = []
        #: utterances not sent because their mean word probability was below ``min_confidence``
        self.held_back: list[Utterance] = []
        self.partials = 0
        self.finals = 0
        self.dropped_seconds = 0.0
        self._queue: collections.deque[tuple[AudioChunk, float]] = collections.deque()
        self._queued_seconds = 0.0
        self._cond = threading.Condition()
        self._stop = False
        self._fed: collections.deque[tuple[float, float]] = collections.deque()  # (chunk end, wall time fed)
        self._partial_at = 0.0  # heard_until when the last partial was made
        self._worker = threading.Thread(target=self._run, name="mmdesk-asr-live", daemon=True)

    def open(self) -> None:
        if self._closed:
            raise RuntimeError("SpeechTextSource cannot be reopened after close(); create a new one")
        if not self._opened:
            self._opened = True
            self._worker.start()

    def feed(self, chunk: AudioChunk) -> None:
        """Queue microphone audio (any thread, never blocks)."""
        with self._cond:
            if self._stop:
                return
            self._queue.append((chunk, time.monotonic()))
            self._queued_seconds += chunk.duration
            while self._queued_seconds > self.max_backlog and len(self._queue) > 1:
                old, _ = self._queue.popleft()
                self._queued_seconds -= old.duration
                self.dropped_seconds += old.duration
            self._cond.notify()

    def close(self, timeout: float | None = 30.0) -> None:
        """Transcribe what is queued and the utterance in progress, then end the source."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._worker.is_alive():
            self._worker.join(timeout)
        self._closed = True
        self._buffer.close()

    # -- worker --------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stop:
                        self._cond.wait()
                    if not self._queue:
                        break
                    chunk, fed_at = self._queue.popleft()
                    self._queued_seconds -= chunk.duration
                    behind = self._queued_seconds
                self._fed.append((chunk.end, fed_at))
                while len(self._fed) > 1 and self._fed[0][0] < self.segmenter.settled:
                    self._fed.popleft()  # no utterance can end before the settled mark any more
                for seg in self.segmenter.feed(chunk):
                    self._final(seg)
                current = self.segmenter.current()
                # no partial while the speaker pauses: the final may be due any moment and must not wait for it
                if (current is not None and behind < 0.5 and not self.segmenter.pausing
                        and self.segmenter.heard_until - max(self._partial_at, current.start) >= self.partial_every):
                    self._partial(current)
            for seg in self.segmenter.flush():
                self._final(seg)
        except Exception as exc:  # the source ends with a one-line reason instead of a dead thread
            log.debug("live transcription failed", exc_info=True)
            self._mark_lost(f"live transcription stopped: {type(exc).__name__}: {exc}")

    def _partial(self, seg: SpeechSegment) -> None:
        self._partial_at = self.segmenter.heard_until
        for u in self.transcriber.transcribe([seg]):
            # the last word of a partial is often cut mid-word, so it does not count against the rest
            settled = u.words[:-1] or u.words
            if sum(w.probability for w in settled) / len(settled) >= self.min_confidence:
                self._buffer.put(TextEvent(u.start, u.end, u.text, origin="asr", final=False))
                self.partials += 1

    def _final(self, seg: SpeechSegment) -> None:
        self._partial_at = 0.0
        cpu = time.process_time()
        utterances = self.transcriber.transcribe([seg])
        self.final_cpu_seconds.append(time.process_time() - cpu)
        for u in utterances:
            if u.confidence < self.min_confidence:
                self.held_back.append(u)
                continue
            self._buffer.put(TextEvent(u.start, u.end, u.text, origin="asr", final=True))
            self.finals += 1
            self.latencies.append(time.monotonic() - self._fed_at(u.end))

    def _fed_at(self, t: float) -> float:
        """Wall time at which the audio at session time ``t`` was fed."""
        while len(self._fed) > 1 and self._fed[0][0] < t:
            self._fed.popleft()
        return self._fed[0][1] if self._fed else time.monotonic()
