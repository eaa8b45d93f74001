"""The engine's budgets for event rules, with a fake clock: events per rule and in total,
the report of a throttled rule, and new rules refused by the measured cost of the rules."""

from __future__ import annotations

import numpy as np
import pytest
from rtoc.pipeline.evaluator import THROTTLE_ID, Conditions
from rtoc.pipeline.reactions import CostMeter, Reactions

from rtoc.errors import RuleError
from rtoc.events.rules import EventRule


def rule(name: str = "r", cond: str = "A.x > 0", **kw: object) -> EventRule:
    return EventRule.from_dict({"name": name, "cond": cond, "trigger": "true", **kw})


def feed(c: Conditions | Reactions, n: int, t0: float, now: float):
    t = t0 + np.arange(n, dtype=np.float64)
    return c.feed("A.x", t, np.ones(n), now)


def test_all_rules_together_are_capped_too() -> None:
    c = Conditions(max_rate=100.0, max_total_rate=50.0)
    c.set_rules([rule(f"r{i}") for i in range(5)])  # 5 rules x 100/s would be 500/s
    assert len(feed(c, 100, 0.0, 0.0)) == 50
    assert len(feed(c, 100, 100.0, 0.5)) == 25  # half a second: half the tokens
    stats = c.stats()
    assert sum(s["fired"] for s in stats.values()) == 75
    assert sum(s["suppressed"] for s in stats.values()) == 925


def test_a_throttled_rule_is_reported_at_most_every_report_every_seconds() -> None:
    c = Conditions(max_rate=10.0, report_every=10.0)
    c.set_rules([rule("loud"), rule("quiet", "A.x > 5")])
    out = feed(c, 100, 1000.0, 0.0)  # a rule firing on every sample
    reports = [e for e in out if e.id == THROTTLE_ID]
    assert len(out) == 11 and len(reports) == 1
    assert reports[0].value == 90 and reports[0].extra["rule"] == "loud" and reports[0].priority == 1
    assert "throttled" in reports[0].text and reports[0].time == 1099.0  # the last sample's time
    out = feed(c, 100, 1100.0, 1.0)
    assert len(out) == 10 and not [e for e in out if e.id == THROTTLE_ID]  # not again so soon
    assert c.tick(5.0) == []
    later = c.tick(10.0)  # quiet since: the rest is reported once the interval is over
    assert [(e.id, e.value) for e in later] == [(THROTTLE_ID, 90)]
    assert c.tick(30.0) == []
    assert c.stats()["loud"] == {"fired": 20, "suppressed": 180}


def test_no_report_when_off() -> None:
    c = Conditions(max_rate=10.0)
    c.set_rules([rule()])
    assert all(e.id != THROTTLE_ID for e in feed(c, 100, 0.0, 0.0) + c.tick(100.0))


def test_cost_meter_is_a_sliding_load() -> None:
    m = CostMeter(window=5.0)
    m.add(1.0, 100.2)
    m.add(1.5, 100.7)
    assert m.load(101.0) == pytest.approx(0.5)
    m.add(0.5, 103.0)
    assert m.load(104.9) == pytest.approx(0.6)
    assert m.load(106.5) == pytest.approx(0.1)  # the second 100 left the window
    assert m.load(200.0) == 0.0


def test_new_rules_are_refused_while_the_rules_cost_too_much() -> None:
    r = Reactions(None, events=(rule("a"), rule("off", active=False)), max_load=0.5, load_window=5.0)
    new = {"name": "b", "cond": "A.x > 1", "trigger": "true"}
    assert r.handle("rule_put", {"kind": "event", "rule": new}, now=0.0)["ok"]
    r.note_cost(3.0, 10.0)  # 3 s of evaluation in 5 s: 60 % of the engine
    assert r.handle("rules", {}, now=10.0)["load"] == pytest.approx(0.6)
    with pytest.raises(RuleError, match="60% of its time.*max_rule_load"):
        r.handle("rule_put", {"kind": "event", "rule": {**new, "name": "c"}}, now=10.0)
    with pytest.raises(RuleError, match="max_rule_load"):  # a changed condition is new work
        r.handle("rule_put", {"kind": "event", "rule": {**new, "cond": "A.x > 2"}}, now=10.0)
    with pytest.raises(RuleError, match="max_rule_load"):  # so is enabling one
        r.handle("rule_enable", {"kind": "event", "name": "off", "active": True}, now=10.0)
    # what takes work away, or changes only how events look, is always answered
    assert r.handle("rule_put", {"kind": "event", "rule": {**new, "text": "B!"}}, now=10.0)["ok"]
    assert r.handle("rule_enable", {"kind": "event", "name": "a", "active": False}, now=10.0)["ok"]
    assert r.handle("rule_remove", {"kind": "event", "name": "b"}, now=10.0)["ok"]
    assert r.handle("rules", {}, now=10.0)["refused"] == 3
    assert r.handle("rule_put", {"kind": "event", "rule": {**new, "name": "c"}}, now=17.0)["ok"]
