"""What goes into the bundle: every ``mmdesk`` module the runtime can import without the training stack.

Used by ``mmdesk.spec`` (PyInstaller) and by ``build_installer.py``. The package list is walked from the
source tree, so modules that land later (the desktop app, speech-to-text, fusion) are bundled without
editing this file (commands are imported by name, which PyInstaller cannot follow by itself). Left out:
a module that imports a training-only package at module level, directly or through another left-out mmdesk
module (the bundle's environment does not have those packages), and ``mmdesk.training`` unless a bundled
module imports from it (``mmdesk eval`` reads dataset labels with the torch-free mmdesk.training.datasets).
"""

from __future__ import annotations

import ast
from pathlib import Path

# Installed only by the `train`/`dev` extras; never in the bundle (PyInstaller also gets them as excludes,
# so an import inside a function, e.g. `mmdesk bench`'s optional PyTorch comparison, cannot pull them in).
TRAINING_ONLY = ("torch", "torchvision", "torchaudio", "transformers", "onnx", "onnxscript", "h5py", "sklearn", "cv2",
                 "keras", "tensorflow", "pytest", "ruff", "jiwer")
# Installed in the runtime environment (pyproject dependencies and what they pull in) or probed for by
# bundled libraries, but never imported by mmdesk at run time. librosa + numba + llvmlite + scipy alone
# would be ~250 MB: the runtime resamples with soxr and computes log-mel in numpy. faster-whisper with
# CTranslate2 (81 MB) and huggingface_hub run only Whisper models other than the pack's (an optional extra,
# not in the runtime environment); left out by name too, so that a build environment that has them does not
# ship them. hf_xet is huggingface_hub's download accelerator.
NEVER_USED = ("librosa", "numba", "llvmlite", "scipy", "resampy", "samplerate", "hf_xet", "faster_whisper",
              "ctranslate2", "huggingface_hub",
              "matplotlib", "IPython", "PyQt5", "PyQt6", "PySide2", "tkinter", "_tkinter", "cupy", "jax",
              "pandas", "sympy", "pyarrow")


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _top_level_imports(path: Path, module: str) -> set[str]:
    """Absolute names imported when the module is imported (function bodies are not executed then)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    mod = f"{base}.{node.module}" if node.module else base
                else:
                    mod = node.module or ""
                names.add(mod)
                names.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import submodule`
            elif isinstance(node, (ast.If, ast.Try, ast.With)):  # still run at import time
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, block, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])

    visit(tree.body)
    return names


def runtime_modules(root: Path) -> tuple[list[str], dict[str, str]]:
    """(modules to bundle, {left-out module: why}) for the ``mmdesk`` package under ``root``."""
    files = {_module_name(root, p): p for p in sorted((root / "mmdesk").rglob("*.py"))}
    imports = {m: _top_level_imports(p, m) for m, p in files.items()}
    excluded: dict[str, str] = {}
    changed = True
    while changed:  # propagate through mmdesk modules that import a left-out module
        changed = False
        for mod, names in imports.items():
            if mod in excluded:
                continue
            for name in sorted(names):
                top = name.split(".")[0]
                if top in TRAINING_ONLY:
                    excluded[mod] = f"imports {top}"
                elif name in excluded:
                    excluded[mod] = f"imports {name} ({excluded[name]})"
                else:
                    continue
                changed = True
                break
    for mod in files:  # training code is bundled only where a runtime module imports it (eval's readers)
        if mod.startswith("mmdesk.training") and mod not in excluded:
            excluded[mod] = "training code (bundled only if a runtime module imports it)"
    return sorted(m for m in files if m not in excluded), excluded


def keep_data(dest: str) -> bool:
    """Data files PyInstaller's hooks collect that the application never reads."""
    d = dest.replace("\\", "/")
    unused = (
        "PySide6/Qt/translations/",  # the UI is English; Qt's own dialogs stay untranslated
        "PySide6/Qt/qml/",  # a widgets app: no QML
        "pyqtgraph/examples/",
    )
    return not (d.startswith(unused) or "/tests/" in d)


# Qt Python bindings nothing imports at run time (checked with `python -X importtime` on `mmdesk gui`):
# pyqtgraph imports QtSvg and QtTest under try/except ImportError and uses them only for SVG export and its own
# tests; QtDBus, QtConcurrent and QtMultimediaWidgets are collected by the hooks, never imported (clip playback
# is PyAV + sounddevice since 2026-12, so QtMultimedia is not installed in the runtime environment at all). QtOpenGL (8.7 MB) is imported by pyqtgraph but used only to draw with OpenGL
# (useOpenGL, off): hooks/rthook_qtopengl.py stands in for it.
UNUSED_QT_MODULES = ("PySide6.QtSvg", "PySide6.QtTest", "PySide6.QtDBus", "PySide6.QtConcurrent",
                     "PySide6.QtMultimediaWidgets", "PySide6.QtOpenGL")

# Qt pieces that PyInstaller's hooks collect for a widgets app but that only serve other kinds of apps. Nothing
# that stays links against these libraries (checked with readelf -d when this list was made).
UNUSED_QT_BINARIES = (
    # the on-screen virtual keyboard (with its QML module) and the PDF image-format plugin (Qt Pdf)
    "PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so",
    "PySide6/Qt/plugins/imageformats/libqpdf.so",
    "PySide6/Qt/lib/libQt6VirtualKeyboard",
    "PySide6/Qt/lib/libQt6Pdf",
    # display platforms for devices without a desktop session (EGLFS/KMS, framebuffer, VNC, Vulkan display);
    # xcb, wayland, offscreen (--screenshot) and minimal stay
    "PySide6/Qt/plugins/platforms/libqeglfs.so",
    "PySide6/Qt/plugins/platforms/libqlinuxfb.so",
    "PySide6/Qt/plugins/platforms/libqminimalegl.so",
    "PySide6/Qt/plugins/platforms/libqvkkhrdisplay.so",
    "PySide6/Qt/plugins/platforms/libqvnc.so",
    "PySide6/Qt/plugins/egldeviceintegrations/",
    "PySide6/Qt/lib/libQt6EglFSDeviceIntegration",
    "PySide6/Qt/lib/libQt6EglFsKmsSupport",
    # evdev/TUIO input, read only by those platforms: xcb and wayland get input from the display server
    "PySide6/Qt/plugins/generic/",
    # QtNetwork's TLS backends and reachability plugins: mmdesk does no Qt networking
    "PySide6/Qt/plugins/tls/",
    "PySide6/Qt/plugins/networkinformation/",
    # image formats mmdesk never reads or writes (exports are PNG, the icon is SVG)
    "PySide6/Qt/plugins/imageformats/libqicns.so",
    "PySide6/Qt/plugins/imageformats/libqtga.so",
    "PySide6/Qt/plugins/imageformats/libqtiff.so",
    "PySide6/Qt/plugins/imageformats/libqwbmp.so",
    "PySide6/Qt/plugins/imageformats/libqwebp.so",
    # the libraries of UNUSED_QT_MODULES that nothing else links
    "PySide6/Qt/lib/libQt6Test",
    "PySide6/Qt/lib/libQt6MultimediaWidgets",
)


def keep_binary(dest: str) -> bool:
    return not dest.replace("\\", "/").startswith(UNUSED_QT_BINARIES)
