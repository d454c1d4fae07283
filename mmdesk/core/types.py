"""Frozen data crossing threads: captured items, windows and per-window results.

Times are seconds on the session clock (for a clip: its presentation timeline, 0 = start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Union

import numpy as np

if TYPE_CHECKING:
    from mmdesk.fusion.head import FusionOutput

AUDIO_RATE = 16_000  # every audio chunk inside mmdesk is 16 kHz mono float32 in [-1, 1]

TextOrigin = Literal["typed", "subtitle", "asr"]


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One decoded frame: BGR uint8 (H, W, 3) at time ``t`` (its presentation timestamp)."""

    t: float
    image: np.ndarray
    index: int = 0


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """Contiguous 16 kHz mono float32 samples; the first sample is at time ``t``."""

    t: float
    samples: np.ndarray

    @property
    def duration(self) -> float:
        return len(self.samples) / AUDIO_RATE

    @property
    def end(self) -> float:
        return self.t + self.duration


@dataclass(frozen=True)
class TextEvent:
    """A piece of text valid over [start, end): typed, from a subtitle, or transcribed."""

    start: float
    end: float
    text: str
    origin: TextOrigin = "typed"
    final: bool = True


CaptureItem = Union[VideoFrame, AudioChunk, TextEvent]


@dataclass(frozen=True, eq=False)
class Window:
    """Synchronised data for [start, end): frames, 16 kHz audio and the text overlapping it.

    ``audio`` always has round((end - start) * 16000) samples; parts with no captured audio are
    zero and excluded from ``audio_coverage`` (0..1). ``has_video`` / ``has_audio`` say whether
    the source has that stream at all (a missing track is not the same as silence).
    """

    index: int
    start: float
    end: float
    frames: tuple[VideoFrame, ...]
    audio: np.ndarray
    texts: tuple[TextEvent, ...]
    audio_coverage: float
    has_video: bool
    has_audio: bool
    partial: bool = False  # shorter than the configured length (end of a clip)

    @property
    def text(self) -> str:
        return " ".join(e.text.strip() for e in self.texts if e.text.strip())


@dataclass(frozen=True)
class FaceResult:
    present: bool
    probs: tuple[float, ...] | None = None  # over LABELS
    box: tuple[int, int, int, int] | None = None  # x, y, w, h in source pixels (best frame)
    score: float = 0.0  # detector confidence of the best face
    frames_with_face: int = 0
    frames_analysed: int = 0
    detector: str = ""
    reason: str = ""  # why absent, when absent


@dataclass(frozen=True)
class VoiceResult:
    present: bool
    probs: tuple[float, ...] | None = None
    vad_prob: float = 0.0  # max Silero speech probability in the window
    speech_fraction: float = 0.0  # share of 32 ms VAD frames above threshold
    reason: str = ""


@dataclass(frozen=True)
class TextResult:
    present: bool
    probs: tuple[float, ...] | None = None
    text: str = ""
    origins: tuple[str, ...] = ()
    truncated: bool = False
    reason: str = ""
    sarcasm: float | None = None  # P(sarcastic) from the text + context model, when the pack has one
    context: str = ""  # the line before, given to the text and sarcasm models


@dataclass(frozen=True)
class WindowResult:
    index: int
    start: float
    end: float
    face: FaceResult
    voice: VoiceResult
    text: TextResult
    partial: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)
    fusion: FusionOutput | None = None  # None without a fusion head or when no modality is present
