"""Clip playback engine: demux/decode thread, audio clock, A/V sync, seeking, end of clip, errors.

No Qt here. The GUI (mmdesk/qt/qt_video.py) calls ``load/play/pause/seek`` from its thread and gets
``PlayerEvents`` callbacks from the engine's thread; it forwards them to the GUI thread itself.

Timing: a frame's time is ``pts * time_base`` minus the container start, the same clock the
analysis uses (mmdesk/capture/clip.py), so the playhead and the analysis windows agree. A frame is
shown when the clock reaches its time; frames already late when the next one is due are dropped
without being converted (conversion at the view's size is most of the per-frame cost).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmdesk.errors import MmdeskError
from mmdesk.playback.output import (
    AudioOutput,
    DeviceOutput,
    OutputDevice,
    SilentOutput,
    find_output,
)

log = logging.getLogger(__name__)

POSITION_HZ = 30
#: decoded audio kept ahead of the device (the callback must never wait for the decoder)
AUDIO_AHEAD_S = 0.3
#: decoded video frames kept ahead of the clock
VIDEO_AHEAD = 3
#: packets decoded per loop turn at most, so commands and presentation are never starved
PACKETS_PER_TURN = 16
#: an audio timestamp this far from the running sample count re-anchors it (a real gap in the track)
AUDIO_GAP_S = 0.1
#: the engine sleeps at most this long while playing (it feeds the audio queue in between)
MAX_SLEEP_S = 0.02
#: packets in a row that fail to decode before the clip is given up
MAX_DECODE_ERRORS = 100
#: a clip whose packets end this much before its stated duration is reported as cut short
SHORT_BY_S = 0.5


@dataclass(frozen=True)
class Frame:
    """A picture ready to paint: RGB pixels at (about) the view's size, and what they show."""

    pixels: np.ndarray  # (height, width, 3) uint8 RGB, C-contiguous
    t: float  # seconds since the clip's start
    source_size: tuple[int, int]  # the clip's own width, height (face boxes are in these pixels)


@dataclass(frozen=True)
class PlayerEvents:
    """Callbacks, called from the engine's thread (``playing`` also from the caller of play/pause)."""

    frame: Callable[[Frame], None]
    position: Callable[[float], None]
    playing: Callable[[bool], None]
    problem: Callable[[str], None]


@dataclass(frozen=True)
class _Command:
    kind: str  # load, unload, play, pause, seek, close
    path: str = ""
    t: float = 0.0


class _ReadFailed(Exception):
    pass


class _Media:
    """One opened clip: demuxing and decoding, on the engine's thread only."""

    def __init__(self, path: str, want_audio: bool) -> None:
        import av

        from mmdesk.capture.probe import check_path, open_container

        self._av = av
        self.video_frame_type = av.VideoFrame
        self.container = open_container(check_path(path))
        c = self.container
        self.video = c.streams.video[0] if c.streams.video else None
        self.audio = c.streams.audio[0] if c.streams.audio else None
        if self.video is None and self.audio is None:
            c.close()
            raise MmdeskError(f"cannot play {Path(path).name}: it has no video or audio track")
        self.has_audio = self.audio is not None
        self.streams = [s for s in (self.video, self.audio if want_audio else None) if s is not None]
        self.start = c.start_time / 1e6 if c.start_time is not None else 0.0
        self.duration = c.duration / 1e6 if c.duration else 0.0
        if not self.duration and self.video is not None and self.video.duration:
            self.duration = float(self.video.duration * self.video.time_base)
        self.fps = float(self.video.average_rate or self.video.guessed_rate or 25) if self.video else 25.0
        self.source_size = (self.video.width, self.video.height) if self.video else (0, 0)
        self.decode_errors = 0
        self._packets = c.demux(self.streams) if self.streams else iter(())

    def seek(self, t: float) -> None:
        if not self.streams:
            return
        stream = self.video or self.streams[0]
        self.container.seek(int((t + self.start) / stream.time_base), stream=stream, backward=True,
                            any_frame=False)  # the keyframe at or before t; PyAV flushes the decoders
        self._packets = self.container.demux(self.streams)

    def next(self) -> list[Any] | None:
        """The frames of the next packet ([] when it had none or was damaged); None at the end."""
        av = self._av
        try:
            packet = next(self._packets)
        except StopIteration:
            return None
        except (av.error.FFmpegError, OSError) as e:
            from mmdesk.capture.probe import ffmpeg_reason

            raise _ReadFailed(f"reading stopped ({ffmpeg_reason(e)})") from None
        try:
            frames = packet.decode()
        except (av.error.FFmpegError, ValueError) as e:
            self.decode_errors += 1
            if self.decode_errors > MAX_DECODE_ERRORS:
                from mmdesk.capture.probe import ffmpeg_reason

                raise _ReadFailed(f"the clip does not decode ({ffmpeg_reason(e)})") from None
            return []
        self.decode_errors = 0
        return frames

    def time_of(self, frame: Any) -> float | None:
        return None if frame.pts is None else float(frame.pts * frame.time_base) - self.start

    def close(self) -> None:
        try:
            self.container.close()
        except Exception as e:  # noqa: BLE001  (closing a damaged file may fail; it is dropped anyway)
            log.debug("closing the clip: %s", e)


class Player:
    """Plays one clip at a time on its own thread; never raises into the caller for bad media.

    ``output``: "auto" (the default output device, silent without one), "silent", or an
    ``OutputDevice``. ``audio_note`` says why playback is silent ("" when it is not).
    """

    def __init__(self, events: PlayerEvents, output: str | OutputDevice = "auto",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.events = events
        self._clock = clock
        if isinstance(output, OutputDevice):
            self._device: OutputDevice | None = output
            self.audio_note = ""
        elif output == "silent":
            self._device, self.audio_note = None, "playback is silent"
        else:
            self._device, self.audio_note = find_output()
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._lock = threading.Lock()
        self._playing = False
        self._loaded = False
        self._view_size: tuple[int, int] | None = None
        self.frames_shown = 0
        # engine-thread state
        self._media: _Media | None = None
        self._out: AudioOutput = SilentOutput(clock)
        self._video: deque[tuple[float, Any]] = deque()
        self._eof = False
        self._ended = False  # reached the end: the next play starts from the beginning
        self._last_t = 0.0  # time of the newest decoded video frame
        self._resampler: Any = None
        self._audio_base = 0.0
        self._audio_written = 0
        self._audio_anchored = False
        self._audio_end = 0.0
        self._end_t = 0.0  # when the clip's last frame or sample ends (known at the end of the file)
        self._reported_short = False
        self._next_position = 0.0
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()  # keeps its swscale context from frame to frame
        self._thread = threading.Thread(target=self._run, name="mmdesk-playback", daemon=True)
        self._thread.start()

    # == API (any thread) =======================================================================
    @property
    def playing(self) -> bool:
        return self._playing

    def load(self, path: str) -> None:
        with self._lock:
            self._loaded = True
        self._set_playing(False)
        self._commands.put(_Command("load", path=path))

    def unload(self) -> None:
        with self._lock:
            self._loaded = False
        self._set_playing(False)
        self._commands.put(_Command("unload"))

    def play(self) -> None:
        if self._loaded and self._set_playing(True):
            self._commands.put(_Command("play"))

    def pause(self) -> None:
        if self._set_playing(False):
            self._commands.put(_Command("pause"))

    def toggle(self) -> None:
        self.pause() if self._playing else self.play()

    def seek(self, seconds: float) -> None:
        if self._loaded:
            self._commands.put(_Command("seek", t=max(0.0, float(seconds))))

    def set_view_size(self, width: int, height: int) -> None:
        """Pixels the picture is painted at: frames are converted to fit it, never larger than the clip."""
        self._view_size = (max(1, int(width)), max(1, int(height)))

    def close(self, timeout: float = 3.0) -> None:
        self._commands.put(_Command("close"))
        self._thread.join(timeout)

    def _set_playing(self, playing: bool) -> bool:
        with self._lock:
            changed = playing != self._playing
            self._playing = playing
        if changed:
            self.events.playing(playing)
        return changed

    # == engine thread ==========================================================================
    def _run(self) -> None:
        while True:
            try:
                commands = [self._commands.get(timeout=self._sleep_s())]
            except queue.Empty:
                commands = []
            while True:
                try:
                    commands.append(self._commands.get_nowait())
                except queue.Empty:
                    break
            try:
                for i, cmd in enumerate(commands):
                    if cmd.kind == "close":
                        self._close_media()
                        return
                    if cmd.kind == "seek" and any(c.kind in ("seek", "load", "unload") for c in commands[i + 1:]):
                        continue  # superseded: only the last seek is worth decoding to
                    self._do(cmd)
                if self._playing and self._media is not None:
                    self._turn()
            except _ReadFailed as e:
                self._fail(str(e), keep=True)
            except MmdeskError as e:
                self._fail(e.one_line(), keep=False)
            except Exception as e:
                log.exception("playback failed")
                self._fail(f"{type(e).__name__}: {e}", keep=False)

    def _sleep_s(self) -> float | None:
        if not (self._playing and self._media is not None):
            return None  # nothing to do until a command comes
        now = self._out.position()
        wake = self._next_position - now
        if self._video:
            wake = min(wake, self._video[0][0] - now)
        return min(MAX_SLEEP_S, max(0.0, wake))

    def _fail(self, message: str, keep: bool) -> None:
        """Report, stop playing; ``keep``: the clip stays loaded (what was decoded can be seen again)."""
        self.events.problem(f"playback: {message}")
        self._set_playing(False)
        if keep and self._media is not None:
            self._out.stop()
            self._eof = self._ended = True  # the next play starts again from the beginning
            self._end_t = self._last_t
        else:
            self._close_media()
            with self._lock:
                self._loaded = False

    def _do(self, cmd: _Command) -> None:
        if cmd.kind == "load":
            self._close_media()
            self._open(cmd.path)
        elif cmd.kind == "unload":
            self._close_media()
        elif self._media is None:
            return
        elif cmd.kind == "play":
            if self._ended:
                self._seek(0.0)
            self._fill(preroll=True)
            self._out.start()
            self._next_position = self._out.position()
        elif cmd.kind == "pause":
            self._out.stop()
            self.events.position(self._out.position())
        elif cmd.kind == "seek":
            self._seek(cmd.t)

    def _open(self, path: str) -> None:
        self._reported_short = False
        media = _Media(path, want_audio=self._device is not None)
        self._media = media
        if media.has_audio and self._device is not None:
            try:
                self._out = DeviceOutput(self._device)
            except Exception as e:  # noqa: BLE001  (PortAudio refuses the device: play without sound)
                self.events.problem(f"playback: the audio output cannot be opened ({e}): playback is silent")
                self._go_silent()
        else:
            self._go_silent()
        self._seek(0.0)  # shows the first frame

    def _go_silent(self) -> None:
        if self._media is not None:
            self._media.streams = [s for s in self._media.streams if s is not self._media.audio]
        old, self._out = self._out, SilentOutput(self._clock)
        if not old.silent:
            at = old.position()
            self._out.reset(at)
            # a vanished device can block in close(): let it do so on a thread of its own
            threading.Thread(target=old.close, name="mmdesk-audio-close", daemon=True).start()

    def _close_media(self) -> None:
        if self._media is not None:
            self._media.close()
            self._media = None
        self._out.close()
        self._out = SilentOutput(self._clock)
        self._video.clear()

    def _seek(self, t: float) -> None:
        media = self._media
        assert media is not None
        if media.duration:
            t = min(t, media.duration)
        media.seek(t)
        self._video.clear()
        self._eof = self._ended = False
        self._out.reset(t)
        self._reset_audio(t)
        target = None
        while not self._video and not self._eof:  # decode forward from the keyframe to the frame at t
            for ft, frame in self._decode_packet():
                if ft <= t + 1e-6:
                    target = (ft, frame)  # the frame on screen at t is the last one starting by t
                else:
                    self._video.append((ft, frame))
        if target is None and self._video:
            target = self._video.popleft()  # t before the first frame: show the first
        if target is not None:
            self._show(*target)
        self.events.position(t)
        self._next_position = t + 1 / POSITION_HZ

    def _reset_audio(self, t: float) -> None:
        media = self._media
        self._resampler = None
        if media is not None and not self._out.silent and media.audio is not None:
            import av

            layout = "stereo" if self._out.channels >= 2 else "mono"
            self._resampler = av.AudioResampler(format="flt", layout=layout, rate=self._out.rate)
        self._audio_base, self._audio_written, self._audio_anchored = t, 0, False

    def _decode_packet(self) -> list[tuple[float, Any]]:
        """Decode one packet: its video frames are returned, its audio goes to the output."""
        media = self._media
        assert media is not None
        frames = media.next()
        if frames is None:
            self._at_end_of_file()
            return []
        video = []
        for frame in frames:
            if isinstance(frame, media.video_frame_type):
                t = media.time_of(frame)
                t = self._last_t + 1 / media.fps if t is None else t
                self._last_t = t
                video.append((t, frame))
            elif self._resampler is not None:
                self._push_audio(frame)
        return video

    def _push_audio(self, frame: Any) -> None:
        media, out = self._media, self._out
        assert media is not None
        rate = out.rate
        t = media.time_of(frame)
        nxt = self._audio_base + self._audio_written / rate
        if t is not None and t + frame.samples / frame.sample_rate <= nxt:
            return  # wholly before the position (decoded from the keyframe before a seek target)
        data = [f.to_ndarray().reshape(-1, out.channels) for f in self._resampler.resample(frame)]
        if not data:
            return
        samples = np.concatenate(data) if len(data) > 1 else data[0]
        if t is not None and (not self._audio_anchored or abs(t - nxt) > AUDIO_GAP_S):
            skew = round((t - nxt) * rate)  # track starts later (pad silence) or before the position (trim)
            if skew > 0:
                out.write(np.zeros((skew, out.channels), np.float32))
                self._audio_written += skew
            elif skew < 0:
                samples = samples[-skew:]
        self._audio_anchored = True
        if len(samples):
            out.write(np.ascontiguousarray(samples))
            self._audio_written += len(samples)

    def _at_end_of_file(self) -> None:
        media = self._media
        assert media is not None
        self._eof = True
        if self._resampler is not None:
            tail = [f.to_ndarray().reshape(-1, self._out.channels) for f in self._resampler.resample(None)]
            for samples in tail:
                self._out.write(np.ascontiguousarray(samples))
                self._audio_written += len(samples)
            self._out.end()
        self._audio_end = self._audio_base + (self._audio_written / self._out.rate if self._out.rate else 0.0)
        ends = [self._audio_end]
        if media.video is not None:
            ends.append(self._last_t + 1 / media.fps)
        if not media.streams:  # nothing decoded (silent audio-only clip): the container's duration
            ends.append(media.duration)
        self._end_t = max(ends)
        if (media.duration and self._end_t < media.duration - SHORT_BY_S and media.streams
                and not self._reported_short):
            self._reported_short = True
            self.events.problem(f"playback: the clip ends at {self._end_t:.1f} s of {media.duration:.1f} s "
                                "(it is truncated or damaged)")

    def _fill(self, preroll: bool = False) -> None:
        out = self._out
        for _ in range(PACKETS_PER_TURN * (8 if preroll else 1)):
            if self._eof:
                return
            need_video = self._media is not None and self._media.video is not None and len(self._video) < VIDEO_AHEAD
            need_audio = self._resampler is not None and out.buffered() < AUDIO_AHEAD_S
            if not (need_video or need_audio):
                return
            self._video.extend(self._decode_packet())

    def _turn(self) -> None:
        """One turn while playing: watch the device, decode ahead, show what is due, report the position."""
        failure = self._out.failure()
        if failure:
            self.events.problem(f"playback: {failure}: playback continues silently")
            self._go_silent()
            self._out.start()
        self._fill()
        now = self._out.position()
        due = None
        while self._video and self._video[0][0] <= now + 0.002:
            due = self._video.popleft()  # an earlier due frame is late: dropped, never converted
        if due is not None:
            self._show(*due)
        if self._eof and not self._video and self._out.buffered() == 0 and now >= self._end_t:
            self._finish()
            return
        if now >= self._next_position:
            self.events.position(now)
            self._next_position = now + 1 / POSITION_HZ

    def _finish(self) -> None:
        self._out.stop()
        self._ended = True
        end = self._end_t
        if self._media is not None and self._media.duration:
            end = min(end, self._media.duration)
        self.events.position(end)
        self._set_playing(False)

    def _show(self, t: float, frame: Any) -> None:
        w, h = self._fit(frame.width, frame.height)
        rgb = self._reformatter.reformat(frame, width=w, height=h, format="rgb24")
        pixels = rgb.to_ndarray()
        if not pixels.flags.c_contiguous:  # rows padded by FFmpeg: QImage wants one buffer (~0.3 ms)
            pixels = np.ascontiguousarray(pixels)
        self.frames_shown += 1
        self.events.frame(Frame(pixels, t, (frame.width, frame.height)))

    def _fit(self, sw: int, sh: int) -> tuple[int, int]:
        view = self._view_size
        if view is None:
            return sw, sh
        scale = min(view[0] / sw, view[1] / sh, 1.0)  # Qt scales up for free; swscale would only cost
        return max(2, math.floor(sw * scale)), max(2, math.floor(sh * scale))
