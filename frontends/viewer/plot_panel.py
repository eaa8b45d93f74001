"""One plot panel: curves of several signals over a time axis in local time, the live edge
or a range in the past, event lines, a crosshair, a measure region, export of the range.

The panel draws what :class:`.model.Trace` holds for the visible range and asks (by the
``history_wanted`` signal) for the archive's history where the live buffer does not reach;
it never waits for anything. The model thins each curve to at most four points per pixel
column (first, min, max, last, on a time grid that slides with the live edge), so a frame
costs about the same whatever the rate; a curve whose range and data did not change since
the last frame is not handed to pyqtgraph again.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Signal

from .grid import YGrid
from .measure import measure
from .model import ViewerModel

WINDOWS = {"10 s": 10.0, "1 min": 60.0, "10 min": 600.0, "1 h": 3600.0, "24 h": 86400.0}
PRIORITY_COLOURS = {0: "#8fa3b8", 1: "#ff8c00", 2: "#e00000"}
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
MAX_EVENT_LINES = 200


class _Legend(pg.LegendItem):
    """The plot's legend; a right click offers to remove a signal from the plot."""

    def __init__(self, panel: PlotPanel, **kw):
        super().__init__(**kw)
        self.panel = panel

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph's name
        if ev.button() != QtCore.Qt.MouseButton.RightButton:
            return super().mouseClickEvent(ev)
        menu = QtWidgets.QMenu()
        for name in list(self.panel.curves):
            menu.addAction(f"Remove {name}", lambda n=name: self.panel.remove_signal(n))
        ev.accept()
        menu.exec(ev.screenPos().toPoint())


class PlotPanel(QtWidgets.QWidget):
    history_wanted = Signal(str, float, float, int)   # name, from, to, max_points
    export_wanted = Signal(object, float, float)       # names, from, to
    changed = Signal()                                 # signals or window changed (saved)

    def __init__(self, model: ViewerModel, styles: dict, title: str = "Plot", window: str = "1 min"):
        super().__init__()
        self.model, self.styles, self.title = model, styles, title
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.following, self.paused = True, False
        self.lines: dict[tuple, pg.InfiniteLine] = {}
        self.drawn: dict[str, tuple] = {}  # name -> (range, width, trace version) last drawn
        self.bounds: dict[str, tuple[float, float]] = {}  # name -> y min, max of what is drawn
        self.y_range: tuple[float, float] | None = None
        self._build(window)

    # -- building --------------------------------------------------------------------------
    def _build(self, window: str) -> None:
        bar = QtWidgets.QHBoxLayout()
        self.window_box = QtWidgets.QComboBox()
        self.window_box.addItems(list(WINDOWS))
        self.window_box.setCurrentText(window if window in WINDOWS else "1 min")
        self.window_box.currentTextChanged.connect(self._window_changed)
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self.set_paused)
        self.live_button = QtWidgets.QPushButton("Live")
        self.live_button.clicked.connect(self.follow)
        self.autoscale = QtWidgets.QCheckBox("Autoscale")
        self.autoscale.setChecked(True)
        self.autoscale.toggled.connect(lambda on: self.drawn.clear())  # rescaled at the next frame
        self.cross_box = QtWidgets.QCheckBox("Crosshair")
        self.cross_box.toggled.connect(self._crosshair)
        self.measure_box = QtWidgets.QCheckBox("Measure")
        self.measure_box.toggled.connect(self._measure_region)
        self.signals_button = QtWidgets.QToolButton()
        self.signals_button.setText("Signals")
        self.signals_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        self.signals_button.setMenu(QtWidgets.QMenu(self))
        self.signals_button.menu().aboutToShow.connect(self._signals_menu)
        export = QtWidgets.QPushButton("Export…")
        export.clicked.connect(self._export)
        for w in (self.window_box, self.pause_button, self.live_button, self.autoscale,
                  self.cross_box, self.measure_box, self.signals_button, export):
            bar.addWidget(w)
        bar.addStretch(1)
        self.readout = QtWidgets.QLabel("")
        self.readout.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
        self.plot.showGrid(x=True, y=False, alpha=0.3)  # the y grid: YGrid (cheaper to paint)
        self.plot.addItem(YGrid(self.plot.getPlotItem().getAxis("left")), ignoreBounds=True)
        self.legend = _Legend(self, offset=(10, 10))
        self.legend.setParentItem(self.plot.getPlotItem().vb)
        self.plot.getPlotItem().legend = self.legend
        self.plot.setLabel("left", "")
        vb = self.plot.getViewBox()
        vb.disableAutoRange()  # the panel scales y itself from the points it draws (refresh)
        self.plot.getPlotItem().hideButtons()
        vb.sigRangeChangedManually.connect(self._user_moved)
        self.plot.viewport().setAcceptDrops(True)
        self.plot.viewport().installEventFilter(self)
        self.cross = (pg.InfiniteLine(angle=90, movable=False, pen="#888"),
                      pg.InfiniteLine(angle=0, movable=False, pen="#888"))
        self.region = pg.LinearRegionItem()
        self.region.sigRegionChanged.connect(self._measure_update)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.readout)

    # -- signals on the plot -----------------------------------------------------------------
    def add_signal(self, name: str) -> None:
        if name in self.curves:
            return
        self.styles.setdefault(name, {"color": PALETTE[len(self.styles) % len(PALETTE)],
                                      "width": 1, "symbols": False})
        curve = self.plot.plot(name=name)  # thinned by the model: no pyqtgraph downsampling
        self.curves[name] = curve
        self.apply_style(name)
        self._units()
        self.changed.emit()

    def apply_style(self, name: str) -> None:
        style, curve = self.styles[name], self.curves.get(name)
        if curve is None:
            return
        curve.setPen(pg.mkPen(style["color"], width=style.get("width", 1)))
        curve.setSymbol("o" if style.get("symbols") else None)
        curve.setSymbolSize(4)
        curve.setSymbolBrush(style["color"])

    def remove_signal(self, name: str) -> None:
        curve = self.curves.pop(name, None)
        self.drawn.pop(name, None)
        self.bounds.pop(name, None)
        if curve is not None:
            self.plot.removeItem(curve)
            self._units()
            self.changed.emit()

    def _units(self) -> None:
        units = sorted({(self.model.signals.get(n) or {}).get("unit") or "" for n in self.curves} - {""})
        self.plot.setLabel("left", ", ".join(units))

    def _signals_menu(self) -> None:
        menu = self.signals_button.menu()
        menu.clear()
        for name in self.curves:
            sub = menu.addMenu(name)
            sub.addAction("Remove", lambda n=name: self.remove_signal(n))
            sub.addAction("Colour…", lambda n=name: self._pick_colour(n))
            for w in (1, 2, 3):
                sub.addAction(f"Width {w}", lambda n=name, w=w: self._style(n, width=w))
            sub.addAction("Symbols on/off", lambda n=name: self._style(
                n, symbols=not self.styles[n].get("symbols")))

    def _style(self, name: str, **change) -> None:
        self.styles[name].update(change)
        self.apply_style(name)
        self.changed.emit()

    def _pick_colour(self, name: str) -> None:
        colour = QtWidgets.QColorDialog.getColor(parent=self)
        if colour.isValid():
            self._style(name, color=colour.name())

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind in (QtCore.QEvent.Type.DragEnter, QtCore.QEvent.Type.DragMove) and event.mimeData().hasText():
            event.acceptProposedAction()
            return True
        if kind == QtCore.QEvent.Type.Drop and event.mimeData().hasText():
            for name in event.mimeData().text().split("\n"):
                if name.strip():
                    self.add_signal(name.strip())
            event.acceptProposedAction()
            return True
        return super().eventFilter(obj, event)

    # -- time range ------------------------------------------------------------------------
    @property
    def window(self) -> float:
        return WINDOWS[self.window_box.currentText()]

    def _window_changed(self) -> None:
        self.follow()
        self.changed.emit()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")

    def follow(self) -> None:
        self.following = True
        self.set_paused(False)

    def _user_moved(self, axes=None, *args) -> None:
        self.following = False  # panned or zoomed by hand: stay where the user went
        if axes is not None and len(axes) > 1 and axes[1]:
            self.autoscale.setChecked(False)  # y moved by hand: a fixed range, as pyqtgraph does

    def show_range(self, t0: float, t1: float) -> None:
        self.following = False
        self.plot.setXRange(t0, t1, padding=0)

    def refresh(self, now: float | None = None) -> None:
        """Draw a frame: the live edge (unless paused or moved away), the curves and events
        of the visible range; ask for history where the live points do not reach."""
        if self.paused:
            return
        now = time.time() if now is None else now
        if self.following:
            self.plot.setXRange(now - self.window, now, padding=0)
        (x0, x1), _ = self.plot.getViewBox().viewRange()
        width = max(100, int(self.plot.getViewBox().width()))
        for name, curve in self.curves.items():
            trace = self.model.trace(name)
            key = (x0, x1, width, trace.version)
            if self.drawn.get(name) != key:
                t, y = trace.visible(x0, x1, width)
                curve.setData(t, y, connect="finite", skipFiniteCheck=True)
                self.drawn[name] = key  # only once drawn: a failure is tried again next frame
                inside = y[np.searchsorted(t, x0):np.searchsorted(t, x1, side="right")]
                with np.errstate(invalid="ignore"):
                    self.bounds[name] = (float(np.nanmin(inside)), float(np.nanmax(inside))) \
                        if inside.size and not np.isnan(inside).all() else (np.nan, np.nan)
            want = trace.needs_history(x0, x1, width)
            if want is not None:
                self.history_wanted.emit(name, *want)
        self._events(x0, x1)
        if self.measure_box.isChecked():
            self._measure_update()
        if self.autoscale.isChecked():
            self._scale_y()
        # the view's new range applied now, not in the paint: pyqtgraph would apply it while
        # it paints and then ask for a second paint (1.5-1.9 paints a frame, before)
        self.plot.scene().prepareForPaint()

    def _scale_y(self) -> None:
        """y from the min and max of the drawn points. pyqtgraph's own autorange ran while it
        painted, asked every curve for its bounds (2 ms a frame with 16 curves) and then for a
        second paint of the new range (1.5-1.9 paints a frame, before)."""
        bounds = np.array([self.bounds[n] for n in self.curves if n in self.bounds]).reshape(-1, 2)
        bounds = bounds[np.isfinite(bounds).all(axis=1)]
        if not len(bounds):
            return
        lo, hi = float(bounds[:, 0].min()), float(bounds[:, 1].max())
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        pad = (hi - lo) * 0.05
        if (lo - pad, hi + pad) != self.y_range:
            self.y_range = (lo - pad, hi + pad)
            self.plot.setYRange(*self.y_range, padding=0)

    def _events(self, x0: float, x1: float) -> None:
        wanted = {}
        for e in self.model.events_between(x0, x1, set(self.curves) or None)[-MAX_EVENT_LINES:]:
            wanted[(e.get("time"), e.get("id"), e.get("text"))] = e
        for key in list(self.lines):
            if key not in wanted:
                self.plot.removeItem(self.lines.pop(key))
        for key, e in wanted.items():
            if key not in self.lines:
                colour = PRIORITY_COLOURS.get(int(e.get("priority", 0)), PRIORITY_COLOURS[0])
                line = pg.InfiniteLine(pos=e["time"], angle=90, movable=False,
                                       pen=pg.mkPen(colour, width=1), hoverPen=pg.mkPen(colour, width=3))
                where = ".".join(p for p in (e.get("device", ""), e.get("signal", "")) if p)
                line.setToolTip(f"{where}: {e.get('text', '')}")
                self.plot.addItem(line, ignoreBounds=True)
                self.lines[key] = line

    # -- tools -----------------------------------------------------------------------------
    def _crosshair(self, on: bool) -> None:
        for line in self.cross:
            (self.plot.addItem(line, ignoreBounds=True) if on else self.plot.removeItem(line))
        if not on:
            self.readout.setText("")

    def _mouse_moved(self, pos) -> None:
        if not self.cross_box.isChecked():
            return
        p = self.plot.getViewBox().mapSceneToView(pos)
        self.cross[0].setPos(p.x())
        self.cross[1].setPos(p.y())
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p.x())) if 0 < p.x() < 4e9 else f"{p.x():.6g}"
        self.readout.setText(f"x {stamp}   y {p.y():.6g}")

    def _measure_region(self, on: bool) -> None:
        if on:
            (x0, x1), _ = self.plot.getViewBox().viewRange()
            self.region.setRegion((x0 + (x1 - x0) * 0.4, x0 + (x1 - x0) * 0.6))
            self.plot.addItem(self.region, ignoreBounds=True)
            self._measure_update()
        else:
            self.plot.removeItem(self.region)
            self.readout.setText("")

    def measurements(self) -> dict[str, dict]:
        """The measure tool's figures of every plotted signal in the region."""
        t0, t1 = self.region.getRegion()
        return {name: measure(*self.model.trace(name).visible(t0, t1), t0, t1) for name in self.curves}

    def _measure_update(self) -> None:
        if not self.measure_box.isChecked():
            return
        parts = []
        for name, m in self.measurements().items():
            freq = "" if np.isnan(m["frequency"]) else f", f {m['frequency']:.4g} Hz"
            parts.append(f"{name}: Δt {m['duration']:.4g} s, Δy {m['dy']:.4g}, min {m['min']:.4g}, "
                         f"max {m['max']:.4g}, mean {m['mean']:.4g}{freq}")
        self.readout.setText("\n".join(parts))

    def _export(self) -> None:
        (x0, x1), _ = self.plot.getViewBox().viewRange()
        if self.curves:
            self.export_wanted.emit(list(self.curves), x0, x1)

    # -- saving ----------------------------------------------------------------------------
    def state(self) -> dict:
        return {"title": self.title, "signals": list(self.curves), "window": self.window_box.currentText()}
