"""Unit tests of rtoc.loader: built-in names, module:Class paths, entry points, errors."""

from __future__ import annotations

import pytest
from rtoc.drivers.generator import Generator
from rtoc.drivers.system import System

from rtoc import Driver, LoggerPlugin
from rtoc.errors import DriverNotFound
from rtoc.loader import BUILTIN, resolve


class Nested:
    class Inner(Driver):
        pass


class NotADriver:
    pass


def test_builtin_short_names() -> None:
    assert resolve("generator") is Generator
    assert resolve("system") is System
    assert set(BUILTIN) == {"generator", "system", "remote"}


def test_module_class_paths() -> None:
    assert resolve("rtoc.drivers.generator:Generator") is Generator
    assert resolve(f"{__name__}:Nested.Inner") is Nested.Inner
    assert resolve("rtoc:LoggerPlugin") is LoggerPlugin
    assert resolve("rtoc:Driver") is Driver


@pytest.mark.parametrize(("spec", "says"), [
    (f"{__name__}:NotADriver", "is not an rtoc.Driver subclass"),
    ("rtoc.drivers.generator:waveform", "is not an rtoc.Driver subclass"),
    ("rtoc.drivers.generator:WAVEFORMS", "is not an rtoc.Driver subclass"),
    ("rtoc.drivers.generator:Generator.samplerate", "is not an rtoc.Driver subclass"),
])
def test_a_target_that_is_not_a_driver(spec: str, says: str) -> None:
    with pytest.raises(DriverNotFound, match=says) as info:
        resolve(spec)
    assert repr(spec) in str(info.value)


def test_a_missing_attribute() -> None:
    with pytest.raises(DriverNotFound, match="has no 'Nope'"):
        resolve("rtoc.drivers.generator:Nope")


@pytest.mark.parametrize("spec", ["rtoc_no_such_module_xyz:Foo", "rtoc.drivers.nope:Foo"])
def test_a_missing_module(spec: str) -> None:
    with pytest.raises(DriverNotFound, match="cannot import") as info:
        resolve(spec)
    assert isinstance(info.value.__cause__, ImportError)
    assert isinstance(info.value, LookupError)


def test_an_unknown_name_says_what_is_known_and_what_else_works() -> None:
    with pytest.raises(DriverNotFound) as info:
        resolve("generatr")
    text = str(info.value)
    assert "'generatr'" in text
    assert "generator" in text and "system" in text  # the known names
    assert "rtoc.drivers" in text                   # the entry-point group
    assert "module:Class" in text                   # the other way to name one


@pytest.mark.parametrize("spec", [":Foo", ".x:Foo"])
def test_a_malformed_module_path_is_driver_not_found(spec: str) -> None:
    with pytest.raises(DriverNotFound):
        resolve(spec)


def test_an_entry_point_of_group_rtoc_drivers_is_found(tmp_path, monkeypatch) -> None:
    """A third-party package declaring [project.entry-points."rtoc.drivers"] is found by name."""
    (tmp_path / "thirdparty_thermo.py").write_text(
        "from rtoc import Driver\n\nclass Thermo(Driver):\n    pass\n")
    dist = tmp_path / "thirdparty_thermo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-thermo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rtoc.drivers]\nthermo = thirdparty_thermo:Thermo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = resolve("thermo")
    assert cls.__name__ == "Thermo" and cls.__module__ == "thirdparty_thermo"
