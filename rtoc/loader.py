"""Find a driver class by built-in short name, ``module:Class`` path or entry point.

No folder scanning, no ``exec``: only importable modules and installed entry points.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from rtoc.driver import Driver
from rtoc.errors import DriverNotFound

BUILTIN = {
    "generator": "rtoc.drivers.generator:Generator",
    "system": "rtoc.drivers.system:System",
    "remote": "rtoc.drivers.remote:Remote",
}
GROUP = "rtoc.drivers"


def resolve(spec: str) -> type[Driver]:
    """The Driver subclass ``spec`` names; DriverNotFound says what was tried."""
    target = BUILTIN.get(spec)
    if target is None and ":" not in spec:
        matches = [ep for ep in entry_points(group=GROUP) if ep.name == spec]
        if not matches:
            known = sorted(set(BUILTIN) | {ep.name for ep in entry_points(group=GROUP)})
            raise DriverNotFound(f"unknown driver {spec!r}: not a built-in or an entry point "
                                 f"of group {GROUP!r} (known: {', '.join(known)}), "
                                 "and not a module:Class path")
        target = matches[0].value
    module_name, _, attr = (target or spec).partition(":")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as exc:  # also "" or ".x" as a module name
        raise DriverNotFound(f"driver {spec!r}: cannot import {module_name!r}: {exc}") from exc
    cls = module
    for part in attr.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise DriverNotFound(f"driver {spec!r}: {module_name!r} has no {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverNotFound(f"driver {spec!r}: {attr!r} is not an rtoc.Driver subclass")
    return cls
