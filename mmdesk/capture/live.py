"""Shared machinery of the live sources (camera, microphone, typed text).

* ``LiveSource``: a ``Source`` whose items arrive from another thread into a
  ``NewestWinsBuffer`` (when the consumer is slower, the oldest items are dropped and counted).
  A live source is never ``exhausted`` until it is closed or its device is lost; then it is
  exhausted once the buffer has been drained. Losing the device is not an exception from
  ``read``: ``lost`` becomes True and ``error`` holds a one-line message.
* ``Pump``: a thread that calls ``grab()`` until stopped and puts what it returns into a
  buffer; ``max_failures`` failed grabs in a row (``None`` or an exception) end it, calling
  ``on_lost(message)`` (the error cut-off). The camera uses it for its grab loop; the pipeline
  can use ``SourcePump`` to run any source's ``read`` loop on a thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from mmdesk.capture.base import Source
from mmdesk.core.buffer import NewestWinsBuffer
from mmdesk.core.clock import SessionClock
from mmdesk.core.types import CaptureItem

log = logging.getLogger(__name__)

T = TypeVar("T")


class LiveSource(Source):
    """Base of the sources whose items come from a device thread through a buffer."""

    def __init__(self, *, clock: SessionClock | None, buffer: int) -> None:
        if buffer < 1:
            raise ValueError(f"buffer must be >= 1, got {buffer}")
        self.clock = clock if clock is not None else SessionClock()
        self._buffer: NewestWinsBuffer[CaptureItem] = NewestWinsBuffer(buffer)
        #: one-line message once the device failed or was lost, else None
        self.error: str | None = None
        #: True once the device disappeared mid-session (the source then ends)
        self.lost = False
        self._opened = False
        self._closed = False
        self._lock = threading.Lock()

    def read(self, timeout: float | None = None) -> CaptureItem | None:
        if not self._opened and not self._closed:
            raise RuntimeError(f"{type(self).__name__}.read() before open()")
        self._check_health()
        return self._buffer.get(timeout)

    def _check_health(self) -> None:
        """Hook for a watchdog run on every read (e.g. a microphone that went silent)."""

    @property
    def exhausted(self) -> bool:
        return self._buffer.closed and len(self._buffer) == 0

    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    @property
    def closed(self) -> bool:
        return self._closed

    def _mark_lost(self, message: str) -> None:
        """The device is gone: end the source (once) with ``error`` set; never raises."""
        with self._lock:
            if self._closed or self.lost:
                return
            self.lost = True
            self.error = message
        log.warning("%s", message)
        self._buffer.close()


class Pump(Generic[T]):
    """A daemon thread putting ``grab()`` results into ``buffer`` until ``stop()``.

    ``grab`` returns an item, or ``None`` for a failed attempt (it may also raise: that counts
    as a failure too). After ``max_failures`` failures in a row the pump ends and calls
    ``on_lost(message)``; ``on_exit()`` runs on the pump thread when it ends for any reason (the
    place to release a device that must be released by the thread using it).
    """

    def __init__(
        self,
        grab: Callable[[], T | None],
        buffer: NewestWinsBuffer[T],
        *,
        name: str = "mmdesk-pump",
        max_failures: int = 10,
        retry_delay: float = 0.05,
        on_lost: Callable[[str], None] | None = None,
        on_exit: Callable[[], None] | None = None,
        describe: str = "device",
    ) -> None:
        self.grab = grab
        self.buffer = buffer
        self.max_failures = max_failures
        self.retry_delay = retry_delay
        self.on_lost = on_lost
        self.on_exit = on_exit
        self.describe = describe
        self.stop_event = threading.Event()
        #: set once the first item was delivered, or the pump ended (check ``items``)
        self.first = threading.Event()
        self.items = 0
        self.failures_in_row = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the thread to stop and wait for it; True if it ended within ``timeout``."""
        self.stop_event.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        last_exc: BaseException | None = None
        try:
            while not self.stop_event.is_set():
                try:
                    item = self.grab()
                except Exception as e:  # a failed grab: counted, never propagated
                    item, last_exc = None, e
                if self.stop_event.is_set():
                    break
                if item is None:
                    self.failures_in_row += 1
                    if self.failures_in_row >= self.max_failures:
                        why = f" ({last_exc})" if last_exc else ""
                        self.error = (
                            f"{self.describe} stopped delivering: {self.failures_in_row} reads "
                            f"failed in a row{why}"
                        )
                        if self.on_lost is not None:
                            self.on_lost(self.error)
                        break
                    self.stop_event.wait(self.retry_delay)
                    continue
                self.failures_in_row = 0
                last_exc = None
                self.buffer.put(item)
                self.items += 1
                self.first.set()
        finally:
            self.first.set()
            if self.on_exit is not None:
                try:
                    self.on_exit()
                except Exception:
                    log.debug("pump on_exit failed", exc_info=True)


class SourcePump:
    """Runs ``source.read`` on a thread into a ``NewestWinsBuffer`` until stopped or exhausted.

    For consumers that want to pull from several sources without blocking on any of them. The
    source must already be open; the pump does not close it. ``error`` holds the message of an
    exception raised by ``read`` (which ends the pump); ``done`` is set when the pump ends.
    """

    def __init__(
        self, source: Source, buffer: NewestWinsBuffer[CaptureItem], *, poll: float = 0.1
    ) -> None:
        self.source = source
        self.buffer = buffer
        self.poll = poll
        self.stop_event = threading.Event()
        self.done = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"mmdesk-{source.name}-pump", daemon=True
        )

    def start(self) -> SourcePump:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> bool:
        self.stop_event.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self.stop_event.is_set():
                item = self.source.read(timeout=self.poll)
                if item is not None:
                    self.buffer.put(item)
                elif self.source.exhausted:
                    break
        except Exception as e:
            self.error = str(e) or type(e).__name__
            log.warning("%s source failed: %s", self.source.name, self.error)
        finally:
            self.done.set()
            self.buffer.close()
