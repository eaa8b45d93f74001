"""Event rules, actions and the events/rules control ops in a real instance."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtoc.app.harness import Instance
from rtoc.errors import EventError, RuleError, RuleNotFound
from rtoc.model import Event, Notification

HERE = Path(__file__).parent
ENV = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}

# the example: a rising threshold with a cooldown, and an action calling a
# generator function when it fires (plus the other step kinds)
CONFIG = '''
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 200.0
frequency = 2.0

[[drivers]]
name = "A"
driver = "test_drivers:Alarmer"

[[events]]
name = "sine high"
cond = "Generator.Sine > 0.9"
trigger = "rising"
cooldown = 1
text = "{signal} high: {value}"
id = "sine-high"
priority = 1

[[actions]]
name = "react"
listen = ["sine-high"]
steps = [
  { call = "Generator.set_frequency", args = [3.0] },
  { set = "A.level", value = "{value}" },
  { write = "Alarm.Count", value = 1 },
  { notify = "sine high ({value})", priority = 2 },
]

[[actions]]
name = "on fault"
listen = ["fault"]
steps = [ { set = "A.level", value = 7 } ]
'''


def _params(inst: Instance, driver: str) -> dict:
    drivers = {d["name"]: d for d in inst.client.request("drivers")["drivers"]}
    return {p["name"]: p["value"] for p in drivers[driver]["parameters"]}


@pytest.fixture(scope="module")
def inst():
    with Instance.start(CONFIG, ("Generator.Sine", "A.Level"), env=ENV) as i:
        yield i


def test_a_configured_rule_fires_on_the_bus_and_its_action_runs(inst: Instance) -> None:
    with inst.subscriber([], events=True, notify=True) as sub:
        events, notes = [], []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (len(events) < 2 or not notes):
            msg = sub.recv(timeout=0.5)
            if isinstance(msg, Event) and msg.id == "sine-high":
                events.append(msg)
            elif isinstance(msg, Notification):
                notes.append(msg)
    assert len(events) >= 2, "the rule did not fire twice within 15 s"
    ev = events[0]
    assert (ev.device, ev.signal, ev.priority) == ("Generator", "Sine", 1)
    assert ev.value > 0.9 and ev.text == f"Generator.Sine high: {ev.value:.6g}"
    assert all(b.time - a.time >= 1.0 for a, b in zip(events, events[1:], strict=False))  # cooldown
    assert notes[0].priority == 2 and notes[0].text.startswith("sine high (0.9")
    # the call and set steps took effect through the control plane
    params = inst.wait_for(lambda: (p := _params(inst, "Generator"))["frequency"] == 3.0 and p)
    assert params["frequency"] == 3.0
    assert inst.wait_for(lambda: _params(inst, "A")["level"] > 0.9)
    # the write step created a signal the engine owns, and wrote to it
    sigs = inst.wait_for(lambda: {s["name"]: s for s in inst.client.request("signals")["signals"]
                                  if s["written"] > 0 and s["name"] == "Alarm.Count"})
    assert sigs["Alarm.Count"]["owner"] == "engine" and sigs["Alarm.Count"]["latest"]["y"] == 1.0


def test_the_event_list_answers_queries(inst: Instance) -> None:
    found = inst.wait_for(lambda: inst.client.request("events", id="sine-high")["events"])
    assert all(e["id"] == "sine-high" and e["priority"] == 1 for e in found)
    assert inst.client.request("events", id="sine-high", min_priority=2)["events"] == []
    assert inst.client.request("events", text="HIGH", limit=1)["events"][0]["id"] == "sine-high"
    later = inst.client.request("events", since=time.time() + 3600)["events"]
    assert later == []
    with pytest.raises(EventError, match="since must be a number"):
        inst.client.request("events", since="yesterday")


def test_driver_events_are_listed_run_actions_and_create_no_signal(inst: Instance) -> None:
    ident = inst.client.request("call", driver="A", function="alarm",
                                args=["pump fault", 2, "fault"])["result"]
    assert ident == "fault"
    ev = inst.wait_for(lambda: inst.client.request("events", id="fault")["events"])[-1]
    assert (ev["text"], ev["priority"], ev["device"], ev["signal"]) == ("pump fault", 2, "", "")
    assert inst.wait_for(lambda: _params(inst, "A")["level"] == 7.0)
    names = {s["name"] for s in inst.client.request("signals")["signals"]}
    assert not any(n.startswith(".") or n.endswith(".") for n in names), names


def test_rules_change_at_runtime_and_bad_ones_are_refused(inst: Instance) -> None:
    c = inst.client
    with pytest.raises(RuleError, match=r"cond: column 18: function '__import__' is not allowed"):
        c.request("rule_put", kind="event", rule={"name": "bad", "cond": "Generator.Sine > __import__('os')"})
    with pytest.raises(RuleError, match="trigger"):
        c.request("rule_put", kind="event", rule={"name": "bad", "cond": "A.Level > 1", "trigger": "up"})
    assert "bad" not in {r["name"] for r in c.request("rules")["events"]}
    with pytest.raises(RuleNotFound):
        c.request("rule_enable", kind="event", name="nope", active=False)
    c.request("rule_put", kind="event", rule={"name": "level", "cond": "A.Level >= 0", "trigger": "true",
                                             "cooldown": 0.2, "id": "level-ok"})
    inst.wait_for(lambda: c.request("events", id="level-ok")["events"])
    c.request("rule_enable", kind="event", name="level", active=False)
    # a quiet time is what is tested: enabled, the rule (cooldown 0.2 s) would fire about
    # five times in the second after the count; the half second before lets what was
    # already on its way arrive (nothing can be polled for: it is an absence)
    time.sleep(0.5)
    n = len(c.request("events", id="level-ok")["events"])
    time.sleep(1.0)
    assert len(c.request("events", id="level-ok")["events"]) == n  # disabled: no more
    listing = c.request("rules")
    assert [r["active"] for r in listing["events"] if r["name"] == "level"] == [False]
    c.request("rule_remove", kind="event", name="level")
    assert "level" not in {r["name"] for r in c.request("rules")["events"]}


def test_runtime_rules_persist_across_a_restart(tmp_path: Path) -> None:
    name = f"t{os.getpid()}p"
    with Instance.start(CONFIG, ("A.Level",), env=ENV, name=name, folder=tmp_path) as inst:
        inst.client.request("rule_put", kind="event", rule={"name": "added", "cond": "A.Level > 100"})
        inst.client.request("rule_enable", kind="event", name="sine high", active=False)
        inst.client.request("rule_remove", kind="action", name="on fault")
    with Instance.start(CONFIG, ("A.Level",), env=ENV, name=name, folder=tmp_path) as inst:
        listing = inst.client.request("rules")
    events = {r["name"]: r for r in listing["events"]}
    assert events["added"]["cond"] == "A.Level > 100"
    assert events["sine high"]["active"] is False
    assert [a["name"] for a in listing["actions"]] == ["react"]


def test_rtoc_events_cli_lists_and_follows(inst: Instance) -> None:
    base = [sys.executable, "-m", "rtoc", "--config", str(inst.folder / "rtoc.toml")]
    out = subprocess.run(base + ["events", "--no-follow", "--id", "sine-high", "--history", "3"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert 1 <= len(lines) <= 3 and all("sine-high" in ln and "WARN" in ln for ln in lines)
    out = subprocess.run(base + ["events", "--history", "0", "-n", "1", "--duration", "20",
                                 "--id", "sine-high", "--json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert '"id": "sine-high"' in out.stdout
    out = subprocess.run(base + ["rules"], capture_output=True, text=True, timeout=30)
    assert "Generator.Sine > 0.9" in out.stdout and "react" in out.stdout


AUTOMATION = '''
from rtoc.events.automation import Edge, every, on_event

high = Edge()


@every(0.1)
def watch(rtoc):
    v = rtoc.latest("Generator.Sine")
    if v is not None and high(v > 0.5):
        rtoc.event("seen high", id="auto-high", value=v)


@on_event("auto-high")
def tell(event, rtoc):
    rtoc.notify("automation saw " + event.id)
'''


def test_the_supervisor_runs_automation_files_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "automations").mkdir()
    (tmp_path / "automations" / "watch.py").write_text(AUTOMATION)
    config = '[[drivers]]\nname = "Generator"\ndriver = "generator"\n[drivers.params]\nfrequency = 2.0\n'
    with Instance.start(config, ("Generator.Sine",), folder=tmp_path) as inst:
        procs = {p["name"]: p for p in inst.client.request("status")["processes"]}
        assert procs["automation"]["kind"] == "frontend"
        with inst.subscriber([], events=True, notify=True) as sub:
            got = set()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and got != {"event", "note"}:
                msg = sub.recv(timeout=0.5)
                if isinstance(msg, Event) and msg.id == "auto-high":
                    got.add("event")
                elif isinstance(msg, Notification) and msg.text == "automation saw auto-high":
                    got.add("note")
        assert got == {"event", "note"}
        pid = procs["automation"]["pid"]
    assert not Path(f"/proc/{pid}").exists()  # stopped with the instance


def test_no_automation_process_without_files(inst: Instance) -> None:
    assert "automation" not in {p["name"] for p in inst.client.request("status")["processes"]}
