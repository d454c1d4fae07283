"""Helpers for tests/qt: wait on the Qt event loop without qtbot (for module-scoped windows)."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication


def wait_until(app: QApplication, cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def temp_settings(folder) -> QSettings:
    """Preferences in a test folder, never the user's."""
    return QSettings(str(folder / "mmdesk.ini"), QSettings.Format.IniFormat)
