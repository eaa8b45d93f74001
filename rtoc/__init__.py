"""RTOC: a real-time measurement server.

Driver authors need only this module: ``rtoc.Driver`` (or ``rtoc.LoggerPlugin`` for ported
RTOC plugins), ``rtoc.Parameter``, ``rtoc.function`` and ``rtoc.Event``.
"""

from rtoc.driver import Driver, DriverContext, LoggerPlugin
from rtoc.errors import RtocError
from rtoc.model import Event
from rtoc.params import Parameter, function

__all__ = ["Driver", "DriverContext", "Event", "LoggerPlugin", "Parameter", "RtocError", "function"]
__version__ = "0.1.0"
