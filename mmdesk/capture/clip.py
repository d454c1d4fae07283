"""A media file (video and/or audio, plus sidecar subtitles) as a finite source, via PyAV.

Everything FFmpeg reads works: mp4, mkv, webm, mov, avi and audio-only wav/flac/mp3/ogg/m4a.

Timing
    * Video frames carry their presentation time, ``pts * time_base`` minus the container start,
      so variable-frame-rate clips are timed correctly (the fps in ``info`` is only an estimate).
    * Audio is resampled to 16 kHz mono float32 with ``av.AudioResampler``. Chunk times come from
      a running output-sample count anchored at the first audio frame's PTS, so consecutive
      chunks are exactly contiguous (no rounding drift); a real gap in the audio PTS (> 0.1 s,
      e.g. after corrupt packets were skipped) re-anchors the count. An audio track that starts
      after the video keeps that offset.
    * Both streams are demuxed in one pass and merged: items come out in time order across
      modalities (up to a small look-ahead bound), and in non-decreasing time per modality.
    * ``max_fps`` decimates video on a PTS grid (at most one frame per ``1/max_fps`` slot); skipped
      frames are decoded (they have to be) but never converted to arrays, which is where the time
      goes. ``VideoFrame.index`` is the frame's number in the file, so skipped frames show as gaps.

Bad input
    ``open()`` runs ``probe()``: a missing/empty/unreadable/non-media file raises a one-line
    ``MediaError``. Once open, ``read()`` never raises for bad data: corrupt packets are skipped
    and counted in ``decode_errors``; if the file cannot be read any further (truncated, I/O
    error, the decoder keeps failing) the source ends cleanly with what it read, ``exhausted``
    becomes True and ``error`` holds a one-line message.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmdesk.capture.base import Source, register_source
from mmdesk.capture.probe import MediaInfo, ffmpeg_reason, open_container, probe
from mmdesk.capture.subtitles import find_sidecar, read_subtitles
from mmdesk.core.types import AUDIO_RATE, AudioChunk, CaptureItem, TextEvent, VideoFrame
from mmdesk.errors import MediaError

log = logging.getLogger(__name__)

#: audio is delivered in chunks of at least this many 16 kHz samples (0.1 s), except at the end
AUDIO_CHUNK_SAMPLES = AUDIO_RATE // 10
#: a jump of the audio PTS ahead of the running sample count larger than this re-anchors it
AUDIO_GAP_S = 0.1
#: look-ahead bounds of the time-order merge (decoded items held back waiting for the other stream)
MAX_PENDING_VIDEO = 8
MAX_PENDING_ITEMS = 256
#: consecutive packets that fail to decode / demux errors in a row before the file is given up
MAX_CONSECUTIVE_DECODE_ERRORS = 200
MAX_CONSECUTIVE_DEMUX_ERRORS = 20


class _Ended(Exception):
    """The file cannot be read any further; the message says why."""


def _to_bgr(frame: Any) -> np.ndarray:
    """BGR uint8 pixels of a decoded frame, converted by FFmpeg's swscale (with its SIMD paths: 0.7 ms
    for a 720p yuv420p frame, as fast as OpenCV's converter was; docs/benchmarks.md)."""
    return frame.to_ndarray(format="bgr24")


@register_source("clip")
class ClipSource(Source):
    """Frames, 16 kHz audio chunks and sidecar subtitle cues of one media file."""

    modalities: ClassVar[frozenset[str]] = frozenset({"video", "audio", "text"})

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        video: bool = True,
        audio: bool = True,
        max_fps: float | None = None,
        subtitles: bool = True,
    ) -> None:
        if max_fps is not None and not (max_fps > 0 and math.isfinite(max_fps)):
            raise ValueError(f"max_fps must be a positive number, got {max_fps!r}")
        self.path = Path(path)
        self.want_video = video
        self.want_audio = audio
        self.max_fps = max_fps
        self.want_subtitles = subtitles
        #: what the file holds (filled by open(); decode_errors/notes updated when it ends)
        self.info: MediaInfo | None = None
        #: one-line message if reading stopped early because of an error, else None
        self.error: str | None = None
        #: the sidecar subtitle file delivered with the clip, if any
        self.subtitle_path: Path | None = None
        self.frames_decoded = 0
        self.frames_delivered = 0
        self.audio_samples_delivered = 0
        self._decode_errors = 0
        self._notes: list[str] = []
        self._container: Any = None
        self._vstream: Any = None
        self._astream: Any = None
        self._items: Iterator[CaptureItem] | None = None
        self._heap: list[tuple[float, int, CaptureItem]] = []
        self._seq = itertools.count()
        self._pending_video = 0
        self._subs: deque[TextEvent] = deque()
        self._done = False
        self._exhausted = False
        self._opened = False
        self._closed = False
        self._start = 0.0
        # per-stream progress used by the merge (latest decoded time, -inf before the first)
        self._video_last = -math.inf
        self._audio_bound = -math.inf
        # audio state
        self._resampler: Any = None
        self._anchor: float | None = None
        self._out_samples = 0  # 16 kHz samples produced since the anchor
        self._in_seconds = 0.0  # input audio consumed since the anchor, in seconds
        self._in_origin = 0.0  # PTS time of the first input sample counted in _in_seconds
        self._trim = 0  # output samples still to drop (audio starting before t = 0)
        self._abuf: list[np.ndarray] = []
        self._abuf_len = 0
        self._abuf_t = 0.0
        # video state
        self._last_slot = -1
        self._fps_guess = 25.0

    # -- contract -----------------------------------------------------------------------------

    def open(self) -> None:
        if self._opened:
            return
        info = probe(self.path)
        container = open_container(self.path)
        try:
            if self.want_video and info.video_stream is not None:
                self._vstream = container.streams[info.video_stream]
            if self.want_audio and info.audio_stream is not None:
                self._astream = container.streams[info.audio_stream]
            if self._vstream is None and self._astream is None:
                wanted = [
                    k for k, w in (("video", self.want_video), ("audio", self.want_audio)) if w
                ]
                has = [k for k, h in (("video", info.has_video), ("audio", info.has_audio)) if h]
                raise MediaError(
                    f"cannot read {self.path}: it has no {' or '.join(wanted) or 'stream'} "
                    f"to read (it has {' and '.join(has)} only)",
                    f"enable {' or '.join(has)} for this clip",
                )
            if self._vstream is not None:
                self._vstream.thread_type = "AUTO"
                if info.fps:
                    self._fps_guess = info.fps
        except BaseException:
            container.close()
            raise
        self._container = container
        self._start = info.start_time
        self.info = info
        self._notes = list(info.notes)
        if self.want_subtitles:
            self._load_sidecar()
        self._items = self._decode()
        self._opened = True

    def read(self, timeout: float | None = None) -> CaptureItem | None:
        """The next item in time order; never blocks on a file, so ``timeout`` is not used."""
        if not self._opened:
            raise RuntimeError("ClipSource.read() before open()")
        if self._closed or self._exhausted:
            return None
        while True:
            item = self._pop(ready_only=not self._done)
            if item is not None:
                return item
            if self._done:
                self._finish()
                return None
            self._pull()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._items = None
        self._heap.clear()
        self._subs.clear()
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # closing a half-broken container must not raise
                log.debug("closing %s failed", self.path, exc_info=True)
            self._container = None

    @property
    def exhausted(self) -> bool:
        return self._exhausted or self._closed

    @property
    def decode_errors(self) -> int:
        """Packets or frames that failed to decode and were skipped."""
        return self._decode_errors

    @property
    def has_video(self) -> bool:
        return self._vstream is not None

    @property
    def has_audio(self) -> bool:
        return self._astream is not None

    # -- merge --------------------------------------------------------------------------------

    def _load_sidecar(self) -> None:
        side = find_sidecar(self.path)
        if side is None:
            return
        try:
            sub = read_subtitles(side)
        except MediaError as e:
            self._notes.append(f"subtitles ignored: {e}")
            return
        self.subtitle_path = side
        self._subs = deque(sub.events)
        self._notes.append(f"subtitles from {side.name} ({len(sub.events)} cues)")
        self._notes.extend(f"subtitles: {n}" for n in sub.notes)

    def _bound(self) -> float:
        """Items up to this time can be emitted: no stream will produce anything earlier."""
        bound = math.inf
        if self._vstream is not None:
            bound = min(bound, self._video_last)
        if self._astream is not None:
            bound = min(bound, self._abuf_t if self._abuf else self._audio_bound)
        return bound

    def _pop(self, ready_only: bool) -> CaptureItem | None:
        heap_t = self._heap[0][0] if self._heap else math.inf
        sub_t = self._subs[0].start if self._subs else math.inf
        t = min(heap_t, sub_t)
        if t == math.inf:
            return None
        if ready_only and t > self._bound():
            if len(self._heap) < MAX_PENDING_ITEMS and self._pending_video < MAX_PENDING_VIDEO:
                return None
        if sub_t <= heap_t:  # a cue and a media item at the same time: the cue first
            return self._subs.popleft()
        _, _, item = heapq.heappop(self._heap)
        if isinstance(item, VideoFrame):
            self._pending_video -= 1
        return item

    def _push(self, item: CaptureItem) -> None:
        t = item.t if not isinstance(item, TextEvent) else item.start
        heapq.heappush(self._heap, (t, next(self._seq), item))
        if isinstance(item, VideoFrame):
            self._pending_video += 1

    def _pull(self) -> None:
        assert self._items is not None
        try:
            item = next(self._items)
        except StopIteration:
            self._done = True
            return
        except _Ended as e:
            self._set_error(str(e))
            self._done = True
            return
        except Exception as e:  # never raise from read(): end cleanly with what was read
            log.debug("reading %s failed", self.path, exc_info=True)
            self._set_error(f"reading {self.path.name} stopped: {ffmpeg_reason(e)}")
            self._done = True
            return
        self._push(item)

    def _set_error(self, msg: str) -> None:
        if self.error is None:
            self.error = msg
            self._notes.append(msg)
            log.warning("%s", msg)

    def _finish(self) -> None:
        self._exhausted = True
        self._check_truncated()
        if self._decode_errors:
            self._notes.append(
                f"{self._decode_errors} packet(s) could not be decoded and were skipped"
            )
        if self.info is not None:
            self.info = replace(
                self.info, decode_errors=self._decode_errors, notes=tuple(self._notes)
            )
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                log.debug("closing %s failed", self.path, exc_info=True)
            self._container = None

    def _check_truncated(self) -> None:
        """A file with an index (mp4/mov/mkv) that stops well before its stated duration."""
        info = self.info
        if self.error is not None or info is None or not info.duration:
            return
        if not any(k in info.format_name for k in ("mp4", "mov", "matroska", "webm")):
            return
        audio_end = self._abuf_end() if self._anchor is not None else -math.inf
        read_end = max(self._video_last, audio_end)
        if read_end < 0.9 * info.duration - 0.5:
            self._set_error(
                f"{self.path.name} ended at {max(read_end, 0.0):.1f} s "
                f"of its {info.duration:.1f} s: "
                "the file is truncated; results cover the part that was read"
            )

    # -- decoding -----------------------------------------------------------------------------

    def _packets(self) -> Iterator[Any]:
        """Packets of the wanted streams; survives read errors mid-file (up to a cut-off)."""
        import av

        streams = [s for s in (self._vstream, self._astream) if s is not None]
        errors_in_row = 0
        flushed = False
        while True:
            try:
                for packet in self._container.demux(*streams):
                    errors_in_row = 0
                    if packet.size == 0 and packet.pts is None:
                        flushed = True
                    yield packet
                break
            except (av.error.EOFError, EOFError):
                break
            except (av.error.FFmpegError, OSError) as e:
                errors_in_row += 1
                log.debug("demux error in %s: %s", self.path, e)
                if errors_in_row >= MAX_CONSECUTIVE_DEMUX_ERRORS:
                    self._flush_needed = not flushed
                    raise _Ended(
                        f"reading {self.path.name} stopped partway ({ffmpeg_reason(e)}): "
                        "the file is damaged or incomplete; results cover the part that was read"
                    ) from None

    def _decode(self) -> Iterator[CaptureItem]:
        import av

        failures_in_row = 0
        ended: _Ended | None = None
        self._flush_needed = False
        try:
            for packet in self._packets():
                try:
                    frames = packet.decode()
                except (av.error.FFmpegError, ValueError) as e:
                    self._decode_errors += 1
                    failures_in_row += 1
                    log.debug("decode error in %s: %s", self.path, e)
                    if failures_in_row >= MAX_CONSECUTIVE_DECODE_ERRORS:
                        self._flush_needed = True
                        ended = _Ended(
                            f"decoding {self.path.name} failed {failures_in_row} times in a row "
                            f"({ffmpeg_reason(e)}): the stream is damaged from there on; "
                            "results cover the part before it"
                        )
                        break
                    continue
                if frames:
                    failures_in_row = 0
                for frame in frames:
                    if packet.stream is self._vstream:
                        item = self._video_frame(frame)
                        if item is not None:
                            yield item
                    else:
                        yield from self._audio_frame(frame)
        except _Ended as e:
            ended = e
        if ended is not None or self._flush_needed:
            yield from self._flush_decoders()
        yield from self._flush_audio()
        if ended is not None:
            raise ended

    def _flush_decoders(self) -> Iterator[CaptureItem]:
        for stream in (self._vstream, self._astream):
            if stream is None:
                continue
            try:
                frames = stream.codec_context.decode(None)
            except Exception:
                continue
            for frame in frames:
                if stream is self._vstream:
                    item = self._video_frame(frame)
                    if item is not None:
                        yield item
                else:
                    yield from self._audio_frame(frame)

    def _time(self, frame: Any, stream: Any) -> float | None:
        pts = frame.pts
        if pts is None:
            pts = getattr(frame, "dts", None)
        if pts is None:
            return None
        tb = frame.time_base or stream.time_base
        if tb is None:
            return None
        t = float(pts * tb) - self._start
        return t if math.isfinite(t) else None

    def _video_frame(self, frame: Any) -> VideoFrame | None:
        t = self._time(frame, self._vstream)
        if t is None:
            t = (self._video_last + 1.0 / self._fps_guess) if self._video_last > -math.inf else 0.0
        t = max(t, 0.0, self._video_last)  # non-decreasing, never before the clip start
        self._video_last = t
        index = self.frames_decoded
        self.frames_decoded += 1
        if self.max_fps is not None:
            slot = math.floor(t * self.max_fps + 1e-6)
            if slot <= self._last_slot:
                return None
            self._last_slot = slot
        try:
            image = _to_bgr(frame)
        except Exception as e:  # a frame the converter cannot handle: skip it, count it
            self._decode_errors += 1
            log.debug("frame conversion failed in %s: %s", self.path, e)
            return None
        self.frames_delivered += 1
        return VideoFrame(t=t, image=image, index=index)

    def _new_resampler(self) -> Any:
        import av

        return av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)

    def _audio_frame(self, frame: Any) -> Iterator[AudioChunk]:
        t_in = self._time(frame, self._astream)
        rate = frame.sample_rate or (self.info.audio_rate if self.info else None) or AUDIO_RATE
        if self._anchor is None:
            start = t_in if t_in is not None else 0.0
            self._in_origin = start
            self._anchor = max(start, 0.0)
            self._out_samples = 0
            self._in_seconds = 0.0
            if start < 0:  # e.g. codec priming before the clip start: drop it
                self._trim = round(-start * AUDIO_RATE)
        elif t_in is not None:
            expected = self._in_origin + self._in_seconds
            if t_in - expected > AUDIO_GAP_S:
                # audio is missing (skipped corrupt packets, or a real gap): restart the count
                yield from self._flush_audio()
                self._resampler = None
                self._anchor = max(t_in, self._abuf_end())
                self._in_origin = t_in
                self._out_samples = 0
                self._in_seconds = 0.0
                self._notes.append(f"audio gap at {expected:.2f}-{t_in:.2f} s")
        if self._resampler is None:
            self._resampler = self._new_resampler()
        try:
            out = self._resampler.resample(frame)
        except ValueError:
            # the input format changed mid-stream (rate/layout): flush and start a new resampler
            yield from self._drain(self._resampler.resample(None))
            self._resampler = self._new_resampler()
            out = self._resampler.resample(frame)
        self._in_seconds += frame.samples / rate
        yield from self._drain(out)

    def _abuf_end(self) -> float:
        assert self._anchor is not None
        return self._anchor + self._out_samples / AUDIO_RATE

    def _drain(self, frames: list[Any]) -> Iterator[AudioChunk]:
        for of in frames:
            samples = of.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            if self._trim:
                cut = min(self._trim, len(samples))
                samples = samples[cut:]
                self._trim -= cut
            if not len(samples):
                continue
            if not self._abuf:
                self._abuf_t = self._abuf_end()
            self._abuf.append(samples)
            self._abuf_len += len(samples)
            self._out_samples += len(samples)
            self._audio_bound = self._abuf_end()
            if self._abuf_len >= AUDIO_CHUNK_SAMPLES:
                yield self._emit_audio()

    def _emit_audio(self) -> AudioChunk:
        samples = np.concatenate(self._abuf) if len(self._abuf) > 1 else self._abuf[0]
        np.clip(samples, -1.0, 1.0, out=samples)
        chunk = AudioChunk(t=self._abuf_t, samples=np.ascontiguousarray(samples, dtype=np.float32))
        self._abuf = []
        self._abuf_len = 0
        self.audio_samples_delivered += len(chunk.samples)
        return chunk

    def _flush_audio(self) -> Iterator[AudioChunk]:
        if self._resampler is not None and self._anchor is not None:
            try:
                yield from self._drain(self._resampler.resample(None))
            except Exception:
                log.debug("audio resampler flush failed", exc_info=True)
        if self._abuf:
            yield self._emit_audio()
