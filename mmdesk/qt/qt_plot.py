"""What the plots share: setting a view range so that it costs one repaint, not two."""

from __future__ import annotations

import pyqtgraph as pg


def set_range(plot: pg.PlotWidget, *, x: tuple[float, float] | None = None, y: tuple[float, float] | None = None,
              padding: float = 0.0) -> None:
    """Show this range of the data (and stop auto-ranging on those axes).

    pyqtgraph applies a new range to the view's transform only when it next paints; the transform
    changing in the paint marks the scene dirty again, so every range change painted the plot twice
    (its axes regenerated twice) in one event-loop pass. Applied here, it is painted once.
    """
    vb = plot.getViewBox()
    vb.setRange(xRange=x, yRange=y, padding=padding)
    vb.updateMatrix()
