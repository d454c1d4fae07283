"""The source contract as one reusable check (used in-process and by the microphone child)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mmdesk.capture.base import Source
from mmdesk.core.types import AUDIO_RATE, AudioChunk, TextEvent, VideoFrame


def _modality(item: object) -> str:
    if isinstance(item, VideoFrame):
        return "video"
    if isinstance(item, AudioChunk):
        return "audio"
    if isinstance(item, TextEvent):
        return "text"
    raise AssertionError(f"read() returned {type(item).__name__}, not a capture item")


def _check_item(item: Any) -> float:
    kind = _modality(item)
    if kind == "video":
        img = item.image
        assert isinstance(img, np.ndarray) and img.dtype == np.uint8, (
            type(img),
            getattr(img, "dtype", None),
        )
        assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > 0 and img.shape[1] > 0, (
            img.shape
        )
        t = item.t
    elif kind == "audio":
        s = item.samples
        assert isinstance(s, np.ndarray) and s.dtype == np.float32 and s.ndim == 1, (
            s.dtype,
            s.shape,
        )
        assert len(s) > 0 and np.isfinite(s).all() and np.abs(s).max() <= 1.0
        t = item.t
    else:
        assert isinstance(item.text, str) and item.text.strip()
        assert math.isfinite(item.end) and item.end >= item.start
        assert item.origin in ("typed", "subtitle", "asr")
        t = item.start
    assert isinstance(t, float) and math.isfinite(t), t
    return t


def check_contract(
    cls: type[Source],
    make: Callable[[], Source],
    *,
    finite: bool,
    read_for: float = 3.0,
    max_items: int = 10_000,
    min_items: int = 1,
    feed: Callable[[Source], None] | None = None,
) -> dict[str, Any]:
    """Open (as a context manager), read, close (twice); assert the contract; return a summary."""
    available = cls.is_available()
    assert isinstance(available, bool)
    assert available, f"{cls.name} backend not available here"
    assert cls.name and isinstance(cls.modalities, frozenset) and cls.modalities

    src = make()
    assert isinstance(src, cls)
    items: list[Any] = []
    last: dict[str, float] = {}
    first: dict[str, float] = {}
    deadline = time.monotonic() + read_for
    with src as opened:
        assert opened is src
        if feed is not None:
            feed(src)
        while time.monotonic() < deadline and len(items) < max_items:
            item = src.read(timeout=0.2)
            if item is None:
                if src.exhausted:
                    break
                continue
            t = _check_item(item)
            kind = _modality(item)
            assert kind in cls.modalities, (kind, cls.modalities)
            assert t >= last.get(kind, -math.inf), f"{kind} time went back: {t} < {last[kind]}"
            first.setdefault(kind, t)
            last[kind] = t
            items.append(item)
        if finite:
            assert src.exhausted, f"{cls.name}: not exhausted after reading for {read_for} s"
            assert src.read(timeout=0.01) is None
    src.close()  # closing twice is fine
    assert src.exhausted or not finite
    assert isinstance(src.dropped, int) and src.dropped >= 0
    assert len(items) >= min_items, f"{cls.name}: only {len(items)} items"
    counts = {k: sum(1 for i in items if _modality(i) == k) for k in ("video", "audio", "text")}
    audio = [i for i in items if isinstance(i, AudioChunk)]
    return {
        "source": cls.name,
        "items": len(items),
        "counts": counts,
        "first": first,
        "last": last,
        "dropped": src.dropped,
        "audio_seconds": sum(len(a.samples) for a in audio) / AUDIO_RATE,
    }
