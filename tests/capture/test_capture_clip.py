"""ClipSource and probe() on real media made with ffmpeg (see capture_support.Media)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from capture_support import EVENT_T, SINE_HZ, SYNC_FPS, Media, peak_hz

from mmdesk.capture.clip import ClipSource
from mmdesk.capture.probe import MediaInfo, probe
from mmdesk.core.types import AUDIO_RATE, AudioChunk, TextEvent, VideoFrame
from mmdesk.errors import MediaError

FRAME = 1 / SYNC_FPS


def read_all(src: ClipSource) -> list:
    items = []
    with src:
        while (item := src.read()) is not None or not src.exhausted:
            if item is not None:
                items.append(item)
        assert src.exhausted and src.read() is None
    return items


def split(items: list) -> tuple[list[VideoFrame], list[AudioChunk], list[TextEvent]]:
    return (
        [i for i in items if isinstance(i, VideoFrame)],
        [i for i in items if isinstance(i, AudioChunk)],
        [i for i in items if isinstance(i, TextEvent)],
    )


def audio_of(chunks: list[AudioChunk]) -> np.ndarray:
    for a, b in zip(chunks, chunks[1:]):
        assert b.t == pytest.approx(a.end, abs=1e-9), "audio chunks must be contiguous"
    return np.concatenate([c.samples for c in chunks])


def item_t(item: object) -> float:
    return item.start if isinstance(item, TextEvent) else item.t  # type: ignore[attr-defined]


# -- timing ----------------------------------------------------------------------------------------


def flash_and_click(path: Path) -> tuple[float, float, list[AudioChunk]]:
    frames, chunks, _ = split(read_all(ClipSource(path)))
    bright = [f for f in frames if f.image.mean() > 240]
    assert len(bright) == 1, [round(f.t, 3) for f in bright]
    x = audio_of(chunks)
    first = int(np.argmax(np.abs(x) > 0.5))
    assert np.abs(x[first]) > 0.5
    return bright[0].t, chunks[0].t + first / AUDIO_RATE, chunks


def test_audio_video_alignment(media: Media) -> None:
    flash, click, chunks = flash_and_click(media.get("av_sync.mp4"))
    assert flash == pytest.approx(EVENT_T, abs=1e-3)  # PTS of frame 30
    assert abs(click - EVENT_T) < FRAME / 4, f"click at {click:.4f}, expected {EVENT_T}"
    assert abs(click - flash) < FRAME, f"audio/video misaligned by {click - flash:+.4f} s"
    assert chunks[0].t == 0.0


def test_audio_starting_late_keeps_its_offset(media: Media) -> None:
    """The audio track starts 0.5 s after the video (AAC priming puts its first PTS at 0.479)."""
    flash, click, chunks = flash_and_click(media.get("av_offset.mp4"))
    assert 0.45 < chunks[0].t < 0.51, chunks[0].t
    assert abs(click - flash) < FRAME, f"audio/video misaligned by {click - flash:+.4f} s"
    info = probe(media.get("av_offset.mp4"))
    assert info.audio_start == pytest.approx(chunks[0].t, abs=1e-3)


def test_items_come_in_time_order(media: Media) -> None:
    items = read_all(ClipSource(media.get("av_sync.mp4")))
    frames, chunks, _ = split(items)
    assert len(frames) == 75
    ts = [item_t(i) for i in items]
    # across modalities at most one audio chunk (0.1 s) out of order; per modality never
    assert max(a - b for a, b in zip(ts, ts[1:])) <= 0.1 + 1e-9
    assert all(a.t <= b.t for a, b in zip(frames, frames[1:]))
    assert [f.index for f in frames] == list(range(75))
    assert [round(f.t, 6) for f in frames] == [round(i * FRAME, 6) for i in range(75)]


def test_variable_frame_rate_follows_pts(media: Media) -> None:
    path = media.get("vfr.mp4")
    frames, chunks, _ = split(read_all(ClipSource(path)))
    assert not chunks
    t = np.array([f.t for f in frames])
    assert len(t) >= 39
    assert np.allclose(np.diff(t[:11]), 0.1, atol=0.002), np.diff(t[:11])  # 10 fps part
    assert np.allclose(np.diff(t[11:]), 1 / 30, atol=0.002), np.diff(t[11:])  # 30 fps part
    info = probe(path)
    assert info.variable_frame_rate and any("variable frame rate" in n for n in info.notes)


def test_max_fps_decimates_on_the_pts_grid(media: Media) -> None:
    src = ClipSource(media.get("av_sync.mp4"), max_fps=5)
    frames, chunks, _ = split(read_all(src))
    assert [round(f.t, 6) for f in frames] == [round(i * 0.2, 6) for i in range(15)]
    assert [f.index for f in frames] == list(range(0, 75, 5))
    assert src.frames_decoded == 75 and src.frames_delivered == 15
    assert sum(len(c.samples) for c in chunks) / AUDIO_RATE == pytest.approx(3.0, abs=0.03)


def test_max_fps_above_the_clip_rate_keeps_every_frame(media: Media) -> None:
    frames, _, _ = split(read_all(ClipSource(media.get("vfr.mp4"), max_fps=60)))
    assert len(frames) >= 39


def test_bad_max_fps_is_rejected(media: Media) -> None:
    with pytest.raises(ValueError):
        ClipSource(media.get("av_sync.mp4"), max_fps=0)


# -- containers and audio formats ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clip.mkv", "clip.webm", "clip.mov", "clip.avi"])
def test_containers(media: Media, name: str) -> None:
    src = ClipSource(media.get(name))
    frames, chunks, _ = split(read_all(src))
    assert src.error is None and src.decode_errors == 0
    assert 48 <= len(frames) <= 51
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].t < 0.05 and 1.9 < frames[-1].t <= 2.0
    x = audio_of(chunks)
    assert len(x) / AUDIO_RATE == pytest.approx(2.0, abs=0.06)
    assert abs(peak_hz(x) - SINE_HZ) < 3


@pytest.mark.parametrize(
    ("name", "rate", "channels"),
    [
        ("tone.wav", 44100, 2),
        ("tone.flac", 44100, 1),
        ("tone.mp3", 44100, 1),
        ("tone.ogg", 44100, 1),
        ("tone.m4a", 44100, 1),
        ("tone_8k.wav", 8000, 1),
        ("tone_96k.wav", 96000, 1),
        ("tone_6ch.wav", 48000, 6),
        ("tone_s24.wav", 44100, 1),
        ("tone_s32.wav", 48000, 1),
        ("tone_f32.wav", 48000, 1),
    ],
)
def test_audio_only_files_become_16k_mono(
    media: Media, name: str, rate: int, channels: int
) -> None:
    src = ClipSource(media.get(name))
    frames, chunks, _ = split(read_all(src))
    assert not frames and chunks
    assert src.info is not None and not src.info.has_video and src.info.has_audio
    assert src.info.audio_rate == rate and src.info.audio_channels == channels
    assert "no video track: face will be marked absent" in src.info.notes
    assert all(c.samples.dtype == np.float32 and c.samples.ndim == 1 for c in chunks)
    x = audio_of(chunks)
    assert chunks[0].t == pytest.approx(0.0, abs=0.01)
    assert len(x) / AUDIO_RATE == pytest.approx(2.0, abs=0.06), len(x) / AUDIO_RATE
    assert abs(peak_hz(x) - SINE_HZ) < 3, peak_hz(x)
    steady = x[AUDIO_RATE // 4 : -AUDIO_RATE // 4]
    assert 0.05 < np.sqrt(np.mean(steady**2)) and np.abs(x).max() <= 1.0


# -- one stream, no stream -------------------------------------------------------------------------


def test_clip_without_audio_is_video_only(media: Media) -> None:
    src = ClipSource(media.get("video_only.mp4"))
    frames, chunks, _ = split(read_all(src))
    assert len(frames) == 25 and not chunks
    assert src.info is not None and src.info.has_video and not src.info.has_audio
    assert "no audio track: voice will be marked absent" in src.info.notes


def test_clip_without_video_is_audio_only(media: Media) -> None:
    src = ClipSource(media.get("audio_only.mp4"))
    frames, chunks, _ = split(read_all(src))
    assert not frames and sum(len(c.samples) for c in chunks) / AUDIO_RATE == pytest.approx(
        1.0, abs=0.05
    )


def test_cover_art_is_not_video(media: Media) -> None:
    src = ClipSource(media.get("tone_cover.mp3"))
    frames, chunks, _ = split(read_all(src))
    assert not frames and chunks
    assert src.info is not None and not src.info.has_video
    assert "cover art ignored (not a video track)" in src.info.notes


def test_stream_selection(media: Media) -> None:
    path = media.get("av_sync.mp4")
    frames, chunks, _ = split(read_all(ClipSource(path, video=False)))
    assert not frames and chunks
    frames, chunks, _ = split(read_all(ClipSource(path, audio=False)))
    assert frames and not chunks
    with pytest.raises(MediaError, match="video_only.mp4.*no audio to read"):
        ClipSource(media.get("video_only.mp4"), video=False).open()


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.mp4", "does not exist"),
        ("a_directory.mp4", "is a directory"),
        ("empty.mp4", r"empty \(0 bytes\)"),
        ("random.mp4", "not a media file FFmpeg understands"),
        ("truncated.mp4", "truncated or corrupt .*moov"),
        ("subtitles_only.mkv", "no video or audio stream"),
    ],
)
def test_bad_input_is_a_one_line_media_error(media: Media, name: str, message: str) -> None:
    path = media.root / name if name == "missing.mp4" else media.get(name)
    src = ClipSource(path)
    with pytest.raises(MediaError, match=message) as exc:
        src.open()
    text = str(exc.value)
    assert name in text and "\n" not in text and exc.value.hint
    with pytest.raises(MediaError, match=message):
        probe(path)
    src.close()  # closing a source that never opened is fine


def test_truncated_with_index_reads_the_part_that_is_there(media: Media) -> None:
    src = ClipSource(media.get("truncated_faststart.mp4"))
    frames, chunks, _ = split(read_all(src))
    assert 30 <= len(frames) < 100 and chunks
    assert src.error is not None and "truncated" in src.error and "\n" not in src.error
    assert src.info is not None and src.error in src.info.notes


def test_mid_file_corruption_is_skipped_and_counted(media: Media) -> None:
    src = ClipSource(media.get("corrupt.mp4"))
    frames, chunks, _ = split(read_all(src))
    assert src.decode_errors > 0
    assert src.info is not None and src.info.decode_errors == src.decode_errors
    assert len(frames) >= 80 and frames[-1].t >= 3.9  # it kept going past the damage
    assert all(a.t <= b.t for a, b in zip(frames, frames[1:]))
    assert sum(len(c.samples) for c in chunks) / AUDIO_RATE > 3.5
    ts = [c.t for c in chunks]
    assert ts == sorted(ts)


def test_error_partway_ends_cleanly(media: Media, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong once reading has started, read() returns None instead of raising."""
    src = ClipSource(media.get("av_sync.mp4"))
    real = ClipSource._video_frame

    def flaky(self: ClipSource, frame: object) -> VideoFrame | None:
        if self.frames_decoded == 40:
            raise OSError(5, "Input/output error")
        return real(self, frame)

    monkeypatch.setattr(ClipSource, "_video_frame", flaky)
    frames, chunks, _ = split(read_all(src))
    assert 30 <= len(frames) <= 40 and chunks
    assert src.exhausted and src.error is not None and "Input/output error" in src.error


# -- sizes, subtitles, real data -------------------------------------------------------------------


def test_4k_frames_are_delivered_at_full_size(media: Media) -> None:
    frames, _, _ = split(read_all(ClipSource(media.get("uhd.mp4"))))
    assert len(frames) == 5 and frames[0].image.shape == (2160, 3840, 3)


def test_sidecar_subtitles_in_cp1252(media: Media) -> None:
    path = media.get("sidecar.mp4")
    src = ClipSource(path)
    items = read_all(src)
    _, _, texts = split(items)
    assert [(t.start, t.end, t.text, t.origin) for t in texts] == [
        (0.5, 1.25, "Café naïve — déjà vu", "subtitle"),
        (1.3, 1.9, "Très bien, garçon!", "subtitle"),
    ]
    assert src.subtitle_path == path.with_suffix(".srt")
    assert src.info is not None and any("cp1252" in n for n in src.info.notes)
    i = items.index(texts[0])  # merged in time order
    assert max(item_t(x) for x in items[:i]) <= 0.5
    assert min(item_t(x) for x in items[i + 1 :]) >= 0.5 - 0.1
    _, _, texts = split(read_all(ClipSource(path, subtitles=False)))
    assert texts == []


def test_probe_describes_the_clip(media: Media) -> None:
    info = probe(media.get("av_sync.mp4"))
    assert isinstance(info, MediaInfo)
    assert info.duration == pytest.approx(3.0, abs=0.05)
    assert (info.width, info.height, info.video_codec, info.audio_codec) == (
        320,
        240,
        "h264",
        "aac",
    )
    assert info.fps == pytest.approx(25.0) and not info.variable_frame_rate
    assert (info.audio_rate, info.audio_channels) == (48000, 1)
    assert info.has_video and info.has_audio and info.notes == ()
    assert "320x240" in info.summary()
    with pytest.raises(AttributeError):
        info.duration = 1.0  # type: ignore[misc]  # frozen


RAVDESS = "av/ravdess_actor05/01-01-03-01-01-02-05.mp4"


def _timed_read(path: Path, max_fps: float | None) -> tuple[float, list]:
    t0 = time.perf_counter()
    items = read_all(ClipSource(path, max_fps=max_fps))
    return time.perf_counter() - t0, items


def test_ravdess_clip(assets: Path, record_property: pytest.RecordProperty) -> None:
    path = assets / RAVDESS
    if not path.is_file():
        pytest.skip(f"{path} not in the shared assets")
    info = probe(path)
    assert (info.width, info.height) == (1280, 720)
    secs5, items = _timed_read(path, 5)
    frames, chunks, _ = split(items)
    assert all(f.image.shape == (720, 1280, 3) for f in frames)
    assert len(frames) == math.floor(info.duration * 5) + 1 or len(frames) == math.ceil(
        info.duration * 5
    )
    assert [round(f.t, 1) for f in frames[:3]] == [0.0, 0.2, 0.4]
    assert sum(len(c.samples) for c in chunks) / AUDIO_RATE == pytest.approx(
        info.duration, abs=0.05
    )
    secs_full, items_full = _timed_read(path, None)
    frames_full = [i for i in items_full if isinstance(i, VideoFrame)]
    assert len(frames_full) == pytest.approx(info.duration * 29.97, abs=2)
    record_property("ravdess_720p_seconds_max_fps5", round(secs5, 3))
    record_property("ravdess_720p_seconds_full", round(secs_full, 3))
    print(
        f"\nRAVDESS 720p {info.duration:.2f} s clip: max_fps=5 {secs5:.2f} s "
        f"({info.duration / secs5:.1f}x real time), "
        f"full {len(frames_full)} frames {secs_full:.2f} s "
        f"({info.duration / secs_full:.1f}x real time)"
    )
    assert secs5 < info.duration, "decoding at max_fps=5 should be faster than real time"
