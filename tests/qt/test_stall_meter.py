"""The stall meter behind ``--stall-report``: a blocked event loop is measured, and the time Python's
garbage collector spent inside a gap is attributed to that gap."""

from __future__ import annotations

import gc
import time

from PySide6.QtCore import QTimer

from mmdesk.qt.qt_stall import StallMeter


def _busy(ms: float) -> None:
    """``ms`` of this thread's own CPU time (not wall time: a loaded machine must not make it less)."""
    end = time.thread_time() + ms / 1e3
    while time.thread_time() < end:
        pass


def test_a_blocked_loop_and_a_full_collection_in_it_are_reported(qtbot) -> None:
    meter = StallMeter()
    garbage = [[i] for i in range(200_000)]  # something for a full collection to walk
    for a, b in zip(garbage, garbage[1:]):
        a.append(b)

    def block() -> None:  # one slot that keeps the GUI thread busy ~80 ms, a full collection included
        gc.collect()
        _busy(80)

    meter.start()
    QTimer.singleShot(100, block)
    qtbot.wait(400)
    meter.stop()
    report = meter.report()
    # the blocked gap is among the worst (a loaded machine may add others): at least the 80 ms, with
    # the GUI thread's own CPU in it and the full collection inside it
    ours = [(stall, cpu, in_gc) for stall, cpu, in_gc in report["worst"] if stall >= 75 and cpu >= 75]
    assert ours and ours[0][2] > 0, report["worst"]
    assert report["gc"]["full"] >= 1 and report["gc"]["full_max_ms"] >= ours[0][2] - 1e-6
    assert report["over_50ms"] >= 1 and report["ticks"] >= 3
    assert gc.callbacks.count(meter._on_gc) == 0  # stop() leaves the interpreter as it was
    del garbage
