"""The plot's horizontal grid lines, drawn by the view, at the left axis's ticks.

pyqtgraph's own y grid (``showGrid(y=True)``) is drawn by the left axis over the whole
plot, and replaying that axis's picture cost about 9 ms of every 21 ms paint of a 16-curve
plot in software rendering (x grid: 2 ms). This item draws the same lines (the axis's tick
levels, the finer ones fainter) straight into the view: about 1 ms.
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
