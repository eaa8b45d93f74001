"""The viewer's main window: plot docks, the signal tree, events, devices, a status bar.

It owns the model and the worker; the worker's Qt signals feed the model, a 30 Hz timer
draws the plots from it. Layout, plots and styles are saved on close
(``<config dir>/viewer.json``) and restored on start.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtWidgets

from rtoc.files import write_atomic

from .model import ViewerModel
from .panels import DevicesPanel, EventsPanel, SignalTree
from .plot_panel import PlotPanel
from .source import Incoming
from .worker import Worker

log = logging.getLogger(__name__)
FRAME_MS = 16          # the plots' refresh timer (about 60 frames per second at most)
STATUS_MS = 1000
EXPORT_POINTS = 2_000_000  # raw samples per signal in one export at most (the archive's reply cap)


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, source: Any, settings_path: Path | None = None, default_signals: tuple = ()):
        super().__init__()
        self.setWindowTitle(f"RTOC viewer – {source.label}")
        self.resize(1280, 800)
        self.model = ViewerModel()
        self.settings_path = settings_path
        self.saved = self._load_settings()
        self.styles: dict[str, dict] = self.saved.get("styles", {})
        self.panels: list[PlotPanel] = []
        self.docks: list[QtWidgets.QDockWidget] = []
        self.frames = 0
        self.frame_times: list[float] = []
        self._build()
        self.worker = Worker(source)
        self.history_worker = Worker(source.lane(), live=False)  # history and export
        self.history_worker.reply.connect(self._on_reply)
        self.history_worker.state.connect(self._on_history_state)
        w = self.worker
        w.data.connect(self._on_data)
        w.signals.connect(self._on_signals)
        w.drivers.connect(self.devices.update_drivers)
        w.events.connect(self._on_events)
        w.state.connect(self._on_state)
        w.reply.connect(self._on_reply)
        plots = self.saved.get("plots") or [{"title": "Plot 1", "signals": list(default_signals)}]
        for p in plots:
            self.add_plot(p.get("title", "Plot"), p.get("signals", []), p.get("window", "1 min"))
        self._restore_layout()
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.draw)
        self.timer.start(FRAME_MS)
        self.status_timer = QtCore.QTimer(self)
        self.status_timer.timeout.connect(self._status)
        self.status_timer.start(STATUS_MS)
        w.start()
        self.history_worker.start()

    # -- building --------------------------------------------------------------------------
    def _build(self) -> None:
        self.setDockNestingEnabled(True)
        self.tree = SignalTree()
        self.tree.plot_requested.connect(lambda name: self.panels and self.panels[0].add_signal(name))
        self.events_panel = EventsPanel()
        self.events_panel.jump.connect(self.jump_to)
        self.devices = DevicesPanel()
        self.devices.command.connect(self.command)
        for title, widget, area in (("Signals", self.tree, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea),
                                    ("Events", self.events_panel, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea),
                                    ("Devices", self.devices, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)):
            dock = QtWidgets.QDockWidget(title, self)
            dock.setObjectName(f"dock:{title}")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
        bar = self.addToolBar("Plots")
        bar.setObjectName("toolbar")
        bar.addAction("New plot", lambda: self.add_plot(f"Plot {len(self.panels) + 1}", []))
        self.connection = QtWidgets.QLabel("connecting…")
        self.rates = QtWidgets.QLabel("")
        self.statusBar().addWidget(self.connection)
        self.statusBar().addPermanentWidget(self.rates)
        self.setCentralWidget(None)

    def add_plot(self, title: str, signals: list[str], window: str = "1 min") -> PlotPanel:
        panel = PlotPanel(self.model, self.styles, title, window)
        panel.history_wanted.connect(self._history)
        panel.export_wanted.connect(self._export_dialog)
        for name in signals:
            panel.add_signal(name)
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(f"plot:{title}")
        dock.setWidget(panel)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.TopDockWidgetArea, dock)
        self.panels.append(panel)
        self.docks.append(dock)
        return panel

    # -- from the worker -------------------------------------------------------------------
    def _on_data(self, incoming: Incoming) -> None:
        for name, parts in incoming.points.items():
            for t, y in parts:
                self.model.on_points(name, t, y)
        if incoming.events:
            self._on_events(incoming.events)

    def _on_signals(self, signals: list[dict]) -> None:
        self.model.on_signals(signals)
        self.tree.update_signals(signals)

    def _on_events(self, events: list[dict]) -> None:
        self.model.on_events(events)
        self.events_panel.show_events(list(self.model.events))

    def _on_state(self, state: str, detail: str) -> None:
        self.connection.setText(f"{state}: {detail}")
        if state == "connected":
            self.devices.set_role(self.worker.role)

    def _on_history_state(self, state: str, detail: str) -> None:
        if state == "disconnected":
            log.info("viewer history connection: %s", detail)

    def _on_reply(self, tag: Any, result: Any, error: str | None) -> None:
        kind = tag[0]
        if kind == "history" and result is not None:
            _, name, t0, t1, width = tag
            self.model.trace(name).got_history(t0, t1, width, *result)
        elif kind == "history":
            self.model.trace(tag[1]).asked = None
            self.statusBar().showMessage(f"history of {tag[1]}: {error}", 5000)
        elif kind == "command":
            text = f"{tag[1]} {tag[2]}: " + (error or f"ok {json.dumps(result, default=str)[:200]}")
            self.devices.message.setText(text)
        elif kind == "export":
            self.statusBar().showMessage(error or f"exported {result} to {tag[1]}", 10000)

    # -- to the worker ---------------------------------------------------------------------
    def _history(self, name: str, t0: float, t1: float, width: int) -> None:
        self.history_worker.submit(("history", name, t0, t1, width), lambda s: s.history(name, t0, t1, width))

    def command(self, op: str, fields: dict) -> None:
        what = fields.get("driver", "")
        self.worker.submit(("command", op, what), lambda s: s.request(op, **fields).get(
            "state", fields.get("value")) if op != "call" else s.request(op, **fields).get("result"))

    def export_to(self, path: str, names: list[str], t0: float, t1: float) -> None:
        """Raw samples of ``names`` in ``t0 .. t1`` (from the archive) to CSV or Parquet,
        by the file's suffix; done on the worker."""
        def job(source) -> int:
            import pyarrow as pa

            columns = {}
            for name in names:
                t, y = source.history(name, t0, t1, None)
                columns[name] = (t[:EXPORT_POINTS], y[:EXPORT_POINTS])
            table = pa.table({"signal": pa.array(np.concatenate([np.full(len(t), n, object) for n, (t, _) in columns.items()]) if columns else [], pa.string()),
                              "t": np.concatenate([t for t, _ in columns.values()]) if columns else np.empty(0),
                              "y": np.concatenate([y for _, y in columns.values()]) if columns else np.empty(0)})
            part = f"{path}.part"  # the file appears whole or not at all (a reader saw it half-written)
            try:
                if path.endswith(".parquet"):
                    import pyarrow.parquet as pq

                    pq.write_table(table, part)
                else:
                    import pyarrow.csv as pcsv

                    pcsv.write_csv(table, part)
                os.replace(part, path)
            finally:
                if os.path.exists(part):
                    os.unlink(part)
            return table.num_rows
        self.history_worker.submit(("export", path), job)

    def _export_dialog(self, names: list[str], t0: float, t1: float) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export the visible range", "rtoc-export.csv",
                                                        "CSV (*.csv);;Parquet (*.parquet)")
        if path:
            self.export_to(path, names, t0, t1)

    # -- drawing ---------------------------------------------------------------------------
    def draw(self) -> None:
        start = time.perf_counter()
        now = time.time()
        for panel in self.panels:
            panel.refresh(now)
        self.frames += 1
        self.frame_times.append(time.perf_counter() - start)
        del self.frame_times[:-2000]

    def jump_to(self, t: float) -> None:
        for panel in self.panels:
            half = panel.window / 2
            panel.show_range(t - half, t + half)

    def _status(self) -> None:
        sig = self.model.signals.values()
        rate = sum(s.get("rate", 0.0) for s in sig)
        lost = sum(s.get("lost", 0) for s in sig)
        newest = max((s["latest"]["t"] for s in sig if s.get("latest")), default=None)
        lag = "" if newest is None else f", lag {max(0.0, time.time() - newest):.2f} s"
        self.rates.setText(f"{len(self.model.signals)} signals, {rate:,.0f} samples/s, lost {lost}{lag}")

    # -- settings --------------------------------------------------------------------------
    def _load_settings(self) -> dict:
        if self.settings_path is None:
            return {}
        try:
            return json.loads(self.settings_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("viewer settings %s unreadable (%s): defaults used", self.settings_path, exc)
            return {}

    def _restore_layout(self) -> None:
        for key, restore in (("geometry", self.restoreGeometry), ("state", self.restoreState)):
            if self.saved.get(key):
                restore(QtCore.QByteArray(base64.b64decode(self.saved[key])))

    def save_settings(self) -> None:
        if self.settings_path is None:
            return
        data = {"geometry": base64.b64encode(bytes(self.saveGeometry())).decode(),
                "state": base64.b64encode(bytes(self.saveState())).decode(),
                "plots": [p.state() for p in self.panels], "styles": self.styles}
        self.settings_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.settings_path, json.dumps(data, indent=1))

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.timer.stop()
        self.status_timer.stop()
        self.save_settings()
        self.history_worker.stop_flag.set()  # both stop at once; a history call may take a while
        self.worker.stop()
        self.history_worker.stop()
        super().closeEvent(event)
