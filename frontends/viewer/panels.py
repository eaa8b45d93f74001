"""The viewer's side panels: the signal tree, the events list and the devices panel.

Each shows what the worker last sent and turns the user's clicks into Qt signals; none of
them talks to the instance itself.
"""

from __future__ import annotations

import json
import time
from typing import Any

from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Signal

from .plot_panel import PRIORITY_COLOURS

ROLES = ("none", "read", "write", "admin")


class _DragTree(QtWidgets.QTreeWidget):
    """A tree whose signal rows drag as text (their full names) onto a plot."""

    def mimeData(self, items):  # noqa: N802 - Qt's name
        data = QtCore.QMimeData()
        data.setText("\n".join(i.data(0, QtCore.Qt.ItemDataRole.UserRole) or "" for i in items))
        return data


class SignalTree(QtWidgets.QWidget):
    """Devices and their signals with latest value, unit, rate and lost; a filter box."""

    plot_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.filter = QtWidgets.QLineEdit()
        self.filter.setPlaceholderText("filter signals")
        self.filter.textChanged.connect(self._apply_filter)
        self.tree = _DragTree()
        self.tree.setHeaderLabels(["Signal", "Value", "Unit", "Rate /s", "Lost"])
        self.tree.setDragEnabled(True)
        self.tree.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.items: dict[str, QtWidgets.QTreeWidgetItem] = {}
        self.devices: dict[str, QtWidgets.QTreeWidgetItem] = {}
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)

    def update_signals(self, signals: list[dict], now: float | None = None) -> None:
        for s in signals:
            name = s["name"]
            device, _, short = name.partition(".")
            item = self.items.get(name)
            if item is None:
                parent = self.devices.get(device)
                if parent is None:
                    parent = self.devices[device] = QtWidgets.QTreeWidgetItem(self.tree, [device])
                    parent.setFlags(parent.flags() & ~QtCore.Qt.ItemFlag.ItemIsDragEnabled)
                    parent.setExpanded(True)
                item = self.items[name] = QtWidgets.QTreeWidgetItem(parent, [short])
                item.setData(0, QtCore.Qt.ItemDataRole.UserRole, name)
            latest = s.get("latest") or {}
            item.setText(1, f"{latest['y']:.6g}" if isinstance(latest.get("y"), (int, float)) else "")
            item.setText(2, s.get("unit") or "")
            item.setText(3, f"{s.get('rate', 0.0):.6g}")
            item.setText(4, str(s.get("lost", 0)))
        self._apply_filter()

    def _apply_filter(self) -> None:
        text = self.filter.text().strip().lower()
        for name, item in self.items.items():
            item.setHidden(bool(text) and text not in name.lower())
        for parent in self.devices.values():
            parent.setHidden(all(parent.child(i).isHidden() for i in range(parent.childCount())))

    def _double_clicked(self, item: QtWidgets.QTreeWidgetItem) -> None:
        name = item.data(0, QtCore.Qt.ItemDataRole.UserRole)
        if name:
            self.plot_requested.emit(name)


class EventsPanel(QtWidgets.QWidget):
    """The latest events (newest first) with a priority filter; a click jumps the plots."""

    jump = Signal(float)

    def __init__(self) -> None:
        super().__init__()
        self.level = QtWidgets.QComboBox()
        self.level.addItems(["all", "warnings and errors", "errors"])
        self.level.currentIndexChanged.connect(lambda _: self.show_events(self.events))
        self.table = QtWidgets.QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Time", "Priority", "Where", "Text"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.cellClicked.connect(self._clicked)
        self.events: list[dict] = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.level)
        layout.addWidget(self.table)

    def show_events(self, events: list[dict]) -> None:
        self.events = list(events)
        shown = [e for e in reversed(self.events) if int(e.get("priority", 0)) >= self.level.currentIndex()][:500]
        self.table.setRowCount(len(shown))
        for row, e in enumerate(shown):
            where = ".".join(p for p in (e.get("device", ""), e.get("signal", "")) if p)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.get("time", 0.0)))
            cells = (stamp, ("info", "warning", "error")[int(e.get("priority", 0)) % 3], where, e.get("text", ""))
            for col, text in enumerate(cells):
                cell = QtWidgets.QTableWidgetItem(str(text))
                if col == 0:
                    cell.setData(QtCore.Qt.ItemDataRole.UserRole, float(e.get("time", 0.0)))
                if col == 1:
                    cell.setForeground(QtWidgets.QApplication.palette().text() if not e.get("priority")
                                       else _brush(PRIORITY_COLOURS[int(e["priority"]) % 3]))
                self.table.setItem(row, col, cell)

    def _clicked(self, row: int, col: int) -> None:
        t = self.table.item(row, 0).data(QtCore.Qt.ItemDataRole.UserRole)
        if t:
            self.jump.emit(float(t))


def _brush(colour: str):
    from PySide6.QtGui import QBrush, QColor

    return QBrush(QColor(colour))


class DevicesPanel(QtWidgets.QWidget):
    """Start/stop, parameters with typed editors and functions with arguments, for a user
    with the write role; read-only users see it disabled."""

    command = Signal(str, object)   # op, fields

    def __init__(self) -> None:
        super().__init__()
        self.note = QtWidgets.QLabel("")
        self.box = QtWidgets.QWidget()
        self.form = QtWidgets.QVBoxLayout(self.box)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.box)
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.note)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.message)
        self.shape: Any = None
        self.state_labels: dict[str, QtWidgets.QLabel] = {}
        self.role = "none"

    def set_role(self, role: str) -> None:
        self.role = role
        may = ROLES.index(role if role in ROLES else "none") >= ROLES.index("write")
        self.box.setEnabled(may)
        self.note.setText("" if may else f"read-only ({role}): log in as a user with the write role to control devices")

    def update_drivers(self, drivers: list[dict]) -> None:
        shape = [(d["name"], tuple(p["name"] for p in d.get("parameters", [])),
                  tuple(f["name"] for f in d.get("functions", []))) for d in drivers]
        if shape != self.shape:
            self.shape = shape
            self._rebuild(drivers)
        for d in drivers:
            if d["name"] in self.state_labels:
                self.state_labels[d["name"]].setText(d.get("state", "?"))

    def _rebuild(self, drivers: list[dict]) -> None:
        while self.form.count():
            item = self.form.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.state_labels = {}
        for d in drivers:
            group = QtWidgets.QGroupBox(d["name"])
            grid = QtWidgets.QGridLayout(group)
            state = self.state_labels[d["name"]] = QtWidgets.QLabel(d.get("state", "?"))
            start, stop = QtWidgets.QPushButton("Start"), QtWidgets.QPushButton("Stop")
            start.setObjectName(f"start:{d['name']}")
            stop.setObjectName(f"stop:{d['name']}")
            start.clicked.connect(lambda _=False, n=d["name"]: self.command.emit("start", {"driver": n}))
            stop.clicked.connect(lambda _=False, n=d["name"]: self.command.emit("stop", {"driver": n}))
            grid.addWidget(state, 0, 0)
            grid.addWidget(start, 0, 1)
            grid.addWidget(stop, 0, 2)
            row = 1
            for p in d.get("parameters", []):
                editor, read = _editor(p)
                button = QtWidgets.QPushButton("Set")
                button.clicked.connect(lambda _=False, n=d["name"], p=p["name"], r=read: self._set(n, p, r))
                grid.addWidget(QtWidgets.QLabel(p["name"]), row, 0)
                grid.addWidget(editor, row, 1)
                grid.addWidget(button, row, 2)
                editor.setToolTip(p.get("doc", ""))
                row += 1
            for f in d.get("functions", []):
                args = QtWidgets.QLineEdit()
                args.setPlaceholderText("arguments as JSON, e.g. 1.5, \"on\"" if f.get("args") else "no arguments")
                button = QtWidgets.QPushButton("Call")
                button.clicked.connect(lambda _=False, n=d["name"], fn=f["name"], a=args: self._call(n, fn, a.text()))
                grid.addWidget(QtWidgets.QLabel(f.get("signature", f["name"])), row, 0)
                grid.addWidget(args, row, 1)
                grid.addWidget(button, row, 2)
                row += 1
            self.form.addWidget(group)
        self.form.addStretch(1)

    def _set(self, driver: str, param: str, read) -> None:
        try:
            value = read()
        except ValueError as exc:
            self.message.setText(f"{driver}.{param}: {exc}")
            return
        self.command.emit("set", {"driver": driver, "param": param, "value": value})

    def _call(self, driver: str, function: str, text: str) -> None:
        try:
            args = json.loads(f"[{text}]") if text.strip() else []
        except ValueError:
            self.message.setText(f"{driver}.{function}: the arguments must be JSON values separated by commas")
            return
        self.command.emit("call", {"driver": driver, "function": function, "args": args, "kwargs": {}})


def _editor(p: dict):
    """A typed editor for a parameter, and the function reading its value."""
    kind, value = p.get("type", "str"), p.get("value")
    if p.get("choices"):
        box = QtWidgets.QComboBox()
        box.addItems([str(c) for c in p["choices"]])
        box.setCurrentText(str(value))
        return box, lambda: p["choices"][box.currentIndex()]
    if kind == "bool":
        check = QtWidgets.QCheckBox()
        check.setChecked(bool(value))
        return check, check.isChecked
    if kind in ("int", "float"):
        spin = QtWidgets.QSpinBox() if kind == "int" else QtWidgets.QDoubleSpinBox()
        if kind == "float":
            spin.setDecimals(6)
        lo = p.get("min", -2**31 + 1 if kind == "int" else -1e12)
        hi = p.get("max", 2**31 - 1 if kind == "int" else 1e12)
        spin.setRange(max(lo, -2**31 + 1) if kind == "int" else lo, min(hi, 2**31 - 1) if kind == "int" else hi)
        spin.setValue(value if isinstance(value, (int, float)) else 0)
        return spin, spin.value
    line = QtWidgets.QLineEdit(json.dumps(value) if kind in ("list", "dict") else str(value if value is not None else ""))
    if kind in ("list", "dict"):
        return line, lambda: _json(line.text(), kind)
    return line, line.text


def _json(text: str, kind: str):
    value = json.loads(text)
    if not isinstance(value, list if kind == "list" else dict):
        raise ValueError(f"not a JSON {kind}")
    return value
