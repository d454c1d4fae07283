"""A camera (device index) or network stream (e.g. an MJPEG http URL) via OpenCV, as a live source.

A background thread grabs frames as fast as the camera delivers them and puts them into a
``NewestWinsBuffer`` (newest wins; ``dropped`` counts what the consumer missed). Each frame's
time is the session clock read right after ``grab()`` returned, so frames from the camera and
the microphone share one timeline. ``open()`` waits for the first frame, so a camera that opens
but never delivers is reported there. If reads keep failing mid-session (unplugged camera,
stream server gone) the source ends: ``lost`` is True, ``error`` says what happened, ``read``
returns the frames still buffered and then None, and ``exhausted`` becomes True.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

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
#: network streams: FFmpeg open/read timeouts (ms), so a dead server cannot hang a read forever
STREAM_TIMEOUT_MS = 5000


def _cv2() -> Any:
    try:
        import cv2
    except Exception as e:  # ImportError, or a broken binary wheel
        raise DeviceError(
            f"OpenCV is not usable here ({e})", "reinstall it: pip install opencv-python-headless"
        ) from None
    return cv2


@contextlib.contextmanager
def _quiet_opencv(cv2: Any) -> Iterator[None]:
    """Silence OpenCV's own warnings (e.g. 'can't open camera by index') while probing."""
    try:
        logging_mod = cv2.utils.logging
        old = logging_mod.getLogLevel()
        logging_mod.setLogLevel(logging_mod.LOG_LEVEL_SILENT)
    except Exception:
        yield
        return
    try:
        yield
    finally:
        logging_mod.setLogLevel(old)


def _parse_device(device: int | str) -> int | str:
    if isinstance(device, str) and device.strip().lstrip("-").isdigit():
        return int(device.strip())
    return device


def _is_stream(device: int | str) -> bool:
    return isinstance(device, str)


def _open_capture(cv2: Any, device: int | str) -> Any:
    with _quiet_opencv(cv2):
        if _is_stream(device):
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                STREAM_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                STREAM_TIMEOUT_MS,
            ]
            return cv2.VideoCapture(str(device), cv2.CAP_FFMPEG, params)
        return cv2.VideoCapture(int(device))


def _to_bgr(cv2: Any, image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image)
    return image


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
        self._cap: Any = None
        self._cv2: Any = None
        self._pump: Pump[VideoFrame] | None = None
        self._index = 0

    @classmethod
    def is_available(cls) -> bool:
        try:
            import cv2  # noqa: F401
        except Exception:
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
        cv2 = self._cv2 = _cv2()
        cap = _open_capture(cv2, self.device)
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            raise _no_camera(self.device)
        if not _is_stream(self.device):
            if self.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            if self.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap
        self.info = {
            "device": self.device,
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
            "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or None,
            "backend": _backend_name(cap),
        }
        name = (
            f"camera {self.device}"
            if not _is_stream(self.device)
            else f"camera stream {self.device}"
        )
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
        cap = self._cap
        if cap is None or not cap.grab():
            return None
        t = self.clock.now()
        ok, image = cap.retrieve()
        if not ok or image is None or image.size == 0:
            return None
        frame = VideoFrame(t=t, image=_to_bgr(self._cv2, image), index=self._index)
        self._index += 1
        return frame

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

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


def _backend_name(cap: Any) -> str:
    try:
        return str(cap.getBackendName())
    except Exception:
        return "unknown"


def list_cameras(max_index: int = 4) -> list[dict[str, Any]]:
    """Cameras that open at indexes ``0 .. max_index - 1``, probed quietly (for ``mmdesk doctor``).

    Each entry: ``index``, ``name``, ``width``, ``height``, ``fps``, ``backend`` and ``ok``
    (whether a frame could be read). On Linux an index without ``/dev/videoN`` is skipped
    without asking OpenCV. Never raises; an empty list means no camera was found.
    """
    try:
        cv2 = _cv2()
    except DeviceError:
        return []
    found: list[dict[str, Any]] = []
    for index in range(max_index):
        node = f"/dev/video{index}"
        if sys.platform.startswith("linux") and not os.path.exists(node):
            continue
        try:
            cap = _open_capture(cv2, index)
            try:
                if not cap.isOpened():
                    continue
                with _quiet_opencv(cv2):
                    ok, _ = cap.read()
                found.append(
                    {
                        "index": index,
                        "name": node if sys.platform.startswith("linux") else f"camera {index}",
                        "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                        "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
                        "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or None,
                        "backend": _backend_name(cap),
                        "ok": bool(ok),
                    }
                )
            finally:
                cap.release()
        except Exception:  # a probe must never break doctor
            log.debug("probing camera %d failed", index, exc_info=True)
    return found
