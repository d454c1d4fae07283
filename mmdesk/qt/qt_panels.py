"""Attribution, interaction, "each modality alone" and transcript panels.

Each panel shows the values of the selected window record, or says plainly why it cannot: a
missing fusion model, an absent modality. Nothing is estimated here.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from mmdesk.core.labels import LABELS
from mmdesk.qt.qt_plot import set_range
from mmdesk.qt.qt_theme import (
    GRID_COLOR,
    INTERACTION_COLORS,
    LABEL_COLORS,
    MODALITY_COLORS,
    MUTED,
)
from mmdesk.qt.qt_timeline import first_visible, live_range
from mmdesk.session.model import (
    FUSION_MISSING,
    INTERACTION_TYPES,
    MODALITIES,
    SessionData,
)


def _muted(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setObjectName("muted")
    label.setWordWrap(True)
    return label


class ContributionBars(QWidget):
    """Signed horizontal bars, one per modality, around a zero line; values printed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: dict[str, float] = {}
        self.absent: set[str] = set()
        self.setMinimumHeight(78)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:
        return QSize(300, 84)

    def set_values(self, values: dict[str, float], absent: set[str]) -> None:
        self.values, self.absent = dict(values), set(absent)
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = p.fontMetrics()
        name_w = fm.horizontalAdvance("voice") + 12
        val_w = fm.horizontalAdvance("+0.000") + 10
        row_h = self.height() / len(MODALITIES)
        left, right = name_w, self.width() - val_w
        scale = max([abs(v) for v in self.values.values()] + [0.05])
        zero = left + (right - left) / 2
        half = (right - left) / 2
        for i, m in enumerate(MODALITIES):
            y = i * row_h
            p.setPen(QColor("#374151"))
            p.drawText(QRectF(0, y, name_w, row_h), Qt.AlignmentFlag.AlignVCenter, m)
            if m in self.absent or m not in self.values:
                p.setPen(QColor(MUTED))
                p.drawText(QRectF(left, y, right - left, row_h), Qt.AlignmentFlag.AlignCenter, "absent")
                continue
            v = self.values[m]
            w = half * abs(v) / scale
            r = QRectF(zero if v >= 0 else zero - w, y + row_h * 0.2, w, row_h * 0.6)
            p.fillRect(r, QColor(MODALITY_COLORS[m]))
            p.setPen(QColor("#111827"))
            p.drawText(QRectF(right, y, val_w, row_h), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                       f"{v:+.3f}")
        p.setPen(QPen(QColor("#9ca3af"), 1))
        p.drawLine(int(zero), 0, int(zero), self.height())
        p.end()


class AttributionPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.bars = ContributionBars()
        self.message = _muted(FUSION_MISSING)
        self.stack_title = QLabel("Contribution per window: " + " ".join(
            f"<span style='color:{MODALITY_COLORS[m]}'>■</span> {m}" for m in MODALITIES))
        self.stack_title.setTextFormat(Qt.TextFormat.RichText)
        self.stack = pg.PlotWidget(background="w")
        self.stack.setObjectName("contributions")
        self.stack.setMenuEnabled(False)
        self.stack.setMouseEnabled(x=False, y=False)
        self.stack.hideButtons()
        self.stack.setLabel("left", "contribution")
        # probabilities: pyqtgraph's automatic scale prefix turned the ticks into "500 (x0.001)"
        self.stack.getAxis("left").enableAutoSIPrefix(False)
        self.stack.setMinimumHeight(90)
        # a zero rule instead of pyqtgraph's translucent grid (most of a repaint's cost, see the timeline)
        self.stack.addItem(pg.InfiniteLine(pos=0.0, angle=0, movable=False, pen=pg.mkPen(GRID_COLOR)))
        # created with the panel, then only their data change (adding them cost ~20 ms in the first window's pass)
        self.stack_items = {m: pg.BarGraphItem(x=[], y0=[], height=[], width=0.4, brush=MODALITY_COLORS[m],
                                               pen=pg.mkPen(None)) for m in MODALITIES}
        for item in self.stack_items.values():
            self.stack.addItem(item)
        self.live = False
        self._stacked: tuple[SessionData, int] | None = None  # the data and version the stack shows
        self.shown: dict[str, float] = {}  # what the bars show now (for tests and exports)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.message)
        lay.addWidget(self.bars)
        lay.addWidget(self.stack_title)
        lay.addWidget(self.stack, 1)

    def show_window(self, record: dict | None, data: SessionData) -> None:
        att = (record or {}).get("attribution")
        self.bars.setVisible(bool(att))
        if not data.fusion_available:
            self.message.setText(f"Attribution: {data.fusion_note}.")
            self.message.setVisible(True)
            self.title.setText("")
            self.shown = {}
        elif att is None:
            self.message.setText("Select a window on the timeline." if record is None
                                 else "No attribution for this window.")
            self.message.setVisible(True)
            self.title.setText("")
            self.shown = {}
        else:
            self.message.setVisible(False)
            self.shown = {m: float(att["values"].get(m, 0.0)) for m in MODALITIES}
            self.bars.set_values(self.shown, set(att.get("absent") or ()))
            self.title.setText(
                f"<b>Why “{att['target']}”?</b> p = {att['full']:.2f} with every modality, "
                f"{att['baseline']:.2f} with none; each bar is one modality's share (Shapley).")
        self.show_stack(data)

    def set_live(self, live: bool) -> None:
        """Live: the stacked contributions scroll with the timeline (its last ``LIVE_SPAN_S``)."""
        self.live = live
        self._stacked = None

    def show_stack(self, data: SessionData) -> None:
        """The contributions of the windows, stacked: positive shares up, negative down."""
        if self._stacked == (data, data.version):
            return  # another window selected: the stack is the same
        self._stacked = (data, data.version)
        t, vals = data.contributions()
        ok = np.isfinite(vals).all(axis=1)
        self.stack.setVisible(bool(ok.any()))
        self.stack_title.setVisible(bool(ok.any()))
        if not ok.any():
            for item in self.stack_items.values():
                item.setOpts(x=[], y0=[], height=[], width=0.4)
            return
        t, vals = t[ok], vals[ok]
        gaps = np.diff(t)
        width = float(gaps[gaps > 1e-6].min()) * 0.85 if (gaps > 1e-6).any() else 0.4
        if self.live:
            x_range = live_range(float(data.windows[-1]["end"]))
            first = first_visible(t, x_range[0])
            t, vals = t[first:], vals[first:]
        else:
            x_range = (float(t[0]) - width, float(t[-1]) + width)
        pos, neg = np.clip(vals, 0, None), np.clip(vals, None, 0)
        pos_base, neg_base = np.cumsum(pos, axis=1) - pos, np.cumsum(neg, axis=1)  # where each bar starts
        for k, m in enumerate(MODALITIES):
            v = vals[:, k]
            y0 = np.where(v >= 0, pos_base[:, k], neg_base[:, k])
            self.stack_items[m].setOpts(x=t, y0=y0, height=np.abs(v), width=width)
        # Ranges set here, not auto-ranged: pyqtgraph's auto-range ran in the paint, changed the
        # range there and so painted the plot again (up to 3 paints per window, each regenerating
        # the axes). Rounded out to 0.1, most new windows leave the contribution axis as it is.
        y_range = (math.floor(float(neg.sum(axis=1).min()) * 10 + 1e-9) / 10,
                   max(0.1, math.ceil(float(pos.sum(axis=1).max()) * 10 - 1e-9) / 10))
        set_range(self.stack, x=x_range, y=y_range, padding=0.02)


class InteractionPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.type_label = QLabel("")
        self.type_label.setObjectName("big")
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        self.counts = _muted("")
        self.counts.setTextFormat(Qt.TextFormat.RichText)
        self.caveat = _muted("")  # what the fusion head learnt from: shown, not buried in a card
        self.caveat.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.type_label)
        lay.addWidget(self.reason)
        lay.addStretch(1)
        lay.addWidget(self.caveat)
        lay.addWidget(QLabel("This session:"))
        lay.addWidget(self.counts)
        self.shown_type = ""

    def show_window(self, record: dict | None, data: SessionData) -> None:
        inter = (record or {}).get("interaction")
        if not data.fusion_available:
            self.type_label.setText("—")
            self.reason.setText(f"Interaction type: {data.fusion_note}.")
            self.shown_type = ""
        elif inter is None:
            self.type_label.setText("—")
            self.reason.setText("Select a window on the timeline." if record is None
                                else "No interaction type for this window.")
            self.shown_type = ""
        else:
            self.shown_type = inter["type"]
            color = INTERACTION_COLORS.get(inter["type"], "#111827")
            self.type_label.setText(f"<span style='color:{color}'>{inter['type'].capitalize()}</span>")
            self.reason.setText(inter.get("text") or inter.get("reason", ""))
        note, full = data.fusion_caveat
        self.caveat.setText(f"Note: {note}." if note else "")
        self.caveat.setToolTip(full)
        counts = data.interaction_counts()
        if counts:
            self.counts.setText(" · ".join(
                f"<span style='color:{INTERACTION_COLORS[t]}'>{t}</span> {counts.get(t, 0)}" for t in INTERACTION_TYPES))
        else:
            self.counts.setText("no interaction types yet" if data.fusion_available else FUSION_MISSING)


# The widest texts of a card's values: their width is reserved once (see _Card)
_WIDEST_LABELS = tuple(f"{k} 0.00" for k in LABELS) + ("not available",)
_MODALITY_DETAILS = ("sarcasm 0.00 · fusion head", "unimodal model")
_FUSED_DETAILS = ("sarcasm 0.00 · incongruity 0.00", "no fusion model in this pack")


class _Card(QFrame):
    def __init__(self, title: str, color: str, details: tuple[str, ...]) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(f"QFrame {{ border-left: 4px solid {color}; background: #fafafa; }}"
                           "QLabel { border: none; background: transparent; }")
        self.title = QLabel(f"<b>{title}</b>")
        self.label = QLabel("")
        self.detail = QLabel("")
        self.detail.setObjectName("muted")  # one line: the row keeps its height
        # A card as wide as its text made the row's minimum width follow the values: past the
        # splitter's share it took 18 px from the left column and gave them back on the next
        # window, resizing all three plots (every axis redrawn, ~25 ms on the GUI thread) each time.
        # The width is reserved for the widest value instead and never depends on the text.
        for lab, widest in ((self.label, _WIDEST_LABELS), (self.detail, details)):
            lab.setMinimumWidth(max(self._text_width(lab, t) for t in widest))
            lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.set("", "")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        lay.setSpacing(1)
        lay.addWidget(self.title)
        lay.addWidget(self.label)
        lay.addWidget(self.detail)

    def _text_width(self, label: QLabel, text: str) -> int:
        label.setText(self._rich(text) if label is self.label else text)
        return label.sizeHint().width()

    @staticmethod
    def _rich(label: str, color: str | None = None) -> str:
        return f"<span style='font-size:14px; font-weight:600; color:{color or '#111827'}'>{label}</span>"

    def set(self, label: str, detail: str, color: str | None = None) -> None:
        self.label.setText(self._rich(label, color))
        self.detail.setText(detail)
        self.detail.setToolTip(detail)  # a long reason may be wider than the card


class AloneRow(QWidget):
    """What each modality alone says, next to the fused judgement of the selected window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cards = {m: _Card(m.capitalize() + " alone", MODALITY_COLORS[m], _MODALITY_DETAILS) for m in MODALITIES}
        self.cards["fused"] = _Card("Fused", "#111827", _FUSED_DETAILS)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for c in self.cards.values():
            lay.addWidget(c, 1)
        self.shown: dict[str, str] = {}

    def show_window(self, record: dict | None, data: SessionData) -> None:
        self.shown = {}
        if record is None:
            for c in self.cards.values():
                c.set("—", "no window selected")
            return
        alone = record.get("alone") or {}
        for m in MODALITIES:
            d = record.get(m) or {}
            a = alone.get(m)
            if a:  # the fusion head shown only this modality
                probs, source = a["probs"], "fusion head"
                sarcasm = a.get("sarcasm")
            elif d.get("present"):  # the unimodal model
                probs, source, sarcasm = d["probs"], "unimodal model", None
            else:
                self.cards[m].set("absent", d.get("reason", ""), MUTED)
                continue
            top = max(LABELS, key=lambda k: probs.get(k, 0.0))
            extra = f"sarcasm {sarcasm:.2f} · " if isinstance(sarcasm, (int, float)) else ""
            self.cards[m].set(f"{top} {probs[top]:.2f}", f"{extra}{source}", LABEL_COLORS[top])
            self.shown[m] = top
        fused = record.get("fused")
        if fused:
            top = fused["label"]
            parts = [f"{name} {fused[key]:.2f}" for key, name in (("sarcasm", "sarcasm"), ("incongruity", "incongruity"))
                     if isinstance(fused.get(key), (int, float))]  # incongruity needs two modalities
            self.cards["fused"].set(f"{top} {fused['probs'][top]:.2f}", " · ".join(parts), LABEL_COLORS.get(top))
            self.shown["fused"] = top
        else:
            self.cards["fused"].set("not available", "no fusion model in this pack", MUTED)


class TranscriptPane(QWidget):
    """Text that reached the analysis, with its origin (typed, subtitle, asr) and time."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setPlaceholderText("Typed text, subtitles and transcripts appear here.")
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        self.lines: list[str] = []
        self._partial = False  # the last line is a partial transcript, to be replaced

    def add(self, t: float, text: str, origin: str, final: bool = True) -> None:
        """Append a line; a partial transcript is replaced by the next partial or its final."""
        line = f"[{int(t // 60)}:{t % 60:04.1f}] ({origin}{'' if final else ', partial'}) {text}"
        if self._partial:
            self.lines[-1] = line
            self.view.setPlainText("\n".join(self.lines))
            self.view.verticalScrollBar().setValue(self.view.verticalScrollBar().maximum())
        elif not self.lines or self.lines[-1] != line:
            self.lines.append(line)
            self.view.appendPlainText(line)
        self._partial = not final

    def show_data(self, data: SessionData) -> None:
        self.clear()
        for start, _end, text, origins in data.texts():
            self.add(start, text, origins or "text")

    def clear(self) -> None:
        self.lines.clear()
        self._partial = False
        self.view.clear()
