"""Unit tests of rtoc.config: decoding rtoc.toml, errors with key path and line, to_toml."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from rtoc.config import (
    DEFAULT_DRIVERS,
    BusConfig,
    Config,
    DriverConfig,
    EngineConfig,
    SupervisorConfig,
    error_at,
    load,
    loads,
    to_toml,
)
from rtoc.errors import ConfigError

FULL = """\
# a complete rtoc.toml
instance = "lab-2"
data_dir = "/var/lib/rtoc"
log_level = "debug"

[engine]
tick = 0.002
idle_tick = 0.05
idle_after = 10
min_batch = 128
max_delay = 0.01
max_batch = 1024
heartbeat = 2

[supervisor]
restart_delay = 1.0
restart_max_delay = 8.0
burst_starts = 3
burst_seconds = 20.0
stop_timeout = 2.5

[bus]
control = "tcp://127.0.0.1:5550"
data = "tcp://127.0.0.1:5551"
inbox = ""

[[drivers]]
name = "Gen"
driver = "generator"
ring_seconds = 8
[drivers.params]
samplerate = 1000.0
waveform = "square"

[[drivers]]
name = "Sys"
driver = "system"
autostart = false
"""


def line_of(text: str, needle: str, occurrence: int = 0) -> int:
    """The 1-based line of the ``occurrence``-th line of ``text`` starting with ``needle``."""
    hits = [i + 1 for i, ln in enumerate(text.splitlines()) if ln.strip().startswith(needle)]
    return hits[occurrence]


def fails(text: str, source: str = "rtoc.toml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loads(text, source)
    return info.value


def test_no_file_gives_the_defaults() -> None:
    c = load(None)
    assert c.drivers == DEFAULT_DRIVERS
    assert [(d.name, d.driver) for d in c.drivers] == [("Generator", "generator"), ("System", "system")]
    assert c.instance == "default" and c.log_level == "INFO" and c.source == ""
    assert c.engine == EngineConfig() and c.supervisor == SupervisorConfig() and c.bus == BusConfig()


def test_an_empty_file_runs_the_default_drivers() -> None:
    c = loads("", "empty.toml")
    assert c.drivers == DEFAULT_DRIVERS and c.source == "empty.toml"


def test_an_empty_drivers_list_means_no_drivers() -> None:
    assert loads("drivers = []").drivers == ()


def test_a_full_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "rtoc.toml"
    path.write_text(FULL)
    c = load(path)
    assert c.source == str(path)
    assert (c.instance, c.data_dir, c.log_level) == ("lab-2", "/var/lib/rtoc", "debug")
    assert c.data_path == Path("/var/lib/rtoc")
    assert c.engine == EngineConfig(tick=0.002, idle_tick=0.05, idle_after=10, min_batch=128,
                                    max_delay=0.01, max_batch=1024, heartbeat=2.0)
    assert type(c.engine.heartbeat) is float  # an int in TOML, a float field
    assert c.supervisor == SupervisorConfig(1.0, 8.0, 3, 20.0, 2.5)
    assert c.bus == BusConfig("tcp://127.0.0.1:5550", "tcp://127.0.0.1:5551", "")
    assert c.drivers == (
        DriverConfig("Gen", "generator", True, {"samplerate": 1000.0, "waveform": "square"}, 8.0),
        DriverConfig("Sys", "system", False, {}, 4.0),
    )


def test_config_is_frozen() -> None:
    c = loads(FULL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.instance = "x"  # type: ignore[misc]


def test_data_path_defaults_to_the_xdg_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert Config().data_path == tmp_path / "rtoc"
    assert Config(data_dir="~/x").data_path == Path.home() / "x"


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.file == str(path)
    assert str(path) in str(info.value)


def test_invalid_toml_is_a_config_error() -> None:
    err = fails("instance = \n", "bad.toml")
    assert err.file == "bad.toml" and "not valid TOML" in str(err)


def test_unknown_key_in_the_second_driver_names_path_and_line() -> None:
    text = FULL.replace('autostart = false', 'autostart = false\nbogus = 1')
    err = fails(text)
    assert err.key == "drivers[1].bogus"
    assert err.line == line_of(text, "bogus")
    assert err.file == "rtoc.toml"
    assert f"rtoc.toml:{err.line}: drivers[1].bogus:" in str(err)
    assert "unknown key" in str(err) and "ring_seconds" in str(err)  # lists the known keys


def test_unknown_key_in_the_first_driver() -> None:
    text = FULL.replace('ring_seconds = 8', 'ring_seconds = 8\nsamplerate = 3')
    err = fails(text)
    assert err.key == "drivers[0].samplerate"
    assert err.line == line_of(text, "samplerate = 3")  # not the params' samplerate below


CASES = [
    # (replace this, with this, key, the line's start)
    ('instance = "lab-2"', 'instance = "lab-2"\nbogus = true', "bogus", "bogus"),
    ("tick = 0.002", 'tick = "fast"', "engine.tick", "tick ="),
    ("idle_after = 10", "idle_after = 10.5", "engine.idle_after", "idle_after"),
    ("idle_after = 10", "idle_after = true", "engine.idle_after", "idle_after"),
    ("heartbeat = 2", "heartbeat = false", "engine.heartbeat", "heartbeat"),
    ("burst_starts = 3", "burst_starts = 3\nburst = 1", "supervisor.burst", "burst ="),
    ('inbox = ""', "inbox = 5", "bus.inbox", "inbox"),
    ("autostart = false", 'autostart = "no"', "drivers[1].autostart", "autostart"),
    ('driver = "system"', 'driver = ["system"]', "drivers[1].driver", 'driver = ["system"]'),
    ("ring_seconds = 8", 'ring_seconds = "8"', "drivers[0].ring_seconds", "ring_seconds"),
    ('log_level = "debug"', 'log_level = "loud"', "log_level", "log_level"),
    ('instance = "lab-2"', 'instance = "lab 2"', "instance", "instance"),
    ('instance = "lab-2"', 'instance = "a/b"', "instance", "instance"),
    ('instance = "lab-2"', 'instance = ""', "instance", "instance"),
    ('instance = "lab-2"', f'instance = "{"x" * 41}"', "instance", "instance"),
    ('name = "Sys"', 'name = "Sys.x"', "drivers[1].name", 'name = "Sys.x"'),
    ('name = "Sys"', 'name = "a/b"', "drivers[1].name", 'name = "a/b"'),
    ("ring_seconds = 8", "ring_seconds = 0", "drivers[0].ring_seconds", "ring_seconds"),
    ("tick = 0.002", "tick = -1.0", "engine.tick", "tick ="),
    ("max_delay = 0.01", "max_delay = 0", "engine.max_delay", "max_delay"),
]


@pytest.mark.parametrize(("old", "new", "key", "needle"), CASES, ids=[c[2] + ":" + c[1] for c in CASES])
def test_errors_name_key_path_and_line(old: str, new: str, key: str, needle: str) -> None:
    assert old in FULL
    text = FULL.replace(old, new, 1)
    err = fails(text)
    assert err.key == key
    assert err.line == line_of(text, needle)
    assert f"rtoc.toml:{err.line}: {key}: " in str(err)


def test_duplicate_driver_names_point_at_the_second() -> None:
    text = FULL.replace('name = "Sys"', 'name = "Gen"')
    err = fails(text)
    assert err.key == "drivers[1].name"
    assert err.line == line_of(text, 'name = "Gen"', 1)
    assert "used twice" in str(err)


@pytest.mark.parametrize("missing", ['name = "Sys"', 'driver = "system"'])
def test_a_missing_required_key_points_at_its_table(missing: str) -> None:
    text = FULL.replace(missing + "\n", "")
    err = fails(text)
    assert err.key == "drivers[1]." + missing.split()[0]
    assert "required" in str(err)
    assert err.line == line_of(text, "[[drivers]]", 1)


def test_a_missing_key_in_a_table_on_the_first_line() -> None:
    err = fails('[[drivers]]\ndriver = "generator"\n')
    assert err.key == "drivers[0].name"
    assert err.line == 1


def test_batch_bounds_are_checked() -> None:
    err = fails(FULL.replace("max_batch = 1024", "max_batch = 64"))
    assert err.key == "engine.min_batch"
    assert err.line == line_of(FULL, "min_batch")
    assert fails(FULL.replace("min_batch = 128", "min_batch = 0")).key == "engine.min_batch"


@pytest.mark.parametrize(("text", "key"), [
    ("engine = 3", "engine"),
    ("drivers = 3", "drivers"),
    ("drivers = [1]", "drivers[0]"),
    ('[[drivers]]\nname = "A"\ndriver = "g"\nparams = 3', "drivers[0].params"),
])
def test_wrong_shapes(text: str, key: str) -> None:
    assert fails(text).key == key


def test_params_are_free_form_and_kept_as_given() -> None:
    c = loads('[[drivers]]\nname = "A"\ndriver = "pkg.mod:Cls"\n'
              'params = {rate = 5, names = ["a", "b"], nested = {x = 1.5}}\n')
    assert c.drivers[0].params == {"rate": 5, "names": ["a", "b"], "nested": {"x": 1.5}}
    assert c.drivers[0].driver == "pkg.mod:Cls"


def _reloaded(c: Config) -> Config:
    text = to_toml(c)
    tomllib.loads(text)  # valid TOML first
    return dataclasses.replace(loads(text, "again"), source=c.source)


def test_to_toml_round_trips_a_full_config() -> None:
    c = loads(FULL, "full.toml")
    out = to_toml(c)
    assert out.startswith("# effective configuration (full.toml)")
    assert _reloaded(c) == c


def test_to_toml_round_trips_the_defaults_with_the_effective_data_dir(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    c = load(None)
    again = _reloaded(c)
    assert again.data_dir == str(tmp_path / "rtoc")  # written out as the effective folder
    assert again.data_path == c.data_path
    assert dataclasses.replace(again, data_dir="") == c
    assert "built-in defaults" in to_toml(c).splitlines()[0]


def test_to_toml_round_trips_odd_values() -> None:
    c = Config(instance="x", data_dir='/tmp/a "quoted" \\ dir', drivers=(
        DriverConfig("A", "m:C", False, {"f": float("inf"), "neg": -2, "flag": True,
                                          "s": 'say "hi"', "list": [1, 2.5, "x"],
                                          "table": {"k": 1}}, 0.5),))
    assert _reloaded(c) == c


def test_to_toml_escapes_control_characters() -> None:
    c = Config(drivers=(DriverConfig("A", "m:C", params={"s": "line1\nline2\ttab"}),))
    assert _reloaded(c).drivers[0].params == {"s": "line1\nline2\ttab"}


@pytest.mark.parametrize("key", ["a b", "a.b", "ü"])
def test_to_toml_quotes_param_keys(key: str) -> None:
    c = Config(data_dir="/d", drivers=(DriverConfig("A", "m:C", params={key: 1}),))
    assert _reloaded(c).drivers[0].params == {key: 1}


def test_error_at_names_a_params_key_and_its_line(tmp_path: Path) -> None:
    text = FULL.replace('autostart = false', 'autostart = false\n[drivers.params]\nrate = 5\nmode = "x"')
    path = tmp_path / "rtoc.toml"
    path.write_text(text)
    config = load(path)
    err = error_at(config, "Sys has no parameter 'mode'", "drivers[1].params.mode")
    assert isinstance(err, ConfigError)
    assert err.key == "drivers[1].params.mode"
    assert err.line == line_of(text, "mode =")
    assert str(err) == f"{path}:{err.line}: drivers[1].params.mode: Sys has no parameter 'mode'"
    first = error_at(config, "bad", "drivers[0].params.waveform")
    assert first.line == line_of(text, "waveform =")  # the first driver's params table
    assert error_at(config, "bad", "drivers[1].driver").line == line_of(text, 'driver = "system"')


def test_error_at_an_inline_params_table_points_at_the_table(tmp_path: Path) -> None:
    text = '[[drivers]]\nname = "A"\ndriver = "generator"\nparams = {samplerate = 5, bogus = 1}\n'
    path = tmp_path / "rtoc.toml"
    path.write_text(text)
    assert error_at(load(path), "bad", "drivers[0].params.bogus").line == 4


def test_error_at_without_a_file_has_no_line() -> None:
    err = error_at(loads(FULL), "bad", "drivers[0].params.waveform")
    assert err.line is None and err.file == "<string>"
    assert str(err) == "<string>: drivers[0].params.waveform: bad"
