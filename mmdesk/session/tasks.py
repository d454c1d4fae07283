"""Threads started once, up front, that run the app's background work.

Starting a thread makes the caller wait until the new thread has run (``Thread.start`` blocks on
it); on a busy 2-core machine that wait reached 125 ms on the GUI thread. A pool started with the
app hands work over through a queue instead, which never blocks.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from mmdesk.session.priority import lower_thread_priority

log = logging.getLogger(__name__)


class TaskPool:
    """``size`` daemon threads (at lowered priority) running submitted callables."""

    def __init__(self, size: int = 8, name: str = "mmdesk-task") -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._busy = 0
        self._lock = threading.Lock()
        self.size = size
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(size)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._busy >= self.size:  # every thread holds a long task: grow rather than wait
                t = threading.Thread(target=self._loop, name=f"mmdesk-task-{len(self._threads)}", daemon=True)
                self._threads.append(t)
                self.size += 1
                t.start()
        self._queue.put((fn, args))

    def _loop(self) -> None:
        lower_thread_priority()
        while (task := self._queue.get()) is not None:
            fn, args = task
            with self._lock:
                self._busy += 1
            try:
                fn(*args)
            except Exception:  # a task reports its own errors; this only keeps the thread alive
                log.exception("background task failed")
            finally:
                with self._lock:
                    self._busy -= 1

    def shutdown(self, timeout: float = 30.0) -> bool:
        """Let running tasks finish (at most ``timeout`` s in all); True if every thread ended.

        Leaving the interpreter while a task is inside native code (e.g. onnxruntime loading a
        model) can abort the process, so an app quitting early waits for it here.
        """
        import time

        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)


def start_thread(fn: Callable[..., Any], *args: Any) -> None:
    """The default runner: a new daemon thread per task."""
    threading.Thread(target=fn, args=args, daemon=True).start()
