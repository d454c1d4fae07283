"""OpenCV is not a runtime dependency (151 MB of the installer): no runtime module imports cv2,
not even lazily inside a function. Training code (mmdesk/training) and tests may use it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_names(node: ast.AST) -> list[str]:
    """The modules an import statement or an ``__import__("x")`` / ``import_module("x")`` call names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
            in ("__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant)):
        return [str(node.args[0].value)]
    return []


def _imports_cv2(tree: ast.AST) -> list[int]:
    return [node.lineno for node in ast.walk(tree) if any(m.split(".")[0] == "cv2" for m in _module_names(node))]


def test_no_runtime_module_imports_opencv() -> None:
    offenders = []
    for path in sorted((ROOT / "mmdesk").rglob("*.py")):
        if "training" in path.relative_to(ROOT).parts:
            continue
        lines = _imports_cv2(ast.parse(path.read_text(encoding="utf-8")))
        offenders += [f"{path.relative_to(ROOT)}:{n}" for n in lines]
    assert offenders == []


def test_the_check_sees_lazy_imports() -> None:
    code = "def f():\n    import cv2\n\ng = __import__('cv2')\nfrom cv2 import dnn\nimportlib.import_module('cv2')\n"
    assert sorted(_imports_cv2(ast.parse(code))) == [2, 4, 5, 6]
