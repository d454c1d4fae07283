"""CameraSource (PyAV) against a real MJPEG-over-HTTP stream served by ffmpeg on 127.0.0.1."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from mmdesk.capture import camera
from mmdesk.capture.camera import CameraSource, list_cameras
from mmdesk.core.clock import SessionClock
from mmdesk.errors import DeviceError


def test_is_available_is_a_bool() -> None:
    assert CameraSource.is_available() is True  # PyAV is a dependency


def test_missing_camera_index_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="no camera at index 63") as exc:
        CameraSource(63).open()
    assert "\n" not in str(exc.value) and exc.value.hint


def test_unreachable_stream_is_a_device_error(mjpeg_server) -> None:
    server = mjpeg_server(seconds=1)
    port = server.url.split(":")[2].split("/")[0]
    server.stop()
    with pytest.raises(DeviceError, match=f"cannot open camera stream http://127.0.0.1:{port}/"):
        CameraSource(server.url).open()


def test_https_stream_in_the_bundle_says_why(monkeypatch) -> None:
    """The desktop bundle has no TLS library for FFmpeg (a stub): the user is told that, not "check the URL"."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    src = CameraSource("https://127.0.0.1:9/cam.mjpg")
    with pytest.raises(DeviceError, match="desktop bundle has no TLS support") as exc:
        src.open()
    assert "http:// or rtsp://" in exc.value.hint


def test_list_cameras_never_raises() -> None:
    cams = list_cameras()
    assert isinstance(cams, list)
    for c in cams:
        assert {"index", "name", "width", "height", "fps", "backend", "ok"} <= set(c)


def test_linux_cameras_are_named_from_sysfs(tmp_path, monkeypatch) -> None:
    """/dev/videoN listed in index order with the driver's name; a node that is no capture device
    (here a plain file) does not open and is left out of list_cameras."""
    dev, sysfs = tmp_path / "dev", tmp_path / "sys"
    for n, name in [(10, "Integrated Camera: Integrated C"), (2, "")]:
        (dev / f"video{n}").parent.mkdir(exist_ok=True)
        (dev / f"video{n}").write_bytes(b"")
        if name:
            (sysfs / f"video{n}").mkdir(parents=True)
            (sysfs / f"video{n}" / "name").write_text(name + "\n")
    (dev / "video-extra").write_bytes(b"")
    monkeypatch.setattr(camera, "DEV_DIR", dev)
    monkeypatch.setattr(camera, "V4L_SYSFS", sysfs)
    assert camera._linux_cameras() == [(2, str(dev / "video2")), (10, "Integrated Camera: Integrated C")]
    if sys.platform.startswith("linux"):
        assert list_cameras() == []


def test_stream_frames_on_the_session_clock(mjpeg_server) -> None:
    server = mjpeg_server(seconds=10, fps=15)
    clock = SessionClock()
    src = CameraSource(server.url, clock=clock, buffer=64)
    src.open()
    try:
        assert src.info["width"] == 320 and src.info["height"] == 240
        frames = []
        t_end = clock.now() + 1.5
        while clock.now() < t_end:
            f = src.read(timeout=0.5)
            if f is not None:
                frames.append(f)
                assert f.t <= clock.now()
    finally:
        src.close()
    assert 15 <= len(frames) <= 30, len(frames)  # ~15 fps in real time
    assert frames[0].image.shape == (240, 320, 3) and frames[0].image.dtype == np.uint8
    ts = np.array([f.t for f in frames])
    assert (np.diff(ts) > 0).all()
    assert np.median(np.diff(ts)) == pytest.approx(1 / 15, abs=0.02)
    assert [f.index for f in frames] == list(range(frames[0].index, frames[0].index + len(frames)))
    assert src.exhausted and not src.lost


def test_slow_consumer_gets_the_newest_frames(mjpeg_server) -> None:
    server = mjpeg_server(seconds=10, fps=25)
    with CameraSource(server.url, buffer=2) as src:
        time.sleep(0.8)  # do not read: the buffer keeps only the newest 2
        a, b = src.read(timeout=1), src.read(timeout=1)
        assert a is not None and b is not None
        assert src.dropped >= 5 and b.index == a.index + 1 and b.index >= src.frames - 3


def test_stream_that_ends_marks_the_camera_lost(mjpeg_server) -> None:
    server = mjpeg_server(seconds=1.0, fps=15)
    src = CameraSource(server.url, buffer=100)
    src.open()
    got = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        f = src.read(timeout=0.2)
        if f is not None:
            got += 1
        elif src.exhausted:
            break
    assert src.lost and src.exhausted and got >= 5
    assert src.error is not None and "stopped delivering" in src.error and "\n" not in src.error
    assert src.read(timeout=0.01) is None  # no exception from read
    src.close()
    src.close()


@pytest.mark.hardware
def test_real_camera() -> None:
    cams = [c for c in list_cameras() if c["ok"]]
    if not cams:
        pytest.skip("no camera on this machine")
    with CameraSource(cams[0]["index"]) as src:
        f = src.read(timeout=5)
        assert f is not None and f.image.ndim == 3
