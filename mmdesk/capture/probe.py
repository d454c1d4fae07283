"""Up-front checks of a media file: what it holds, or a one-line ``MediaError`` saying why not.

``probe(path)`` is what ``ClipSource.open`` (and ``mmdesk doctor``/``mmdesk info``) call before
any decoding, so that a bad input never surfaces as a PyAV traceback::

    info = probe("talk.mp4")
    info.duration, info.has_video, info.has_audio, info.width, info.height, info.fps, info.notes

Checks, in order: the path exists, is a regular file, is not empty, FFmpeg can open it as a
container, it has a video and/or an audio stream, and the first packets of each such stream can
be decoded (a stream whose first packets all fail is dropped with a note; if nothing is left the
file is rejected).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from mmdesk.errors import MediaError

log = logging.getLogger(__name__)

#: packets of each stream tried before deciding that a stream cannot be decoded at all
_PROBE_PACKETS = 48
#: packets read at most while probing (a file with all audio first must not be read whole)
_PROBE_MAX_TOTAL = 3000


@dataclass(frozen=True)
class MediaInfo:
    """What a clip holds. Times are seconds; ``None`` where the container does not say."""

    path: str
    size_bytes: int
    format_name: str
    duration: float | None
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    #: average frame rate estimate (frames / duration); never used for timestamps
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_rate: int | None = None
    audio_channels: int | None = None
    audio_format: str | None = None
    #: container start time (seconds); item timestamps are relative to it
    start_time: float = 0.0
    #: when the audio / video stream starts relative to the container start
    audio_start: float | None = None
    video_start: float | None = None
    variable_frame_rate: bool = False
    #: container stream indexes that ClipSource reads (None: that modality is absent)
    video_stream: int | None = None
    audio_stream: int | None = None
    #: packets that failed to decode (filled in by ClipSource once it has read the file)
    decode_errors: int = 0
    #: human-readable remarks, e.g. "no audio track: voice will be marked absent"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        parts = [f"{Path(self.path).name}: {self.format_name}"]
        if self.duration is not None:
            parts.append(f"{self.duration:.2f} s")
        if self.has_video:
            fps = f" ~{self.fps:.2f} fps" if self.fps else ""
            parts.append(f"video {self.video_codec} {self.width}x{self.height}{fps}")
        if self.has_audio:
            parts.append(f"audio {self.audio_codec} {self.audio_rate} Hz x{self.audio_channels}")
        return ", ".join(parts)


def _bad(path: Path, problem: str, hint: str) -> MediaError:
    return MediaError(f"cannot read {path}: {problem}", hint)


_HINT_MEDIA = "use a video or audio file FFmpeg can play (mp4, mkv, webm, mov, avi, wav, mp3, ...)"
_HINT_REENCODE = "the file looks damaged or incomplete: re-export, re-record or re-download it"
_MP4_EXTS = {".mp4", ".m4a", ".m4v", ".mov", ".3gp", ".3g2", ".mj2"}


def check_path(path: str | os.PathLike[str]) -> Path:
    """The file-system checks (exists, regular file, not empty, readable) as ``MediaError``."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise _bad(p, "the file does not exist", "check the path and file name") from None
    except PermissionError:
        raise _bad(p, "permission denied", "check the file's permissions") from None
    except OSError as e:
        raise _bad(p, e.strerror or str(e), "check the path") from None
    if p.is_dir():
        raise _bad(p, "it is a directory, not a media file", "pass the path of a clip inside it")
    if not p.is_file():
        raise _bad(p, "not a regular file", "pass the path of a clip file")
    if st.st_size == 0:
        raise _bad(p, "the file is empty (0 bytes)", "re-export or re-copy the clip")
    if not os.access(p, os.R_OK):
        raise _bad(p, "permission denied", "check the file's permissions")
    return p


def ffmpeg_reason(exc: BaseException) -> str:
    """A short text for a PyAV/FFmpeg exception (no file name, no errno noise)."""
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    msg = str(msg).strip().rstrip(".")
    return msg.splitlines()[0] if msg else type(exc).__name__


def open_container(p: Path) -> Any:
    """``av.open`` with FFmpeg failures turned into a one-line ``MediaError``."""
    import av

    try:
        return av.open(str(p), mode="r", metadata_errors="replace")
    except av.error.InvalidDataError:
        if _starts_like_mp4(p):
            problem = (
                "the mp4/mov file is truncated or corrupt (its index, the moov atom, is missing)"
            )
        else:
            problem = "not a media file FFmpeg understands (unknown format or corrupt data)"
        raise _bad(p, problem, _HINT_REENCODE if _starts_like_mp4(p) else _HINT_MEDIA) from None
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as e:
        raise _bad(p, f"FFmpeg could not open it ({ffmpeg_reason(e)})", _HINT_MEDIA) from None


def _starts_like_mp4(p: Path) -> bool:
    """An ISO-BMFF file starts with an ``ftyp`` box (bytes 4..8); a cut-off one still does."""
    try:
        with p.open("rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[4:8] in (b"ftyp", b"mdat", b"moov", b"free", b"wide") or (
        p.suffix.lower() in _MP4_EXTS and head[4:8] == b"skip"
    )


def _is_picture(stream: Any) -> bool:
    """Cover art / a still image stored as a one-packet "video" stream (mp3, m4a, flac)."""
    import av

    flags = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image
    try:
        return bool(int(stream.disposition) & int(flags))
    except Exception:
        return False


def pick_streams(container: Any) -> tuple[Any, Any]:
    """The video stream (not cover art) and the audio stream to read: the first of each."""
    video = next((s for s in container.streams.video if not _is_picture(s)), None)
    audio = container.streams.audio[0] if container.streams.audio else None
    return video, audio


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _decodable(container: Any, streams: list[Any]) -> dict[int, bool]:
    """Whether each stream yields a frame within its first packets.

    A stream counts as undecodable only if it was really tried: ``_PROBE_PACKETS`` of its
    packets (or all of them, the file being shorter) gave no frame. A stream not reached within
    ``_PROBE_MAX_TOTAL`` packets (a badly interleaved file) gets the benefit of the doubt.
    """
    import av

    ok = {s.index: False for s in streams}
    tried = {s.index: 0 for s in streams}
    finished = False
    total = 0
    try:
        for packet in container.demux(*streams):
            total += 1
            if total > _PROBE_MAX_TOTAL:
                break
            idx = packet.stream.index
            if ok[idx] or tried[idx] >= _PROBE_PACKETS:
                if all(ok[i] or tried[i] >= _PROBE_PACKETS for i in ok):
                    break
                continue
            tried[idx] += 1
            try:
                if packet.decode():
                    ok[idx] = True
            except (av.error.FFmpegError, ValueError):
                continue
            if all(ok.values()):
                break
        else:
            finished = True
    except (av.error.FFmpegError, OSError, EOFError, ValueError) as e:
        log.debug("probe demux stopped: %s", e)
        finished = True
    return {i: ok[i] or (not finished and tried[i] < _PROBE_PACKETS) for i in ok}


def probe(path: str | os.PathLike[str], *, decode_check: bool = True) -> MediaInfo:
    """Describe ``path`` or raise ``MediaError`` naming the file and the problem."""
    p = check_path(path)
    size = p.stat().st_size
    container = open_container(p)
    try:
        return _describe(container, p, size, decode_check)
    finally:
        container.close()


def _describe(container: Any, p: Path, size: int, decode_check: bool) -> MediaInfo:
    notes: list[str] = []
    video, audio = pick_streams(container)
    if video is None and any(_is_picture(s) for s in container.streams.video):
        notes.append("cover art ignored (not a video track)")
    if video is None and audio is None:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise _bad(
            p,
            f"it has no video or audio stream (streams: {', '.join(kinds)})",
            _HINT_MEDIA,
        )
    if decode_check:
        ok = _decodable(container, [s for s in (video, audio) if s is not None])
        if video is not None and not ok[video.index]:
            notes.append("video track could not be decoded: face will be marked absent")
            video = None
        if audio is not None and not ok[audio.index]:
            notes.append("audio track could not be decoded: voice will be marked absent")
            audio = None
        if video is None and audio is None:
            raise _bad(p, "none of its video or audio packets could be decoded", _HINT_REENCODE)

    start = (container.start_time or 0) / 1_000_000 if container.start_time is not None else 0.0
    duration = container.duration / 1_000_000 if container.duration else None
    fmt = container.format.name if container.format is not None else "unknown"

    kw: dict[str, Any] = {}
    if video is not None:
        cc = video.codec_context
        avg = video.average_rate
        guessed = getattr(video, "guessed_rate", None)
        fps = float(avg) if avg else (float(guessed) if guessed else None)
        vduration = _seconds(video.duration, video.time_base)
        if video.frames and vduration:
            fps = video.frames / vduration
        base = video.base_rate
        vfr = bool(fps and base and abs(float(base) - fps) > 0.05 * fps)
        if vfr:
            notes.append(f"variable frame rate (average {fps:.2f} fps): timestamps follow PTS")
        kw.update(
            width=int(cc.width or 0),
            height=int(cc.height or 0),
            fps=fps,
            video_codec=cc.name,
            video_start=(_seconds(video.start_time, video.time_base) or start) - start,
            variable_frame_rate=vfr,
        )
        if duration is None and vduration:
            duration = vduration
    else:
        notes.append("no video track: face will be marked absent")
    if audio is not None:
        cc = audio.codec_context
        kw.update(
            audio_codec=cc.name,
            audio_rate=int(cc.sample_rate or 0) or None,
            audio_channels=int(cc.channels or 0) or None,
            audio_format=cc.format.name if cc.format is not None else None,
            audio_start=(_seconds(audio.start_time, audio.time_base) or start) - start,
        )
        if duration is None:
            duration = _seconds(audio.duration, audio.time_base)
    else:
        notes.append("no audio track: voice will be marked absent")
    if duration is None:
        notes.append("duration unknown until the clip has been read")

    return MediaInfo(
        path=str(p),
        video_stream=video.index if video is not None else None,
        audio_stream=audio.index if audio is not None else None,
        size_bytes=size,
        format_name=fmt,
        duration=duration,
        has_video=video is not None,
        has_audio=audio is not None,
        start_time=start,
        notes=tuple(notes),
        **kw,
    )
