#!/usr/bin/env python3
"""Build mmdesk as an installable desktop application: ``python build_installer.py``.

1. A clean runtime-only virtual environment (the runtime dependencies of pyproject.toml and PyInstaller;
   no torch, transformers or training code, no faster-whisper/CTranslate2: the pack's Whisper runs on
   onnxruntime). It is reused while its
   requirements are unchanged; pip's wheel cache makes a rebuild cheap.
2. The model pack: the user's pack (``--models``, else $MMDESK_MODELS, else the user data directory) is
   copied and brought up to date / checked by ``mmdesk models build`` and ``mmdesk models verify`` run in
   that environment.
3. A one-folder PyInstaller bundle (packaging/mmdesk.spec) with the pack in ``models/`` next to the
   executable, the resources and LICENSES.txt (bundled models and Python packages with their licences).
   PyAV's encoder and TLS libraries are replaced by stubs built with gcc (packaging/ffmpeg_stubs.py), and
   Qt's ICU data library by a smaller one without other locales' names, code pages and dictionaries
   (packaging/icu_data.py).
4. Linux outputs: ``mmdesk-VERSION-linux-x86_64.tar.gz`` and ``mmdesk_VERSION_amd64.deb`` (/opt/mmdesk,
   /usr/bin/mmdesk, desktop entry, icon). Windows and macOS are described in TARGETS but not built here.

Only the standard library is used, so any Python 3.11+ can run it. Sizes and times are printed and written
to ``DIST/mmdesk-VERSION-PLATFORM.build.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGING = ROOT / "packaging"
sys.path.insert(0, str(PACKAGING))
import ffmpeg_stubs  # packaging/ffmpeg_stubs.py (standard library only, like this script)
import icu_data  # packaging/icu_data.py (likewise)

SIZE_TARGET_MB = 400
# Build-time only: what PyInstaller needs. Pinned so a cached environment stays reproducible.
BUILD_TOOLS = ("pyinstaller==6.22.3", "pyinstaller-hooks-contrib==2026.9")
# Must never be in the runtime environment (the training extra and the test tools; scikit-learn is a
# librosa dependency, so it is installed but not bundled).
TRAINING_DISTS = ("torch", "transformers", "onnx", "onnxscript", "h5py", "keras", "pytest")


class BuildError(Exception):
    """One line naming the problem and what to do; the script exits with code 2."""

    def __init__(self, problem: str, hint: str = "") -> None:
        super().__init__(f"{problem}: {hint}" if hint else problem)


@dataclass(frozen=True)
class Target:
    name: str
    onnxruntime: str  # which onnxruntime distribution the bundle ships
    icon: str
    outputs: str
    signing: str
    buildable_here: bool


TARGETS = {
    "linux": Target(
        "linux",
        onnxruntime="onnxruntime (CPU) by default; --onnxruntime gpu ships onnxruntime-gpu with its CUDA provider "
        "(needs the user's CUDA 13 runtime + cuDNN 9)",
        icon="resources/icons/mmdesk.svg (freedesktop hicolor/scalable)",
        outputs=".tar.gz of the one-folder bundle and a .deb (/opt/mmdesk, /usr/bin/mmdesk, desktop entry, icon)",
        signing="none needed; a .deb can be signed for an apt repository with debsigs/dpkg-sig if one is published",
        buildable_here=True,
    ),
    "windows": Target(
        "windows",
        onnxruntime="onnxruntime-gpu (CUDA, x64) or onnxruntime-directml (any DirectX 12 GPU)",
        icon="mmdesk.ico (16-256 px, rendered from resources/icons/mmdesk.svg)",
        outputs="one-folder bundle in a zip, or an Inno Setup / MSI installer around it",
        signing="sign mmdesk.exe and the installer with signtool and an Authenticode certificate, or "
        "SmartScreen warns on every download",
        buildable_here=False,
    ),
    "macos": Target(
        "macos",
        onnxruntime="onnxruntime (CPU + CoreML provider; there is no CUDA on macOS)",
        icon="mmdesk.icns (iconutil from a 16-1024 px iconset rendered from resources/icons/mmdesk.svg)",
        outputs="mmdesk.app (PyInstaller BUNDLE) in a .dmg",
        signing="codesign --options runtime with a Developer ID certificate, then notarytool + stapler, or "
        "Gatekeeper refuses to open it",
        buildable_here=False,
    ),
}


def host_target() -> str:
    return {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)


def log(msg: str) -> None:
    print(f"[installer] {msg}", flush=True)


def run(cmd: list[str], *, env: dict[str, str] | None = None, quiet_log: Path | None = None) -> None:
    """Run a step; on failure show the end of its output and stop with one clear line."""
    if quiet_log is None:
        result = subprocess.run(cmd, check=False, env=env)
    else:
        with quiet_log.open("w") as fh:
            result = subprocess.run(cmd, check=False, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        if quiet_log is not None:
            tail = quiet_log.read_text(errors="replace").splitlines()[-25:]
            print("\n".join(tail), file=sys.stderr)
        where = f" (full log: {quiet_log})" if quiet_log else ""
        raise BuildError(f"`{' '.join(cmd[:4])} ...` failed with exit code {result.returncode}{where}")


def dir_size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def mmdesk_version() -> str:
    text = (ROOT / "mmdesk" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not found:
        raise BuildError("mmdesk/__init__.py has no __version__", "restore the version line")
    return found.group(1)


# ------------------------------------------------------------------------------------- environment


def runtime_requirements(onnxruntime: str) -> list[str]:
    """[project] dependencies, with the onnxruntime line chosen for the bundle (never both packages)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    kept, specs = [], {}
    for dep in deps:
        ort = re.match(r"(onnxruntime(?:-gpu)?)\b\s*([^;]*)", dep)
        if ort:  # the platform marker is dropped: this build decides which package the bundle gets
            specs[ort.group(1)] = ort.group(2).strip()
        else:
            kept.append(dep)
    dist = "onnxruntime-gpu" if onnxruntime == "gpu" else "onnxruntime"
    return [*kept, f"{dist}{specs.get(dist) or specs.get('onnxruntime-gpu', '')}"]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def development_pins() -> list[str]:
    """``name==version`` of every distribution in the development install running this script, if it is one.

    The bundle then gets the versions the project was tested with (a newer onnxruntime or PySide6 from the
    index could change results or crash; PySide6 6.12.0 does on Python 3.11). Run from a Python without
    mmdesk installed, the bundle gets the newest versions pyproject.toml allows."""
    import importlib.metadata as md

    try:
        md.distribution("mmdesk")
    except md.PackageNotFoundError:
        return []
    pins = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in md.distributions() if d.metadata["Name"]}
    if "onnxruntime-gpu" in pins:  # the CPU and GPU packages are released together with the same versions
        pins.setdefault("onnxruntime", pins["onnxruntime-gpu"])
    skip = {"mmdesk", "pip", "setuptools", "wheel", "pyinstaller", "pyinstaller-hooks-contrib"}
    return sorted(f"{name}=={version}" for name, version in pins.items() if name not in skip)


def ensure_runtime_env(venv: Path, onnxruntime: str, work: Path) -> Path:
    reqs = runtime_requirements(onnxruntime)
    pins = development_pins()
    key = hashlib.sha256(json.dumps([reqs, BUILD_TOOLS, pins, sys.version]).encode()).hexdigest()[:16]
    stamp = venv / ".mmdesk-runtime-env"
    py = venv_python(venv)
    if py.exists() and stamp.is_file() and stamp.read_text().strip() == key:
        log(f"runtime environment {venv} is up to date (requirements {key})")
        return py
    log(f"creating the runtime environment {venv} (no torch, no transformers; pip's wheel cache is reused; "
        + (f"versions pinned to the development install's, {len(pins)} pins)" if pins else "newest versions)"))
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(py), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    constraints = work / "constraints.txt"
    constraints.write_text("".join(f"{p}\n" for p in pins), encoding="utf-8")
    pip_log = work / "pip.log"
    run([*pip, "-c", str(constraints), *reqs, *BUILD_TOOLS], quiet_log=pip_log)
    stamp.write_text(key + "\n")
    return py


def check_runtime_env(py: Path) -> list[list[str]]:
    """[distribution, version, licence] of everything installed in the runtime environment.

    Refuses an environment with training packages or with both onnxruntime packages."""
    code = (
        "import importlib.metadata as m, json\n"
        "rows = []\n"
        "for d in m.distributions():\n"
        "    md = d.metadata\n"
        "    lic = md.get('License-Expression') or md.get('License') or ''\n"
        "    if not lic or len(lic) > 80:\n"
        "        lic = '; '.join(c.split(' :: ')[-1] for c in md.get_all('Classifier') or [] "
        "if c.startswith('License ::')) or (lic.splitlines()[0][:80] if lic else 'see the package')\n"
        "    rows.append((md['Name'], d.version, lic))\n"
        "print(json.dumps(rows))\n"
    )
    rows = json.loads(subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True).stdout)
    names = {r[0].lower().replace("_", "-") for r in rows}
    bad = sorted(n for n in names if n in TRAINING_DISTS)
    if bad:
        raise BuildError(f"the runtime environment contains training packages: {', '.join(bad)}",
                         "delete the build folder's venv and run build_installer.py again")
    if {"onnxruntime", "onnxruntime-gpu"} <= names:
        raise BuildError("the runtime environment has both onnxruntime and onnxruntime-gpu",
                         "delete the build folder's venv and run build_installer.py again")
    return rows


# ------------------------------------------------------------------------------------------ models


def run_mmdesk(py: Path | str, *args: str, where: str) -> None:
    """Run this checkout's mmdesk with interpreter ``py`` (it is imported from the source tree)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if subprocess.run([str(py), "-m", "mmdesk", *args], check=False, env=env).returncode != 0:
        raise BuildError(f"`mmdesk {' '.join(args)}` failed in {where} (its message is above)",
                         "complete the pack with the development install, which has torch for the exported "
                         "models (`mmdesk models build`), and pass it with --models if it is not the default")


def stage_model_pack(py: Path, source: str | None, dest: Path, dev_install: bool) -> dict:
    """A copy of the pack, brought up to date by `mmdesk models build` and checked by `mmdesk models verify`.

    The build runs in the development install when this script runs from one: roles exported with torch
    (changed recipes re-export) can only be built there. The verification always runs in the runtime
    environment, with the onnxruntime the bundle ships."""
    src = Path(_resolve_pack(py, source))
    if not (src / "manifest.json").is_file():
        raise BuildError(f"no model pack at {src}",
                         "build it with the development install (`mmdesk models build`) or pass --models DIR")
    log(f"model pack: copying {src}, updating it with `mmdesk models build` "
        f"({'development install' if dev_install else 'runtime environment'}) and checking it with "
        "`mmdesk models verify` (runtime environment)")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".*"))
    builder, where = (sys.executable, "the development install") if dev_install else (py, "the runtime environment")
    run_mmdesk(builder, "models", "build", "--models", str(dest), where=where)
    run_mmdesk(py, "models", "verify", "--models", str(dest), where="the runtime environment")
    return json.loads((dest / "manifest.json").read_text(encoding="utf-8"))


def _resolve_pack(py: Path, source: str | None) -> str:
    code = "import sys; from mmdesk.inference.pack import resolve_pack_dir; print(resolve_pack_dir(sys.argv[1] or None))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([str(py), "-c", code, source or ""], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


# ----------------------------------------------------------------------------------------- licences


def licences_text(version: str, manifest: dict, dists: list[list[str]], bundled: set[str],
                  stubbed: list[str]) -> str:
    """LICENSES.txt: the models (from the pack's manifest and cards) and the bundled Python distributions."""
    lines = [f"mmdesk {version}: what this bundle contains and under which licence", "",
             "mmdesk itself: MIT.", "",
             "MODELS (models/, pinned by sha256 in models/manifest.json; model cards in models/cards/)", ""]
    for role, e in sorted(manifest["models"].items()):
        src = e.get("source", {})
        origin = src.get("url") or src.get("requirement") or src.get("distribution") or src.get("path") or src.get("kind")
        lines += [f"- {role}: {e['file']}", f"    licence: {e.get('license') or 'not stated'}",
                  f"    from:    {origin}", f"    sha256:  {e['sha256']}"]
        if e.get("card"):
            lines.append(f"    card:    models/{e['card']}")
    lines += ["", "The voice and text emotion weights inherit their training data's terms (see their cards):",
              "research / non-commercial use only for the voice model, GPL-3.0 for the text model.", "",
              "PYTHON PACKAGES AND THEIR NATIVE LIBRARIES (in _internal/)", ""]
    bundled = {d.lower() for d in bundled}
    for name, ver, lic in sorted(dists, key=lambda r: r[0].lower()):
        if name.lower() in bundled:
            lines.append(f"- {name} {ver}: {lic}")
    lines += ["", "Python itself: PSF License. Qt (PySide6) is used under the LGPL-3.0: its libraries are the",
              "unmodified shared libraries in _internal/PySide6 and can be replaced by the user. One exception,",
              "not under the LGPL: ICU's data library (libicudata, Unicode licence) holds a subset of Qt's ICU",
              "data (English and root locale names and collation; no code-page converters, word dictionaries or",
              "transliterators), made by mmdesk's installer; Qt's original file can be put in its place.", "",
              "Not included: these libraries of PyAV's FFmpeg are stubs built by mmdesk's installer that fail every",
              "call (mmdesk only decodes and never opens TLS): " + ", ".join(sorted(stubbed)) + ".", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- packaging


def pyinstaller(py: Path, work: Path) -> Path:
    env = {**os.environ, "PYTHONPATH": ""}
    run([str(py), "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "--distpath", str(work / "dist"),
         "--workpath", str(work / "pyinstaller"), str(PACKAGING / "mmdesk.spec")],
        env=env, quiet_log=work / "pyinstaller.log")
    return work / "dist" / "mmdesk"


def strip_debug_info(bundle: Path, work: Path) -> int:
    """Remove DWARF debug sections that some wheels ship (ctranslate2's extension had 66 MB of them).

    Only ``--strip-debug`` on files that have ``.debug_*`` sections: symbol tables stay, so nothing that
    looks symbols up at run time changes. Returns the bytes saved."""
    if not shutil.which("objdump") or not shutil.which("strip"):
        log("binutils (objdump, strip) not found: debug info is left in the bundle")
        return 0
    saved = 0
    for f in sorted(bundle.rglob("*.so*")):
        if f.is_symlink() or not f.is_file() or f.stat().st_size < 10**6:
            continue
        headers = subprocess.run(["objdump", "-h", str(f)], capture_output=True, text=True, check=False).stdout
        if ".debug_" not in headers:
            continue
        before = f.stat().st_size
        tmp = work / "stripped.tmp"
        run(["strip", "--strip-debug", "-o", str(tmp), str(f)])
        shutil.copymode(f, tmp)
        os.replace(tmp, f)
        saved += before - f.stat().st_size
    return saved


def stub_unused_ffmpeg_libraries(bundle: Path, work: Path) -> dict[str, dict[str, int]]:
    """PyAV's encoder and TLS libraries -> stubs (packaging/ffmpeg_stubs.py); logs each file and the bytes saved."""
    try:
        replaced, removed = ffmpeg_stubs.replace_with_stubs(bundle, work / "stubs")
    except ffmpeg_stubs.StubError as exc:
        raise BuildError(str(exc)) from None
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"building a stub library failed: {' '.join(map(str, exc.cmd[:3]))} ...: "
                         f"{(exc.stderr or '').strip()[-500:]}") from None
    for path, saved in replaced.items():
        log(f"stubbed {path}: {saved / 1e6:.2f} MB saved")
    for path, size in removed.items():
        log(f"removed {path} (only the replaced libraries needed it): {size / 1e6:.2f} MB")
    log(f"stub libraries saved {mb(sum(replaced.values()) + sum(removed.values()))} in all")
    return {"replaced": replaced, "removed": removed}


def slim_icu_data(bundle: Path, work: Path) -> dict[str, int]:
    """Qt's ICU data library without what Qt never asks mmdesk's ICU for (packaging/icu_data.py)."""
    libs = sorted(p for p in bundle.rglob("libicudata.so.*") if not p.is_symlink())
    if len(libs) != 1:
        raise BuildError(f"expected one ICU data library in the bundle, found {len(libs)}", "update packaging/icu_data.py")
    try:
        saved, kept, dropped = icu_data.slim_library(libs[0], work / "icu")
    except (icu_data.IcuDataError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"making the smaller ICU data library failed: {exc}") from None
    log(f"ICU data: kept {kept} items, left out {dropped} (other locales' names and collations, code pages, "
        f"word dictionaries, transliterators): {saved / 1e6:.1f} MB saved")
    return {"saved": saved, "kept": kept, "dropped": dropped}


def remove_dangling_links(bundle: Path) -> None:
    """PyInstaller links Qt's libraries into _internal/ before the spec filters them out; libraries removed
    after it (stubs' dependencies) leave links too."""
    for link in [p for p in bundle.rglob("*") if p.is_symlink() and not p.exists()]:
        link.unlink()


def check_bundle_loads(bundle: Path, version: str, work: Path) -> None:
    """Start the bundle with every symbol bound at load time (LD_BIND_NOW): a stub that misses a symbol or a
    symbol version, or a removed library that was still needed, fails here rather than on a user's machine.
    `doctor` imports PyAV (all of FFmpeg), onnxruntime, CTranslate2 and Qt."""
    env = {**os.environ, "LD_BIND_NOW": "1", "QT_QPA_PLATFORM": "offscreen"}
    for args in (["--version"], ["doctor", "--json", "--no-devices"]):
        check = subprocess.run([str(bundle / "mmdesk"), *args], check=False, capture_output=True, text=True, env=env)
        if check.returncode != 0 or (args == ["--version"] and version not in check.stdout):
            raise BuildError(f"the bundle does not start (`mmdesk {' '.join(args)}`): "
                             f"{(check.stderr or check.stdout).strip()[-300:]}", f"see {work / 'pyinstaller.log'}")


def write_tar(bundle: Path, out: Path, top: str) -> None:
    tmp = out.with_name(out.name + ".part")
    # gzip level 1: most of the bundle is already dense (native code, float weights); level 6 costs twice the
    # time on 2 cores for 6 % less
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
        tar.add(bundle, arcname=top)
    os.replace(tmp, out)


def write_deb(bundle: Path, out: Path, version: str, work: Path) -> None:
    """/opt/mmdesk (the bundle), /usr/bin/mmdesk, a desktop entry and the icon; removed by the package manager."""
    root = work / "deb"
    shutil.rmtree(root, ignore_errors=True)
    opt = root / "opt" / "mmdesk"
    shutil.copytree(bundle, opt, symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "mmdesk").symlink_to("/opt/mmdesk/mmdesk")
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    shutil.copyfile(PACKAGING / "linux" / "mmdesk.desktop", apps / "mmdesk.desktop")
    icons = root / "usr" / "share" / "icons" / "hicolor" / "scalable" / "apps"
    icons.mkdir(parents=True)
    shutil.copyfile(ROOT / "resources" / "icons" / "mmdesk.svg", icons / "mmdesk.svg")
    (root / "DEBIAN").mkdir()
    control = (PACKAGING / "linux" / "control.in").read_text(encoding="utf-8")
    # The bundle's binaries (Python itself included) were linked on this machine: they need its glibc or newer
    glibc = platform.libc_ver()[1] or "2.28"
    control = (control.replace("@VERSION@", version).replace("@INSTALLED_KB@", str(dir_size(root) // 1024))
               .replace("@GLIBC@", glibc))
    (root / "DEBIAN" / "control").write_text(control, encoding="utf-8")
    for d in [root, *root.rglob("*")]:  # dpkg warns about group-writable files; umask must not leak in
        if not d.is_symlink():
            d.chmod(0o755 if d.is_dir() or os.access(d, os.X_OK) else 0o644)
    tmp = out.with_name(out.name + ".part")
    # zstd: 5x faster than gzip and 10x faster than dpkg-deb's default xz on 2 cores, and smaller than gzip;
    # dpkg reads it since 1.21.18 (Debian 12, Ubuntu 22.04), the same systems whose glibc the bundle needs
    run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", str(root), str(tmp)],
        quiet_log=work / "dpkg-deb.log")
    os.replace(tmp, out)
    shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--target", choices=sorted(TARGETS), default=host_target(),
                   help="platform to build for (only the one this machine runs can be built)")
    p.add_argument("--models", metavar="DIR", help="model pack to bundle (default: $MMDESK_MODELS, else the user pack)")
    p.add_argument("--onnxruntime", choices=("cpu", "gpu"), default="cpu",
                   help="cpu: onnxruntime (default, small); gpu: onnxruntime-gpu with its 284 MB CUDA provider")
    p.add_argument("--work", metavar="DIR", default=str(ROOT / "build" / "installer"), help="build folder")
    p.add_argument("--venv", metavar="DIR",
                   help="runtime environment (default: WORK/venv-cpu or venv-gpu, reused while unchanged)")
    p.add_argument("--dist", metavar="DIR", default=str(ROOT / "dist"), help="output folder")
    p.add_argument("--formats", nargs="+", choices=("tar", "deb"), default=["tar", "deb"], help="Linux outputs")
    return p.parse_args(argv)


def refuse_unbuildable(target: Target) -> None:
    host = host_target()
    if target.name != host:
        raise BuildError(f"cannot build the {target.name} installer on {host}: PyInstaller does not cross-build",
                         f"run build_installer.py on {target.name}")
    if not target.buildable_here:
        raise BuildError(
            f"building the {target.name} installer is not supported yet. It would ship {target.onnxruntime}; "
            f"icon {target.icon}; output {target.outputs}; signing: {target.signing}",
            "build on Linux, or run mmdesk from a virtual environment (see docs/installing.md)")
    if platform.machine() not in ("x86_64", "AMD64"):
        raise BuildError(f"the Linux installer is built for x86_64 only, this machine is {platform.machine()}",
                         "run mmdesk from a virtual environment (see docs/installing.md)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    times: dict[str, float] = {}
    target = TARGETS[args.target]
    refuse_unbuildable(target)
    if "deb" in args.formats and not shutil.which("dpkg-deb"):
        raise BuildError("dpkg-deb is not installed", "apt-get install dpkg (or pass --formats tar)")
    if ffmpeg_stubs.missing_tools():
        raise BuildError(f"{', '.join(ffmpeg_stubs.missing_tools())} not found: the build compiles stub libraries "
                         "that replace PyAV's encoder and TLS libraries (~40 MB)", "apt-get install gcc binutils")
    version = mmdesk_version()
    work, dist = Path(args.work).absolute(), Path(args.dist).absolute()
    work.mkdir(parents=True, exist_ok=True)
    dist.mkdir(parents=True, exist_ok=True)
    venv = Path(args.venv).absolute() if args.venv else work / f"venv-{args.onnxruntime}"

    t = time.perf_counter()
    py = ensure_runtime_env(venv, args.onnxruntime, work)
    dists = check_runtime_env(py)
    times["environment"] = time.perf_counter() - t

    t = time.perf_counter()
    pack = work / "models"
    manifest = stage_model_pack(py, args.models, pack, dev_install=bool(development_pins()))
    times["model_pack"] = time.perf_counter() - t

    # The GPU bundle carries onnxruntime's CUDA provider but never the CUDA runtime / cuDNN (the nvidia-*
    # wheels are not installed): the user's CUDA installation provides them.
    log("PyInstaller: one-folder bundle with " + (
        "onnxruntime-gpu (CUDA provider included; CUDA 13 + cuDNN 9 come from the user's installation)"
        if args.onnxruntime == "gpu" else
        "onnxruntime CPU (the CUDA provider alone would add 284 MB; build with --onnxruntime gpu for it)"))
    t = time.perf_counter()
    bundle = pyinstaller(py, work)
    times["pyinstaller"] = time.perf_counter() - t

    t = time.perf_counter()
    saved = strip_debug_info(bundle, work)
    log(f"removed {mb(saved)} of debug information")
    stubs = stub_unused_ffmpeg_libraries(bundle, work)
    icu = slim_icu_data(bundle, work)
    remove_dangling_links(bundle)
    shutil.copytree(pack, bundle / "models")
    bundled = set((work / "pyinstaller" / "mmdesk" / "bundled_distributions.txt").read_text().split())
    stubbed = [Path(f).name for f in stubs["replaced"]]
    (bundle / "LICENSES.txt").write_text(licences_text(version, manifest, dists, bundled, stubbed), encoding="utf-8")
    check_bundle_loads(bundle, version, work)
    size = dir_size(bundle)
    plat = f"{args.target}-x86_64" + ("-cuda" if args.onnxruntime == "gpu" else "")
    outputs: dict[str, dict] = {}
    if "tar" in args.formats:
        out = dist / f"mmdesk-{version}-{plat}.tar.gz"
        write_tar(bundle, out, f"mmdesk-{version}")
        outputs["tar"] = {"path": str(out), "bytes": out.stat().st_size}
    if "deb" in args.formats:
        out = dist / f"mmdesk{'-cuda' if args.onnxruntime == 'gpu' else ''}_{version}_amd64.deb"
        write_deb(bundle, out, version, work)
        outputs["deb"] = {"path": str(out), "bytes": out.stat().st_size}
    times["archives"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t_start

    report = {"version": version, "target": args.target, "onnxruntime": args.onnxruntime,
              "bundle": str(bundle), "bundle_bytes": size, "models_bytes": dir_size(bundle / "models"),
              "size_target_bytes": SIZE_TARGET_MB * 10**6, "outputs": outputs, "stubs": stubs, "icu": icu,
              "seconds": {k: round(v, 1) for k, v in times.items()}, "cpus": os.cpu_count()}
    (dist / f"mmdesk-{version}-{plat}.build.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"bundle {bundle}: {mb(size)} unpacked (models {mb(report['models_bytes'])}; "
        f"target <= {SIZE_TARGET_MB} MB: {'met' if size <= SIZE_TARGET_MB * 10**6 else 'MISSED'})")
    for kind, o in outputs.items():
        log(f"{kind}: {o['path']} ({mb(o['bytes'])})")
    log("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f" on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BuildError as exc:
        print(f"build_installer: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("build_installer: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
