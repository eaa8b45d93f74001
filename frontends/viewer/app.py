"""``rtoc view``: the QApplication, the source (local or remote) and the main window."""

from __future__ import annotations

import sys
from typing import Any

from PySide6 import QtWidgets

from rtoc.paths import config_dir

from .source import LocalSource, RemoteSource
from .window import MainWindow


def make_source(config: Any, url: str | None, user: str | None, password: str | None,
                instance: str | None):
    if url:
        return RemoteSource(url, user, password)
    return LocalSource(config, instance)


def main(config: Any, url: str | None = None, user: str | None = None, password: str | None = None,
         instance: str | None = None) -> int:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("RTOC viewer")
    source = make_source(config, url, user, password, instance)
    window = MainWindow(source, config_dir() / "viewer.json", default_signals=("Generator.Sine",))
    window.show()
    return app.exec()
