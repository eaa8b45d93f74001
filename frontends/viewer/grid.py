"""The plot's horizontal grid lines, drawn by the view, at the left axis's ticks.

pyqtgraph's own y grid (``showGrid(y=True)``) is drawn by the left axis over the whole
plot; replaying that axis's picture made a 16-curve repaint in software rendering 20.4 ms
instead of 11.9 ms without a grid. This item draws the same lines (the axis's tick levels,
the finer one fainter) straight into the view: 13.4 ms with it and the x grid
(``bench/run_viewer_paint.py parts``).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui


class YGrid(pg.UIGraphicsItem):
    def __init__(self, axis: pg.AxisItem, color: str = "#888888", alpha: float = 0.3):
        super().__init__()
        self.axis = axis
        self.pens = []
        for level in (1.0, 0.5):  # major ticks, then the finer level
            c = QtGui.QColor(color)
            c.setAlphaF(alpha * level)
            pen = QtGui.QPen(c)
            pen.setCosmetic(True)
            self.pens.append(pen)
        self.setZValue(-100)  # behind the curves

    def paint(self, p: QtGui.QPainter, *args) -> None:
        rect = self.boundingRect()
        height = max(1.0, float(self.axis.geometry().height()))
        y0, y1 = sorted((rect.top(), rect.bottom()))
        levels = self.axis.tickValues(y0, y1, height)
        for pen, (_, values) in zip(self.pens, levels, strict=False):  # levels: 1 to 3
            p.setPen(pen)
            for v in values:
                p.drawLine(QtCore.QPointF(rect.left(), v), QtCore.QPointF(rect.right(), v))
