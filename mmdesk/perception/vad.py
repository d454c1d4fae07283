"""Silero VAD on onnxruntime, streaming over a continuous 16 kHz signal.

The v5+ graph takes 512 new samples plus the previous 64 as context, and a recurrent state; one
probability per 32 ms frame. Probabilities are kept with their frame times so that overlapping
windows can read them without running the model twice.
"""

from __future__ import annotations

import collections

import numpy as np

from mmdesk.core.types import AUDIO_RATE
from mmdesk.inference.manifest import Manifest
from mmdesk.inference.runtime import OnnxModel, open_model

FRAME = 512  # samples per VAD decision at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame the model sees again
FRAME_SECONDS = FRAME / AUDIO_RATE


class SileroVad:
    def __init__(self, manifest: Manifest, device: str = "cpu", threads: int | None = 1) -> None:
        # A tiny recurrent net: the CPU is faster than a GPU round trip per 32 ms frame.
        self.model: OnnxModel = open_model(manifest, "vad", device, threads)
        pre = manifest.entry("vad").preprocessing
        self.threshold = float(pre.get("threshold", 0.5))
        self._sr = np.array(AUDIO_RATE, dtype=np.int64)
        self.reset()

    def reset(self, t0: float = 0.0) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._t_next = t0  # time of the first sample in _pending
        self.track: collections.deque[tuple[float, float]] = collections.deque()  # (frame start, prob)

    def feed(self, t: float, samples: np.ndarray) -> None:
        """Append audio starting at ``t``; a gap is filled with silence so frame times stay exact."""
        expected = self._t_next + len(self._pending) / AUDIO_RATE
        gap = int(round((t - expected) * AUDIO_RATE))
        if gap > 0:
            samples = np.concatenate([np.zeros(gap, np.float32), samples])
        elif gap < 0:  # overlapping audio: drop what we already have
            samples = samples[-gap:]
        buf = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n = len(buf) // FRAME
        for i in range(n):
            frame = buf[i * FRAME : (i + 1) * FRAME]
            x = np.concatenate([self._context, frame])[None, :]
            out, self._state = self.model.run({"input": x, "state": self._state, "sr": self._sr})
            self._context = frame[-CONTEXT:]
            self.track.append((self._t_next + i * FRAME_SECONDS, float(out[0, 0])))
        self._pending = buf[n * FRAME :]
        self._t_next += n * FRAME_SECONDS

    def window_stats(self, start: float, end: float) -> tuple[float, float, int]:
        """(max probability, fraction of frames above threshold, frame count) for [start, end)."""
        probs = [p for t, p in self.track if start - 1e-6 <= t and t + FRAME_SECONDS <= end + 1e-6]
        if not probs:
            return 0.0, 0.0, 0
        arr = np.asarray(probs)
        return float(arr.max()), float((arr >= self.threshold).mean()), len(arr)

    def forget_before(self, t: float) -> None:
        while self.track and self.track[0][0] < t:
            self.track.popleft()
