"""Helpers of the speech-to-text tests (a uniquely named module: every folder's conftest is "conftest")."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mmdesk.core.types import AudioChunk

BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


def read_chunks(path: Path) -> list[AudioChunk]:
    """A file's audio as the 16 kHz chunks every source delivers."""
    from mmdesk.capture.clip import ClipSource

    with ClipSource(path, video=False, subtitles=False) as src:
        src.open()
        chunks = []
        while (item := src.read()) is not None:
            if isinstance(item, AudioChunk):
                chunks.append(item)
    return chunks


def words_of(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def phrase_intervals(chunks: list[AudioChunk], min_gap: float = 0.3) -> list[tuple[float, float]]:
    """Where the signal is loud, from its RMS envelope alone (independent of the VAD and Whisper)."""
    x = np.concatenate([c.samples for c in chunks])
    hop = 160  # 10 ms
    rms = np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(400) / 400, "same")[::hop])
    loud = rms > 0.1 * rms.max()
    spans: list[list[float]] = []
    for i in np.flatnonzero(loud):
        t = chunks[0].t + i * hop / 16000
        if spans and t - spans[-1][1] < min_gap:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    return [(a, b) for a, b in spans if b - a > 0.15]
