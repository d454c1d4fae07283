"""Timeline of the 7 emotion probabilities and sarcasm, per window.

Live: scrolls with the newest window. Clip review: the whole clip, zoom (wheel) and pan (drag) on
the time axis. A click emits ``clicked(seconds)``; the selected window is shaded and the playback
position is a vertical line.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from mmdesk.core.labels import LABELS
from mmdesk.qt.qt_plot import set_range
from mmdesk.qt.qt_theme import GRID_COLOR, LABEL_COLORS, SARCASM_COLOR
from mmdesk.session.model import FUSION_MISSING, SessionData

LIVE_SPAN_S = 30.0
SOURCES = {"fused": "Fused", "face": "Face", "voice": "Voice", "text": "Text"}


def live_range(end: float) -> tuple[float, float]:
    """The time span a live view shows when the newest window ends at ``end`` (s)."""
    return max(0.0, end - LIVE_SPAN_S), max(end, LIVE_SPAN_S * 0.2)


def first_visible(t: np.ndarray, start: float) -> int:
    """Position of the first of the sorted times ``t`` to draw for a view starting at ``start``: one
    point before it, so a line enters from the edge. A live view draws only these: a session an
    hour long would otherwise hand every curve thousands of points twice a second."""
    return max(0, int(np.searchsorted(t, start)) - 1)


class Timeline(QWidget):
    clicked = Signal(float)
    source_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = "fused"
        self.live = False
        self.combo = QComboBox()
        for key, name in SOURCES.items():
            self.combo.addItem(name, key)
        self.combo.currentIndexChanged.connect(self._combo_changed)
        self.note = QLabel("")
        self.note.setObjectName("muted")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("timeline")
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.setLabel("left", "probability")
        # pyqtgraph's own grid (translucent lines across the view, redrawn with the axis) cost ~38 of
        # the ~47 ms of a repaint; opaque rules at the tick marks read as well and cost nothing
        ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        self.plot.getAxis("left").setTicks([[(y, f"{y:.1f}") for y in ticks]])
        for y in ticks[1:]:
            self.plot.addItem(pg.InfiniteLine(pos=y, angle=0, movable=False, pen=pg.mkPen(GRID_COLOR)))
        self.plot.setYRange(0, 1.02, padding=0)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.getViewBox().setLimits(yMin=-0.02, yMax=1.05, xMin=-1)
        self.curves: dict[str, pg.PlotDataItem] = {}
        for label in LABELS:
            self.curves[label] = self.plot.plot(
                [], [], pen=pg.mkPen(LABEL_COLORS[label], width=2), connect="finite")
        self.curves["sarcasm"] = self.plot.plot(
            [], [], pen=pg.mkPen(SARCASM_COLOR, width=2, style=pg.QtCore.Qt.PenStyle.DashLine),
            connect="finite")
        # the legend sits above the plot, where it never hides a line near p = 1
        legend = QLabel("  ".join(
            [f"<span style='color:{LABEL_COLORS[k]}'>━</span> {k}" for k in LABELS]
            + [f"<span style='color:{SARCASM_COLOR}'>┅</span> sarcasm"]))
        legend.setTextFormat(Qt.TextFormat.RichText)
        self.selection = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(59, 130, 246, 40),
                                             pen=pg.mkPen(59, 130, 246, 120))
        self.selection.setVisible(False)
        self.plot.addItem(self.selection)
        self.cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#ef4444", width=1.5))
        self.cursor.setVisible(False)
        self.plot.addItem(self.cursor)
        self.plot.scene().sigMouseClicked.connect(self._scene_clicked)
        head = QHBoxLayout()
        head.addWidget(QLabel("Judgement of"))
        head.addWidget(self.combo)
        head.addWidget(self.note, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(head)
        lay.addWidget(legend)
        lay.addWidget(self.plot, 1)

    # -- data --------------------------------------------------------------------------------------
    def set_source(self, source: str) -> None:
        i = self.combo.findData(source)
        if i >= 0:
            self.combo.setCurrentIndex(i)

    def _combo_changed(self) -> None:
        self.source = self.combo.currentData()
        self.source_changed.emit(self.source)

    def show_data(self, data: SessionData) -> None:
        s = data.series(self.source)
        t, probs, sarcasm = s.t, s.probs, s.sarcasm
        if self.live and len(t):
            view = live_range(float(data.windows[-1]["end"]))
            first = first_visible(t, view[0])
            t, probs, sarcasm = t[first:], probs[first:], sarcasm[first:]
        for k, label in enumerate(LABELS):
            self.curves[label].setData(t, probs[:, k])
        has_sarcasm = bool(np.isfinite(s.sarcasm).any())
        self.curves["sarcasm"].setData(t, sarcasm if has_sarcasm else np.full(len(t), np.nan))
        notes = []
        if self.source == "fused" and not data.fusion_available and len(data):
            notes.append(f"Fused: {data.fusion_note} — pick Face, Voice or Text")
        elif not has_sarcasm and len(data):
            notes.append(f"sarcasm: {FUSION_MISSING}" if not data.fusion_available else "")
        self.note.setText(" ".join(n for n in notes if n))
        if self.live and len(t):
            set_range(self.plot, x=view)

    def fit(self, duration: float) -> None:
        self.plot.getViewBox().setLimits(xMin=-0.5, xMax=max(duration, 1.0) + 0.5)
        set_range(self.plot, x=(0, max(duration, 1.0)), padding=0.01)

    def set_live(self, live: bool) -> None:
        self.live = live
        self.plot.setMouseEnabled(x=not live, y=False)
        if live:
            self.plot.getViewBox().setLimits(xMin=None, xMax=None)

    def select(self, start: float, end: float) -> None:
        self.selection.setRegion((start, end))
        self.selection.setVisible(True)

    def set_cursor(self, t: float | None) -> None:
        self.cursor.setVisible(t is not None)
        if t is not None:
            self.cursor.setValue(t)

    def clear(self) -> None:
        for c in self.curves.values():
            c.setData([], [])
        self.selection.setVisible(False)
        self.cursor.setVisible(False)
        self.note.setText("")

    # -- clicks --------------------------------------------------------------------------------------
    def _scene_clicked(self, ev) -> None:
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        self.clicked.emit(float(vb.mapSceneToView(ev.scenePos()).x()))

    def x_to_widget(self, t: float) -> tuple[int, int]:
        """Widget coordinates of time ``t`` at mid-height of the plot (for tests and tooling)."""
        vb = self.plot.getViewBox()
        y0, y1 = vb.viewRange()[1]
        scene = vb.mapViewToScene(pg.Point(t, (y0 + y1) / 2))
        p = self.plot.mapTo(self, self.plot.mapFromScene(scene))
        return p.x(), p.y()
