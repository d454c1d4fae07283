"""Colours and fonts shared by the panels (one place, so plots and bars agree)."""

from __future__ import annotations

from PySide6.QtGui import QColor

LABEL_COLORS: dict[str, str] = {
    "neutral": "#8c8c8c",
    "happy": "#f2b701",
    "sad": "#3969ac",
    "angry": "#e73f74",
    "fearful": "#7f3c8d",
    "disgusted": "#11a579",
    "surprised": "#e68310",
}
SARCASM_COLOR = "#222222"
MODALITY_COLORS: dict[str, str] = {"face": "#4c78a8", "voice": "#f58518", "text": "#54a24b"}
INTERACTION_COLORS: dict[str, str] = {
    "redundancy": "#4c78a8",
    "dominance": "#e45756",
    "independence": "#9d9d9d",
    "modulation": "#b279a2",
    "emergence": "#f58518",
}
MUTED = "#6b7280"
GRID_COLOR = "#e5e7eb"
PANEL_BG = "#ffffff"
WINDOW_BG = "#f3f4f6"

STYLE = f"""
QMainWindow, QWidget#central {{ background: {WINDOW_BG}; }}
QGroupBox {{ background: {PANEL_BG}; border: 1px solid #d9dce1; border-radius: 6px; margin-top: 14px;
            font-weight: 600; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; color: #374151; }}
QLabel#muted {{ color: {MUTED}; }}
QLabel#big {{ font-size: 15px; font-weight: 600; }}
QStatusBar QLabel {{ padding: 0 8px; }}
"""


def qcolor(hex_: str, alpha: int = 255) -> QColor:
    c = QColor(hex_)
    c.setAlpha(alpha)
    return c
