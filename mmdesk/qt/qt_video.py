"""The video view (frame, face box, current label) and clip playback through QtMultimedia."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QRectF, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from mmdesk.qt.qt_theme import LABEL_COLORS

try:  # QtMultimedia ships in PySide6-Addons; without it the app still analyses, it cannot play
    from PySide6.QtMultimedia import (
        QAudioOutput,
        QMediaDevices,
        QMediaPlayer,
        QVideoSink,
    )

    MULTIMEDIA_ERROR = ""
except ImportError as e:
    MULTIMEDIA_ERROR = f"video playback needs QtMultimedia ({e}); install PySide6-Addons"


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
        self.box: tuple[int, int, int, int] | None = None  # source pixels
        self.label = ""
        self.message = ""
        self.note = ""  # small line under the picture (e.g. no audio output)

    def sizeHint(self) -> QSize:
        return QSize(560, 315)

    def set_frame(self, image: QImage | None) -> None:
        self.image = image
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
    """QMediaPlayer with its frames sent to a ``VideoView``; degrades to a note, never raises.

    ``show_at(ms)`` shows the frame at a position while paused (QMediaPlayer only renders frames
    while playing, so it plays muted until the first frame arrives and pauses again).
    """

    position = Signal(float)  # seconds
    playing_changed = Signal(bool)
    problem = Signal(str)

    def __init__(self, view: VideoView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.available = not MULTIMEDIA_ERROR
        self.audio_note = ""
        self._peek = False
        self.frames = 0
        if not self.available:
            return
        self.player = QMediaPlayer(self)
        self.sink = QVideoSink(self)
        self.player.setVideoSink(self.sink)
        self.audio = QAudioOutput(self)
        self.player.setAudioOutput(self.audio)
        if not QMediaDevices.audioOutputs():
            self.audio_note = "no audio output device: playback is silent"
        self.sink.videoFrameChanged.connect(self._frame)
        self.player.positionChanged.connect(lambda ms: self.position.emit(ms / 1000))
        self.player.playbackStateChanged.connect(self._state)
        self.player.errorOccurred.connect(lambda _e, msg: self.problem.emit(f"playback: {msg}"))

    def load(self, path: str) -> None:
        if self.available:
            self.player.setSource(QUrl.fromLocalFile(path))

    def unload(self) -> None:
        if self.available:
            self.player.stop()
            self.player.setSource(QUrl())

    @property
    def playing(self) -> bool:
        return self.available and self.player.playbackState() == QMediaPlayer.PlaybackState.PlayingState

    def toggle(self) -> None:
        if not self.available:
            return
        if self.playing and not self._peek:
            self.player.pause()
        else:
            self._peek = False
            self.audio.setMuted(False)
            self.player.play()

    def seek(self, seconds: float) -> None:
        if not self.available:
            return
        self.player.setPosition(round(seconds * 1000))
        if not self.playing:
            self._peek = True
            self.audio.setMuted(True)
            self.player.play()

    def _frame(self, frame) -> None:
        image = frame.toImage()
        if image.isNull():
            return
        self.frames += 1
        self.view.set_frame(image)
        if self._peek:
            self._peek = False
            self.player.pause()
            self.audio.setMuted(False)

    def _state(self, state) -> None:
        self.playing_changed.emit(state == QMediaPlayer.PlaybackState.PlayingState and not self._peek)
