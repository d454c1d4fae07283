"""tests/qt shares the fixtures of tests/session (engine, RAVDESS clip, camera stream)."""

from __future__ import annotations

import sys
from pathlib import Path

_SESSION = str(Path(__file__).resolve().parents[1] / "session")
if _SESSION not in sys.path:
    sys.path.insert(0, _SESSION)

from session_support import alsa_mic, clip_camera, engine, ravdess_clip  # noqa: F401  (fixtures)
