"""The video view (frame, face box, current label) and clip playback (a thin adapter over
mmdesk.playback, which decodes with PyAV and plays the sound through sounddevice).

Clip playback used QtMultimedia until 2026-12: it brought Qt's own FFmpeg, Qt Quick/QML and QtNetwork
into the installer bundle (~42 MB of 539) while the app already ships PyAV and PortAudio.
"""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QEvent, QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from mmdesk.playback import Frame, Player, PlayerEvents
from mmdesk.qt.qt_theme import LABEL_COLORS

PLAYBACK_ERROR = ""  # playback needs nothing beyond the app's own dependencies (PyAV, sounddevice)


def bgr_to_qimage(image: np.ndarray) -> QImage:
    """Wrap BGR pixels as they are (Qt reads BGR888 itself: no channel swap in numpy)."""
    h, w = image.shape[:2]
    pixels = np.ascontiguousarray(image)
    return QImage(pixels.data, w, h, pixels.strides[0], QImage.Format.Format_BGR888).copy()  # own the pixels


class VideoView(QWidget):
    """Paints the newest frame scaled to fit, the face box and a label chip; or a message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        # it paints every pixel itself: a new frame must not repaint the widgets behind it
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.image: QImage | None = None
        self._pixels: np.ndarray | None = None  # the buffer a wrapped RGB frame's QImage points into
        self.source_size: tuple[int, int] | None = None  # pixels the face box is given in
        self.box: tuple[int, int, int, int] | None = None  # source pixels
        self.label = ""
        self.message = ""
        self.note = ""  # small line under the picture (e.g. no audio output)

    def sizeHint(self) -> QSize:
        return QSize(560, 315)

    def set_frame(self, image: QImage | np.ndarray | None, source_size: tuple[int, int] | None = None) -> None:
        """A QImage, or (h, w, 3) uint8 RGB pixels (wrapped, not copied); ``source_size``: the frame's
        size before it was scaled for this view, the pixels ``set_overlay`` boxes are given in."""
        if isinstance(image, np.ndarray):
            h, w = image.shape[:2]
            self._pixels = image
            image = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_RGB888)
        else:
            self._pixels = None
        self.image = image
        self.source_size = source_size if image is not None else None
        self.update()

    def set_overlay(self, box: tuple[int, int, int, int] | None, label: str) -> None:
        if (box, label) != (self.box, self.label):
            self.box, self.label = box, label
            self.update()

    def set_message(self, text: str) -> None:
        self.message = text
        self.update()

    def set_note(self, text: str) -> None:
        self.note = text
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("#111418"))
        if self.image is not None and not self.image.isNull():
            iw, ih = self.image.width(), self.image.height()
            s = min(self.width() / iw, self.height() / ih)
            target = QRectF((self.width() - iw * s) / 2, (self.height() - ih * s) / 2, iw * s, ih * s)
            p.drawImage(target, self.image)
            if self.box:
                x, y, w, h = self.box
                if self.source_size:  # the frame was scaled before it got here; the box was not
                    s = target.width() / self.source_size[0]
                color = QColor(LABEL_COLORS.get(self.label.split()[0] if self.label else "", "#39d353"))
                p.setPen(QPen(color, 3))
                r = QRectF(target.x() + x * s, target.y() + y * s, w * s, h * s)
                p.drawRect(r)
                if self.label:
                    self._chip(p, r.x(), max(target.y(), r.y() - 26), self.label, color)
            elif self.label:
                self._chip(p, target.x() + 8, target.y() + 8, self.label, QColor("#39d353"))
        if self.message:
            p.setPen(QColor("#e5e7eb"))
            f = QFont(self.font())
            f.setPointSizeF(f.pointSizeF() * 1.1)
            p.setFont(f)
            p.drawText(self.rect().adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.message)
        if self.note:
            p.setFont(self.font())
            p.setPen(QColor("#fbbf24"))
            p.drawText(self.rect().adjusted(8, 0, -8, -6), Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft,
                       self.note)
        p.end()

    def _chip(self, p: QPainter, x: float, y: float, text: str, color: QColor) -> None:
        f = QFont(self.font())
        f.setBold(True)
        p.setFont(f)
        w = p.fontMetrics().horizontalAdvance(text) + 14
        r = QRectF(x, y, w, 22)
        p.fillRect(r, color)
        p.setPen(QColor("#111111"))
        p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)


class ClipPlayer(QObject):
    """Plays a clip into a ``VideoView``; degrades to a note, never raises.

    The engine (mmdesk.playback.Player) decodes and keeps time on its own thread; its callbacks leave
    the newest frame and position in a mailbox and wake the GUI thread once, so a busy GUI thread gets
    the latest picture instead of a backlog. ``seek`` while paused shows the frame at that position.
    """

    position = Signal(float)  # seconds
    playing_changed = Signal(bool)
    problem = Signal(str)
    _wake = Signal()  # engine thread -> GUI thread: the mailbox has something

    def __init__(self, view: VideoView, parent: QObject | None = None, output: str = "auto") -> None:
        super().__init__(parent)
        self.view = view
        self.available = not PLAYBACK_ERROR
        self.frames = 0
        self._mail_lock = threading.Lock()
        self._mail_frame: Frame | None = None
        self._mail_position: float | None = None
        self._mail_events: list[tuple[str, object]] = []  # playing changes and problems, in order
        self._woken = False
        self._wake.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self.engine = Player(PlayerEvents(frame=self._post_frame, position=self._post_position,
                                          playing=lambda p: self._post("playing", p),
                                          problem=lambda m: self._post("problem", m)), output=output)
        self.audio_note = self.engine.audio_note
        view.installEventFilter(self)
        self._view_resized()

    def load(self, path: str) -> None:
        self.engine.load(path)

    def unload(self) -> None:
        self.engine.unload()

    def close(self) -> None:
        """Stop the engine's thread (the window is going away)."""
        self.engine.close()

    @property
    def playing(self) -> bool:
        return self.engine.playing

    def toggle(self) -> None:
        self.engine.toggle()

    def seek(self, seconds: float) -> None:
        self.engine.seek(seconds)

    # -- engine thread: leave it in the mailbox, wake the GUI thread once -------------------------
    def _post_frame(self, frame: Frame) -> None:
        self._leave(frame=frame)

    def _post_position(self, t: float) -> None:
        self._leave(position=t)

    def _post(self, kind: str, value: object) -> None:
        self._leave(event=(kind, value))

    def _leave(self, *, frame: Frame | None = None, position: float | None = None,
               event: tuple[str, object] | None = None) -> None:
        with self._mail_lock:
            if frame is not None:
                self._mail_frame = frame
            if position is not None:
                self._mail_position = position
            if event is not None:
                self._mail_events.append(event)
            wake, self._woken = not self._woken, True
        if wake:
            self._wake.emit()

    # -- GUI thread ------------------------------------------------------------------------------
    def _deliver(self) -> None:
        with self._mail_lock:
            frame, t, events = self._mail_frame, self._mail_position, self._mail_events
            self._mail_frame, self._mail_position, self._mail_events = None, None, []
            self._woken = False
        if frame is not None:
            self.frames += 1
            self.view.set_frame(frame.pixels, frame.source_size)
        if t is not None:
            self.position.emit(t)
        for kind, value in events:
            if kind == "playing":
                self.playing_changed.emit(bool(value))
            else:
                self.problem.emit(str(value))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view and event.type() == QEvent.Type.Resize:
            self._view_resized()
        return False

    def _view_resized(self) -> None:
        ratio = self.view.devicePixelRatioF()
        self.engine.set_view_size(round(self.view.width() * ratio), round(self.view.height() * ratio))
