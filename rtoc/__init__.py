"""RTOC: a real-time measurement server.

Driver authors need only this module: ``rtoc.Driver`` (or ``rtoc.LoggerPlugin`` for ported
RTOC plugins), ``rtoc.Parameter``, ``rtoc.function`` and ``rtoc.Event``.

The names are imported on first use (PEP 562), so ``import rtoc.anything`` costs no numpy
import: the ``rtoc`` command reaches its Ctrl-C guard within milliseconds of starting.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtoc.driver import Driver, DriverContext, LoggerPlugin
    from rtoc.errors import RtocError
    from rtoc.model import Event
    from rtoc.params import Parameter, function

_HOMES = {"Driver": "rtoc.driver", "DriverContext": "rtoc.driver", "LoggerPlugin": "rtoc.driver",
          "RtocError": "rtoc.errors", "Event": "rtoc.model", "Parameter": "rtoc.params",
          "function": "rtoc.params"}

__all__ = ["Driver", "DriverContext", "Event", "LoggerPlugin", "Parameter", "RtocError", "function"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'rtoc' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
