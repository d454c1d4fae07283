"""Start the app; the scripted mode used for checks, documentation and the stall benchmark.

``--open CLIP --screenshot FILE.png``: open the clip, run the analysis, save a screenshot of the
whole window when it is done, exit 0 (2 with a one-line message on failure). ``--live-seconds S``
runs a live session with ``--camera``/``--microphone``/``--text`` for S seconds instead.
``--stall-report`` prints the event loop's stalls (JSON) at the end.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from argparse import Namespace
from dataclasses import asdict
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from mmdesk.errors import MmdeskError
from mmdesk.qt.qt_main_window import MainWindow
from mmdesk.qt.qt_stall import StallMeter
from mmdesk.session.engine import Engine, EngineSettings

SIZE = (1280, 800)
# How long a worker thread may keep the GIL while the GUI thread waits for it (Python's default is
# 5 ms). Every call from Python into Qt releases and retakes the GIL, so a repaint made of hundreds of
# such calls could wait 5 ms at each one while analysis threads run Python; 0.5 ms bounds that
# convoy. Measured with --stall-report: live worst stall 155 → 104 ms on its own.
GUI_SWITCH_INTERVAL_S = 0.0005
FRAME_WAIT_S = 5.0  # after the analysis, wait this long at most for the player's first frame


def _icon() -> QIcon:
    root = Path(__file__).resolve().parents[2]
    p = root / "resources" / "icons" / "mmdesk.svg"  # beside the package in a checkout and in the bundle
    return QIcon(str(p)) if p.is_file() else QIcon()


class Script:
    """Drives the window in scripted mode and decides the exit code."""

    def __init__(self, app: QApplication, window: MainWindow, args: Namespace, meter: StallMeter | None) -> None:
        self.app, self.window, self.args, self.meter = app, window, args, meter
        self.code = 0
        self.message = ""
        self._frame_deadline = 0.0
        window.analysis_finished.connect(self._analysed)
        QTimer.singleShot(int(args.timeout * 1000), lambda: self._fail(f"gave up after {args.timeout:.0f} s"))

    def start(self) -> None:
        a = self.args
        if self.meter is not None:  # measure the analysis itself, not the start-up
            self.meter.start()
        if a.open:
            path = Path(a.open)
            if not path.exists():
                self._fail(f"{path} not found")
                return
            self.window.open_path(str(path))
            if self.window.mode == "session":
                self._shoot_when_framed()
            elif self.window.mode != "clip":
                self._fail(self.window.last_error or f"cannot open {path}")
        elif a.live_seconds:
            self.window.set_devices(a.camera, a.microphone)
            self.window.start_live()
            if a.text:
                self.window.live.submit_text(a.text)  # type: ignore[union-attr]
            QTimer.singleShot(int(a.live_seconds * 1000), self._shoot)

    def _analysed(self, ok: bool) -> None:
        if self.meter is not None:
            self.meter.stop()
        if not ok:
            self._fail(self.window.last_error or "the analysis did not complete")
            return
        rec = self.window.selected_record()
        if rec is not None:
            self.window.seek((rec["start"] + rec["end"]) / 2)
        self._shoot_when_framed()

    def _shoot_when_framed(self) -> None:
        self._frame_deadline = time.monotonic() + FRAME_WAIT_S
        self._poll_frame()

    def _poll_frame(self) -> None:
        player = self.window.player
        if (player.available and player.frames == 0) and time.monotonic() < self._frame_deadline:
            QTimer.singleShot(100, self._poll_frame)
            return
        QTimer.singleShot(300, self._shoot)  # let the last redraw (≤ 30 Hz) land

    def _shoot(self) -> None:
        if self.meter is not None:
            self.meter.stop()
        if self.args.screenshot:
            out = Path(self.args.screenshot)
            if not self.window.grab().save(str(out), "PNG"):
                self._fail(f"cannot write the screenshot {out}")
                return
            print(f"mmdesk: screenshot {out}", file=sys.stderr)
        self._quit(0)

    def _fail(self, message: str) -> None:
        self.message = message
        self._quit(2)

    def _quit(self, code: int) -> None:
        self.code = code
        self.app.exit(code)


def _when_loaded(engine: Engine, then, deadline: float | None = None) -> None:
    """Call ``then`` once the engine's models are loaded (or failed to, or 120 s passed)."""
    deadline = deadline or time.monotonic() + 120
    loaded = engine.loaded is not None and (engine.speech_loaded or bool(engine.speech_error))
    if loaded or engine.load_error or time.monotonic() > deadline:
        then()
    else:
        QTimer.singleShot(50, lambda: _when_loaded(engine, then, deadline))


def check_qt_binding() -> None:
    """PySide6 6.12.0 drops a reference to None on every void call and to False on every bool
    signal: on Python < 3.12 (where they are not immortal) the app dies within seconds."""
    import PySide6

    if PySide6.__version__.startswith("6.12.0") and sys.version_info < (3, 12):
        raise MmdeskError(f"PySide6 {PySide6.__version__} crashes Python {sys.version.split()[0]} "
                          "(a reference-counting bug)",
                          'install another version: pip install "PySide6-Essentials<6.12"')


def _fail_on_exceptions(script: Script) -> None:
    """A bug in a slot must fail a scripted run, not leave it waiting or screenshot a broken window."""
    previous = sys.excepthook

    def hook(kind, value, tb) -> None:
        previous(kind, value, tb)
        script._fail(f"internal error: {kind.__name__}: {value}")

    sys.excepthook = hook


def _freeze_heap() -> None:
    """Move everything alive after start-up (models, Qt wrappers, modules: ~95k objects) out of the
    garbage collector's reach. A full collection otherwise walks all of it, from whichever thread
    triggers it, holding the GIL for 30–60 ms: a visible freeze of the window. (No collection first:
    that would be the same freeze, and the few cycles frozen with the rest cost only their memory.)"""
    gc.freeze()


def run(args: Namespace) -> int:
    check_qt_binding()
    sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("mmdesk")
    app.setOrganizationName("mmdesk")
    app.setWindowIcon(_icon())
    engine = Engine(EngineSettings(device=args.device, models=args.models))
    window = MainWindow(engine)
    window.resize(*SIZE)
    window.show()
    scripted = bool(args.screenshot or args.live_seconds or args.stall_report)
    meter = StallMeter() if args.stall_report else None
    script = Script(app, window, args, meter) if scripted else None
    if script is not None:
        _fail_on_exceptions(script)
    QTimer.singleShot(0, lambda: _when_loaded(engine, _freeze_heap))
    if script is not None and meter is not None:
        # the stall figure is about analysing: the models load first, as they do while a user
        # is still choosing a source
        QTimer.singleShot(0, lambda: _when_loaded(engine, script.start))
    elif script is not None:
        QTimer.singleShot(0, script.start)
    elif args.open:
        QTimer.singleShot(0, lambda: window.open_path(args.open))
    code = app.exec()
    if meter is not None:
        live = asdict(window.live.stats()) if window.live is not None else None
        print(json.dumps({"mode": "clip" if args.open else "live", "windows": len(window.data),
                          "redraws": window.redraws, "stalls": meter.report(), "live": live}))
    window.shutdown()
    window.deleteLater()
    app.processEvents()
    if script is not None and script.code:
        print(f"mmdesk: error: {script.message}", file=sys.stderr)
        return script.code
    return code
