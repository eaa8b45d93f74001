"""Issue 15: what a viewer frame costs without an instance (offscreen, software rendering).

``parts``: a bare pyqtgraph PlotWidget with 16 curves of 3000 points on a DateAxisItem,
sliding like the live edge; the median and p90 of 60 repaints for each grid variant (the
axes' grid, none, the viewer's ``YGrid``).

``window``: the real ``MainWindow`` fed by an in-process source (16 signals, 2000 view
points/s each, no sockets): frames/s, paints/s, paint and ``draw()`` times over 8 s. It
shows what the viewer costs when the machine has a core for it.

Usage: ``.venv/bin/python bench/run_viewer_paint.py [parts] [window]``
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6 import QtCore, QtWidgets  # noqa: E402

app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
N = 16


def parts() -> None:
    from rtoc.frontends.viewer.grid import YGrid

    def axis_grid(w):
        w.showGrid(x=True, y=True, alpha=0.3)

    def no_grid(w):
        pass

    def ygrid(w):
        w.showGrid(x=True, y=False, alpha=0.3)
        w.addItem(YGrid(w.getPlotItem().getAxis("left")), ignoreBounds=True)

    for label, setup in (("grid drawn by the axes", axis_grid), ("no grid", no_grid),
                         ("x grid by the axis, y by YGrid", ygrid)):
        w = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
        w.resize(1246, 400)
        setup(w)
        w.addLegend()
        curves = [w.plot(name=f"c{i}", pen=pg.mkPen(pg.intColor(i))) for i in range(N)]
        w.show()
        app.processEvents()
        took = []
        for f in range(60):
            x0 = 1.8e9 + f * 0.016
            t = np.linspace(x0, x0 + 10, 3000)
            for i, c in enumerate(curves):
                c.setData(t, np.sin(t * 3 + i) + i * 0.1, connect="finite", skipFiniteCheck=True)
            w.setXRange(x0, x0 + 10, padding=0)
            start = time.perf_counter()
            w.repaint()
            app.processEvents()
            took.append(time.perf_counter() - start)
        print(f"{label:32s} repaint median {np.median(took) * 1e3:5.1f} ms, p90 {np.percentile(took, 90) * 1e3:5.1f} ms")
        w.close()


class MemorySource:
    """View points made here: 16 sine signals at 2000 points/s, as the engine's view
    stream would bring them, without sockets."""

    label, role = "in-process", "admin"

    def __init__(self) -> None:
        self.last = time.time()

    def lane(self) -> MemorySource:
        return MemorySource()

    def open(self, live: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, seconds: float):
        from rtoc.frontends.viewer.source import Incoming

        time.sleep(seconds)
        out = Incoming()
        t = np.arange(self.last, time.time(), 0.0005)
        if len(t):
            self.last = t[-1] + 0.0005
            for i in range(N):
                out.add(f"G{i}.Sine", t, np.sin(t * 3 + i))
        return out

    def request(self, op: str, **fields) -> dict:
        if op == "signals":
            return {"signals": [{"name": f"G{i}.Sine", "unit": "V", "rate": 1e6} for i in range(N)]}
        return {"drivers": []} if op == "drivers" else {}

    def events(self, since: float) -> list:
        return []

    def history(self, *args):
        return np.empty(0), np.empty(0)


def window() -> None:
    from rtoc.frontends.viewer.window import MainWindow

    win = MainWindow(MemorySource(), None, default_signals=tuple(f"G{i}.Sine" for i in range(N)))
    win.panels[0].window_box.setCurrentText("10 s")
    win.show()
    paints: list[float] = []
    real = pg.GraphicsView.paintEvent

    def timed(self, ev):
        start = time.perf_counter()
        real(self, ev)
        paints.append(time.perf_counter() - start)

    pg.GraphicsView.paintEvent = timed

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)

    try:
        spin(5.0)
        frames, draws = win.frames, len(win.frame_times)
        paints.clear()
        start = time.monotonic()
        spin(8.0)
        wall = time.monotonic() - start
        drawn = win.frame_times[draws:] if len(win.frame_times) > draws else win.frame_times[-200:]
        print(f"window: {(win.frames - frames) / wall:.1f} frames/s, {len(paints) / wall:.1f} paints/s, "
              f"paint p50 {np.median(paints) * 1e3:.1f} ms p99 {np.percentile(paints, 99) * 1e3:.1f} ms, "
              f"draw() p50 {np.median(drawn) * 1e3:.1f} ms p99 {np.percentile(drawn, 99) * 1e3:.1f} ms, "
              f"plot {win.panels[0].plot.width()}x{win.panels[0].plot.height()} px")
    finally:
        pg.GraphicsView.paintEvent = real
        win.close()


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["parts", "window"]
    for what in chosen:
        {"parts": parts, "window": window}[what]()
