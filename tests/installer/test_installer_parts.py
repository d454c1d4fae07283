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
ffmpeg_stubs = _load(ROOT / "packaging" / "ffmpeg_stubs.py")
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


def test_only_desktop_qt_platforms_and_used_bindings_are_shipped() -> None:
    for kept in ("platforms/libqxcb.so", "platforms/libqwayland.so", "platforms/libqoffscreen.so",
                 "xcbglintegrations/libqxcb-glx-integration.so", "wayland-shell-integration/libxdg-shell.so",
                 "imageformats/libqsvg.so", "iconengines/libqsvgicon.so", "imageformats/libqjpeg.so"):
        assert bundle_contents.keep_binary(f"PySide6/Qt/plugins/{kept}"), kept
    for dropped in ("platforms/libqeglfs.so", "platforms/libqvnc.so", "egldeviceintegrations/libqeglfs-x11-integration.so",
                    "generic/libqevdevmouseplugin.so", "tls/libqopensslbackend.so", "imageformats/libqtiff.so"):
        assert not bundle_contents.keep_binary(f"PySide6/Qt/plugins/{dropped}"), dropped
    for lib in ("libQt6OpenGL.so.6", "libQt6Svg.so.6"):  # linked by QtOpenGLWidgets (pyqtgraph), used for the icon
        assert bundle_contents.keep_binary(f"PySide6/Qt/lib/{lib}"), lib
    assert not bundle_contents.keep_binary("PySide6/Qt/lib/libQt6EglFSDeviceIntegration.so.6")
    # imported at run time (pyqtgraph's QtOpenGLWidgets too), so never excluded
    assert not {"PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets",
                "PySide6.QtOpenGLWidgets"} & set(bundle_contents.UNUSED_QT_MODULES)


def test_qtopengl_stand_in_imports_and_refuses_use() -> None:
    code = (f"exec(open({str(ROOT / 'packaging/hooks/rthook_qtopengl.py')!r}).read())\n"
            "import importlib\n"
            "m = importlib.import_module('PySide6.QtOpenGL')\n"
            "try:\n    m.QOpenGLShaderProgram\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "not included in the mmdesk bundle" in out


def test_ffmpeg_stub_table_refuses_a_symbol_it_does_not_know() -> None:
    stub = ffmpeg_stubs.STUBS["libx264"]
    defined = {"x264_param_default_preset": ("T", 0), "x264_levels": ("R", 672), "x264_new_api": ("T", 0)}
    source = ffmpeg_stubs.stub_source(stub, "libx264-1.so", {"x264_param_default_preset": "", "x264_levels": ""},
                                      defined)
    assert "long x264_param_default_preset(void) { return (long)(-1); }" in source
    assert "x264_levels[672]" in source and ffmpeg_stubs.MARKER in source
    with pytest.raises(ffmpeg_stubs.StubError, match="x264_new_api"):
        ffmpeg_stubs.stub_source(stub, "libx264-1.so", {"x264_new_api": ""}, defined)


def test_ffmpeg_stub_exports_the_consumers_symbol_versions() -> None:
    script = ffmpeg_stubs.version_script({"gnutls_init": "GNUTLS_3_4", "gnutls_bye": "GNUTLS_3_4"})
    assert script == "GNUTLS_3_4 { global: gnutls_bye; gnutls_init; local: *; };\n"
    assert ffmpeg_stubs.version_script({"lame_init": ""}) == "{ global: lame_init; local: *; };\n"


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
    names = [r.split(">")[0].split("=")[0].split("<")[0] for r in reqs]
    assert not set(names) & {"torch", "transformers", "onnx", "ctranslate2", "faster-whisper", "huggingface_hub"}


@pytest.mark.parametrize("target", ["windows", "macos"])
def test_refuses_a_platform_it_cannot_build_here(target: str) -> None:
    if sys.platform != "linux":
        pytest.skip("checks the refusal on Linux")
    proc = subprocess.run([sys.executable, str(ROOT / "build_installer.py"), "--target", target],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and f"cannot build the {target} installer on linux" in line
