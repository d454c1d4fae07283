"""Cut a continuous 16 kHz signal into utterances with Silero VAD, streaming, in bounded memory.

An utterance starts at the first 32 ms frame at or above the VAD threshold and ends once
``min_silence`` seconds stay below ``threshold - 0.15`` (hysteresis, as Silero's own iterator does,
so a soft syllable does not split a word). Each segment is padded by ``pad`` on both sides.
Speech longer than ``max_seconds`` is cut there (Whisper sees at most 30 s at a time, and a clip
of one endless talker must not hold unbounded audio). Blips shorter than ``min_speech`` are
dropped (clicks, coughs) and counted. Only the audio that a segment may still need is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdesk.core.types import AUDIO_RATE, AudioChunk
from mmdesk.perception.vad import FRAME_SECONDS, SileroVad

HYSTERESIS = 0.15


@dataclass(frozen=True, eq=False)
class SpeechSegment:
    """Audio of one utterance (padded); ``samples[0]`` is at ``start``."""

    start: float
    samples: np.ndarray

    @property
    def end(self) -> float:
        return self.start + len(self.samples) / AUDIO_RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / AUDIO_RATE


class SpeechSegmenter:
    def __init__(
        self,
        vad: SileroVad,
        *,
        min_silence: float = 0.5,
        pad: float = 0.2,
        min_speech: float = 0.25,
        max_seconds: float = 20.0,
    ) -> None:
        if not 0 <= pad <= min_silence:
            raise ValueError(f"pad ({pad} s) must be between 0 and min_silence ({min_silence} s)")
        self.vad = vad
        self.threshold = vad.threshold
        self.min_silence = min_silence
        self.pad = pad
        self.min_speech = min_speech
        self.max_seconds = max_seconds
        #: blips shorter than ``min_speech`` that were dropped
        self.dropped_blips = 0
        #: speech cut because it went on longer than ``max_seconds``
        self.forced_cuts = 0
        self.reset()

    def reset(self, t0: float = 0.0) -> None:
        self.vad.reset(t0)
        self._buf = np.zeros(0, np.float32)
        self._buf_t = t0  # time of _buf[0]
        self._heard = t0  # end of the last VAD frame decided
        self._speech_start: float | None = None
        self._silence_start: float | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def heard_until(self) -> float:
        """Audio up to here has been through the VAD."""
        return self._heard

    @property
    def open_start(self) -> float | None:
        """Padded start of the utterance in progress, if one is."""
        return None if self._speech_start is None else max(self._buf_t, self._speech_start - self.pad)

    @property
    def pausing(self) -> bool:
        """The utterance in progress has gone quiet: it may be about to end."""
        return self._silence_start is not None

    @property
    def settled(self) -> float:
        """No segment returned from now on starts before this time."""
        start = self.open_start
        return start if start is not None else max(self._buf_t, self._heard - self.pad)

    def current(self) -> SpeechSegment | None:
        """The utterance in progress, as far as it has been heard (for partial results)."""
        start = self.open_start
        return None if start is None else self._cut(start, self._heard)

    # -- input ---------------------------------------------------------------------------------
    def feed(self, chunk: AudioChunk) -> list[SpeechSegment]:
        """Add audio; returns the utterances it completed."""
        samples = chunk.samples.astype(np.float32, copy=False)
        end_of_buf = self._buf_t + len(self._buf) / AUDIO_RATE
        gap = round((chunk.t - end_of_buf) * AUDIO_RATE)
        if gap > 0:  # missing audio counts as silence, so times stay exact
            samples = np.concatenate([np.zeros(gap, np.float32), samples])
        elif gap < 0:
            samples = samples[-gap:]
        self._buf = np.concatenate([self._buf, samples])
        self.vad.feed(end_of_buf, samples)
        out: list[SpeechSegment] = []
        while self.vad.track:
            t, p = self.vad.track.popleft()
            seg = self._step(t, p)
            if seg is not None:
                out.append(seg)
        self._trim()
        return out

    def flush(self) -> list[SpeechSegment]:
        """End of the signal: close the utterance in progress."""
        out = []
        if self._speech_start is not None:
            seg = self._close(self._silence_start if self._silence_start is not None else self._heard)
            if seg is not None:
                out.append(seg)
        self._trim()
        return out

    # -- internals -----------------------------------------------------------------------------
    def _step(self, t: float, p: float) -> SpeechSegment | None:
        self._heard = t + FRAME_SECONDS
        if self._speech_start is None:
            if p >= self.threshold:
                self._speech_start, self._silence_start = t, None
            return None
        if p >= self.threshold:
            self._silence_start = None
        elif p < self.threshold - HYSTERESIS and self._silence_start is None:
            self._silence_start = t
        if self._silence_start is not None and self._heard - self._silence_start >= self.min_silence:
            return self._close(self._silence_start)
        if self._heard - self._speech_start >= self.max_seconds:
            self.forced_cuts += 1
            seg = self._close(self._heard, pad_end=False)
            # the talker goes on: the next utterance starts here (its padding would repeat audio)
            self._speech_start = self._heard + self.pad
            return seg
        return None

    def _close(self, speech_end: float, *, pad_end: bool = True) -> SpeechSegment | None:
        assert self._speech_start is not None
        start = max(self._buf_t, self._speech_start - self.pad)
        speech = speech_end - self._speech_start
        self._speech_start = self._silence_start = None
        if speech < self.min_speech:
            self.dropped_blips += 1
            return None
        return self._cut(start, speech_end + (self.pad if pad_end else 0.0))

    def _cut(self, start: float, end: float) -> SpeechSegment:
        lo = max(0, round((start - self._buf_t) * AUDIO_RATE))
        hi = min(len(self._buf), round((end - self._buf_t) * AUDIO_RATE))
        return SpeechSegment(self._buf_t + lo / AUDIO_RATE, self._buf[lo:hi].copy())

    def _trim(self) -> None:
        """Forget audio no future segment can reach (before the open one, or the padding)."""
        keep_from = self.open_start if self._speech_start is not None else self._heard - self.pad
        drop = int((keep_from - self._buf_t) * AUDIO_RATE)
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_t += drop / AUDIO_RATE
