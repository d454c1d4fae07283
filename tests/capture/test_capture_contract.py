"""One contract test over every registered source, each fed from something real on this machine:

clip ← a generated mp4; subtitles ← a generated .srt; text ← submissions from another thread;
camera ← an MJPEG stream served by ffmpeg on 127.0.0.1; microphone ← an ALSA capture device
(file plugin reading a FIFO fed in real time) seen by PortAudio, checked in a child process.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from capture_contract import check_contract
from capture_support import run_child

from mmdesk.capture import create_source, registered_sources
from mmdesk.capture.base import Source

SOURCES = sorted(registered_sources())


def test_expected_sources_are_registered() -> None:
    assert {"clip", "camera", "microphone", "text", "subtitles"} <= set(SOURCES)


def test_unknown_source_name() -> None:
    with pytest.raises(ValueError, match="unknown source 'nope'"):
        create_source("nope")


@pytest.mark.parametrize("name", SOURCES)
def test_source_contract(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cls = registered_sources()[name]
    assert cls.is_available() in (True, False)
    if name == "clip":
        path = request.getfixturevalue("media").get("av_sync.mp4")
        r = check_contract(cls, lambda: create_source("clip", path=path), finite=True)
        assert r["counts"]["video"] == 75 and r["audio_seconds"] == pytest.approx(3.0, abs=0.03)
    elif name == "subtitles":
        srt = tmp_path / "c.srt"
        srt.write_text(
            "1\n00:00:01,000 --> 00:00:02,000\nhello\n\n2\n00:00:03,000 --> 00:00:04,000\nworld\n"
        )
        r = check_contract(cls, lambda: create_source("subtitles", path=srt), finite=True)
        assert r["counts"]["text"] == 2
    elif name == "text":

        def feed(src: Source) -> None:
            def typing() -> None:
                for word in ("one", "two", "three"):
                    time.sleep(0.05)
                    src.submit(word)  # type: ignore[attr-defined]

            threading.Thread(target=typing, daemon=True).start()

        r = check_contract(
            cls, lambda: create_source("text"), finite=False, read_for=0.6, feed=feed
        )
        assert r["counts"]["text"] == 3
    elif name == "camera":
        server = request.getfixturevalue("mjpeg_server")(seconds=10, fps=15)
        r = check_contract(
            cls, lambda: create_source("camera", device=server.url), finite=False, read_for=1.0
        )
        assert r["counts"]["video"] >= 8
    elif name == "microphone":
        mic = request.getfixturevalue("alsa_mic")
        r = run_child(mic, "contract")["contract"]  # type: ignore[assignment]
        assert r["counts"]["audio"] >= 8 and r["audio_seconds"] >= 0.8
    else:
        pytest.fail(f"no contract feed for source {name!r}: add one here")


def test_capture_never_imports_qt_and_loads_backends_lazily(media) -> None:
    """The headless core must not pull in Qt; listing sources must not start PortAudio/OpenCV."""
    import subprocess
    import sys

    path = media.get("av_sync.mp4")
    code = f"""
import json, sys
from mmdesk.capture import registered_sources, create_source
names = sorted(registered_sources())
lazy = [m for m in ("sounddevice", "cv2", "av") if m in sys.modules]
with create_source("clip", path={str(path)!r}) as src:
    while src.read() is not None:
        pass
from mmdesk.capture import camera, microphone, text, subtitles, probe, live  # noqa
camera.CameraSource.is_available(); microphone.MicrophoneSource.is_available()
qt = [m for m in sys.modules if m.split(".")[0] in ("PyQt5", "PyQt6", "PySide2", "PySide6", "qtpy")]
print(json.dumps({{"names": names, "lazy": lazy, "qt": qt}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert "clip" in r["names"] and r["lazy"] == [] and r["qt"] == [], r
