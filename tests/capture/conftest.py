"""Fixtures of tests/capture; the machinery lives in capture_support.py (importable by tests)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from capture_support import alsa_mic, media, mjpeg_server  # noqa: E402,F401  (fixtures)
