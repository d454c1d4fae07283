"""Event-loop stall meter: a 5 ms timer records how late each tick is.

A tick that arrives ``gap`` ms after the previous one means the loop could not run anything for
``gap - 5`` ms: that is the stall a user feels as a frozen window. The GUI thread's own CPU time
over the same gap tells the two causes apart: work done on the GUI thread (ours to fix), or the
thread waiting for a core or the GIL (other threads and processes). Python's garbage collections
are timed too (they hold the GIL, whichever thread runs them), so a long gap can be matched with one.
"""

from __future__ import annotations

import gc
import time

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer

TICK_MS = 5


class StallMeter(QObject):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.stalls_ms: list[float] = []
        self.busy_ms: list[float] = []  # GUI-thread CPU time within each gap
        self.tick_at: list[float] = []  # perf_counter at the end of each gap
        self.collections: list[tuple[float, float, int]] = []  # start, end, generation
        self._gc_start = 0.0
        self._last = 0.0
        self._last_cpu = 0.0

    def start(self) -> None:
        self.stalls_ms.clear()
        self.busy_ms.clear()
        self.tick_at.clear()
        self.collections.clear()
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)
        self._last = time.perf_counter()
        self._last_cpu = time.thread_time()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.collections.append((self._gc_start, time.perf_counter(), int(info.get("generation", -1))))

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.stalls_ms.append(max(0.0, (now - self._last) * 1e3 - TICK_MS))
        self.busy_ms.append((cpu - self._last_cpu) * 1e3)
        self.tick_at.append(now)
        self._last, self._last_cpu = now, cpu

    def _gc_in_gap(self, i: int) -> float:
        """Milliseconds of garbage collection (any thread) inside gap ``i``."""
        end = self.tick_at[i]
        begin = end - (self.stalls_ms[i] + TICK_MS) / 1e3
        return sum(max(0.0, min(e, end) - max(s, begin)) for s, e, _ in self.collections) * 1e3

    def report(self) -> dict[str, float]:
        a = np.asarray(self.stalls_ms or [0.0])
        b = np.asarray(self.busy_ms or [0.0])
        return {"ticks": len(self.stalls_ms), "seconds": round(float(a.sum() + TICK_MS * len(a)) / 1e3, 2),
                "max_ms": round(float(a.max()), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
                "median_ms": round(float(np.median(a)), 2), "over_50ms": int((a > 50).sum()),
                "gui_cpu_max_ms": round(float(b.max()), 1), "gui_cpu_p99_ms": round(float(np.percentile(b, 99)), 1),
                # the five longest stalls with the GUI thread's CPU time and the garbage collection in each
                "worst": [[round(float(a[i]), 1), round(float(b[i]), 1), round(self._gc_in_gap(int(i)), 1)]
                          for i in np.argsort(a)[::-1][:5] if self.stalls_ms],
                "gc": self._gc_summary()}

    def _gc_summary(self) -> dict[str, float]:
        ms = [(e - s) * 1e3 for s, e, _ in self.collections]
        full = [(e - s) * 1e3 for s, e, g in self.collections if g == 2]
        return {"collections": len(ms), "full": len(full), "max_ms": round(max(ms, default=0.0), 1),
                "full_max_ms": round(max(full, default=0.0), 1), "total_ms": round(sum(ms), 1)}
