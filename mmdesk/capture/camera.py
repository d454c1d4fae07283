"""A camera (device index) or network stream (e.g. an MJPEG http URL) via PyAV, as a live source.

Cameras are opened through FFmpeg's capture devices: v4l2 (``/dev/videoN``) on Linux, avfoundation
on macOS, dshow on Windows (the Nth video device it lists). A background thread reads frames as
fast as the camera delivers them and puts them into a ``NewestWinsBuffer`` (newest wins;
``dropped`` counts what the consumer missed). Each frame's time is the session clock read right
after its packet arrived, so frames from the camera and the microphone share one timeline.
``open()`` waits for the first frame, so a camera that opens but never delivers is reported
there. If reads keep failing mid-session (unplugged camera, stream server gone) the source ends:
``lost`` is True, ``error`` says what happened, ``read`` returns the frames still buffered and
then None, and ``exhausted`` becomes True.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from mmdesk.capture.base import register_source
from mmdesk.capture.live import LiveSource, Pump
from mmdesk.core.clock import SessionClock
from mmdesk.core.types import VideoFrame
from mmdesk.errors import DeviceError

log = logging.getLogger(__name__)

#: consecutive failed reads after which the camera counts as lost
MAX_READ_FAILURES = 10
#: seconds ``open()`` waits for the first frame
FIRST_FRAME_TIMEOUT = 5.0
#: FFmpeg open/read timeouts (ms), so a dead server or a hung device cannot block a read forever
STREAM_TIMEOUT_MS = 5000
#: where Linux lists its video devices, and their names
DEV_DIR = Path("/dev")
V4L_SYSFS = Path("/sys/class/video4linux")


def _parse_device(device: int | str) -> int | str:
    if isinstance(device, str) and device.strip().lstrip("-").isdigit():
        return int(device.strip())
    return device


def _is_stream(device: int | str) -> bool:
    return isinstance(device, str)


def _device_input(index: int, options: dict[str, str]) -> tuple[str, str, dict[str, str]]:
    """(what to open, FFmpeg input format, options) for camera ``index`` on this platform."""
    if sys.platform.startswith("linux"):
        return str(DEV_DIR / f"video{index}"), "v4l2", options
    if sys.platform == "darwin":
        # avfoundation's default 29.97 fps is refused by most webcams; 30 is what they offer
        return str(index), "avfoundation", {"framerate": "30", **options}
    if sys.platform == "win32":
        import av

        names = [d.name for d in av.enumerate_input_devices("dshow") if "video" in d.media_types]
        if not 0 <= index < len(names):
            raise _no_camera(index)
        return f"video={names[index]}", "dshow", options
    raise DeviceError(f"camera devices are not supported on {sys.platform} yet",
                      "use a camera stream URL (for example an MJPEG http:// URL) instead")


def _open_container(device: int | str, width: int | None, height: int | None, fps: float | None) -> Any:
    """The opened PyAV container; DeviceError (one line, with the fix) when it cannot be opened."""
    import av  # lazily, like every backend library: importing mmdesk.capture stays cheap

    timeout = STREAM_TIMEOUT_MS / 1000
    if _is_stream(device):
        _check_tls(str(device))
        target, fmt, options = str(device), None, {}
    else:
        wanted = {}
        if width and height:
            wanted["video_size"] = f"{width}x{height}"
        if fps:
            wanted["framerate"] = f"{fps:g}"
        target, fmt, options = _device_input(int(device), wanted)
    try:
        container = av.open(target, format=fmt, options=options, timeout=(timeout, timeout))
    except (av.FFmpegError, OSError) as exc:
        log.debug("opening %s failed: %s", target, exc)
        raise _no_camera(device) from None
    if not container.streams.video:
        container.close()
        raise DeviceError(f"camera {device} has no video", "pick a video device or a video stream URL")
    return container


#: URL schemes FFmpeg opens through its TLS library
TLS_SCHEMES = ("https://", "tls://", "rtmps://", "srtp://")


def _check_tls(url: str) -> None:
    """The desktop bundle's FFmpeg has a stub in place of its TLS library (build_installer.py leaves GnuTLS
    out: mmdesk only decodes); say so instead of the generic "cannot open"."""
    if getattr(sys, "frozen", False) and url.lower().startswith(TLS_SCHEMES):
        raise DeviceError(f"cannot open camera stream {url}: the mmdesk desktop bundle has no TLS support "
                          "for camera streams (left out to keep the installer small)",
                          "use the camera's http:// or rtsp:// address, or run mmdesk from a pip install")


def _no_camera(device: int | str) -> DeviceError:
    if _is_stream(device):
        return DeviceError(
            f"cannot open camera stream {device}",
            "check the URL and that the stream server is running and reachable",
        )
    return DeviceError(
        f"no camera at index {device}",
        "connect a camera, close other apps using it, or pick another index "
        "(`mmdesk doctor` lists the cameras found)",
    )


def _describe(container: Any, device: int | str) -> dict[str, Any]:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    return {
        "device": device,
        "width": int(stream.codec_context.width or 0),
        "height": int(stream.codec_context.height or 0),
        "fps": float(rate) if rate else None,
        "backend": container.format.name,
    }


@register_source("camera")
class CameraSource(LiveSource):
    """Frames from a camera index or stream URL, timestamped on the session clock."""

    modalities: ClassVar[frozenset[str]] = frozenset({"video"})

    def __init__(
        self,
        device: int | str = 0,
        *,
        clock: SessionClock | None = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        buffer: int = 4,
    ) -> None:
        super().__init__(clock=clock, buffer=buffer)
        self.device = _parse_device(device)
        self.width = width
        self.height = height
        self.fps = fps
        #: what the camera reports once open: width, height, fps, backend
        self.info: dict[str, Any] = {}
        self._container: Any = None
        self._stream: Any = None
        self._packets: Iterator[Any] | None = None
        self._pump: Pump[VideoFrame] | None = None
        self._index = 0

    @classmethod
    def is_available(cls) -> bool:
        try:
            import av  # noqa: F401
        except ImportError:  # also what a broken binary wheel raises
            return False
        return True

    @property
    def frames(self) -> int:
        """Frames grabbed so far (delivered or dropped)."""
        return self._index

    def open(self) -> None:
        if self._opened:
            return
        if self._closed:
            raise RuntimeError("CameraSource cannot be reopened after close(); create a new one")
        container = _open_container(self.device, self.width, self.height, self.fps)
        self._container = container
        self._stream = container.streams.video[0]
        self._stream.thread_type = "NONE"  # one frame at a time, no frame-threading latency
        self._packets = container.demux(self._stream)
        self.info = _describe(container, self.device)
        name = f"camera stream {self.device}" if _is_stream(self.device) else f"camera {self.device}"
        self._pump = Pump(
            self._grab,
            self._buffer,
            name=f"mmdesk-camera-{self.device}",
            max_failures=MAX_READ_FAILURES,
            on_lost=self._mark_lost,
            on_exit=self._release,
            describe=name,
        )
        self._opened = True
        self._pump.start()
        self._pump.first.wait(FIRST_FRAME_TIMEOUT)
        if self._pump.items == 0:
            why = self._pump.error or f"no frame within {FIRST_FRAME_TIMEOUT:.0f} s"
            self.close()
            raise DeviceError(
                f"{name} opened but delivered no frames ({why})",
                "close other apps using it, check the cable/URL, or try another camera",
            )

    def _grab(self) -> VideoFrame | None:
        """The newest frame of the next packet; None when none came (the stream ended, or the
        packet held no complete frame). A corrupt packet raises: the pump counts it as a failure."""
        packets = self._packets
        if packets is None:
            return None
        packet = next(packets, None)  # the demuxer's generator ends for good on EOF or a read error
        if packet is None:
            self._packets = None
            return None
        t = self.clock.now()
        decoded = self._stream.decode(packet)
        if not decoded:
            return None
        frame = VideoFrame(t=t, image=decoded[-1].to_ndarray(format="bgr24"), index=self._index)
        self._index += 1
        return frame

    def _release(self) -> None:
        container, self._container = self._container, None
        self._packets = None
        if container is not None:
            container.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pump = self._pump
        if pump is not None and not pump.stop(timeout=STREAM_TIMEOUT_MS / 1000 + 1):
            log.warning(
                "camera %s: grab thread still blocked; it releases the device when it returns",
                self.device,
            )
        elif pump is None:
            self._release()
        self._buffer.close()


def _linux_cameras() -> list[tuple[int, str]]:
    """(index, name) of each /dev/videoN, named as the driver names it in sysfs."""
    found = []
    for node in DEV_DIR.glob("video*"):
        m = re.fullmatch(r"video(\d+)", node.name)
        if m is None:
            continue
        try:
            name = (V4L_SYSFS / node.name / "name").read_text(encoding="utf-8").strip()
        except OSError:
            name = ""
        found.append((int(m.group(1)), name or str(node)))
    return sorted(found)


def _candidate_cameras(max_index: int) -> list[tuple[int, str]]:
    if sys.platform.startswith("linux"):
        return _linux_cameras()
    if sys.platform == "win32":
        import av

        devices = [d for d in av.enumerate_input_devices("dshow") if "video" in d.media_types]
        return [(i, d.description or d.name) for i, d in enumerate(devices)]
    return [(i, f"camera {i}") for i in range(max_index)]  # avfoundation: probe the first indexes


def list_cameras(max_index: int = 4) -> list[dict[str, Any]]:
    """The cameras that open, probed quietly (for ``mmdesk doctor`` and the device menu).

    Linux: every ``/dev/videoN``, named from ``/sys/class/video4linux/videoN/name`` (nodes that
    are not capture devices, such as metadata nodes, do not open and are left out); Windows: the
    video devices dshow lists; macOS: indexes ``0 .. max_index - 1``. Each entry: ``index``,
    ``name``, ``width``, ``height``, ``fps``, ``backend`` and ``ok`` (whether a frame could be
    read). Never raises; an empty list means no camera was found.
    """
    import av

    try:
        candidates = _candidate_cameras(max_index)
    except Exception:  # a probe must never break doctor
        log.debug("listing cameras failed", exc_info=True)
        return []
    found: list[dict[str, Any]] = []
    for index, name in candidates:
        try:
            container = _open_container(index, None, None, None)
        except DeviceError:
            continue
        try:
            try:
                ok = next(container.decode(video=0), None) is not None
            except av.FFmpegError:
                ok = False
            found.append({"index": index, "name": name, **_describe(container, index), "ok": ok})
            del found[-1]["device"]
        except Exception:  # a probe must never break doctor
            log.debug("probing camera %d failed", index, exc_info=True)
        finally:
            container.close()
    return found
