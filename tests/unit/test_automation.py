"""rtoc.events.automation: decorators, Edge, the Api and the pure core, with a fake clock."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from rtoc.errors import DriverNotFound, EventError, FunctionNotFound, ParameterError
from rtoc.events.automation import (
    SOURCE_PREFIX,
    Api,
    AutomationCore,
    Edge,
    automation_files,
    every,
    has_automations,
    load_folder,
    on_event,
)
from rtoc.model import Event

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """An in-memory transport: records requests and pushed messages, answers like the
    control plane would (``replies`` by op; an exception instance is raised)."""

    def __init__(self, replies: dict | None = None):
        self.requests: list[tuple[str, dict]] = []
        self.pushed: list[dict] = []
        self.replies = replies or {}

    def request(self, op: str, **fields) -> dict:
        self.requests.append((op, fields))
        reply = self.replies.get(op, {"ok": True})
        if isinstance(reply, Exception):
            raise reply
        return reply

    def push(self, message: dict) -> None:
        self.pushed.append(message)

    def events(self) -> list[dict]:
        return [m["event"] for m in self.pushed if m["kind"] == "event"]


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def module(name: str = "auto_a", file: str = "a.py", **functions) -> ModuleType:
    """A module as load_folder would give, holding ``functions`` (marked or not)."""
    m = ModuleType(name)
    m.__file__ = f"/x/automations/{file}"
    for key, fn in functions.items():
        fn.__module__ = name
        setattr(m, key, fn)
    return m


def core_api(core: AutomationCore) -> Api:
    """An Api of a file "t.py" on ``core``'s transport and values."""
    return Api("t.py", core.transport, core.clock, core.values)


def core_of(*modules: ModuleType, rec: Recorder | None = None, now: float = 0.0):
    rec = rec or Recorder()
    return AutomationCore(modules, rec, Clock(), now), rec


# -- Edge -------------------------------------------------------------------------------

def test_edge_rising_fires_once_per_turn_to_true_and_the_first_true_counts() -> None:
    edge = Edge()
    assert [edge(c) for c in [True, True, False, False, True, True]] == \
        [True, False, False, False, True, False]
    edge = Edge()
    assert [edge(c) for c in [False, True]] == [False, True]


def test_edge_falling_and_both() -> None:
    falling = Edge("falling")
    assert [falling(c) for c in [False, True, True, False, False]] == [False, False, False, True, False]
    both = Edge("both")
    assert [both(c) for c in [True, True, False, True]] == [True, False, True, True]


def test_edge_reset_and_truthiness() -> None:
    edge = Edge()
    assert edge(np.float64(31.0) > 30)
    assert not edge(1)
    edge.reset()
    assert edge.state is None and edge("yes")
    with pytest.raises(ValueError, match="rising"):
        Edge("up")


# -- decorators -------------------------------------------------------------------------

def test_decorators_only_mark_and_reject_nonsense() -> None:
    def f(rtoc):
        pass

    assert every(0.5)(f) is f and f.__rtoc_every__ == (0.5, False)

    def g(event, rtoc):
        pass

    assert on_event("a")(on_event("b")(g)) is g and g.__rtoc_on_event__ == {"a", "b"}
    for bad in (0, -1, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError):
            every(bad)
    with pytest.raises(TypeError):
        on_event("")
    with pytest.raises(TypeError):
        every(1)(g)  # one trigger per handler: the call signatures differ

    @on_event
    def h(event, rtoc):
        pass

    assert h.__rtoc_on_event__ is None


# -- timers -----------------------------------------------------------------------------

def test_every_runs_at_its_period_with_a_fake_clock() -> None:
    runs: list[float] = []

    @every(1.0)
    def tick(rtoc):
        runs.append(rtoc.time())

    core, _ = core_of(module(tick=tick), now=10.0)
    assert core.next_deadline() == 11.0
    assert core.on_timer(10.99) == 0 and runs == []
    assert core.on_timer(11.0) == 1 and core.next_deadline() == 12.0
    assert core.on_timer(12.3) == 1 and core.next_deadline() == 13.0  # no drift from jitter
    assert core.on_timer(17.5) == 1 and core.next_deadline() == 18.5  # late: no catch-up burst
    assert len(runs) == 3


def test_every_immediately_and_several_timers() -> None:
    calls: list[str] = []

    @every(2.0, immediately=True)
    def a(rtoc):
        calls.append("a")

    @every(0.5)
    def b(rtoc):
        calls.append("b")

    core, _ = core_of(module(a=a, b=b), now=0.0)
    assert core.next_deadline() == 0.0
    for k in range(9):  # 0.0 .. 2.0 in steps of 0.25
        core.on_timer(k * 0.25)
    assert calls.count("a") == 2 and calls.count("b") == 4
    assert core.next_deadline() == 2.5


def test_no_timers_no_deadline() -> None:
    core, _ = core_of(module())
    assert core.next_deadline() is None and core.on_timer(1e9) == 0 and core.handlers == []


# -- events -----------------------------------------------------------------------------

def test_on_event_filters_by_id_and_catch_all_skips_automation_events() -> None:
    seen: dict[str, list[str]] = {"door": [], "all": []}

    @on_event("door_open", "door_closed")
    def door(event, rtoc):
        seen["door"].append(event.id)

    @on_event()
    def everything(event, rtoc):
        seen["all"].append(event.id)

    core, _ = core_of(module(door=door, everything=everything))
    for i in ("door_open", "other", "door_closed"):
        core.on_event(Event(time=1.0, text=i, id=i))
    own = Event(time=1.0, text="mine", id="door_open", extra={"source": SOURCE_PREFIX + "b.py"})
    assert core.on_event(own) == 1  # an explicit id still hears it
    assert seen == {"door": ["door_open", "door_closed", "door_open"],
                    "all": ["door_open", "other", "door_closed"]}


def test_handlers_with_the_wrong_signature_are_refused_at_load(caplog) -> None:
    @every(1.0)
    def no_args():
        pass

    @on_event("x")
    def one_arg(event):
        pass

    @every(1.0)
    def flexible(*args, **kwargs):
        pass

    with caplog.at_level(logging.ERROR, logger="rtoc.events.automation"):
        core, _ = core_of(module(no_args=no_args, one_arg=one_arg, flexible=flexible))
    assert [h.name for h in core.handlers] == ["flexible"]
    assert "a.py: no_args() must take (rtoc): skipped" in caplog.text
    assert "a.py: one_arg() must take (event, rtoc): skipped" in caplog.text


def test_imported_handlers_are_registered_by_their_own_file_only() -> None:
    @on_event("x")
    def foreign(event, rtoc):
        pass

    m = module("auto_b", "b.py")
    foreign.__module__ = "auto_a"
    m.foreign = foreign
    core, _ = core_of(m)
    assert core.handlers == []


# -- the Api ----------------------------------------------------------------------------

def test_latest_values_come_from_data_batches() -> None:
    got: list = []

    @every(1.0)
    def read(rtoc):
        got.append((rtoc.latest("G.Sine"), rtoc.latest("G.Nope", -1.0),
                    rtoc.latest_sample("G.Sine"), rtoc.signals()))

    core, _ = core_of(module(read=read))
    core.on_timer(1.0)
    core.on_data("G.Sine", np.array([1.0, 2.0]), np.array([0.1, 0.2]))
    core.on_data("G.Sine", np.empty(0), np.empty(0))  # an empty (cleared) batch keeps the last
    core.on_timer(2.0)
    assert got[0] == (None, -1.0, None, [])
    assert got[1] == (0.2, -1.0, (2.0, 0.2), ["G.Sine"])
    assert type(got[1][0]) is float


def test_call_set_get_request_go_through_the_transport() -> None:
    rec = Recorder({"call": {"ok": True, "result": 2.5}, "set": {"ok": True, "value": 3.0},
                    "drivers": {"ok": True, "drivers": [
                        {"name": "G", "parameters": [{"name": "frequency", "value": 2.5}]}]}})
    results: list = []

    @every(1.0)
    def act(rtoc):
        results.append(rtoc.call("G", "set_frequency", 2.5, inverse=False))
        results.append(rtoc.set("G", "amplitude", 3))
        results.append(rtoc.get("G", "frequency"))
        results.append(rtoc.request("stop", driver="G")["ok"])

    core, _ = core_of(module(act=act), rec=rec)
    core.on_timer(1.0)
    assert results == [2.5, 3.0, 2.5, True]
    assert rec.requests == [
        ("call", {"driver": "G", "function": "set_frequency", "args": [2.5],
                  "kwargs": {"inverse": False}}),
        ("set", {"driver": "G", "param": "amplitude", "value": 3}),
        ("drivers", {}),
        ("stop", {"driver": "G"}),
    ]


def test_get_names_what_is_missing() -> None:
    rec = Recorder({"drivers": {"ok": True, "drivers": [{"name": "G", "parameters": []}]}})
    core, _ = core_of(module(), rec=rec)
    api = core_api(core)
    with pytest.raises(ParameterError, match="frequency"):
        api.get("G", "frequency")
    with pytest.raises(DriverNotFound):
        api.get("H", "frequency")



def test_event_and_notify_messages() -> None:
    core, rec = core_of(module())
    api = core_api(core)
    ev = api.event("hot", priority=1, id="too_hot", device="Thermo", signal="T",
                   value=np.float64(31.5))
    api.notify("heater off", priority=2)
    assert rec.pushed[0] == {"kind": "event", "event": ev.to_dict()}
    assert ev.time == 1_700_000_000.0 and ev.value == 31.5 and type(ev.value) is float
    assert ev.extra == {"source": "automation:t.py"} and ev.id == "too_hot"
    assert rec.pushed[1] == {"kind": "notify", "notify": {
        "time": 1_700_000_000.0, "text": "heater off", "priority": 2, "source": "automation:t.py"}}
    with pytest.raises(EventError):
        api.event("x", priority=5)
    with pytest.raises(EventError):
        api.notify("x", priority=-1)
    assert len(rec.pushed) == 2


# -- error isolation --------------------------------------------------------------------

def test_a_failing_handler_is_logged_with_its_name_and_the_others_run(caplog) -> None:
    ran: list[str] = []

    @every(1.0)
    def broken(rtoc):
        raise ZeroDivisionError("on purpose")

    @every(1.0)
    def fine(rtoc):
        ran.append("fine")

    @on_event("x")
    def refused(event, rtoc):
        rtoc.call("G", "nope")

    @on_event("x")
    def after(event, rtoc):
        ran.append("after")

    rec = Recorder({"call": FunctionNotFound("G has no function 'nope'", "G")})
    core, _ = core_of(module(broken=broken, fine=fine, refused=refused, after=after,
                             file="alarm.py"), rec=rec)
    with caplog.at_level(logging.ERROR, logger="rtoc.events.automation"):
        core.on_timer(1.0)
        core.on_event(Event(time=0.0, id="x"))
    assert ran == ["fine", "after"]
    assert "automation alarm.py: broken() failed: ZeroDivisionError: on purpose" in caplog.text
    assert "alarm.py: refused() failed: FunctionNotFound" in caplog.text
    assert "Traceback" in caplog.text and ", in broken" in caplog.text
    assert "in _run" not in caplog.text  # the author's frames, not the core's
    assert core.next_deadline() == 2.0  # a failed timer is still rescheduled


def test_repeated_failures_are_not_logged_every_time(caplog) -> None:
    @every(1.0)
    def broken(rtoc):
        raise RuntimeError("again")

    core, _ = core_of(module(broken=broken))
    with caplog.at_level(logging.ERROR, logger="rtoc.events.automation"):
        for k in range(1, 201):
            core.on_timer(float(k))
    assert len(caplog.records) == 3 + 2  # three tracebacks, then at 100 and 200 in a row
    assert "failed 200 times in a row" in caplog.records[-1].getMessage()
    assert core.handlers[0].failures == 200


def test_sys_exit_in_a_handler_does_not_end_the_process(caplog) -> None:
    @every(1.0)
    def quits(rtoc):
        sys.exit(3)

    core, _ = core_of(module(quits=quits))
    with caplog.at_level(logging.ERROR, logger="rtoc.events.automation"):
        core.on_timer(1.0)
    assert "quits() failed: SystemExit" in caplog.text


# -- loading ----------------------------------------------------------------------------

def test_load_folder_loads_sorted_skips_private_and_broken_files(tmp_path: Path, caplog) -> None:
    (tmp_path / "b_second.py").write_text(
        "from rtoc.events.automation import every\nimport dataclasses\n"
        "@dataclasses.dataclass\nclass P:\n    x: int = 1\n"
        "@every(1)\ndef tick(rtoc):\n    rtoc.log.info('tick %s', P().x)\n")
    (tmp_path / "a_first.py").write_text(
        "from rtoc.events.automation import on_event\n@on_event('x')\ndef h(event, rtoc):\n    pass\n")
    (tmp_path / "c_broken.py").write_text("def oops(:\n")
    (tmp_path / "d_raises.py").write_text("raise RuntimeError('at import')\n")
    (tmp_path / "_helper.py").write_text("raise RuntimeError('must not be loaded')\n")
    (tmp_path / "notes.txt").write_text("not python")
    with caplog.at_level(logging.ERROR, logger="rtoc.events.automation"):
        mods = load_folder(tmp_path)
    assert [Path(m.__file__).name for m in mods] == ["a_first.py", "b_second.py"]
    assert "c_broken.py failed to load, skipped: SyntaxError" in caplog.text
    assert "d_raises.py failed to load, skipped: RuntimeError: at import" in caplog.text
    assert "_helper" not in caplog.text
    core, _ = core_of(*mods)
    assert sorted(h.label for h in core.handlers) == ["a_first.py: h()", "b_second.py: tick()"]
    core.on_timer(1.0)  # the dataclass in a loaded file works (its module is registered)
    assert automation_files(tmp_path)[0].name == "a_first.py" and has_automations(tmp_path)


def test_load_folder_refuses_world_writable_files(tmp_path: Path, caplog) -> None:
    f = tmp_path / "open.py"
    f.write_text("X = 1\n")
    f.chmod(0o666)
    with caplog.at_level(logging.ERROR, logger="rtoc.events.automation"):
        assert load_folder(tmp_path) == []
    assert "writable by anyone" in caplog.text


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    assert load_folder(tmp_path / "none") == [] and not has_automations(tmp_path / "none")
    assert load_folder(tmp_path) == [] and not has_automations(tmp_path)


def test_automation_folder(tmp_path: Path, monkeypatch) -> None:
    from rtoc import config

    (tmp_path / "rtoc.toml").write_text("")
    assert config.load(tmp_path / "rtoc.toml").automation_path == tmp_path / "automations"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert config.load(None).automation_path == tmp_path / "cfg" / "rtoc" / "automations"
    (tmp_path / "other.toml").write_text('[automation]\nfolder = "auto"\n')
    assert config.load(tmp_path / "other.toml").automation_path == tmp_path / "auto"


# -- the documented example -------------------------------------------------------------

def test_docs_example_file_runs_as_documented(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "AUTOMATION.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "@every" in b]
    folder = tmp_path / "automations"
    folder.mkdir()
    (folder / "thermo.py").write_text(code)
    rec = Recorder({"set": {"ok": True, "value": 0.0}, "call": {"ok": True, "result": "Square"}})
    core = AutomationCore(load_folder(folder), rec, Clock(), now=0.0)
    assert len(core.handlers) == 3

    def tick(now: float, temperature: float | None) -> None:
        if temperature is not None:
            core.on_data("Thermo.T", np.array([now]), np.array([temperature]))
        core.on_timer(now)

    tick(2.0, None)
    tick(4.0, 25.0)
    assert rec.requests == [] and rec.pushed == []
    tick(6.0, 31.0)
    tick(8.0, 32.0)  # still hot: no second warning
    assert rec.requests == [("set", {"driver": "Heater", "param": "power", "value": 0.0})]
    (ev,) = rec.events()
    assert ev["id"] == "too_hot" and ev["priority"] == 1 and ev["value"] == 31.0
    tick(10.0, 29.0)
    tick(12.0, 30.5)  # hot again: warned again
    assert len(rec.events()) == 2

    rec.pushed.clear()
    core.on_event(Event.from_dict(ev))
    assert rec.pushed == [{"kind": "notify", "notify": {
        "time": 1_700_000_000.0, "text": "too hot: 31.0 degC, heater off", "priority": 1,
        "source": "automation:thermo.py"}}]
    core.on_event(Event(time=1.0, id="door_open"))
    assert rec.requests[-1] == ("call", {"driver": "Generator", "function": "set_waveform",
                                         "args": ["square"], "kwargs": {}})
