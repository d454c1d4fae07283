"""Worker threads yield the CPU to the GUI thread.

On a 2-core laptop the decoder, the models and onnxruntime's own pool would otherwise take the
cores away from the event loop for 50-200 ms at a time. Linux keeps a nice value per thread and
new threads inherit it, so lowering it once at the top of a worker also covers the threads it
starts (the clip reader, onnxruntime's pool when the models load there).
"""

from __future__ import annotations

import os
import sys
import threading

WORKER_NICE = 5  # the GUI thread wins a core ~3:1; 10 (9:1) starved analysis behind other busy programs


def lower_thread_priority(nice: int = WORKER_NICE) -> bool:
    """Make the calling thread (and threads it starts later) nicer; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(current, nice))
    except OSError:
        return False
    return True
