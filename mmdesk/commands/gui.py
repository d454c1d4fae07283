"""``mmdesk gui``: the desktop app; with ``--screenshot``/``--live-seconds`` a scripted run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--open", metavar="FILE", help="a clip to analyse, or a saved session (.jsonl)")
    p.add_argument("--screenshot", metavar="PNG",
                   help="scripted: when the analysis is done save a screenshot of the window and exit")
    p.add_argument("--camera", help="camera index or stream URL for a live session")
    p.add_argument("--microphone", help="microphone index or name for a live session")
    p.add_argument("--text", help="text typed into a scripted live session")
    p.add_argument("--live-seconds", type=float, default=0.0, metavar="S",
                   help="scripted: run a live session for S seconds (then screenshot, if asked) and exit")
    p.add_argument("--stall-report", action="store_true",
                   help="print how long the event loop stalled (JSON) when the scripted run ends")
    p.add_argument("--timeout", type=float, default=None,
                   help="scripted: give up after this many seconds (default 600, or the live seconds + 300)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="execution device")
    p.add_argument("--models", help="model pack directory (default: $MMDESK_MODELS or the user data dir)")


def run(args: argparse.Namespace) -> int:
    from mmdesk.errors import MmdeskError

    if args.timeout is None:  # a long scripted live run must not be cut off by the default watchdog
        args.timeout = max(600.0, args.live_seconds + 300.0)
    if args.live_seconds < 0 or args.timeout <= 0:
        raise MmdeskError("--live-seconds and --timeout must be positive", "e.g. --live-seconds 20")
    if args.open and not Path(args.open).exists():
        raise MmdeskError(f"{args.open} not found", "check the path of --open")
    if args.open and args.live_seconds:
        raise MmdeskError("--open and --live-seconds exclude each other", "give one of them")
    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
        # Qt would abort the process with a multi-line message
        raise MmdeskError("no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set)",
                          "run it in a desktop session, or for a scripted run set QT_QPA_PLATFORM=offscreen")
    try:
        from mmdesk.qt.qt_app import run as run_app
    except ImportError as e:
        raise MmdeskError(f"the desktop app needs PySide6 and pyqtgraph ({e})",
                          "pip install PySide6-Essentials pyqtgraph") from None
    return run_app(args)
