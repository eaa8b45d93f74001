"""Unit tests of rtoc.app.children: the supervisor's child table, without processes."""

from __future__ import annotations

import logging

from rtoc.pipeline.child import ChildSpec

from rtoc.app.children import Child, ChildTable
from rtoc.app.restart import RestartPolicy
from rtoc.config import Config, DriverConfig, SupervisorConfig

CFG = SupervisorConfig(restart_delay=0.5, restart_max_delay=4.0, burst_starts=3, burst_seconds=10.0)


def _table(*drivers: str, autostart: bool = True) -> ChildTable:
    t = ChildTable(CFG.burst_seconds)
    t.add(Child("engine", "engine", None, ChildSpec("engine", 1, {}), RestartPolicy(CFG)))
    for d in drivers:
        t.add(Child(d, "driver", None, ChildSpec(f"driver:{d}", 1, {}, Config(),
                                                  DriverConfig(name=d, driver="generator")),
                    RestartPolicy(CFG), wanted=autostart, next_start=0.0 if autostart else None))
    t.add(Child("websocket", "frontend", None, ChildSpec("websocket", 1, {}), RestartPolicy(CFG)))
    return t


def test_the_engine_starts_first_and_the_rest_once_it_runs() -> None:
    t = _table("G", "H")
    assert [c.name for c in t.due(0.0)] == ["engine"]
    t.started(t.get("engine"), 100, 0.0)
    assert t.get("engine").state == "starting" and t.due(0.1) == []
    t.get("engine").state = "running"  # its hello came
    assert [c.name for c in t.due(0.2)] == ["G", "H", "websocket"]
    t.started(t.get("websocket"), 101, 0.2)
    assert t.get("websocket").state == "starting"  # until its hello: it listens


def test_a_crash_backs_off_and_the_budget_gives_up() -> None:
    t = _table("G")
    g = t.get("G")
    t.get("engine").state = "running"
    now = 0.0
    outcomes = []
    for _ in range(3):
        t.started(g, 7, now)
        outcomes.append(t.exited(g, 1, now + 0.1))
        if g.state == "backoff":
            assert g not in t.due(g.next_start - 0.01) and g in t.due(g.next_start)
            now = g.next_start
    assert [o.level for o in outcomes] == [logging.WARNING, logging.WARNING, logging.ERROR]
    assert "restarting in 0.5 s" in outcomes[0].message and "exit status 1" in outcomes[0].message
    assert g.state == "failed" and not g.wanted and g.restarts == 2
    assert "giving up ('rtoc start G' tries again)" in outcomes[-1].message
    assert not any(o.stop_instance for o in outcomes)
    t.start_wanted(g, 50.0)  # rtoc start: a fresh budget
    assert g.wanted and g in t.due(50.0) and not g.policy.failures


def test_a_failed_engine_stops_the_instance() -> None:
    t = _table()
    e = t.get("engine")
    outcome = None
    for i in range(3):
        t.started(e, 9, float(i))
        outcome = t.exited(e, -9, float(i) + 0.1)
        if e.next_start is not None:
            assert "signal 9" in outcome.message
    assert outcome.stop_instance and e.state == "failed"
    assert "the instance stops (exit status 1)" in outcome.message


def test_a_wanted_stop_is_no_crash() -> None:
    t = _table("G")
    g = t.get("G")
    t.started(g, 5, 0.0)
    t.unwant(g)
    outcome = t.exited(g, 0, 1.0)
    assert g.state == "stopped" and g.restarts == 0 and outcome.level == logging.INFO
    assert t.due(2.0) == [t.get("engine")]  # the driver is not started again


def test_identities_and_info() -> None:
    t = _table("G", autostart=False)
    assert t.by_identity(b"engine") is t.get("engine")
    assert t.by_identity(b"driver:G") is t.get("G")
    assert t.by_identity(b"driver:nobody") is None and t.by_identity(b"client-1") is None
    assert t.by_identity(b"driver:websocket") is None  # a driver identity names only drivers
    assert t.get("G").identity == b"driver:G" and t.due(0.0) == [t.get("engine")]
    t.started(t.get("websocket"), 42, 1.0)
    t.get("websocket").description = {"url": "http://127.0.0.1:5050/"}
    info = {i["name"]: i for i in t.info(3.0)}
    assert info["websocket"]["pid"] == 42 and info["websocket"]["uptime"] == 2.0
    assert info["websocket"]["url"] == "http://127.0.0.1:5050/"
    assert info["G"]["pid"] is None and info["G"]["state"] == "stopped" and "url" not in info["G"]
