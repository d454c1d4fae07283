"""Audio level meter (dBFS) and a scrolling waveform."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from mmdesk.qt.qt_plot import set_range

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
        self.readout = QLabel("-60.0 dBFS")  # the widest reading: the label's size is fixed to it
        self.readout.setObjectName("muted")
        self.readout.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # Its text changes 30 times a second; a label that may change size makes every setText
        # re-run the layouts of the whole column up to the window's splitter. A fixed one does not.
        self.readout.setFixedSize(self.readout.sizeHint().expandedTo(QSize(80, 0)))
        self.readout.setText("— dBFS")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("waveform")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self._top = 0.0
        self.scale_to(1.0)
        self.plot.getAxis("bottom").setStyle(showValues=False)
        self.plot.setFixedHeight(70)
        # one vertical stroke per bin, from its minimum to its maximum: reads as a filled envelope and
        # is one path. (pyqtgraph's FillBetweenItem rebuilt two paths in Python on every update: 6 ms
        # each, 30 times a second, the largest cost on the GUI thread in a live session.)
        self.curve = self.plot.plot(pen=pg.mkPen("#4c78a8", width=1), connect="pairs")
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
        self._draw(t, lo, hi)
        set_range(self.plot, x=(-WAVE_SPAN_S, 0))
        self.scale_to(float(np.abs(samples).max()) if n else 0.0)
        tail = samples[-1600:]  # the last 100 ms
        self._level(float(np.sqrt(np.mean(tail.astype(np.float64) ** 2))) if len(tail) else 0.0)

    def set_envelope(self, t: np.ndarray, peak: np.ndarray, now: float, rms: float) -> None:
        """Clip review: the envelope up to the playback position."""
        self._draw(t, -peak, peak)
        set_range(self.plot, x=(now - WAVE_SPAN_S, now))
        self.scale_to(float(peak.max()) if len(peak) else 0.0)
        self._level(rms)

    def _draw(self, t: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Segments (t, lo)–(t, hi) for every bin (``connect="pairs"`` joins points 0–1, 2–3, …)."""
        xs = np.repeat(np.asarray(t, np.float64), 2)
        ys = np.empty(len(xs))
        ys[0::2], ys[1::2] = lo, hi
        self.curve.setData(xs, ys)

    def waveform(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the waveform shows now: times, minima, maxima (for tests and tooling)."""
        xs, ys = self.curve.getData()
        if xs is None or not len(xs):
            return np.zeros(0), np.zeros(0), np.zeros(0)
        return xs[0::2], ys[0::2], ys[1::2]

    def scale_to(self, peak: float) -> None:
        """Quiet speech fills the view too: the y range follows the loudest sample shown (≥ 0.05)."""
        top = max(0.05, min(1.0, peak * 1.1))
        if abs(top - self._top) > 0.02:
            self._top = top
            set_range(self.plot, y=(-top, top))
            self.plot.getAxis("left").setTicks([[(0, "0")]])

    def clear(self) -> None:
        self.curve.setData([], [])
        self._level(0.0)

    def _level(self, rms: float) -> None:
        db = dbfs(rms)
        self.meter.set_db(db)
        self.readout.setText(f"{db:5.1f} dBFS" if db > FLOOR_DB else "silent")
