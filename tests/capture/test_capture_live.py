"""The live-source helpers: Pump's error cut-off and SourcePump."""

from __future__ import annotations

import itertools
import time

from capture_support import Media

from mmdesk.capture.clip import ClipSource
from mmdesk.capture.live import Pump, SourcePump
from mmdesk.core.buffer import NewestWinsBuffer


def test_pump_delivers_until_stopped() -> None:
    buf: NewestWinsBuffer[int] = NewestWinsBuffer(1000)
    counter = itertools.count()
    pump = Pump(lambda: (time.sleep(0.001), next(counter))[1], buf)
    pump.start()
    assert pump.first.wait(2) and pump.items >= 1
    time.sleep(0.05)
    assert pump.stop(2) and not pump.alive
    items = buf.drain()
    assert items == list(range(len(items))) and pump.error is None


def test_pump_error_cut_off() -> None:
    buf: NewestWinsBuffer[int] = NewestWinsBuffer(10)
    seq = iter([1, None, 2, None, None, "raise", None, 3])
    lost: list[str] = []
    exited: list[bool] = []

    def grab() -> int | None:
        r = next(seq, None)
        if r == "raise":
            raise RuntimeError("boom")
        return r  # type: ignore[return-value]

    pump = Pump(
        grab,
        buf,
        max_failures=3,
        retry_delay=0.001,
        on_lost=lost.append,
        on_exit=lambda: exited.append(True),
        describe="test device",
    )
    pump.start()
    deadline = time.monotonic() + 2
    while pump.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pump.alive and exited == [True]
    assert buf.drain() == [1, 2]
    assert (
        lost == [pump.error]
        and "test device stopped delivering: 3 reads failed in a row (boom)" == pump.error
    )


def test_source_pump_runs_a_clip_on_a_thread(media: Media) -> None:
    src = ClipSource(media.get("av_sync.mp4"))
    src.open()
    buf = NewestWinsBuffer(10_000)
    pump = SourcePump(src, buf).start()
    assert pump.done.wait(10) and pump.error is None
    items = buf.drain()
    assert buf.closed and src.exhausted and len(items) > 75
    src.close()
