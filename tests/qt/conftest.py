"""tests/qt shares the fixtures of tests/session (engine, RAVDESS clip, camera stream)."""

from __future__ import annotations

import sys
from pathlib import Path

from mmdesk.qt.qt_app import check_qt_binding

_SESSION = str(Path(__file__).resolve().parents[1] / "session")
if _SESSION not in sys.path:
    sys.path.insert(0, _SESSION)

from session_support import alsa_mic, clip_camera, engine, ravdess_clip  # noqa: F401  (fixtures)

# A Qt binding that corrupts reference counts would crash the whole test run at random; stop here
# with the reason instead (PySide6 6.12.0 on Python < 3.12).
check_qt_binding()
