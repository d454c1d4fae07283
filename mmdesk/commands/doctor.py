"""``mmdesk doctor``: is this installation able to work? Non-zero exit when it is broken."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--models", help="model pack directory to check")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-devices", action="store_true", help="skip probing cameras and microphones")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(models: str | None, device: str, probe_devices: bool = True) -> dict[str, Any]:
    from mmdesk import __version__
    from mmdesk.errors import MmdeskError

    report: dict[str, Any] = {"mmdesk": __version__, "python": sys.version.split()[0],
                              "platform": platform.platform(), "problems": [], "warnings": []}
    problems, warnings = report["problems"], report["warnings"]
    report["packages"] = {d: _version(d) for d in (
        "onnxruntime-gpu", "onnxruntime", "numpy", "opencv-python-headless", "av", "sounddevice",
        "soxr", "tokenizers", "ctranslate2", "faster-whisper", "PySide6-Essentials", "torch",
        "transformers")}
    if report["packages"]["onnxruntime-gpu"] and report["packages"]["onnxruntime"]:
        problems.append("both onnxruntime and onnxruntime-gpu are installed (they share one import folder): "
                        "`pip uninstall -y onnxruntime onnxruntime-gpu` then reinstall onnxruntime-gpu")
    try:
        from mmdesk.inference.runtime import available_providers, cuda_problem, providers_for

        report["providers_available"] = available_providers()
        report["cuda"] = cuda_problem() or "usable"
        try:
            report["providers_requested"] = providers_for(device)
        except MmdeskError as exc:
            problems.append(exc.one_line())
    except ImportError as exc:
        problems.append(f"onnxruntime cannot be imported ({exc}): reinstall with `make setup`")
        report["providers_available"] = []

    # models: sha256 + IO of every entry, and the provider each session really uses
    from mmdesk.inference.pack import resolve_pack_dir

    pack = resolve_pack_dir(models)
    report["models_dir"] = str(pack)
    report["models"] = {}
    try:
        from mmdesk.inference.manifest import load_manifest, verify_file
        from mmdesk.inference.runtime import open_model

        manifest = load_manifest(pack)
        for role, entry in sorted(manifest.entries.items()):
            row: dict[str, Any] = {"file": entry.file, "sha256": entry.sha256, "license": entry.license}
            try:
                if entry.format == "onnx":
                    dev = "cpu" if role == "vad" else device
                    row["active_provider"] = open_model(manifest, role, dev).active_provider
                else:
                    verify_file(manifest, role)
                if role == "voice_emotion":  # files that verify can still need features this code lacks
                    from mmdesk.perception.voice import check_features

                    check_features(dict(entry.preprocessing), manifest.path(role))
                row["verified"] = True
            except MmdeskError as exc:
                row["verified"] = False
                row["error"] = exc.one_line()
                problems.append(exc.one_line())
            report["models"][role] = row
    except MmdeskError as exc:
        problems.append(exc.one_line())

    if probe_devices:
        report["cameras"], report["microphones"] = _devices(warnings)
    return report


def _devices(warnings: list[str]) -> tuple[list[dict], list[dict]]:
    cameras: list[dict] = []
    microphones: list[dict] = []
    try:
        from mmdesk.capture.camera import list_cameras

        cameras = list_cameras()
    except Exception as exc:  # device probing must never break the doctor
        warnings.append(f"camera probe failed: {exc}")
    try:
        from mmdesk.capture.microphone import list_microphones

        microphones = list_microphones()
    except Exception as exc:
        warnings.append(f"microphone probe failed: {exc}")
    if not cameras:
        warnings.append("no camera found: live video is unavailable (clips still work)")
    if not microphones:
        warnings.append("no microphone found: live audio is unavailable (clips still work)")
    return cameras, microphones


def run(args: argparse.Namespace) -> int:
    report = collect(args.models, args.device, not args.no_devices)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print(report)
    return 1 if report["problems"] else 0


def _print(r: dict[str, Any]) -> None:
    print(f"mmdesk {r['mmdesk']}  Python {r['python']}  {r['platform']}")
    print("packages: " + ", ".join(f"{k} {v}" for k, v in r["packages"].items() if v))
    print(f"onnxruntime providers available: {', '.join(r.get('providers_available', [])) or 'none'}")
    if "cuda" in r:
        print(f"CUDA: {r['cuda']}")
    print(f"model pack: {r['models_dir']}")
    for role, m in r["models"].items():
        status = "ok" if m.get("verified") else "FAILED"
        prov = f"  [{m['active_provider']}]" if m.get("active_provider") else ""
        print(f"  {role:24s} {status:6s} {m['file']}  sha256 {m['sha256'][:12]}…{prov}")
    if "cameras" in r:
        print(f"cameras: {', '.join(str(c.get('name', c)) for c in r['cameras']) or 'none'}")
        print(f"microphones: {', '.join(str(m.get('name', m)) for m in r['microphones']) or 'none'}")
    for w in r["warnings"]:
        print(f"warning: {w}")
    for p in r["problems"]:
        print(f"PROBLEM: {p}")
    print("status: " + ("BROKEN" if r["problems"] else "ok"))
