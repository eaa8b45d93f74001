"""Find a driver class by built-in short name, ``module:Class`` path or entry point.

No folder scanning, no ``exec``: only importable modules and installed entry points.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points

from rtoc.driver import Driver
from rtoc.errors import DriverNotFound

BUILTIN = {
    "generator": "rtoc.drivers.generator:Generator",
    "system": "rtoc.drivers.system:System",
    "remote": "rtoc.drivers.remote:Remote",
}
GROUP = "rtoc.drivers"
GUI_LIBRARIES = ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip")


def use_plugins_dir(folder) -> None:
    """Look for ``module:Class`` drivers in ``folder`` first (the config's ``plugins_dir``),
    when it exists. Its subfolders (RTOC's plugin folders) come last on the path, so a
    plugin's ``import helper`` finds the helper module beside it without shadowing any
    other module."""
    if folder is None or not folder.is_dir():
        return
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and not sub.name.startswith((".", "_")) and str(sub) not in sys.path \
                and any(sub.glob("*.py")):
            sys.path.append(str(sub))


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
    except ImportError as exc:
        missing = (getattr(exc, "name", None) or "").split(".")[0]
        if missing in GUI_LIBRARIES:  # an RTOC plugin with a GUI: it runs headless once installed
            raise DriverNotFound(f"driver {spec!r}: the plugin needs a GUI library: its module "
                                 f"imports {missing}, which is not installed (pip install {missing}); "
                                 "with it the plugin runs headless, its GUI is never shown") from exc
        raise DriverNotFound(f"driver {spec!r}: cannot import {module_name!r}: {exc}") from exc
    except (ValueError, TypeError) as exc:  # "" or ".x" as a module name
        raise DriverNotFound(f"driver {spec!r}: cannot import {module_name!r}: {exc}") from exc
    cls = module
    for part in attr.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise DriverNotFound(f"driver {spec!r}: {module_name!r} has no {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverNotFound(f"driver {spec!r}: {attr!r} is not an rtoc.Driver subclass")
    return cls
