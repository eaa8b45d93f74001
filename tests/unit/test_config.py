"""Unit tests of rtoc.config: decoding rtoc.toml, errors with key path and line, to_toml."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rtoc.app import cli
from rtoc.config import (
    DEFAULT_DRIVERS,
    ArchiveConfig,
    AutomationConfig,
    BusConfig,
    Config,
    DriverConfig,
    EngineConfig,
    SupervisorConfig,
    TelegramConfig,
    UserConfig,
    WebsocketConfig,
    error_at,
    load,
    loads,
    to_toml,
)
from rtoc.errors import ConfigError
from rtoc.events.rules import ActionRule, EventRule
from rtoc.typed_toml import decode

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
curve_server_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
curve_client_key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
curve_client_secret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"

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
    assert c.bus == BusConfig("tcp://127.0.0.1:5550", "tcp://127.0.0.1:5551", "",
                              "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "",
                              "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
                              "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs")
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


# -- every key, one at a time: the error names that key and its line ------------------------
HASH = "scrypt$16384$8$1$c2FsdA==$aGFzaA=="
SECTIONS = {"engine": EngineConfig, "supervisor": SupervisorConfig, "bus": BusConfig,
            "automation": AutomationConfig, "archive": ArchiveConfig, "websocket": WebsocketConfig,
            "telegram": TelegramConfig}
TABLES = {  # arrays of tables, two each: the second's keys must not be found in the first
    "websocket.users": [{"name": "ann", "password_hash": HASH, "role": "write"},
                        {"name": "bob", "password_hash": HASH, "role": "read"}],
    "drivers": [{"name": "Gen", "driver": "generator", "autostart": True, "ring_seconds": 8.0,
                 "max_tick_failures": 5, "stall_timeout": 30.0},
                {"name": "Sys", "driver": "system", "autostart": False, "ring_seconds": 4.0,
                 "max_tick_failures": 10, "stall_timeout": 60.0}],
    "events": [{"name": f"e{i}", "cond": "Gen.Sine > 0.5", "trigger": "rising", "hold": 0.5,
                "cooldown": 1.0, "text": "hot {value}", "priority": 1, "id": f"hot{i}",
                "device": "Lab", "signal": "Temp", "active": True} for i in range(2)],
    "actions": [{"name": f"a{i}", "listen": ["hot0"], "active": True} for i in range(2)],
}
STEPS = [{"notify": "got {value}", "priority": 1}, {"write": "Lab.Out", "value": 1.5}]


def _literal(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_literal(x) for x in v) + "]"
    return json.dumps(v) if isinstance(v, str) else repr(v)


def _wrong(v: object) -> str:
    """A literal of another TOML type than ``v``'s."""
    return "1" if isinstance(v, bool) else "5" if isinstance(v, (str, list, tuple)) else '"x"'


def _every_key() -> tuple[list[str], dict[str, tuple[int, object]]]:
    """A valid rtoc.toml setting every key, and each key's (0-based line, value)."""
    out: list[str] = []
    where: dict[str, tuple[int, object]] = {}

    def put(key: str, name: str, value: object) -> None:
        where[key] = (len(out), value)
        out.append(f"{name} = {_literal(value)}")

    for name, value in (("instance", "lab"), ("data_dir", "/tmp/rtoc-data"), ("log_level", "INFO"),
                        ("plugins_dir", "plugins")):
        put(name, name, value)
    for section, cls in SECTIONS.items():
        out += ["", f"[{section}]"]
        for f in dataclasses.fields(cls):
            if f.name != "users":
                put(f"{section}.{f.name}", f.name, getattr(cls(), f.name))
    for table, items in TABLES.items():
        for i, item in enumerate(items):
            out += ["", f"[[{table}]]"]
            for name, value in item.items():
                put(f"{table}[{i}].{name}", name, value)
            if table == "drivers":
                out.append("[drivers.params]")
                put(f"drivers[{i}].params.samplerate", "samplerate", 100.0)
            for j, step in enumerate(STEPS if table == "actions" else []):
                out.append("[[actions.steps]]")
                for name, value in step.items():
                    put(f"actions[{i}].steps[{j}].{name}", name, value)
    return out, where


EVERY, WHERE = _every_key()
TYPED = [k for k in WHERE if ".params." not in k and not k.endswith("].value")]  # free-form


def _fails_at(key: str, literal: str) -> ConfigError:
    line, _ = WHERE[key]
    lines = list(EVERY)
    lines[line] = f"{lines[line].split(' = ')[0]} = {literal}"
    return fails("\n".join(lines) + "\n")


def test_the_every_key_file_is_valid_and_covers_every_key() -> None:
    c = loads("\n".join(EVERY))
    assert len(c.drivers) == len(c.websocket.users) == len(c.events) == len(c.actions) == 2
    def keys(prefix: str) -> set[str]:
        return {m[1] for k in WHERE if (m := re.fullmatch(re.escape(prefix) + r"(\w+)", k))}

    assert keys("") == {f.name for f in dataclasses.fields(Config)} - {
        "source", "drivers", "events", "actions", *SECTIONS}
    for section, cls in SECTIONS.items():
        assert keys(f"{section}.") == {f.name for f in dataclasses.fields(cls)} - {"users"}
    for prefix, cls in (("websocket.users[1].", UserConfig), ("drivers[1].", DriverConfig),
                        ("events[1].", EventRule), ("actions[1].", ActionRule)):
        assert keys(prefix) | {"params", "steps"} >= {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("key", TYPED)
def test_a_wrongly_typed_value_names_its_key_and_line(key: str) -> None:
    line, value = WHERE[key]
    err = _fails_at(key, _wrong(value))
    assert (err.key, err.line) == (key, line + 1), str(err)
    assert f"rtoc.toml:{line + 1}: {key}: " in str(err)


BAD_VALUES = [  # (key, a value of the right type that is refused)
    ("instance", '"a b"'), ("log_level", '"loud"'),
    *[(f"engine.{k}", "0") for k in ("tick", "idle_tick", "max_delay", "heartbeat", "min_batch",
                                     "max_batch", "event_history", "max_event_rate",
                                     "sync_timeout", "view_grace")],
    ("engine.tick", "nan"), ("engine.view_points", "3"), ("engine.aggregates", "[1.0, 1.5]"),
    ("archive.backend", '"sqlite"'), ("archive.schema", '"Rtoc"'), ("archive.flush_interval", "0"),
    ("archive.max_batch", "0"), ("archive.retention_days", "-1"),
    ("websocket.port", "70000"), ("websocket.anonymous", '"root"'),
    ("websocket.max_message", "10"), ("websocket.max_depth", "1"), ("websocket.max_clients", "0"),
    ("websocket.send_queue", "0"), ("websocket.ping_interval", "0"),
    ("websocket.ping_timeout", "0"), ("websocket.push_interval", "0"),
    ("websocket.login_max_failures", "0"), ("websocket.login_window", "0"),
    ("websocket.login_lockout", "-1"), ("websocket.login_max_lockout", "1.0"),
    ("websocket.users[1].name", '"b b"'), ("websocket.users[1].role", '"root"'),
    ("websocket.users[1].password_hash", '"plain"'),
    ("websocket.legacy_role", '"root"'), ("websocket.legacy_role", '"none"'),
    ("websocket.legacy_password_env", '"RTOC PASSWORD"'),
    ("drivers[1].name", '"a.b"'), ("drivers[1].ring_seconds", "0"),
    ("events[1].cond", '"Gen.Sine >"'), ("events[1].trigger", '"up"'), ("events[1].hold", "-1"),
    ("events[1].priority", "7"), ("actions[1].listen", "[]"),
    ("actions[1].steps[1].value", '"no"'), ("actions[1].steps[0].priority", "7"),
]


@pytest.mark.parametrize(("key", "literal"), BAD_VALUES, ids=[f"{k}={v}" for k, v in BAD_VALUES])
def test_a_bad_value_names_its_own_key_not_a_neighbour(key: str, literal: str) -> None:
    err = _fails_at(key, literal)
    line = WHERE[key][0] + 1
    assert (err.key, err.line) == (key, line), str(err)


@pytest.mark.parametrize(("text", "key", "line"), [
    # a rule between two keys names the one the file sets
    ("[engine]\nmax_batch = 100\n", "engine.max_batch", 2),
    ("[engine]\nmin_batch = 100000\n", "engine.min_batch", 2),
    # TLS needs both: the missing one is named, at its table
    ('[websocket]\ntls_cert = "c.pem"\n', "websocket.tls_key", 1),
    ('[websocket]\ntls_key = "k.pem"\n', "websocket.tls_cert", 1),
    # RTOC's encryption needs RTOC's password (its key derives from it)
    ('[websocket]\nlegacy_rtoc_encryption = true\n', "websocket.legacy_password_env", 1),
    ('[websocket]\nlegacy_rtoc_encryption = true\nlegacy_password_env = "PW"\n'
     f'[[websocket.users]]\nname = "rtoc-legacy"\npassword_hash = "{HASH}"\n', "websocket.users[0].name", 5),
])
def test_a_rule_between_keys_names_the_key_to_change(text: str, key: str, line: int) -> None:
    err = fails(text)
    assert (err.key, err.line) == (key, line), str(err)


@pytest.mark.parametrize(("text", "key", "line"), [
    ('[engine]\nmax_batch = 5000\n\n[ archive ]\nmax_batch = "x"\n', "archive.max_batch", 5),
    ('[engine]  # scans\ntick = "x"\n', "engine.tick", 2),
    ("[engine]\n'tick' = \"x\"\n", "engine.tick", 2),
    ('engine.tick = "x"\n', "engine.tick", 1),
    ('engine = { idle_tick = 0.1, tick = "x" }\n', "engine.tick", 1),
    ('[engine]\nidle_tick = 0.1\n[bus]\ncontrol = """\ntick = 1\n"""\n[engine.x]\n', "engine.x", 7),
    ('[bus]\ncontrol = """\ntick = 1\n"""\n[engine]\ntick = "x"\n', "engine.tick", 6),
    ('[engine]\naggregates = [\n  1.0,\n  "x",\n]\n', "engine.aggregates[1]", 2),
    ('[[actions]]\nname = "a"\nlisten = ["e"]\n[[actions.steps]]\nnotify = "n"\n'
     '[[actions]]\nname = "b"\nlisten = ["e"]\n[[actions.steps]]\nwrite = "D.s"\nvalue = "no"\n',
     "actions[1].steps[0].value", 11),
    ('[[actions]]\nname = "a"\nlisten = ["e"]\n'
     'steps = [{notify = "n"}, {write = "D.s", value = "no"}]\n', "actions[0].steps[1].value", 4),
])
def test_the_line_follows_every_way_toml_spells_a_key(text: str, key: str, line: int) -> None:
    err = fails(text)
    assert (err.key, err.line) == (key, line), str(err)


def test_error_at_a_quoted_params_key_with_a_dot(tmp_path: Path) -> None:
    path = tmp_path / "rtoc.toml"
    path.write_text('[[drivers]]\nname = "A"\ndriver = "m:C"\n[drivers.params]\nx = 1\n"a.b" = 2\n')
    assert error_at(load(path), "bad", "drivers[0].params.a.b").line == 6


# -- union-typed keys are checked like any other ----------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Inner:
    x: int = 0


@dataclasses.dataclass(frozen=True)
class _Unions:
    timeout: float | None = None
    names: str | list[str] = ""
    port: int | str = 0
    either: int | float = 0
    target: _Inner | str = ""
    pair: tuple[int, str] = (0, "")


@pytest.mark.parametrize(("raw", "want"), [
    ({"timeout": 2}, _Unions(timeout=2.0)),
    ({"timeout": 0.5}, _Unions(timeout=0.5)),
    ({"names": "a"}, _Unions(names="a")),
    ({"names": ["a", "b"]}, _Unions(names=["a", "b"])),
    ({"port": "http"}, _Unions(port="http")),
    ({"port": 80}, _Unions(port=80)),
    ({"either": 1}, _Unions(either=1)),
    ({"either": 1.5}, _Unions(either=1.5)),
    ({"target": {"x": 3}}, _Unions(target=_Inner(3))),
    ({"target": "t"}, _Unions(target="t")),
    ({"pair": [1, "a"]}, _Unions(pair=(1, "a"))),
])
def test_union_keys_decode(raw: dict, want: _Unions) -> None:
    got = decode(_Unions, raw, "s")
    assert got == want
    assert type(got.timeout) is type(want.timeout) and type(got.either) is type(want.either)


@pytest.mark.parametrize(("raw", "key", "says"), [
    ({"timeout": "x"}, "s.timeout", "must be float, got str 'x'"),
    ({"timeout": True}, "s.timeout", "must be float, got bool True"),
    ({"names": 5}, "s.names", "must be str or an array, got int 5"),
    ({"names": ["a", 1]}, "s.names[1]", "must be str, got int 1"),
    ({"port": 1.5}, "s.port", "must be int or str, got float 1.5"),
    ({"port": False}, "s.port", "must be int or str, got bool False"),
    ({"either": "1"}, "s.either", "must be int or float, got str '1'"),
    ({"target": {"x": "no"}}, "s.target.x", "must be int, got str 'no'"),
    ({"target": {"y": 1}}, "s.target.y", "unknown key"),
    ({"target": 3}, "s.target", "must be a table or str, got int 3"),
    ({"pair": [1]}, "s.pair", "must be an array of 2 items, got 1"),
    ({"pair": ["a", "b"]}, "s.pair[0]", "must be int, got str 'a'"),
])
def test_union_keys_are_type_checked(raw: dict, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(_Unions, raw, "s")
    assert info.value.key == key and says in info.value.reason


# -- `rtoc config` writes TOML that reads back, whatever the values ----------------------------
ODD = r'''
instance = "odd"
data_dir = "/tmp/rtoc 😀 \"q\" \\ d"
log_level = "debug"

[bus]
control = "ipc:///tmp/ü😀"

[archive]
dsn = "postgresql://u:p@h/db?x=\"y\"&z=\\"

[websocket]
allowed_origins = ["https://ü.example", "*"]

[[drivers]]
name = "Gerät😀"
driver = "m:C"
[drivers.params]
"ü 😀" = "emoji 😀, quotes \" ', backslash \\, newline\n, tab\t, cr\r, \u0001, \u007f, \u2028"
"a.b" = "a dotted key"
"" = "an empty key"
tiny = 1e-300
huge = 1.7976931348623157e308
neg_zero = -0.0
pos_inf = inf
neg_inf = -inf
big = 9223372036854775807
small = -9223372036854775808
lines = """a
"b" \
c"""
literal = 'C:\path\'
when = 1979-05-27T07:32:00Z
day = 1979-05-27
nested = {deep = {list = [1, 2.5, "x", [true, false], {k = "v\""}]}, "ü" = {}}

[[events]]
name = "heiß 😀"
cond = "Lab.Temp > 1e-300"
text = "it's \"hot\" \\ {value} 😀\n"
device = "Gerät 😀"

[[actions]]
name = "act 😀"
listen = ["heiß 😀"]
[[actions.steps]]
notify = "😀 \"{text}\" \\ done\n"
[[actions.steps]]
call = "Lab.f"
args = ["😀", 1e-300, {k = "\""}]
kwargs = {"ü 😀" = "x"}
'''


def _printed(capsys: pytest.CaptureFixture, path: Path) -> str:
    assert cli.main(["--config", str(path), "config"]) == 0
    return capsys.readouterr().out


def test_rtoc_config_output_reads_back_equal_for_odd_values(tmp_path: Path, capsys) -> None:
    path = tmp_path / "rtoc.toml"
    path.write_text(ODD)
    c = load(path)
    assert c.drivers[0].params["ü 😀"].startswith("emoji 😀")  # the file says what we meant
    out = _printed(capsys, path)
    again = loads(out, "again")
    assert dataclasses.replace(again, source=c.source) == c
    assert math.copysign(1, again.drivers[0].params["neg_zero"]) == -1


def test_rtoc_config_writes_nan(tmp_path: Path, capsys) -> None:
    path = tmp_path / "rtoc.toml"
    path.write_text('[[drivers]]\nname = "A"\ndriver = "m:C"\nparams = {n = nan, m = -nan}\n')
    params = loads(_printed(capsys, path)).drivers[0].params
    assert math.isnan(params["n"]) and math.isnan(params["m"])


def test_rtoc_config_without_drivers_stays_without_drivers() -> None:
    assert _reloaded(loads("drivers = []")).drivers == ()


def test_the_header_comment_survives_a_file_name_with_a_newline() -> None:
    c = dataclasses.replace(loads(""), data_dir="/d", source="odd\nname.toml")
    assert _reloaded(c) == c


_scalars = (st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
            | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.booleans())
_keys = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_keys, inner, max_size=3), max_leaves=10)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=5), st.text(st.characters(exclude_categories=("Cs",))))
def test_to_toml_round_trips_any_params_and_text(params: dict, text: str) -> None:
    c = Config(data_dir="/d", drivers=(DriverConfig("A", "m:C", params=params),),
               bus=BusConfig(control=text))
    # a text that names a network transport ("pgm", "tcp" ...) is refused without CURVE
    # keys, rightly: not what this test is about
    assume(text.split(":")[0].strip().lower() not in ("tcp", "pgm", "epgm", "udp", "ws", "wss",
                                                       "norm", "vmci", "tipc"))
    assert _reloaded(c) == c


def test_telegram_settings_are_checked_and_the_token_is_never_printed() -> None:
    from rtoc.config import to_toml

    assert fails('[telegram]\ntoken = "not a token"\n').key == "telegram.token"
    assert fails('[telegram]\ntoken_env = "A B"\n').key == "telegram.token_env"
    assert fails('[telegram]\ntoken_env = "T"\nmode = "webhook"\n').key == "telegram.webhook_url"
    assert fails('[telegram]\ndefault_role = "root"\n').key == "telegram.default_role"
    assert fails('[telegram]\nchat_rate = 0\n').key == "telegram.chat_rate"
    c = loads('[telegram]\ntoken = "123456:SECRETsecretSECRET"\nadmins = [5]\n')
    assert c.telegram.enabled and c.telegram.admins == (5,)
    text = to_toml(c)
    assert "SECRETsecretSECRET" not in text and 'token = "(hidden)"' in text
    assert not loads("").telegram.enabled
