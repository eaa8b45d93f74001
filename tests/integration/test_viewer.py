"""The viewer (`rtoc view`) with the real Qt (offscreen) and pytest-qt against a real
instance, locally over the bus and remotely over the websocket: the signal appears, its
curve gets data, an event draws its line, pause stops updates, zooming into the past fetches
history, a driver is stopped and started from the devices panel, a read-only user sees that
panel disabled. Each test saves a screenshot under build/screenshots/ and checks the plot
holds curve pixels."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

import numpy as np  # noqa: E402
from PySide6 import QtWidgets  # noqa: E402
from PySide6.QtCore import QPointF  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from rtoc.frontends.viewer.source import LocalSource, RemoteSource  # noqa: E402
from rtoc.frontends.viewer.window import MainWindow  # noqa: E402

from rtoc import config as config_mod  # noqa: E402
from rtoc.app.harness import Instance  # noqa: E402

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
CONFIG = '''
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 1000.0
frequency = 1.0

[[events]]
name = "sine high"
cond = "Generator.Sine > 0.95"
trigger = "rising"
text = "high: {value}"
priority = 2
'''


def _shot(win: MainWindow, name: str) -> np.ndarray:
    """Save the window's picture; return the first plot's pixels (H x W x 3)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(SHOTS / f"{name}.png"))
    img = win.panels[0].plot.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    ptr = img.constBits()
    arr = np.frombuffer(ptr, np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine() // 4, 4)
    return arr[:, :img.width(), 2::-1].astype(int)  # BGRA -> RGB


def _pixels_of(rgb: np.ndarray, colour: str, tol: int = 40) -> int:
    want = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - want).sum(axis=2) < tol).sum())


def _data(panel, name: str) -> np.ndarray:
    t, _ = panel.curves[name].getData()
    return np.empty(0) if t is None else t


def _state(inst: Instance, name: str) -> str:
    return next(p["state"] for p in inst.client.request("status")["processes"] if p["name"] == name)


@pytest.mark.timeout(120)
def test_the_local_viewer_draws_live_data_events_history_and_controls_drivers(qtbot, tmp_path: Path) -> None:
    with Instance.start(CONFIG, ("Generator.Sine",)) as inst:
        time.sleep(3.0)  # archived seconds before the viewer's live buffer begins
        cfg = config_mod.load(inst.folder / "rtoc.toml")
        win = MainWindow(LocalSource(cfg), tmp_path / "viewer.json", default_signals=("Generator.Sine",))
        qtbot.addWidget(win)
        win.show()
        try:
            panel = win.panels[0]
            qtbot.waitUntil(lambda: "Generator.Sine" in win.tree.items, timeout=20_000)
            qtbot.waitUntil(lambda: len(_data(panel, "Generator.Sine")) > 100, timeout=20_000)
            qtbot.waitUntil(lambda: bool(panel.lines), timeout=20_000)  # the rule's event line
            qtbot.wait(300)
            rgb = _shot(win, "viewer-local-live")
            colour = win.styles["Generator.Sine"]["color"]
            assert _pixels_of(rgb, colour) > 200, "no curve pixels in the plot"

            # pause: the curve stops moving; resume: it moves again
            panel.set_paused(True)
            last = _data(panel, "Generator.Sine")[-1]
            qtbot.wait(600)
            assert _data(panel, "Generator.Sine")[-1] == last
            panel.follow()
            qtbot.waitUntil(lambda: _data(panel, "Generator.Sine")[-1] > last, timeout=5000)

            # zoom into the past: the archive's history for the range, joined to the live points
            trace = win.model.trace("Generator.Sine")
            live_start = trace.live_start
            now = time.time()
            panel.show_range(now - 120, now)
            qtbot.waitUntil(lambda: trace.history is not None and len(trace.history.t) > 100, timeout=20_000)
            qtbot.waitUntil(lambda: _data(panel, "Generator.Sine")[0] < live_start - 1.0, timeout=5000)
            _shot(win, "viewer-local-history")

            # tools: crosshair readout, the measure region's figures, export of the range
            panel.cross_box.setChecked(True)
            vb = panel.plot.getViewBox()
            panel._mouse_moved(vb.mapViewToScene(QPointF(now - 60, 0.5)))
            assert panel.readout.text().startswith("x ") and "y 0.5" in panel.readout.text()
            panel.cross_box.setChecked(False)
            panel.follow()
            qtbot.wait(300)
            first = float(trace.history.t[0])  # the instance's first archived point
            qtbot.waitUntil(lambda: time.time() - first > 9.0, timeout=20_000)  # periods to measure
            panel.follow()
            qtbot.wait(100)
            panel.set_paused(True)
            panel.measure_box.setChecked(True)
            (x0, x1), _ = vb.viewRange()
            panel.region.setRegion((max(x1 - 20, first + 0.5), x1 - 2))
            m = panel.measurements()["Generator.Sine"]
            assert m["frequency"] == pytest.approx(1.0, rel=0.05) and m["max"] == pytest.approx(1.0, abs=0.05)
            assert re.search(r", f (0\.99\d*|1|1\.00\d*) Hz", panel.readout.text()), panel.readout.text()
            panel.measure_box.setChecked(False)
            panel.follow()
            out = tmp_path / "cut.parquet"
            win.export_to(str(out), ["Generator.Sine"], x1 - 4, x1 - 2)  # 2 s of raw samples: 2000
            qtbot.waitUntil(out.exists, timeout=20_000)
            import pyarrow.parquet as pq

            table = pq.read_table(out)
            assert 1900 <= table.num_rows <= 2002 and set(table.column("signal").to_pylist()) == {"Generator.Sine"}

            # the devices panel stops and starts the driver
            stop = win.devices.findChild(QtWidgets.QPushButton, "stop:Generator")
            qtbot.waitUntil(lambda: win.devices.box.isEnabled(), timeout=5000)
            stop.click()
            qtbot.waitUntil(lambda: _state(inst, "Generator") == "stopped", timeout=20_000)
            win.devices.findChild(QtWidgets.QPushButton, "start:Generator").click()
            qtbot.waitUntil(lambda: _state(inst, "Generator") == "running", timeout=30_000)
            win.styles["Generator.Sine"].update(color="#ff00ff", width=2)
        finally:
            win.close()
        assert _state(inst, "engine") == "running"  # closing the viewer stops nothing
        # layout, plots and styles are kept: a new window shows the same plot and style
        again = MainWindow(LocalSource(cfg), tmp_path / "viewer.json")
        qtbot.addWidget(again)
        try:
            assert list(again.panels[0].curves) == ["Generator.Sine"]
            assert again.styles["Generator.Sine"]["color"] == "#ff00ff"
            again.panels[0].remove_signal("Generator.Sine")  # from its Signals menu
            assert not again.panels[0].curves
        finally:
            again.close()


@pytest.mark.timeout(120)
def test_a_remote_read_only_viewer_sees_data_and_a_disabled_devices_panel(qtbot, tmp_path: Path) -> None:
    from rtoc.frontends.websocket.auth import hash_password

    config = CONFIG + f'''
[[websocket.users]]
name = "reader"
password_hash = "{hash_password('read-pass', n=2**10)}"
role = "read"
'''
    with Instance.start(config, ("Generator.Sine",)) as inst:
        url = inst.ws_url().replace("http", "ws", 1)
        win = MainWindow(RemoteSource(url, "reader", "read-pass"), None, default_signals=("Generator.Sine",))
        qtbot.addWidget(win)
        win.show()
        try:
            panel = win.panels[0]
            qtbot.waitUntil(lambda: len(_data(panel, "Generator.Sine")) > 100, timeout=30_000)
            qtbot.waitUntil(lambda: win.worker.role == "read", timeout=10_000)
            qtbot.waitUntil(lambda: "read-only" in win.devices.note.text(), timeout=10_000)
            assert not win.devices.box.isEnabled()
            qtbot.waitUntil(lambda: bool(panel.lines), timeout=20_000)  # events over the network too
            qtbot.wait(300)
            rgb = _shot(win, "viewer-remote")
            assert _pixels_of(rgb, win.styles["Generator.Sine"]["color"]) > 200
        finally:
            win.close()


@pytest.mark.timeout(120)
def test_the_viewer_reconnects_when_the_instance_restarts_and_takes_dropped_signals(qtbot, tmp_path: Path) -> None:
    from PySide6.QtCore import QMimeData, Qt
    from PySide6.QtGui import QDropEvent

    name, folder = f"v{os.getpid()}x", tmp_path / "instance"
    inst = Instance.start(CONFIG, ("Generator.Sine",), name=name, folder=folder)
    win = None
    try:
        cfg = config_mod.load(folder / "rtoc.toml")
        win = MainWindow(LocalSource(cfg), None)
        qtbot.addWidget(win)
        win.show()
        panel = win.panels[0]
        qtbot.waitUntil(lambda: "Generator.Sine" in win.tree.items, timeout=20_000)
        # a signal dragged from the tree onto the plot
        drag = win.tree.tree.mimeData([win.tree.items["Generator.Sine"]])
        assert drag.text() == "Generator.Sine"
        mime = QMimeData()
        mime.setText(drag.text())
        drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                          Qt.KeyboardModifier.NoModifier)
        assert panel.eventFilter(panel.plot.viewport(), drop)
        assert list(panel.curves) == ["Generator.Sine"]
        qtbot.waitUntil(lambda: len(_data(panel, "Generator.Sine")) > 50, timeout=20_000)
        inst.stop()  # the instance goes away: the viewer says so and waits
        qtbot.waitUntil(lambda: win.connection.text().startswith("disconnected"), timeout=20_000)
        restarted = time.time()
        inst = Instance.start(CONFIG, ("Generator.Sine",), name=name, folder=folder)
        qtbot.waitUntil(lambda: win.connection.text().startswith("connected"), timeout=30_000)
        qtbot.waitUntil(lambda: win.model.trace("Generator.Sine").t[-1] > restarted + 1, timeout=30_000)
    finally:
        if win is not None:
            win.close()
        inst.cleanup()
