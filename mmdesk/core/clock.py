"""One session clock shared by every live source, so their timestamps are comparable."""

from __future__ import annotations

import time


class SessionClock:
    """Seconds since the session started, from the monotonic clock (never jumps backwards)."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def from_monotonic(self, t: float) -> float:
        """Convert a ``time.monotonic()`` reading into session time."""
        return t - self._t0
