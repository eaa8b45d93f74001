"""Logging set-up, for entry points only (the CLI and each child process's main)."""

from __future__ import annotations

import logging
import sys


def configure(level: str = "INFO", process: str = "") -> None:
    """One stderr handler on the ``rtoc`` logger, lines tagged with the process name."""
    tag = f"[{process}] " if process else ""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)-7s {tag}%(name)s: %(message)s",
                                           "%H:%M:%S"))
    root = logging.getLogger("rtoc")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
