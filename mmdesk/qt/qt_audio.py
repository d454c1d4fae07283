"""Audio level meter (dBFS) and a scrolling waveform."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

FLOOR_DB = -60.0
WAVE_SPAN_S = 5.0  # seconds of waveform on screen


def dbfs(rms: float) -> float:
    return max(FLOOR_DB, 20 * math.log10(rms)) if rms > 0 else FLOOR_DB


class LevelMeter(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.db = FLOOR_DB
        self.setMinimumHeight(14)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(200, 14)

    def set_db(self, db: float) -> None:
        if abs(db - self.db) > 0.1:
            self.db = db
            self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#e5e7eb"))
        frac = (self.db - FLOOR_DB) / -FLOOR_DB
        g = QLinearGradient(0, 0, self.width(), 0)
        g.setColorAt(0.0, QColor("#22c55e"))
        g.setColorAt(0.75, QColor("#eab308"))
        g.setColorAt(1.0, QColor("#ef4444"))
        p.fillRect(QRectF(0, 0, self.width() * frac, self.height()), g)
        p.end()


class AudioView(QWidget):
    """Meter + dB readout above a waveform of the last ``WAVE_SPAN_S`` seconds."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.meter = LevelMeter()
        self.readout = QLabel("— dBFS")
        self.readout.setObjectName("muted")
        self.readout.setMinimumWidth(80)
        self.readout.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("waveform")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self._top = 0.0
        self.scale_to(1.0)
        self.plot.getAxis("bottom").setStyle(showValues=False)
        self.plot.setFixedHeight(70)
        self.curve = self.plot.plot(pen=pg.mkPen("#4c78a8", width=1))
        self.lower = self.plot.plot(pen=pg.mkPen("#4c78a8", width=1))
        self.fill = pg.FillBetweenItem(self.curve, self.lower, brush=pg.mkBrush(76, 120, 168, 110))
        self.plot.addItem(self.fill)
        top = QHBoxLayout()
        top.addWidget(QLabel("Level"))
        top.addWidget(self.meter, 1)
        top.addWidget(self.readout)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.plot)

    def set_samples(self, samples: np.ndarray, rate: int = 16_000) -> None:
        """Live: the last seconds of audio (min/max per pixel-ish bin, so 5 s draw cheaply)."""
        n = len(samples)
        bins = 600
        if n >= bins:
            blocks = samples[: n - n % bins].reshape(bins, -1)
            hi, lo = blocks.max(axis=1), blocks.min(axis=1)
            t = np.linspace(-n / rate, 0, bins)
        else:
            hi = lo = samples
            t = np.arange(n) / rate - n / rate
        self.curve.setData(t, hi)
        self.lower.setData(t, lo)
        self.plot.setXRange(-WAVE_SPAN_S, 0, padding=0)
        self.scale_to(float(np.abs(samples).max()) if n else 0.0)
        tail = samples[-1600:]  # the last 100 ms
        self._level(float(np.sqrt(np.mean(tail.astype(np.float64) ** 2))) if len(tail) else 0.0)

    def set_envelope(self, t: np.ndarray, peak: np.ndarray, now: float, rms: float) -> None:
        """Clip review: the envelope up to the playback position."""
        self.curve.setData(t, peak)
        self.lower.setData(t, -peak)
        self.plot.setXRange(now - WAVE_SPAN_S, now, padding=0)
        self.scale_to(float(peak.max()) if len(peak) else 0.0)
        self._level(rms)

    def scale_to(self, peak: float) -> None:
        """Quiet speech fills the view too: the y range follows the loudest sample shown (≥ 0.05)."""
        top = max(0.05, min(1.0, peak * 1.1))
        if abs(top - self._top) > 0.02:
            self._top = top
            self.plot.setYRange(-top, top, padding=0)
            self.plot.getAxis("left").setTicks([[(0, "0")]])

    def clear(self) -> None:
        self.curve.setData([], [])
        self.lower.setData([], [])
        self._level(0.0)

    def _level(self, rms: float) -> None:
        db = dbfs(rms)
        self.meter.set_db(db)
        self.readout.setText(f"{db:5.1f} dBFS" if db > FLOOR_DB else "silent")
