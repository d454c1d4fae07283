"""TypedTextSource: thread-safe submissions on the session clock, bounded size."""

from __future__ import annotations

import threading

import pytest

from mmdesk.capture.text import MAX_CHARS, TypedTextSource, clean_typed_text, hold_seconds
from mmdesk.core.clock import SessionClock


def test_hold_seconds() -> None:
    assert hold_seconds("hi") == 2.0
    assert hold_seconds(" ".join(["w"] * 10)) == pytest.approx(3.5)
    assert hold_seconds(" ".join(["w"] * 1000)) == 20.0


def test_submit_and_read() -> None:
    clock = SessionClock()
    src = TypedTextSource(clock=clock)
    with src:
        before = clock.now()
        ev = src.submit("  I am  so happy\x00 today  ")
        after = clock.now()
        assert ev is not None and ev.text == "I am  so happy today" and ev.origin == "typed"
        assert before <= ev.start <= after and ev.end == pytest.approx(ev.start + 2.0)
        assert src.read(timeout=1) is ev
        assert src.read(timeout=0.05) is None and not src.exhausted  # live: waits for more
        assert src.submit("   \n ") is None  # blank: ignored
    assert src.exhausted and src.submit("too late") is None
    src.close()


def test_huge_text_is_truncated_not_fatal() -> None:
    src = TypedTextSource()
    with src:
        ev = src.submit("word " * 200_000)  # 1 MB
        assert ev is not None and len(ev.text) <= MAX_CHARS and ev.text.endswith("word")
        assert src.truncated and src.truncated_count == 1
        src.submit("short")
        assert not src.truncated and src.truncated_count == 1
    text, cut = clean_typed_text("x" * (MAX_CHARS + 1))
    assert cut and len(text) == MAX_CHARS
    with pytest.raises(TypeError):
        clean_typed_text(b"bytes")  # type: ignore[arg-type]


def test_submit_from_many_threads() -> None:
    src = TypedTextSource(buffer=1000)
    src.open()
    threads = [
        threading.Thread(target=lambda i=i: [src.submit(f"t{i} m{j}") for j in range(50)])
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = []
    while (ev := src.read(timeout=0.01)) is not None:
        got.append(ev)
    src.close()
    assert len(got) == 400 and src.submitted == 400
    assert all(a.start <= b.start for a, b in zip(got, got[1:]))


def test_newest_wins_when_the_reader_is_slow() -> None:
    src = TypedTextSource(buffer=3)
    with src:
        for i in range(10):
            src.submit(f"m{i}")
        assert src.dropped == 7
        assert [src.read(0).text for _ in range(3)] == ["m7", "m8", "m9"]


def test_read_before_open_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError):
        TypedTextSource().read(0)
