"""Fixtures of tests/session; the machinery lives in session_support.py (shared with tests/qt)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from session_support import alsa_mic, clip_camera, engine, ravdess_clip  # noqa: F401  (fixtures)
