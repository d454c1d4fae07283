"""Cut timestamped frames, audio and text into overlapping windows [k*hop, k*hop + length).

Pure and single-threaded: push items in (roughly) time order, then ask for the windows that are
complete up to a watermark. Memory stays bounded: anything older than the earliest window not yet
emitted is discarded.

Edges:
- A window is emitted once every stream the source has is known up to its end (the watermark).
- At the end of a finite source, ``flush(end)`` clips the remaining windows to ``end`` and marks
  them partial; a partial window shorter than ``min_partial`` is dropped (its span is already
  covered by the previous window), unless no window was emitted at all.
- Gaps (no frames, no audio) give windows with no frames and zero audio with low coverage; the
  perception layer then marks the modality absent.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from mmdesk.core.types import AUDIO_RATE, AudioChunk, CaptureItem, TextEvent, VideoFrame, Window

_EPS = 1e-6


@dataclass(frozen=True)
class WindowSpec:
    length: float = 2.0
    hop: float = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.length) and self.length > 0):
            raise ValueError(f"window length must be > 0 s, got {self.length}")
        if not (math.isfinite(self.hop) and self.hop > 0):
            raise ValueError(f"hop must be > 0 s, got {self.hop}")
        if self.hop > self.length:
            raise ValueError(f"hop ({self.hop} s) must not exceed the window length ({self.length} s)")

    def bounds(self, k: int) -> tuple[float, float]:
        start = round(k * self.hop, 6)
        return start, round(start + self.length, 6)


class Windower:
    def __init__(
        self,
        spec: WindowSpec = WindowSpec(),
        *,
        has_video: bool = True,
        has_audio: bool = True,
        origin: float = 0.0,
        min_partial: float | None = None,
    ) -> None:
        self.spec = spec
        self.has_video = has_video
        self.has_audio = has_audio
        self.origin = origin  # window k starts at origin + k * hop
        self.min_partial = spec.hop if min_partial is None else min_partial
        self._next = 0  # index of the next window to emit
        self._frames: collections.deque[VideoFrame] = collections.deque()
        self._chunks: collections.deque[AudioChunk] = collections.deque()
        self._texts: list[TextEvent] = []
        self._video_until = -math.inf
        self._audio_until = -math.inf

    # -- input ---------------------------------------------------------------------------------
    def push(self, item: CaptureItem) -> None:
        if isinstance(item, VideoFrame):
            self._frames.append(item)
            self._video_until = max(self._video_until, item.t)
        elif isinstance(item, AudioChunk):
            if len(item.samples):
                self._chunks.append(item)
                self._audio_until = max(self._audio_until, item.end)
        elif isinstance(item, TextEvent):
            self._texts.append(item)
        else:  # pragma: no cover - a programming error, not bad input
            raise TypeError(f"cannot window {type(item).__name__}")

    @property
    def watermark(self) -> float:
        """Time up to which every stream the source has is complete."""
        marks = []
        if self.has_video:
            marks.append(self._video_until)
        if self.has_audio:
            marks.append(self._audio_until)
        return min(marks) if marks else -math.inf

    @property
    def next_index(self) -> int:
        return self._next

    # -- output --------------------------------------------------------------------------------
    def ready(self, watermark: float | None = None) -> list[Window]:
        """Windows whose end is at or before the watermark (default: the streams' own)."""
        mark = self.watermark if watermark is None else watermark
        out = []
        while True:
            start, end = self._bounds(self._next)
            if end > mark + _EPS:
                break
            out.append(self._make(self._next, start, end, partial=False))
            self._next += 1
            self._discard_before(self._bounds(self._next)[0])
        return out

    def flush(self, end_time: float) -> list[Window]:
        """Emit everything left, clipping windows to ``end_time`` (the end of a finite source)."""
        out = self.ready(end_time)
        while True:
            start, end = self._bounds(self._next)
            if start >= end_time - _EPS:
                break
            clipped = min(end, end_time)
            if clipped - start >= self.min_partial - _EPS or (self._next == 0 and not out):
                out.append(self._make(self._next, start, clipped, partial=clipped < end - _EPS))
            self._next += 1
        self._frames.clear()
        self._chunks.clear()
        self._texts.clear()
        return out

    # -- internals -----------------------------------------------------------------------------
    def _bounds(self, k: int) -> tuple[float, float]:
        start, end = self.spec.bounds(k)
        return self.origin + start, self.origin + end

    def _discard_before(self, t: float) -> None:
        while self._frames and self._frames[0].t < t - _EPS:
            self._frames.popleft()
        while self._chunks and self._chunks[0].end <= t + _EPS:
            self._chunks.popleft()
        if self._texts and any(e.end <= t for e in self._texts):
            self._texts = [e for e in self._texts if e.end > t]

    def _make(self, k: int, start: float, end: float, *, partial: bool) -> Window:
        frames = tuple(f for f in self._frames if start - _EPS <= f.t < end - _EPS)
        n = max(0, int(round((end - start) * AUDIO_RATE)))
        audio = np.zeros(n, dtype=np.float32)
        filled = np.zeros(n, dtype=bool)
        for chunk in self._chunks:
            if chunk.end <= start or chunk.t >= end:
                continue
            offset = int(round((chunk.t - start) * AUDIO_RATE))
            src_lo = max(0, -offset)
            dst_lo = max(0, offset)
            count = min(len(chunk.samples) - src_lo, n - dst_lo)
            if count > 0:
                audio[dst_lo : dst_lo + count] = chunk.samples[src_lo : src_lo + count]
                filled[dst_lo : dst_lo + count] = True
        texts = tuple(
            sorted((e for e in self._texts if e.start < end and e.end > start), key=lambda e: e.start)
        )
        return Window(
            index=k,
            start=start,
            end=end,
            frames=frames,
            audio=audio,
            texts=texts,
            audio_coverage=float(filled.mean()) if n else 0.0,
            has_video=self.has_video,
            has_audio=self.has_audio,
            partial=partial,
        )
