"""The desktop installer: build the bundle once, install the .deb into a temp root, run the application
from there with no Python installation and no network in reach, and compare it with the development install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIP = "av/ravdess_actor05/01-01-03-01-01-02-05.mp4"  # 3.5 s, happy, speech and a face throughout
# The first test also pays for the build (a fresh runtime environment and PyInstaller cache: ~5 min on 2 cores).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _python_dirs() -> list[Path]:
    """Every place a Python installation could be loaded from on this machine. A prefix that is the
    system's own (/usr, /usr/local) cannot be hidden whole, so only its lib/python3.X is."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    dirs = {Path(sys.prefix), *(ROOT / "build" / "installer").glob("venv-*")}
    base = Path(sys.base_prefix)
    dirs.add(base / "lib" / version if str(base) in ("/", "/usr", "/usr/local") else base)
    dirs |= {p for lib in ("/usr/lib", "/usr/local/lib") for p in Path(lib).glob("python3*")}
    return sorted(d for d in dirs if d.is_dir() and str(d) not in ("/", "/usr", "/usr/local"))


def _isolated(cmd: list[str], cwd: Path) -> list[str]:
    """``cmd`` in new mount and network namespaces: every Python installation is hidden under an empty
    tmpfs and only a down loopback interface exists, so the command can use neither."""
    hide = " ".join(f"mount -t tmpfs none '{d}' &&" for d in _python_dirs())
    script = f"{hide} cd '{cwd}' && exec \"$@\""
    prefix = ["unshare", "-mn"] if os.geteuid() == 0 else ["unshare", "-rmn"]
    return [*prefix, "sh", "-c", script, "sh", *cmd]


@pytest.fixture(scope="module")
def isolation() -> None:
    probe = subprocess.run(_isolated(["true"], Path("/")), check=False, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot isolate the bundle (unshare -mn failed: {probe.stderr.strip()[:200]}); "
                    "its no-Python / no-network runs need Linux namespaces")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory, pack_dir: Path) -> dict:
    if sys.platform != "linux" or not shutil.which("dpkg-deb"):
        pytest.skip("the installer is built on Linux with dpkg-deb")
    dist = tmp_path_factory.mktemp("dist")
    # The runtime environment and PyInstaller's cache stay in build/installer (reused while unchanged).
    proc = subprocess.run([sys.executable, str(ROOT / "build_installer.py"), "--dist", str(dist),
                           "--models", str(pack_dir)], check=False, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (report_file,) = dist.glob("mmdesk-*.build.json")
    report = json.loads(report_file.read_text())
    return report


@pytest.fixture(scope="module")
def installed(build: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb unpacked as dpkg would install it (the root of the file system it would write to)."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", build["outputs"]["deb"]["path"], str(root)], check=True)
    return root


def _app_env(home: Path) -> dict[str, str]:
    """What a desktop session gives a program: no virtual environment, no PYTHON* variables."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen"}


def _run_app(installed: Path, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    exe = installed / "opt" / "mmdesk" / "mmdesk"
    return subprocess.run(_isolated([str(exe), *args], tmp_path), check=False, env=_app_env(tmp_path),
                          capture_output=True, text=True, timeout=300)


def test_build_report_size_and_archives(build: dict) -> None:
    # The target (400 MB with the models) is not met: docs/benchmarks.md, "Desktop installer", says what
    # the bundle is made of. This bound on the runtime part (the model pack grows with the project's models)
    # catches regressions, e.g. librosa's numba + llvmlite + scipy (250 MB), OpenCV (160 MB) or torch coming back.
    runtime = build["bundle_bytes"] - build["models_bytes"]
    assert runtime <= 550 * 10**6, f"the bundle without its models is {runtime / 1e6:.0f} MB"
    assert build["models_bytes"] > 50 * 10**6  # the real pack, not a placeholder
    with tarfile.open(build["outputs"]["tar"]["path"]) as tar:
        names = set(tar.getnames())
    top = f"mmdesk-{build['version']}"
    assert {f"{top}/mmdesk", f"{top}/LICENSES.txt", f"{top}/models/manifest.json"} <= names
    assert not [n for n in names if "/torch/" in n or "/transformers/" in n or "/cv2/" in n]


def test_deb_metadata_and_layout(build: dict, installed: Path) -> None:
    deb = build["outputs"]["deb"]["path"]
    info = subprocess.run(["dpkg-deb", "-I", deb], capture_output=True, text=True, check=True).stdout
    assert "Package: mmdesk" in info and f"Version: {build['version']}" in info and "Architecture: amd64" in info
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    assert "./usr/bin/mmdesk -> /opt/mmdesk/mmdesk" in listing
    for path in ("./opt/mmdesk/mmdesk", "./opt/mmdesk/LICENSES.txt", "./opt/mmdesk/models/manifest.json",
                 "./usr/share/applications/mmdesk.desktop", "./usr/share/icons/hicolor/scalable/apps/mmdesk.svg",
                 "./opt/mmdesk/_internal/resources/icons/mmdesk.svg"):
        assert f" {path}\n" in listing or listing.endswith(f" {path}"), path
    desktop = (installed / "usr/share/applications/mmdesk.desktop").read_text()
    assert "Exec=mmdesk gui" in desktop and "Icon=mmdesk" in desktop
    assert not list((installed / "opt/mmdesk/_internal").glob("torch*"))


def test_licences_list_every_bundled_model(installed: Path) -> None:
    text = (installed / "opt/mmdesk/LICENSES.txt").read_text()
    manifest = json.loads((installed / "opt/mmdesk/models/manifest.json").read_text())
    for role, entry in manifest["models"].items():
        assert f"- {role}: {entry['file']}" in text
        assert f"licence: {entry['license']}" in text
    assert "- onnxruntime " in text and "- PySide6_Essentials " in text  # bundled Python distributions


def test_doctor_from_the_installed_bundle(installed: Path, isolation: None, tmp_path: Path) -> None:
    proc = _run_app(installed, ["doctor", "--json", "--no-devices"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    report = json.loads(proc.stdout)
    assert report["models_dir"] == str(installed / "opt/mmdesk/models")  # the bundled pack, found by itself
    assert report["models"] and all(m["verified"] for m in report["models"].values())
    assert report["packages"]["torch"] is None and report["packages"]["transformers"] is None
    assert report["problems"] == []


def _windows(path: Path) -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["type"] == "window"]


def test_analyze_matches_the_development_install(installed: Path, isolation: None, assets: Path,
                                                 pack_dir: Path, tmp_path: Path) -> None:
    clip = assets / CLIP
    dev_out, app_out = tmp_path / "dev.jsonl", tmp_path / "app.jsonl"
    dev_proc = subprocess.run([sys.executable, "-m", "mmdesk", "analyze", str(clip), "--out", str(dev_out),
                               "--models", str(pack_dir), "--device", "cpu"], check=False, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
    assert dev_proc.returncode == 0, "development install: " + dev_proc.stderr[-2000:]
    proc = _run_app(installed, ["analyze", str(clip), "--out", str(app_out), "--device", "cpu"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dev, app = _windows(dev_out), _windows(app_out)
    assert len(app) == len(dev) >= 2
    assert sum(w["face"]["present"] and w["voice"]["present"] and w["text"]["present"] for w in dev) >= 2
    for d, a in zip(dev, app):  # every field of every window: judgements, transcript, fusion, attribution
        _assert_same(a, d, f"window {d['index']}")


def _assert_same(app: object, dev: object, where: str) -> None:
    if isinstance(dev, float) or isinstance(app, float):
        assert app == pytest.approx(dev, abs=1e-4), where
    elif isinstance(dev, dict):
        assert isinstance(app, dict) and app.keys() == dev.keys(), where
        for key in dev:
            _assert_same(app[key], dev[key], f"{where}.{key}")
    elif isinstance(dev, list):
        assert isinstance(app, list) and len(app) == len(dev), where
        for i, (x, y) in enumerate(zip(app, dev)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert app == dev, where


def test_gui_screenshot_from_the_installed_bundle(installed: Path, isolation: None, assets: Path,
                                                  tmp_path: Path) -> None:
    from mmdesk.commands import COMMANDS

    if "gui" not in COMMANDS:
        pytest.skip("`mmdesk gui` has not landed yet: the bundle has no desktop app to screenshot")
    shot = tmp_path / "shot.png"
    proc = _run_app(installed, ["gui", "--open", str(assets / CLIP), "--screenshot", str(shot)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 640 and height >= 400
