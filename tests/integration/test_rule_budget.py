"""Event rules under load: events are capped per rule and in total, a throttled rule is
reported, new rules are refused by the engine's measured cost, and rule changes over the
control plane stay answered."""

from __future__ import annotations

import time

import pytest

from rtoc.app.harness import Instance
from rtoc.errors import RuleError

CONFIG = '''
[engine]
max_event_rate = 100.0
max_event_total_rate = 300.0
throttle_report = 1.0
max_rule_load = 0.001          # 0.1 % of the engine's time: reached after a few rules
[[drivers]]
name = "G"
driver = "generator"
[drivers.params]
samplerate = 10000.0
'''


def test_rules_that_fire_on_every_sample_are_throttled_and_capped_by_their_cost() -> None:
    with Instance.start(CONFIG, ready_signals=("G.Sine",)) as inst:
        c = inst.client
        took, refused = [], None
        for i in range(300):
            t0 = time.perf_counter()
            try:
                c.request("rule_put", kind="event", rule={
                    "name": f"every{i}", "cond": "G.Sine > -2", "trigger": "true"})
            except RuleError as exc:
                refused = (i, str(exc))
                break
            finally:
                took.append(time.perf_counter() - t0)
            time.sleep(0.05)
        assert refused is not None and "max_rule_load" in refused[1], refused
        total0 = c.request("events", limit=1)["total"]
        time.sleep(2.0)
        total1 = c.request("events", limit=1)["total"]
        assert total1 - total0 <= 300 * 2.5 + 300 + 50  # the total cap (and its reports)
        reports = inst.wait_for(lambda: c.request("events", id="rtoc.rule_throttled")["events"])
        assert reports[0]["priority"] == 1 and reports[0]["value"] > 0
        stats = c.request("rules")
        assert sum(s["suppressed"] for s in stats["stats"].values()) > 0 and stats["refused"] >= 1
        for i in range(refused[0]):  # removing is always answered, under load too
            t0 = time.perf_counter()
            c.request("rule_remove", kind="event", name=f"every{i}")
            took.append(time.perf_counter() - t0)
        took.sort()
        assert took[int(len(took) * 0.99)] < 1.0, took[-5:]  # generous: answered, not stalled
        with pytest.raises(RuleError, match="no event named"):
            c.request("rule_remove", kind="event", name="every0")
