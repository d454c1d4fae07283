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
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
import ffmpeg_stubs

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
def build(tmp_path_factory: pytest.TempPathFactory, pack_dir: Path) -> Iterator[dict]:
    if sys.platform != "linux" or not shutil.which("dpkg-deb"):
        pytest.skip("the installer is built on Linux with dpkg-deb")
    dist = tmp_path_factory.mktemp("dist")
    # The runtime environment and PyInstaller's cache stay in build/installer (reused while unchanged).
    proc = subprocess.run([sys.executable, str(ROOT / "build_installer.py"), "--dist", str(dist),
                           "--models", str(pack_dir)], check=False, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (report_file,) = dist.glob("mmdesk-*.build.json")
    yield json.loads(report_file.read_text())
    shutil.rmtree(dist, ignore_errors=True)  # ~390 MB of bundle, .deb and .tar.gz: free the disk at once


@pytest.fixture(scope="module")
def installed(build: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The .deb unpacked as dpkg would install it (the root of the file system it would write to)."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", build["outputs"]["deb"]["path"], str(root)], check=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _app_env(home: Path) -> dict[str, str]:
    """What a desktop session gives a program: no virtual environment, no PYTHON* variables. LD_BIND_NOW binds
    every symbol at load time, so a stub library that lacks one fails the run instead of passing unnoticed."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen",
            "LD_BIND_NOW": "1"}


def _run_app(installed: Path, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    exe = installed / "opt" / "mmdesk" / "mmdesk"
    return subprocess.run(_isolated([str(exe), *args], tmp_path), check=False, env=_app_env(tmp_path),
                          capture_output=True, text=True, timeout=300)


def test_build_report_size_and_archives(build: dict) -> None:
    # The target: 400 MB unpacked with the models (380 MB on 2026-12-04: runtime 270, pack 110;
    # docs/benchmarks.md, "Desktop installer"). The runtime bound catches regressions such as librosa's numba +
    # llvmlite + scipy (250 MB), OpenCV (160 MB), torch, CTranslate2 (81 MB), QtMultimedia (44 MB) or PyAV's
    # encoder libraries (40 MB) coming back.
    runtime = build["bundle_bytes"] - build["models_bytes"]
    assert runtime <= 290 * 10**6, f"the bundle without its models is {runtime / 1e6:.0f} MB"
    assert build["models_bytes"] > 50 * 10**6  # the real pack, not a placeholder
    assert build["bundle_bytes"] <= 400 * 10**6, f"the bundle is {build['bundle_bytes'] / 1e6:.0f} MB (target 400)"
    with tarfile.open(build["outputs"]["tar"]["path"]) as tar:
        names = set(tar.getnames())
    top = f"mmdesk-{build['version']}"
    assert {f"{top}/mmdesk", f"{top}/LICENSES.txt", f"{top}/models/manifest.json"} <= names
    assert not [n for n in names if "/torch/" in n or "/transformers/" in n or "/cv2/" in n or "ctranslate2" in n
                or "faster_whisper" in n]
    # clip playback is PyAV + PortAudio: QtMultimedia with Qt's own FFmpeg and Qt Quick (44 MB) stays out
    assert not [n for n in names if "Multimedia" in n or "libQt6Quick" in n or "pyside6_addons" in n.lower()]


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


def _stubs(installed: Path) -> list[Path]:
    return [f for f in sorted((installed / "opt/mmdesk/_internal/av.libs").iterdir())
            if f.name.rsplit("-", 1)[0] in ffmpeg_stubs.STUBS]


def test_pyav_encoder_and_tls_libraries_are_stubs(installed: Path) -> None:
    stubs = _stubs(installed)
    assert {f.name.rsplit("-", 1)[0] for f in stubs} == set(ffmpeg_stubs.STUBS)
    for f in stubs:
        assert f.stat().st_size < 64_000 and ffmpeg_stubs.is_stub(f), f.name
        assert ffmpeg_stubs.needed(f) == [], f.name  # a stub pulls nothing in
    names = {f.name.rsplit("-", 1)[0] for f in (installed / "opt/mmdesk/_internal/av.libs").iterdir()}
    assert not names & {"libnettle", "libhogweed", "libgmp", "libunistring", "libsharpyuv"}  # GnuTLS's, libwebp's
    assert {"libavcodec", "libavformat", "libdav1d", "libopus", "libopencore-amrwb"} <= names  # decoding stays
    assert "libx265-" in (installed / "opt/mmdesk/LICENSES.txt").read_text()


# Each wrapper is opened the way a stray call would reach it; with the stubs every one must end in an FFmpeg
# error (a crash would end the process). Run in the development PyAV, which is the same build as the bundle's.
_STRAY_CALLS = """
import fractions, socket, sys, threading
import av
failed = []
for name, kind in [("libx264", "v"), ("libx265", "v"), ("libsvtav1", "v"), ("libvpx", "v"), ("libvpx-vp9", "v"),
                   ("libwebp", "v"), ("libwebp_anim", "v"), ("libmp3lame", "a"), ("libopencore_amrnb", "a")]:
    c = av.CodecContext.create(name, "w")
    if kind == "v":
        c.width, c.height, c.pix_fmt, c.time_base = 64, 64, "yuv420p", fractions.Fraction(1, 25)
    else:
        c.sample_rate, c.layout, c.format, c.bit_rate = 8000, "mono", "s16", 12200
    try:
        c.open()
    except av.FFmpegError:
        failed.append(name)
for name in ("libvpx", "libvpx-vp9", "libopencore_amrnb"):
    try:
        av.CodecContext.create(name, "r").open()
    except av.FFmpegError:
        failed.append(name + " decoder")
srv = socket.create_server(("127.0.0.1", 0))
threading.Thread(target=lambda: srv.accept()[0].sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\n"), daemon=True).start()
try:
    av.open(f"https://127.0.0.1:{srv.getsockname()[1]}/x.mp4", timeout=5)
except av.FFmpegError:
    failed.append("https")
print(" ".join(failed))
"""


def test_stray_encoder_and_tls_calls_fail_cleanly(installed: Path) -> None:
    import av

    dev_libs = {f.name for f in (Path(av.__file__).parent.parent / "av.libs").iterdir()}
    stubs = _stubs(installed)
    if not {f.name for f in stubs} <= dev_libs:
        pytest.skip("the development install's PyAV is another build than the bundle's")
    env = {**os.environ, "LD_PRELOAD": " ".join(map(str, stubs)), "LD_BIND_NOW": "1"}
    proc = subprocess.run([sys.executable, "-c", _STRAY_CALLS], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["libx264", "libx265", "libsvtav1", "libvpx", "libvpx-vp9", "libwebp",
                                   "libwebp_anim", "libmp3lame", "libopencore_amrnb", "libvpx", "decoder",
                                   "libvpx-vp9", "decoder", "libopencore_amrnb", "decoder", "https"]


# The codec families docs/capture.md says clips may use; the encoders are the system ffmpeg's.
_CLIPS = {
    "h264_aac.mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    "hevc_aac.mp4": ["-c:v", "libx265", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    "vp9_opus.webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
    "vp8_vorbis.webm": ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libvorbis"],
    "av1_opus.mkv": ["-c:v", "libsvtav1", "-preset", "12", "-c:a", "libopus"],
    "mjpeg_pcm.mov": ["-c:v", "mjpeg", "-q:v", "5", "-c:a", "pcm_s16le"],
    "mpeg4_mp3.avi": ["-c:v", "mpeg4", "-q:v", "5", "-c:a", "libmp3lame"],
    "pcm.wav": ["-vn", "-c:a", "pcm_s16le"],
    "audio.flac": ["-vn", "-c:a", "flac"],
}


def test_bundle_decodes_every_codec_family(installed: Path, isolation: None, pack_dir: Path,
                                           tmp_path: Path) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        pytest.skip("ffmpeg makes the clips")
    for name, codecs in _CLIPS.items():
        clip = tmp_path / name
        made = subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2",
                               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2", *codecs,
                               "-shortest", str(clip)], check=False, capture_output=True, text=True)
        assert made.returncode == 0, f"{name}: {made.stderr[-500:]}"
        dev_out, app_out = tmp_path / f"{name}.dev.jsonl", tmp_path / f"{name}.app.jsonl"
        args = ["analyze", str(clip), "--no-asr", "--device", "cpu", "-q"]
        dev = subprocess.run([sys.executable, "-m", "mmdesk", *args, "--out", str(dev_out), "--models", str(pack_dir)],
                             check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert dev.returncode == 0, f"{name}, development install: {dev.stderr[-1000:]}"
        app = _run_app(installed, [*args, "--out", str(app_out)], tmp_path)
        assert app.returncode == 0, f"{name}: {app.stderr[-1000:]}"
        records = [list(map(json.loads, p.read_text().splitlines())) for p in (app_out, dev_out)]
        (app_meta, *app_windows, app_end), (dev_meta, *dev_windows, _) = records
        assert app_meta["source"] == dev_meta["source"], name
        assert app_end["complete"] and app_end["error"] == "" and app_end["media_seconds"] >= 1.9, name
        assert len(app_windows) == len(dev_windows) >= 1, name
        for a, d in zip(app_windows, dev_windows):
            _assert_same(a, d, f"{name} window {d['index']}")
