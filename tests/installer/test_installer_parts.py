"""Quick checks of the installer's parts: what is bundled, the frozen app's pack, refusals, requirements."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mmdesk.inference.pack import resolve_pack_dir

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bundle_contents = _load(ROOT / "packaging" / "bundle_contents.py")
build_installer = _load(ROOT / "build_installer.py")


def test_modules_importing_training_packages_are_left_out(tmp_path: Path) -> None:
    pkg = tmp_path / "mmdesk"
    (pkg / "training").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "training" / "__init__.py").write_text("")
    (pkg / "training" / "labels.py").write_text("import csv\n")
    (pkg / "heavy.py").write_text("import numpy as np\ntry:\n    import torch\nexcept ImportError:\n    torch = None\n")
    (pkg / "uses_heavy.py").write_text("from . import heavy\n")
    (pkg / "lazy.py").write_text("def f():\n    import torch\n    return torch\n")
    (pkg / "reads_labels.py").write_text("def f():\n    from mmdesk.training.labels import x\n")
    modules, left_out = bundle_contents.runtime_modules(tmp_path)
    assert modules == ["mmdesk", "mmdesk.lazy", "mmdesk.reads_labels"]
    assert left_out["mmdesk.heavy"] == "imports torch"  # a guarded import still runs at import time
    assert left_out["mmdesk.uses_heavy"].startswith("imports mmdesk.heavy")
    assert "training code" in left_out["mmdesk.training.labels"]  # bundled only when something imports it


def test_every_runtime_module_of_this_checkout_is_bundled() -> None:
    modules, left_out = bundle_contents.runtime_modules(ROOT)
    assert {"mmdesk.cli", "mmdesk.commands.analyze", "mmdesk.commands.doctor", "mmdesk.inference.pack"} <= set(modules)
    assert not [m for m in modules if m.startswith("mmdesk.training")]
    assert [m for m in left_out if not m.startswith("mmdesk.training")] == []


def test_qt_translations_and_examples_are_not_shipped() -> None:
    assert not bundle_contents.keep_data("PySide6/Qt/translations/qtbase_de.qm")
    assert not bundle_contents.keep_data("pyqtgraph/examples/Plotting.py")
    assert bundle_contents.keep_data("PySide6/Qt/plugins/platforms/libqoffscreen.so")
    assert bundle_contents.keep_data("resources/icons/mmdesk.svg")
    assert not bundle_contents.keep_binary("PySide6/Qt/lib/libQt6VirtualKeyboard.so.6")
    assert bundle_contents.keep_binary("PySide6/Qt/plugins/multimedia/libffmpegmediaplugin.so")


def test_frozen_app_defaults_to_the_pack_next_to_its_executable(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    exe = tmp_path / "opt" / "mmdesk" / "mmdesk"
    exe.parent.mkdir(parents=True)
    exe.write_text("")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "mmdesk").symlink_to(exe)  # started through /usr/bin/mmdesk
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "mmdesk"))
    monkeypatch.delenv("MMDESK_MODELS", raising=False)
    assert resolve_pack_dir() == exe.parent / "models"
    monkeypatch.setenv("MMDESK_MODELS", str(tmp_path / "other"))
    assert resolve_pack_dir() == tmp_path / "other"
    assert resolve_pack_dir(tmp_path / "cli") == tmp_path / "cli"


@pytest.mark.parametrize("variant, dist", [("cpu", "onnxruntime"), ("gpu", "onnxruntime-gpu")])
def test_runtime_requirements_have_exactly_one_onnxruntime(variant: str, dist: str) -> None:
    reqs = build_installer.runtime_requirements(variant)
    ort = [r for r in reqs if r.startswith("onnxruntime")]
    assert len(ort) == 1 and ort[0].startswith(dist + ">=") and ";" not in ort[0]
    assert not [r for r in reqs if r.split(">")[0].split("=")[0] in ("torch", "transformers", "onnx")]
    assert build_installer.faster_whisper_requirement().startswith("faster-whisper==")


@pytest.mark.parametrize("target", ["windows", "macos"])
def test_refuses_a_platform_it_cannot_build_here(target: str) -> None:
    if sys.platform != "linux":
        pytest.skip("checks the refusal on Linux")
    proc = subprocess.run([sys.executable, str(ROOT / "build_installer.py"), "--target", target],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and f"cannot build the {target} installer on linux" in line
