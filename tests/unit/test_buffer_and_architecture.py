"""Bounded newest-wins buffers, and the rule that the core never imports Qt."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from mmdesk.core.buffer import NewestWinsBuffer

ROOT = Path(__file__).resolve().parents[2]


def test_newest_wins_and_drops_are_counted() -> None:
    buf: NewestWinsBuffer[int] = NewestWinsBuffer(3)
    for i in range(10):
        buf.put(i)
    assert buf.dropped == 7
    assert buf.drain() == [7, 8, 9]


def test_get_times_out_and_close_wakes_consumer() -> None:
    buf: NewestWinsBuffer[int] = NewestWinsBuffer(2)
    assert buf.get(timeout=0.01) is None
    got = []
    t = threading.Thread(target=lambda: got.append(buf.get(timeout=5)))
    t.start()
    buf.close()
    t.join(2)
    assert not t.is_alive() and got == [None]


def test_core_modules_never_import_qt() -> None:
    """Import every non-Qt module in a fresh interpreter and check no Qt binding got loaded."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "mmdesk").rglob("*.py")
        if not {"qt", "training"} & set(p.relative_to(ROOT).parts) and p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6', 'pyqtgraph', 'torch', 'transformers'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"runtime modules pulled in: {out.stdout.strip()}"
