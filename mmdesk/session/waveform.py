"""A clip's audio as a compact envelope (peak and RMS per 10 ms), for the waveform and level meter
during clip review: an hour of audio is 360,000 bins instead of 230 MB of samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdesk.capture.clip import ClipSource
from mmdesk.core.types import AUDIO_RATE, AudioChunk

BIN = AUDIO_RATE // 100  # 10 ms


@dataclass(frozen=True)
class Envelope:
    rate: float  # bins per second
    peak: np.ndarray  # max |sample| per bin
    rms: np.ndarray

    def at(self, t: float, span: float) -> tuple[np.ndarray, np.ndarray]:
        """(times, peaks) of the bins in [t - span, t]."""
        lo = max(0, int((t - span) * self.rate))
        hi = max(lo, min(len(self.peak), int(t * self.rate) + 1))
        return np.arange(lo, hi) / self.rate, self.peak[lo:hi]

    def rms_at(self, t: float) -> float:
        i = int(t * self.rate)
        return float(self.rms[i]) if 0 <= i < len(self.rms) else 0.0


def clip_envelope(path: str | Path) -> Envelope | None:
    """The envelope of a clip's audio track, or None when it has none (or it cannot be read)."""
    with ClipSource(path, video=False, subtitles=False) as src:
        if not src.info.has_audio:
            return None
        peaks: list[np.ndarray] = []
        rms: list[np.ndarray] = []
        pos = 0  # samples placed so far; chunks may start late (an audio track that starts later)
        rest = np.zeros(0, np.float32)
        while not src.exhausted:
            item = src.read(timeout=1.0)
            if not isinstance(item, AudioChunk):
                continue
            start = round(item.t * AUDIO_RATE)
            if start > pos + len(rest):  # silence before this chunk
                rest = np.concatenate([rest, np.zeros(start - pos - len(rest), np.float32)])
            x = np.concatenate([rest, item.samples])
            n = len(x) // BIN
            blocks = x[: n * BIN].reshape(n, BIN)
            peaks.append(np.abs(blocks).max(axis=1) if n else np.zeros(0))
            rms.append(np.sqrt((blocks.astype(np.float64) ** 2).mean(axis=1)) if n else np.zeros(0))
            pos += n * BIN
            rest = x[n * BIN :]
    if not peaks:
        return None
    return Envelope(AUDIO_RATE / BIN, np.concatenate(peaks).astype(np.float32), np.concatenate(rms).astype(np.float32))
