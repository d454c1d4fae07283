"""Typed text as a live source, and (re-exported) the subtitle-file source.

``TypedTextSource.submit(text)`` may be called from any thread (e.g. the GUI's). Each
submission becomes ``TextEvent(origin="typed", start=now, end=now + hold)`` on the session
clock, where ``hold`` is how long the text stays relevant to the analysis windows:
``max(MIN_HOLD_S, PER_WORD_S * words)`` capped at ``MAX_HOLD_S``. Text longer than
``MAX_CHARS`` is accepted but cut (at a word boundary when there is one) and ``truncated`` is
set, so pasting a megabyte cannot stall the pipeline. Control characters are removed;
whitespace-only text is ignored.
"""

from __future__ import annotations

import re
import threading
from typing import ClassVar

from mmdesk.capture.base import register_source
from mmdesk.capture.live import LiveSource
from mmdesk.capture.subtitles import SubtitleSource
from mmdesk.core.clock import SessionClock
from mmdesk.core.types import TextEvent

__all__ = ["TypedTextSource", "SubtitleSource", "hold_seconds", "clean_typed_text"]

MAX_CHARS = 5_000
MIN_HOLD_S = 2.0
PER_WORD_S = 0.35
MAX_HOLD_S = 20.0

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def hold_seconds(text: str) -> float:
    """How long a typed text stays valid: ~0.35 s per word, at least 2 s, at most 20 s."""
    words = len(text.split())
    return min(MAX_HOLD_S, max(MIN_HOLD_S, PER_WORD_S * words))


def clean_typed_text(text: str, max_chars: int = MAX_CHARS) -> tuple[str, bool]:
    """(cleaned text, truncated): control characters removed, cut to ``max_chars``."""
    if not isinstance(text, str):
        raise TypeError(f"submit() takes a str, got {type(text).__name__}")
    truncated = len(text) > max_chars * 2
    if truncated:
        text = text[: max_chars * 2]  # bound the work below for huge inputs
    text = _CONTROL.sub("", text).replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > max_chars:
        cut = text[:max_chars]
        space = cut.rfind(" ")
        text = (cut[:space] if space > max_chars * 0.8 else cut).rstrip()
        truncated = True
    return text, truncated


@register_source("text")
class TypedTextSource(LiveSource):
    """Text the user types, delivered as ``TextEvent(origin="typed")`` on the session clock."""

    modalities: ClassVar[frozenset[str]] = frozenset({"text"})

    def __init__(
        self, *, clock: SessionClock | None = None, buffer: int = 64, max_chars: int = MAX_CHARS
    ) -> None:
        super().__init__(clock=clock, buffer=buffer)
        self.max_chars = max_chars
        #: whether the last submission was cut to ``max_chars``
        self.truncated = False
        #: submissions cut so far
        self.truncated_count = 0
        self.submitted = 0
        self._submit_lock = threading.Lock()

    def open(self) -> None:
        if self._closed:
            raise RuntimeError("TypedTextSource cannot be reopened after close(); create a new one")
        self._opened = True

    def submit(self, text: str) -> TextEvent | None:
        """Queue ``text`` (thread-safe); returns the event, or None if blank or closed."""
        cleaned, truncated = clean_typed_text(text, self.max_chars)
        with self._submit_lock:
            if self._closed or not cleaned:
                return None
            self.truncated = truncated
            self.truncated_count += int(truncated)
            self.submitted += 1
            now = self.clock.now()
            event = TextEvent(
                start=now, end=now + hold_seconds(cleaned), text=cleaned, origin="typed"
            )
            self._buffer.put(event)
            return event

    def close(self) -> None:
        with self._submit_lock:
            self._closed = True
        self._buffer.close()
