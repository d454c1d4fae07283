"""The main window: source bar, video, audio, transcript, timeline, attribution, interaction,
"each modality alone", status bar; clip review with playback; live sessions; save/export.

Everything heavy runs in ``mmdesk.session`` on worker threads. Their callbacks arrive here through
``SessionBridge`` signals (queued onto the GUI thread), only mark the view dirty, and a 30 Hz
timer redraws what changed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from mmdesk.core.types import TextEvent
from mmdesk.errors import MmdeskError
from mmdesk.qt.qt_audio import AudioView
from mmdesk.qt.qt_bridge import SessionBridge
from mmdesk.qt.qt_panels import (
    AloneRow,
    AttributionPanel,
    InteractionPanel,
    TranscriptPane,
)
from mmdesk.qt.qt_theme import STYLE
from mmdesk.qt.qt_timeline import Timeline
from mmdesk.qt.qt_video import PLAYBACK_ERROR, ClipPlayer, VideoView, bgr_to_qimage
from mmdesk.session.clip import ClipJob, ClipSettings
from mmdesk.session.engine import Engine, active_provider
from mmdesk.session.live import DeviceEvent, LiveSession, LiveSettings
from mmdesk.session.model import SessionData, window_centre
from mmdesk.session.store import export_csv, export_jsonl, load_session, save_session
from mmdesk.session.tasks import TaskPool
from mmdesk.session.waveform import Envelope, clip_envelope

log = logging.getLogger(__name__)

REDRAW_MS = 33  # at most 30 redraws per second
CLIP_FILTER = "Media (*.mp4 *.mkv *.webm *.mov *.avi *.m4v *.wav *.flac *.mp3 *.ogg *.m4a);;All files (*)"
SESSION_FILTER = "mmdesk session (*.jsonl);;All files (*)"
NO_CAMERA = "No camera"
NO_MIC = "No microphone"
DEFAULT_MIC = "Default input"


def _group(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    lay = QVBoxLayout(box)
    lay.setContentsMargins(8, 10, 8, 8)
    lay.addWidget(widget)
    return box


class MainWindow(QMainWindow):
    #: the clip analysis ended (True: complete; False: failed or cancelled)
    analysis_finished = Signal(bool)

    def __init__(self, engine: Engine, settings: QSettings | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.settings = settings if settings is not None else QSettings("mmdesk", "mmdesk")
        self.data = SessionData()
        self.mode = "idle"  # idle | clip | live | session
        self.job: ClipJob | None = None
        self.live: LiveSession | None = None
        # The live session whose records the view takes: a fresh object per start. A session being
        # stopped in the background keeps its token until it is done, so its last windows (speech
        # still being transcribed) are kept; opening something else drops the token and them.
        self._live_token: object | None = None
        self._stopping: set[LiveSession] = set()
        self._start_when_stopped = False
        self.selected: int | None = None
        self.envelope: Envelope | None = None
        self.position = 0.0
        self.last_error = ""
        self._dirty = False
        self._frame_index = -1
        self._drawn_at = -1.0  # playback position the waveform was last drawn for
        # What is left to redraw after the timeline, one step per tick: the stacked contributions
        # and the panels painted in one pass took up to 18-23 ms of GUI-thread CPU (live, with a
        # microphone); one per pass, 13-15 ms
        self._plot_steps: list[Callable[[], None]] = []
        self._live_ticks = 0
        self._requested: dict[str, Any] = {}  # the device last asked of the live session, per kind
        self.tasks = TaskPool()  # background work without Thread.start() waits on this thread
        # no Qt parent: the bridge outlives the window's C++ side, so a worker finishing late
        # emits into a bridge with no receivers instead of a deleted object
        self.bridge = SessionBridge()
        self.bridge.record.connect(self._on_record)
        self.bridge.live_record.connect(self._on_live_record)
        self.bridge.live_stopped.connect(self._on_live_stopped)
        self.bridge.progress.connect(self._on_progress)
        self.bridge.failed.connect(self._on_failed)
        self.bridge.device.connect(self._on_device)
        self.bridge.text.connect(self._on_text)
        self.bridge.devices_listed.connect(self._on_devices_listed)
        self.bridge.envelope.connect(self._on_envelope)
        self.setWindowTitle("mmdesk")
        self.setStyleSheet(STYLE)
        self.setAcceptDrops(True)
        self._build()
        self._restore()
        self.redraw_timer = QTimer(self)
        self.redraw_timer.setInterval(REDRAW_MS)
        self.redraw_timer.timeout.connect(self._redraw)
        self.redraw_timer.start()
        self.redraws = 0
        self.tasks.submit(self._list_devices)
        self.tasks.submit(self._preload)

    # == building the window ===================================================================
    def _build(self) -> None:
        bar = QToolBar("Sources")
        bar.setMovable(False)
        self.addToolBar(bar)
        self.camera_combo = QComboBox()
        self.camera_combo.setEditable(True)
        self.camera_combo.setMinimumWidth(150)
        self.camera_combo.setToolTip("Camera index or stream URL")
        self.camera_combo.addItem(NO_CAMERA, None)
        self.mic_combo = QComboBox()
        self.mic_combo.setEditable(True)
        self.mic_combo.setMinimumWidth(170)
        self.mic_combo.addItem(NO_MIC, None)
        self.mic_combo.addItem(DEFAULT_MIC, None)
        self.live_button = QPushButton("Start live")
        self.live_button.setCheckable(True)
        self.live_button.toggled.connect(self._live_toggled)
        self.open_button = QPushButton("Open clip…")
        self.open_button.clicked.connect(self.choose_clip)
        self.text_box = QLineEdit()
        self.text_box.setPlaceholderText("Type text to analyse and press Enter…")
        self.text_box.returnPressed.connect(self.submit_text)
        # picking from the list always (re)opens the device: that is how a lost one is retried
        self.camera_combo.activated.connect(lambda _i: self._device_chosen("camera", force=True))
        self.camera_combo.lineEdit().editingFinished.connect(lambda: self._device_chosen("camera"))
        self.mic_combo.activated.connect(lambda _i: self._device_chosen("microphone", force=True))
        self.mic_combo.lineEdit().editingFinished.connect(lambda: self._device_chosen("microphone"))
        for w in (QLabel(" Camera "), self.camera_combo, QLabel(" Microphone "), self.mic_combo,
                  self.live_button, self.open_button, QLabel("  Text "), self.text_box):
            bar.addWidget(w)

        self.banner = QLabel("")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#fef3c7; color:#92400e; padding:6px; border-radius:4px;")
        self.banner.setVisible(False)

        self.video = VideoView()
        self.video.set_message("Open a clip (or drop it here), choose a camera or microphone and press "
                               "Start live, or type text above.")
        self.player = ClipPlayer(self.video, self)
        self.player.position.connect(self._on_position)
        self.player.playing_changed.connect(lambda p: self.play_button.setText("Pause" if p else "Play"))
        self.player.problem.connect(lambda m: self.video.set_note(m))
        self.audio = AudioView()
        self.transcript = TranscriptPane()
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(_group("Video", self.video))
        left.addWidget(_group("Audio", self.audio))
        left.addWidget(_group("Transcript and typed text", self.transcript))
        left.setStretchFactor(0, 5)
        left.setStretchFactor(1, 1)
        left.setStretchFactor(2, 2)

        self.timeline = Timeline()
        self.timeline.clicked.connect(self.seek)
        self.timeline.source_changed.connect(lambda _s: self._mark_dirty())
        self.play_button = QPushButton("Play")
        self.play_button.clicked.connect(self.toggle_play)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("analysing… %p%")
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_analysis)
        self.cancel_button.setVisible(False)
        self.position_label = QLabel("")
        self.position_label.setObjectName("muted")
        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.position_label, 1)
        controls.addWidget(self.progress, 2)
        controls.addWidget(self.cancel_button)
        tl = QWidget()
        tl_lay = QVBoxLayout(tl)
        tl_lay.setContentsMargins(0, 0, 0, 0)
        tl_lay.addWidget(self.timeline, 1)
        tl_lay.addLayout(controls)

        self.attribution = AttributionPanel()
        self.interaction = InteractionPanel()
        self.alone = AloneRow()
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(_group("Attribution: which modality moved the judgement", self.attribution))
        lower.addWidget(_group("Interaction", self.interaction))
        lower.setStretchFactor(0, 3)
        lower.setStretchFactor(1, 2)
        lower.setSizes([460, 320])
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(_group("Timeline", tl))
        right.addWidget(_group("What each modality alone says (selected window)", self.alone))
        right.addWidget(lower)
        right.setStretchFactor(0, 4)
        right.setStretchFactor(1, 0)
        right.setStretchFactor(2, 3)
        self.panels = right

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([500, 780])
        central = QWidget()
        central.setObjectName("central")
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addWidget(self.banner)
        lay.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        sb = self.statusBar()
        self.stat = {k: QLabel("") for k in ("provider", "fps", "wps", "latency", "dropped")}
        for w in self.stat.values():
            sb.addPermanentWidget(w)
        self._show_stats(provider="—")
        self._menus()
        QShortcut(QKeySequence(Qt.Key.Key_Space), self, self.toggle_play)
        QShortcut(QKeySequence(Qt.Key.Key_Left), self, lambda: self.step(-1))
        QShortcut(QKeySequence(Qt.Key.Key_Right), self, lambda: self.step(1))

    def _menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        for text, key, slot in (
            ("Open clip…", QKeySequence.StandardKey.Open, self.choose_clip),
            ("Open session…", "Ctrl+Shift+O", self.choose_session),
            ("Save session…", QKeySequence.StandardKey.Save, self.choose_save),
            (None, None, None),
            ("Export CSV…", None, lambda: self._choose_export("csv")),
            ("Export JSON Lines…", None, lambda: self._choose_export("jsonl")),
            ("Export PNG of timeline and panels…", None, lambda: self._choose_export("png")),
            (None, None, None),
            ("Quit", QKeySequence.StandardKey.Quit, self.close),
        ):
            if text is None:
                m.addSeparator()
                continue
            a = QAction(text, self)
            if key is not None:
                a.setShortcut(QKeySequence(key))
            a.triggered.connect(slot)
            m.addAction(a)

    # == preferences =============================================================================
    def _restore(self) -> None:
        geo = self.settings.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        state = self.settings.value("window/splitter")
        if state is not None:
            self.splitter.restoreState(state)
        self.timeline.set_source(str(self.settings.value("timeline/source", "fused")))
        cam = self.settings.value("devices/camera", "")
        if cam:
            self.camera_combo.setEditText(str(cam))
        mic = self.settings.value("devices/microphone", "")
        if mic:
            self.mic_combo.setEditText(str(mic))

    def save_preferences(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/splitter", self.splitter.saveState())
        s.setValue("timeline/source", self.timeline.source)
        s.setValue("devices/camera", self.camera_combo.currentText())
        s.setValue("devices/microphone", self.mic_combo.currentText())
        s.sync()

    def closeEvent(self, event) -> None:
        self.save_preferences()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        self.redraw_timer.stop()
        self._stop_live(wait=True)
        if self.job is not None:
            self.job.cancel()
            self.job.join(10)
        self.player.unload()
        self.player.close()
        self.tasks.shutdown()

    # == devices =================================================================================
    def _list_devices(self) -> None:
        from mmdesk.capture.camera import list_cameras
        from mmdesk.capture.microphone import list_microphones

        self.bridge.devices_listed.emit(list_cameras(), list_microphones())

    def _preload(self) -> None:
        """Load the models while the user picks a source; a broken pack is reported when used.

        Loading Whisper holds the GIL for up to ~0.9 s (CTranslate2 reads the model without
        releasing it): better once at start-up than in the middle of the first analysis.
        """
        try:
            self.engine.analyzer()
            self.engine.load_speech()
        except MmdeskError:
            pass

    def _on_devices_listed(self, cameras: list[dict], mics: list[dict]) -> None:
        cam_text, mic_text = self.camera_combo.currentText(), self.mic_combo.currentText()
        for c in cameras:
            self.camera_combo.addItem(f"{c['index']}: {c['name']}", c["index"])
        for d in mics:
            self.mic_combo.addItem(d["name"] + (" (default)" if d.get("default") else ""), d["index"])
        self.camera_combo.setEditText(cam_text)
        self.mic_combo.setEditText(mic_text)
        missing = [w for w, found in (("camera", cameras), ("microphone", mics)) if not found]
        if missing:
            self.statusBar().showMessage(
                f"No {' or '.join(missing)} found — clips and typed text still work.", 15000)
            self.camera_combo.setToolTip("Camera index or stream URL (none was found on this machine)")

    def camera_choice(self) -> int | str | None:
        text = self.camera_combo.currentText().strip()
        i = self.camera_combo.findText(text)
        if i >= 0 and text == self.camera_combo.itemText(i):
            return self.camera_combo.itemData(i)
        return int(text) if text.isdigit() else (text or None)

    def microphone_choice(self) -> tuple[int | str | None, bool]:
        """(device, enabled): device None with enabled means the default input."""
        text = self.mic_combo.currentText().strip()
        if text in ("", NO_MIC):
            return None, False
        if text == DEFAULT_MIC:
            return None, True
        i = self.mic_combo.findText(text)
        if i >= 0 and self.mic_combo.itemData(i) is not None:
            return self.mic_combo.itemData(i), True
        return (int(text) if text.isdigit() else text), True

    def set_devices(self, camera: int | str | None, microphone: int | str | None) -> None:
        """Choose devices by value (command line, tests); applies at once when live."""
        self.camera_combo.setEditText(NO_CAMERA if camera is None else str(camera))
        self.mic_combo.setEditText(NO_MIC if microphone is None else str(microphone))
        if self.live is not None:
            self._device_chosen("camera", force=True)
            self._device_chosen("microphone", force=True)

    def _device_chosen(self, kind: str, force: bool = False) -> None:
        """Apply the device in the box; an unchanged text (focus moved away) changes nothing."""
        if self.live is None:
            return
        choice = self.camera_choice() if kind == "camera" else self.microphone_choice()
        if not force and self._requested.get(kind) == choice:
            return
        self._requested[kind] = choice
        if kind == "camera":
            self.video.set_message("Opening camera…" if choice is not None else "No camera selected.")
            self.live.set_camera(choice)
        else:
            dev, enabled = choice
            self.live.set_microphone(dev, enabled=enabled)

    def _on_device(self, e: DeviceEvent) -> None:
        if e.ok:
            self.statusBar().showMessage(e.message, 5000)
            if e.kind == "camera":
                self.video.set_message("")
            self._hide_banner_if(e.kind)
            return
        if e.device is None and e.message.startswith("no "):  # deselected on purpose
            if e.kind == "camera":
                self.video.set_frame(None)
                self.video.set_message("No camera selected.")
            return
        self._banner(f"{e.kind.capitalize()}: {e.message} — the rest keeps working; "
                     f"choose a {e.kind} again above to retry.", e.kind)
        if e.kind == "camera":
            self.video.set_frame(None)
            self.video.set_message(f"Camera unavailable: {e.message}")
        else:
            self.audio.clear()

    def _banner(self, text: str, tag: str = "") -> None:
        self.banner.setText(text)
        self.banner.setProperty("tag", tag)
        self.banner.setVisible(True)
        self.last_error = text

    def _hide_banner_if(self, tag: str) -> None:
        if self.banner.property("tag") == tag:
            self.banner.setVisible(False)

    # == live ====================================================================================
    def _live_toggled(self, on: bool) -> None:
        if on:
            self.start_live()
        else:
            self._stop_live()

    def start_live(self) -> None:
        if self.live is not None:
            return
        self._start_when_stopped = bool(self._stopping)  # its devices are still open: start after
        self._stop_clip()
        self._reset(mode="live")
        if not self._start_when_stopped:
            self._open_live()
        self.live_button.blockSignals(True)
        self.live_button.setChecked(True)
        self.live_button.setText("Stop live")
        self.live_button.blockSignals(False)
        self.video.set_message("")
        self.statusBar().showMessage("Live session started (models load on first use).", 5000)

    def _open_live(self) -> None:
        token = self._live_token = object()
        self.live = LiveSession(self.engine, LiveSettings(),
                                on_record=lambda r: self.bridge.live_record.emit(token, r),
                                on_device=self.bridge.device.emit, on_text=self.bridge.text.emit,
                                on_failed=self.bridge.failed.emit, run=self.tasks.submit).start()
        self._device_chosen("camera", force=True)
        self._device_chosen("microphone", force=True)

    def _stop_live(self, wait: bool = False) -> None:
        """Stop capturing now; the session's threads, devices and last transcription close in the
        background (that took ~1.5 s on this thread: a frozen window). ``wait``: here, for quitting."""
        self._start_when_stopped = False
        live, self.live = self.live, None
        self.live_button.blockSignals(True)
        self.live_button.setChecked(False)
        self.live_button.setText("Start live")
        self.live_button.blockSignals(False)
        if live is None:
            return
        token = self._live_token
        if wait:
            live.stop()
            self._on_live_stopped(token, live)
        else:
            self._stopping.add(live)
            self.tasks.submit(self._finish_live, token, live)

    def _finish_live(self, token: object, live: LiveSession) -> None:  # a pool thread
        live.stop()
        self.bridge.live_stopped.emit(token, live)

    def _on_live_stopped(self, token: object, live: LiveSession) -> None:
        self._stopping.discard(live)
        if token is not None and token is self._live_token and self.mode == "live":
            self._live_token = None
            if self.data.end is None and self.data.meta:
                self.data.add({"type": "end", "complete": True, "windows": len(self.data), "error": "",
                               "media_seconds": round(live.clock.now(), 3), "notes": []})
            self.mode = "session"
            self._set_live_views(False)
            self.timeline.fit(self.data.duration)
            self._show_selection()  # the stacked contributions of the whole session
            self._mark_dirty()
        if self._start_when_stopped and not self._stopping:
            self._start_when_stopped = False
            self._open_live()

    def _on_live_record(self, token: object, record: dict[str, Any]) -> None:
        if token is self._live_token and self.mode == "live":
            self._on_record(record)

    def submit_text(self) -> None:
        text = self.text_box.text()
        if not text.strip():
            return
        if self.live is None:
            self.start_live()
        assert self.live is not None
        if self.live.submit_text(text) is not None:
            self.text_box.clear()

    def _on_text(self, e: TextEvent) -> None:
        self.transcript.add(e.start, e.text, e.origin, e.final)

    # == clips and sessions =====================================================================
    def choose_clip(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open clip", self._last_dir(), CLIP_FILTER)
        if path:
            self.open_clip(path)

    def choose_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", self._last_dir(), SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_path(self, path: str) -> None:
        """A dropped or command-line file: a saved session (.jsonl) or a clip."""
        if path.lower().endswith(".jsonl"):
            self.open_session(path)
        else:
            self.open_clip(path)

    def open_clip(self, path: str, settings: ClipSettings | None = None) -> None:
        self._stop_live()
        self._stop_clip()
        self._reset(mode="clip")
        self.settings.setValue("paths/last_dir", str(Path(path).parent))
        self.setWindowTitle(f"mmdesk — {Path(path).name}")
        self.video.set_message("")
        self.player.load(str(Path(path).resolve()))
        self.video.set_note(self.player.audio_note if self.player.available else PLAYBACK_ERROR)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.job = ClipJob(path, self.engine, settings or ClipSettings(), on_record=self.bridge.record.emit,
                           on_progress=self.bridge.progress.emit,
                           on_failed=self.bridge.failed.emit).start(self.tasks.submit)
        self.tasks.submit(self._envelope, path)

    def _envelope(self, path: str) -> None:
        try:
            env = clip_envelope(path)
        except MmdeskError:
            env = None  # the analysis reports the problem with the file
        self.bridge.envelope.emit(env)

    def _on_envelope(self, env: Envelope | None) -> None:
        if self.mode in ("clip", "session"):
            self.envelope = env
            self._drawn_at = -1.0
            self._mark_dirty()

    def open_session(self, path: str) -> None:
        try:
            data = load_session(path)
        except MmdeskError as e:
            self._banner(e.one_line())
            return
        self._stop_live()
        self._stop_clip()
        self._reset(mode="session")
        self.data = data
        self.setWindowTitle(f"mmdesk — {Path(path).name}")
        app = data.meta.get("app") or {}
        if app.get("timeline"):
            self.timeline.set_source(app["timeline"])
        clip = data.source_path
        if clip and Path(clip).is_file():
            self.player.load(clip)
            self.tasks.submit(self._envelope, clip)
        elif clip:
            self.video.set_message(f"The session's clip {clip} is not here: results only, no playback.")
        self.timeline.fit(data.duration)
        self.transcript.show_data(data)
        self.select(int(app.get("selected", 0)) if data.windows else None)
        for note in data.meta.get("notes") or []:
            self.statusBar().showMessage(note, 10000)
        self._mark_dirty()

    def cancel_analysis(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _stop_clip(self) -> None:
        job, self.job = self.job, None
        if job is not None:
            job.cancel()
            job.join(10)
        self.player.unload()
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)

    def _reset(self, mode: str) -> None:
        self.mode = mode
        self._live_token = None  # a live session still stopping no longer adds to what is shown
        self.data = SessionData()
        self.selected = None
        self.envelope = None
        self.position = 0.0
        self._frame_index = -1
        self.banner.setVisible(False)
        self._set_live_views(mode == "live")
        self.timeline.clear()
        self.transcript.clear()
        self.audio.clear()
        self.video.set_frame(None)
        self.video.set_overlay(None, "")
        self.video.set_note("")
        self._show_selection()

    def _set_live_views(self, live: bool) -> None:
        """Live views scroll with the newest window; the others show the whole clip or session."""
        self.timeline.set_live(live)
        self.attribution.set_live(live)

    def _on_record(self, record: dict[str, Any]) -> None:
        if self.mode not in ("clip", "live"):
            return  # a late record of an analysis that was replaced
        self.data.add(record)
        kind = record["type"]
        if kind == "meta":
            self._show_stats(provider=active_provider(record.get("providers") or {}))
            if self.mode == "clip":
                self.timeline.fit(self.data.duration)
        elif kind == "window":
            tx = record.get("text") or {}
            if tx.get("present") and self.mode == "clip":
                self.transcript.add(record["start"], tx["text"], ", ".join(tx.get("origins") or ()))
            if self.mode == "live":
                self.selected = len(self.data) - 1  # live: the newest window is the selected one
            if len(self.data) == 1 and "fused" not in record and self.timeline.source == "fused":
                self.timeline.set_source("face")  # nothing fused to plot: show a real judgement
        elif kind == "end" and self.mode == "clip":
            try:
                self.progress.setVisible(False)
                self.cancel_button.setVisible(False)
                secs = record.get("seconds") or 0
                if secs:
                    self.stat["wps"].setText(f"analysed {record['windows'] / secs:.1f} windows/s")
                    self.stat["fps"].setText(f"{(record.get('media_seconds') or 0) / secs:.1f}× real time")
                if record.get("error"):
                    self._banner(f"Analysis stopped: {record['error']}; the {record['windows']} finished windows are kept.")
                if (record.get("asr") or {}).get("transcript") is not None:
                    self.transcript.show_data(self.data)  # whole utterances replace the windows' pieces
                if self.selected is None and self.data.windows:
                    self.select(self._most_confident())
            finally:  # whatever happens above, whoever waits for the end hears of it
                self.analysis_finished.emit(bool(record.get("complete")))
        self._mark_dirty()

    def _most_confident(self) -> int:
        """The window whose judgement is clearest: a good first window to look at."""
        src = self.timeline.source if self.data.fusion_available or self.timeline.source != "fused" else "face"
        s = self.data.series(src)
        peak = [max((p for p in row if not math.isnan(p)), default=0.0) - (1.0 if w["partial"] else 0.0)
                for row, w in zip(s.probs, self.data.windows)]
        return int(max(range(len(peak)), key=lambda i: peak[i]))

    def _on_progress(self, fraction: float) -> None:
        self.progress.setValue(int(fraction * 1000))

    def _on_failed(self, message: str) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self._banner(message)
        self.video.set_message(message)
        if self.mode == "clip":
            self.analysis_finished.emit(False)

    # == selection, playback ====================================================================
    def seek(self, t: float) -> None:
        """Click on the timeline: move playback there and select the window nearest to ``t``."""
        if not self.data.windows:
            return
        t = min(max(t, 0.0), self.data.duration)
        self.select(self.data.nearest(t))
        self.position = t
        self.player.seek(t)
        self._mark_dirty()

    def step(self, delta: int) -> None:
        if not self.data.windows or self.mode == "live":
            return
        pos = 0 if self.selected is None else min(max(self.selected + delta, 0), len(self.data) - 1)
        self.select(pos)
        self.position = window_centre(self.data.windows[pos])
        self.player.seek(self.position)

    def toggle_play(self) -> None:
        if self.mode in ("clip", "session"):
            self.player.toggle()

    def select(self, pos: int | None) -> None:
        self.selected = pos
        self._show_selection()

    def _on_position(self, t: float) -> None:
        self.position = t
        if self.player.playing and self.data.windows:
            pos = self.data.nearest(t)
            if pos != self.selected:
                self.select(pos)
        self._mark_dirty()

    def selected_record(self) -> dict[str, Any] | None:
        if self.selected is None or not (0 <= self.selected < len(self.data)):
            return None
        return self.data.windows[self.selected]

    def _show_selection(self) -> None:
        rec = self.selected_record()
        self.attribution.show_window(rec, self.data)
        self.interaction.show_window(rec, self.data)
        self.alone.show_window(rec, self.data)
        if rec is None:
            self.video.set_overlay(None, "")
            return
        self.timeline.select(rec["start"], rec["end"])
        face = rec.get("face") or {}
        fused = rec.get("fused")
        if fused:  # named, or it reads as the face's own expression, which may differ (the cards show both)
            label = f"{fused['label']} {fused['probs'][fused['label']]:.2f} (fused)"
        elif face.get("present"):
            label = f"{face['label']} {face['probs'][face['label']]:.2f} (face)"
        else:
            label = ""
        self.video.set_overlay(tuple(face["box"]) if face.get("box") else None, label)
        self.position_label.setText(f"window {rec['index']}: {rec['start']:.1f}–{rec['end']:.1f} s")

    # == redraw (GUI thread, ≤ 30 Hz) ===========================================================
    def _mark_dirty(self) -> None:
        self._dirty = True

    def _redraw(self) -> None:
        if self.live is not None:  # the waveform waits while a plot is redrawn (24 of 30 updates a second)
            self._redraw_live(wave=not (self._plot_steps or self._dirty))
        if self.mode in ("clip", "session") and self.envelope is not None and self._drawn_at != self.position:
            self._drawn_at = self.position  # the waveform only moves with the playback position
            t, peak = self.envelope.at(self.position, 5.0)
            self.audio.set_envelope(t, peak, self.position, self.envelope.rms_at(self.position))
        if self._plot_steps:
            self._plot_steps.pop(0)()
            return
        if not self._dirty:
            return
        self._dirty = False
        self.redraws += 1
        self.timeline.show_data(self.data)
        self.timeline.set_cursor(self.position if self.mode in ("clip", "session") else None)
        rec = self.selected_record()
        if rec is not None:  # with the data, so the timeline is painted once per new window
            self.timeline.select(rec["start"], rec["end"])
        if self.mode == "live" or (self.job is not None and not self.job.done.is_set()):
            # new windows change the stacked contributions, then the counts and the selected window's panels
            self._plot_steps = [lambda: self.attribution.show_stack(self.data), self._show_selection]

    def _redraw_live(self, wave: bool = True) -> None:
        live = self.live
        assert live is not None
        frame = live.latest_frame()
        if frame is not None and frame.index != self._frame_index:
            self._frame_index = frame.index
            self.video.set_frame(bgr_to_qimage(frame.image))
        if live.has_microphone and wave:
            self.audio.set_samples(live.audio_tail(5.0))
        self._live_ticks += 1
        if self._live_ticks % 8:  # numbers people read: 4 updates a second are plenty
            return
        st = live.stats()
        self._show_stats(provider=st.provider, fps=st.capture_fps, wps=st.windows_per_s,
                         latency=st.latency_ms, dropped=st.dropped_windows)

    def _show_stats(self, provider: str, fps: float | None = None, wps: float | None = None,
                    latency: float | None = None, dropped: int | None = None) -> None:
        self.stat["provider"].setText(f"Provider: <b>{provider}</b>")
        self.stat["fps"].setText("capture —" if fps is None else f"capture {fps:.1f} fps")
        self.stat["wps"].setText("— windows/s" if wps is None else f"{wps:.1f} windows/s")
        self.stat["latency"].setText("latency —" if latency is None or math.isnan(latency)
                                     else f"latency {latency:.0f} ms")
        self.stat["dropped"].setText("dropped —" if dropped is None else f"dropped {dropped}")

    # == save and export ========================================================================
    def _last_dir(self) -> str:
        return str(self.settings.value("paths/last_dir", str(Path.home())))

    def app_settings(self) -> dict[str, Any]:
        return {"timeline": self.timeline.source, "selected": self.selected}

    def choose_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session", self._last_dir(), SESSION_FILTER)
        if path:
            self.save(path)

    def save(self, path: str) -> bool:
        try:
            save_session(path, self.data, self.app_settings())
        except MmdeskError as e:
            self._banner(e.one_line())
            return False
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def _choose_export(self, fmt: str) -> None:
        filt = {"csv": "CSV (*.csv)", "jsonl": "JSON Lines (*.jsonl)", "png": "PNG image (*.png)"}[fmt]
        path, _ = QFileDialog.getSaveFileName(self, f"Export {fmt.upper()}", self._last_dir(), filt)
        if path:
            self.export(path, fmt)

    def export(self, path: str, fmt: str) -> bool:
        try:
            if fmt == "csv":
                export_csv(path, self.data)
            elif fmt == "jsonl":
                export_jsonl(path, self.data)
            elif not self.panels.grab().save(path, "PNG"):
                raise MmdeskError(f"cannot write {path}", "check the folder and permissions")
        except MmdeskError as e:
            self._banner(e.one_line())
            return False
        self.statusBar().showMessage(f"Exported {path}", 5000)
        return True

    # == drag and drop ==========================================================================
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_path(urls[0])
            event.acceptProposedAction()

