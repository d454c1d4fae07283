"""Event-loop stall meter: a 5 ms timer records how late each tick is.

A tick that arrives ``gap`` ms after the previous one means the loop could not run anything for
``gap - 5`` ms: that is the stall a user feels as a frozen window. The GUI thread's own CPU time
over the same gap tells the two causes apart: work done on the GUI thread (ours to fix), or the
thread waiting for a core or the GIL (other threads and processes).
"""

from __future__ import annotations

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
        self._last = 0.0
        self._last_cpu = 0.0

    def start(self) -> None:
        self.stalls_ms.clear()
        self.busy_ms.clear()
        self._last = time.perf_counter()
        self._last_cpu = time.thread_time()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.stalls_ms.append(max(0.0, (now - self._last) * 1e3 - TICK_MS))
        self.busy_ms.append((cpu - self._last_cpu) * 1e3)
        self._last, self._last_cpu = now, cpu

    def report(self) -> dict[str, float]:
        a = np.asarray(self.stalls_ms or [0.0])
        b = np.asarray(self.busy_ms or [0.0])
        return {"ticks": len(self.stalls_ms), "seconds": round(float(a.sum() + TICK_MS * len(a)) / 1e3, 2),
                "max_ms": round(float(a.max()), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
                "median_ms": round(float(np.median(a)), 2), "over_50ms": int((a > 50).sum()),
                "gui_cpu_max_ms": round(float(b.max()), 1), "gui_cpu_p99_ms": round(float(np.percentile(b, 99)), 1),
                # the five longest stalls with the GUI thread's CPU time in each: work of ours, or waiting
                "worst": [[round(float(a[i]), 1), round(float(b[i]), 1)] for i in np.argsort(a)[::-1][:5]]}
