"""The viewer (``rtoc view``): a PySide6 + pyqtgraph window on a local or remote instance.

Qt is imported only by :func:`run` (the ``viewer`` extra installs it); without it ``rtoc
view`` says which extra to install.
"""

from __future__ import annotations

import importlib.util

from rtoc.errors import ConfigError


def check_installed() -> None:
    missing = [m for m in ("PySide6", "pyqtgraph") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"rtoc view needs {' and '.join(missing)}: pip install 'rtoc[viewer]'", "viewer")


def run(config, url: str | None = None, user: str | None = None, password: str | None = None,
        instance: str | None = None) -> int:
    """Open the window on ``url`` (``ws://``/``wss://``) or the local instance; returns when
    it is closed. Closing it never stops the instance."""
    check_installed()
    from .app import main

    return main(config, url, user, password, instance)
