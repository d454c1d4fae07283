"""Windowing edges: boundaries, first/last partial windows, gaps, VFR, audio placement."""

from __future__ import annotations

import numpy as np
import pytest

from mmdesk.core.types import AUDIO_RATE, AudioChunk, TextEvent, VideoFrame
from mmdesk.sync.windower import Windower, WindowSpec

IMG = np.zeros((4, 4, 3), np.uint8)


def feed_clip(w: Windower, duration: float, fps: float = 10.0, chunk: float = 0.1) -> list:
    out = []
    t_v, t_a, i = 0.0, 0.0, 0
    while t_v < duration - 1e-9 or t_a < duration - 1e-9:
        if t_v < duration - 1e-9 and (t_v <= t_a or t_a >= duration - 1e-9):
            w.push(VideoFrame(t=round(t_v, 6), image=IMG, index=i))
            i += 1
            t_v += 1 / fps
        else:
            n = int(round(min(chunk, duration - t_a) * AUDIO_RATE))
            # a ramp lets us check every sample lands where it should
            start = int(round(t_a * AUDIO_RATE))
            w.push(AudioChunk(t=round(t_a, 6), samples=np.arange(start, start + n, dtype=np.float32)))
            t_a += chunk
        out += w.ready()
    return out


def test_default_spec_and_bounds() -> None:
    spec = WindowSpec()
    assert (spec.length, spec.hop) == (2.0, 0.5)
    assert spec.bounds(3) == (1.5, 3.5)


@pytest.mark.parametrize("length,hop", [(0, 0.5), (2.0, 0), (1.0, 2.0), (float("nan"), 0.5)])
def test_invalid_spec_rejected(length: float, hop: float) -> None:
    with pytest.raises(ValueError):
        WindowSpec(length, hop)


def test_windows_cover_clip_with_partial_tail() -> None:
    w = Windower(WindowSpec(2.0, 0.5))
    wins = feed_clip(w, 3.2)
    wins += w.flush(3.2)
    starts = [x.start for x in wins]
    # full windows at 0, 0.5, 1.0; partial 1.5-3.2, 2.0-3.2, 2.5-3.2; 3.0-3.2 is shorter than a hop
    assert starts == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [x.partial for x in wins] == [False, False, False, True, True, True]
    assert wins[-1].end == pytest.approx(3.2)
    assert [x.index for x in wins] == list(range(6))
    # every frame lands in the windows that contain its timestamp, audio is the exact ramp
    first = wins[0]
    assert [f.index for f in first.frames] == list(range(20))
    assert first.audio_coverage == pytest.approx(1.0)
    np.testing.assert_array_equal(first.audio, np.arange(0, 2 * AUDIO_RATE, dtype=np.float32))
    second = wins[1]
    assert second.frames[0].t == pytest.approx(0.5)
    assert second.audio[0] == 0.5 * AUDIO_RATE
    tail = wins[-1]
    assert len(tail.audio) == int(round(0.7 * AUDIO_RATE))
    assert tail.audio[0] == 2.5 * AUDIO_RATE


def test_clip_shorter_than_a_hop_gives_one_partial_window() -> None:
    w = Windower(WindowSpec(2.0, 0.5))
    wins = feed_clip(w, 0.3) + w.flush(0.3)
    assert len(wins) == 1 and wins[0].partial and wins[0].end == pytest.approx(0.3)


def test_window_not_emitted_until_every_stream_reaches_its_end() -> None:
    w = Windower(WindowSpec(1.0, 0.5))
    for i in range(20):  # video runs 2 s ahead
        w.push(VideoFrame(t=i * 0.1, image=IMG, index=i))
    assert w.ready() == []
    w.push(AudioChunk(t=0.0, samples=np.ones(AUDIO_RATE, np.float32)))
    wins = w.ready()
    assert [(x.start, x.end) for x in wins] == [(0.0, 1.0)]


def test_gap_in_video_and_audio_is_visible() -> None:
    w = Windower(WindowSpec(1.0, 1.0))
    for i in range(10):  # frames only in the first second, then from 2 s
        w.push(VideoFrame(t=i * 0.1, image=IMG, index=i))
        w.push(VideoFrame(t=2 + i * 0.1, image=IMG, index=10 + i))
    w.push(AudioChunk(t=0.0, samples=np.ones(AUDIO_RATE // 2, np.float32)))  # 0-0.5 s only
    w.push(AudioChunk(t=2.0, samples=np.ones(AUDIO_RATE, np.float32)))
    wins = w.ready() + w.flush(3.0)
    assert [len(x.frames) for x in wins] == [10, 0, 10]
    assert [round(x.audio_coverage, 3) for x in wins] == [0.5, 0.0, 1.0]
    assert wins[1].audio.sum() == 0


def test_variable_frame_rate_uses_timestamps() -> None:
    w = Windower(WindowSpec(1.0, 1.0), has_audio=False)
    times = [0.0, 0.05, 0.1, 0.9, 1.0, 1.033, 1.066, 1.1, 1.9, 2.5]  # bursts and pauses
    for i, t in enumerate(times):
        w.push(VideoFrame(t=t, image=IMG, index=i))
    wins = w.ready() + w.flush(3.0)
    assert [[f.t for f in x.frames] for x in wins] == [
        [0.0, 0.05, 0.1, 0.9],
        [1.0, 1.033, 1.066, 1.1, 1.9],
        [2.5],
    ]


def test_text_overlapping_each_window() -> None:
    w = Windower(WindowSpec(2.0, 1.0), has_video=False)
    w.push(TextEvent(0.2, 1.2, "wow"))
    w.push(TextEvent(1.5, 3.5, "great food"))
    w.push(AudioChunk(t=0.0, samples=np.zeros(5 * AUDIO_RATE, np.float32)))
    wins = w.ready()
    assert [x.text for x in wins] == ["wow great food", "wow great food", "great food", "great food"]


def test_memory_is_bounded() -> None:
    w = Windower(WindowSpec(2.0, 0.5))
    feed_clip(w, 60.0, fps=25)
    assert len(w._frames) <= 2.5 * 25 + 2
    assert sum(len(c.samples) for c in w._chunks) <= 2.6 * AUDIO_RATE


def test_audio_only_and_late_audio_start() -> None:
    w = Windower(WindowSpec(1.0, 0.5), has_video=False)
    w.push(AudioChunk(t=0.25, samples=np.ones(AUDIO_RATE, np.float32)))  # starts 0.25 s late
    wins = w.ready()
    assert wins[0].start == 0.0 and wins[0].audio_coverage == pytest.approx(0.75)
    assert wins[0].audio[: AUDIO_RATE // 4].sum() == 0 and wins[0].audio[AUDIO_RATE // 4] == 1.0
