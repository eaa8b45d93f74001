"""The package layout and its contracts cover every package and module (pyproject.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"rtoc": "rtoc", "rtoc.pipeline": "pipeline", "rtoc.drivers": "drivers",
           "rtoc.frontends": "frontends"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _packages() -> set[str]:
    """Every package folder (``__init__.py``, or the dashboard's static files) as a dotted name."""
    out = set()
    for dotted, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            out.add(".".join((dotted, *rel)))
    out.add("rtoc.frontends.websocket.static")
    return out


def _contract(name_start: str) -> dict:
    return next(c for c in PYPROJECT["tool"]["importlinter"]["contracts"]
                if c["name"].startswith(name_start))


def test_every_package_is_installed() -> None:
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == _packages()


def test_the_layers_contract_is_exhaustive_over_rtoc() -> None:
    layers = _contract("Layers")
    assert layers["containers"] == ["rtoc"] and layers["exhaustive"] is True


def test_every_frontend_is_independent_of_the_others() -> None:
    frontends = {p for p in _packages() if p.count(".") == 2 and p.startswith("rtoc.frontends.")}
    assert set(_contract("Frontends are independent")["modules"]) == frontends


def test_every_base_module_is_kept_free_of_numba_zmq_and_qt() -> None:
    """The base is all of rtoc but the shell, the entry point and the three big packages."""
    not_base = {"app", "__main__", "bus", "__init__", "pipeline", "drivers", "frontends"}
    children = {p.stem if p.is_file() else p.name for p in (ROOT / "rtoc").iterdir()
                if (p.suffix == ".py" or (p / "__init__.py").exists())}
    base = {f"rtoc.{c}" for c in children - not_base}
    assert set(_contract("The base imports no")["source_modules"]) == base


def test_the_public_imports_keep_working() -> None:
    """What users and the docs import, wherever the modules behind it moved."""
    import rtoc
    import rtoc.bus
    import rtoc.client
    import rtoc.testing
    from rtoc import Driver, DriverContext, Event, LoggerPlugin, Parameter, RtocError, function

    assert Driver.__module__ == "rtoc.driver" and issubclass(LoggerPlugin, Driver)
    assert callable(function) and Parameter and Event and DriverContext
    assert issubclass(RtocError, Exception)
    assert rtoc.client.Client.__name__ == "Client" and rtoc.client.AsyncClient
    assert callable(rtoc.testing.run_driver)
    assert rtoc.bus.Subscriber and rtoc.bus.ControlClient and rtoc.bus.instance_endpoints("x")
    assert set(rtoc.__all__) <= set(dir(rtoc))
