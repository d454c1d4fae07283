"""A live session in the window fed from a file-backed camera and microphone; the scripted
screenshot mode (`mmdesk gui --open CLIP --screenshot FILE.png`), also on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from capture_support import MIC_AMP
from PySide6.QtGui import QImage

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_live_window_with_file_backed_camera_and_microphone(alsa_mic, clip_camera, ravdess_clip: Path,
                                                            pack_dir: Path) -> None:
    cam = clip_camera(ravdess_clip, seconds=8)  # the stream ends after 8 s: the camera is lost
    env = {**alsa_mic.env, "MMDESK_MODELS": str(pack_dir), "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    proc = subprocess.run([sys.executable, str(HERE / "live_child.py"), cam.url, "13"], check=False, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    assert r["frames"] > 0 and r["max_fps"] > 5  # the camera's frames reached the video view
    # RAVDESS faces found in the live windows (on a loaded machine newest-wins drops some windows)
    assert r["windows"] + r["dropped_windows"] >= 14 and r["windows"] >= 6 and r["faces"] >= 2, json.dumps(r)
    assert r["timeline_points"] == r["windows"]
    assert r["last_happy"] is not None and r["timeline_last_happy"] == pytest.approx(r["last_happy"])
    # the 440 Hz test microphone: heard (-9 dBFS sine), judged not to be speech
    assert r["max_db"] > -15 and "no speech detected" in r["voice_reasons"]
    # the scrolling waveform draws the sine's envelope: its peaks at ± the amplitude
    assert r["wave_max"] == pytest.approx(MIC_AMP, rel=0.05) and r["wave_min"] == pytest.approx(-MIC_AMP, rel=0.05)
    assert "CPU" in r["provider"] and "fps" in r["status"]["fps"] and "latency" in r["status"]["latency"]
    # the stream ended: a clear message, and the windows went on without the camera
    assert any(b.startswith("Camera:") for b in r["banners"]), r["banners"]
    assert "no camera" in r["face_reasons"]


def _gui(*args: str, tmp_path: Path, pack_dir: Path, xvfb: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "MMDESK_MODELS": str(pack_dir)}
    cmd = [sys.executable, "-m", "mmdesk", "gui", *args]
    if xvfb:  # a real X server (virtual): Qt's xcb platform instead of offscreen
        env.pop("QT_QPA_PLATFORM")
        cmd = [shutil.which("xvfb-run"), "-a", "-s", "-screen 0 1600x1000x24", *cmd]
    return subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)


@pytest.mark.parametrize("display", ["offscreen", "xvfb"])
def test_screenshot_mode(display: str, ravdess_clip: Path, pack_dir: Path, tmp_path: Path) -> None:
    if display == "xvfb" and not shutil.which("xvfb-run"):
        pytest.skip("xvfb-run not installed (apt install xvfb)")
    png = tmp_path / "shot.png"
    proc = _gui("--open", str(ravdess_clip), "--screenshot", str(png), "--stall-report",
                tmp_path=tmp_path, pack_dir=pack_dir, xvfb=display == "xvfb")
    assert proc.returncode == 0, proc.stderr[-3000:]
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1280, 800)
    # not a blank window: the video area holds the clip's frame (many distinct colours)
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)  # kept alive while its bits are read
    pixels = np.frombuffer(rgb.constBits(), np.uint8).reshape(800, rgb.bytesPerLine())[:, : 1280 * 3].copy()
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 500
    report = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    assert report["windows"] == 6 and report["stalls"]["ticks"] > 0


def test_screenshot_mode_fails_cleanly(pack_dir: Path, tmp_path: Path) -> None:
    proc = _gui("--open", str(tmp_path / "missing.mp4"), "--screenshot", str(tmp_path / "x.png"),
                tmp_path=tmp_path, pack_dir=pack_dir)
    assert proc.returncode == 2 and "missing.mp4 not found" in proc.stderr
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(1).bytes(5000))
    proc = _gui("--open", str(noise), "--screenshot", str(tmp_path / "x.png"), tmp_path=tmp_path, pack_dir=pack_dir)
    assert proc.returncode == 2 and "noise.mp4" in proc.stderr.splitlines()[-1]
    assert not (tmp_path / "x.png").exists()


def test_no_display_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run([sys.executable, "-m", "mmdesk", "gui"], check=False, env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "QT_QPA_PLATFORM=offscreen" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("argv", "timeout"), [([], 600.0), (["--live-seconds", "20"], 600.0),
                                                (["--live-seconds", "900"], 1200.0),
                                                (["--live-seconds", "900", "--timeout", "50"], 50.0)])
def test_scripted_watchdog_outlasts_the_live_run(monkeypatch, argv: list[str], timeout: float) -> None:
    """A 10-minute scripted live run was cut off by the 600 s watchdog before it could report."""
    import mmdesk.qt.qt_app as qt_app
    from mmdesk.cli import main

    seen = {}
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(qt_app, "run", lambda args: seen.setdefault("timeout", args.timeout) and 0)
    assert main(["gui", *argv]) == 0
    assert seen == {"timeout": timeout}
