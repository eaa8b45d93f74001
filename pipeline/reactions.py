"""What the engine does about events: rules, the event list, actions (a pure core).

:class:`Reactions` owns the rule store, the compiled conditions and the bounded event
list. Batches go in (``feed``), driver events go in (``receive``); out come the events to
publish and the :class:`rtoc.events.rules.Effect` s the engine shell then carries out (control
requests, ring writes, notifications). ``handle(op, msg)`` answers the control-plane ops
for events and rules. No sockets, no clock reads: ``now`` is an argument.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from rtoc.pipeline.evaluator import Conditions

from rtoc.errors import RuleError
from rtoc.events.event_log import EventLog, query_fields
from rtoc.events.rules import ActionRule, Effect, EventRule, plan
from rtoc.events.store import RuleStore
from rtoc.model import Event

OPS = ("events", "rules", "rule_put", "rule_enable", "rule_remove")


class CostMeter:
    """Seconds spent per second of ``now`` over the last ``window`` s (a load: 0.5 is half
    of a core). Time is an argument: the shell measures, this only adds up."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self._spent: deque[list[float]] = deque()  # [whole second of now, seconds spent]

    def add(self, seconds: float, now: float) -> None:
        sec = math.floor(now)
        if self._spent and self._spent[-1][0] == sec:
            self._spent[-1][1] += seconds
        else:
            self._spent.append([sec, seconds])
        self._drop(now)

    def load(self, now: float) -> float:
        self._drop(now)
        return sum(s for _, s in self._spent) / self.window

    def _drop(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - self.window - 1:
            self._spent.popleft()


class Reactions:
    """``max_load``: the part of the engine's time (over the last ``load_window`` s) its
    event rules may take before a new or changed rule is refused (0: no cap); removing or
    disabling a rule is always accepted, so an operator can get out of an overload."""

    def __init__(self, rules_path: Path | None, events: tuple[EventRule, ...] = (),
                 actions: tuple[ActionRule, ...] = (), history: int = 10_000,
                 sync_timeout: float = 0.2, max_rate: float = 1000.0,
                 max_total_rate: float = math.inf, report_every: float = 0.0,
                 max_load: float = 0.0, load_window: float = 5.0):
        self.store = RuleStore(rules_path, events, actions)
        self.conditions = Conditions(sync_timeout=sync_timeout, max_rate=max_rate,
                                     max_total_rate=max_total_rate, report_every=report_every)
        self.conditions.set_rules(self.store.events)
        self.log = EventLog(history)
        self.effects: list[tuple[Event, Effect]] = []
        self.cost = CostMeter(load_window)
        self.max_load = max_load
        self.refused = 0  # rule_puts refused for the load

    def note_cost(self, seconds: float, now: float) -> None:
        """The shell measured ``seconds`` spent in feed/tick at ``now``."""
        self.cost.add(seconds, now)

    @property
    def watched(self):
        return self.conditions.watched

    def feed(self, name: str, t: np.ndarray, y: np.ndarray, now: float) -> list[Event]:
        """Evaluate the rules reading ``name`` over a batch; returns the events fired (also
        logged, with their actions' effects queued in ``effects``)."""
        return self._raised(self.conditions.feed(name, t, y, now))

    def tick(self, now: float) -> list[Event]:
        return self._raised(self.conditions.tick(now))

    def flush(self, now: float) -> list[Event]:
        return self._raised(self.conditions.flush(now))

    def receive(self, event: Event) -> Event:
        """An event raised elsewhere (a driver, an automation, a client)."""
        self._raised([event])
        return event

    def take_effects(self) -> list[tuple[Event, Effect]]:
        out, self.effects = self.effects, []
        return out

    def _raised(self, events: list[Event]) -> list[Event]:
        actions = self.store.actions
        for ev in events:
            self.log.add(ev)
            self.effects.extend((ev, eff) for eff in plan(actions, ev))
        return events

    # -- control plane ------------------------------------------------------------------
    def handle(self, op: str, msg: dict[str, Any], now: float | None = None) -> dict:
        """Answer one of ``OPS`` (``now``: the clock of :meth:`note_cost`); errors raise
        (RtocError subclasses name what was wrong)."""
        if op == "events":
            found = self.log.numbered(**query_fields(msg))
            return {"ok": True, "events": [{**e.to_dict(), "seq": n} for n, e in found],
                    "total": self.log.total}
        if op == "rules":
            load = None if now is None else round(self.cost.load(now), 4)
            return {"ok": True, **self.store.listing(), "stats": self.conditions.stats(),
                    "load": load, "refused": self.refused}
        kind = msg.get("kind")
        if op == "rule_put":
            if kind == "event" and now is not None:
                self._check_load(msg.get("rule"), now)
            rule = self.store.put(kind, msg.get("rule"))
        elif op == "rule_enable":
            name = _name(msg)
            old = self.store.rules["event"].get(name) if kind == "event" else None
            if old is not None and not old.active and msg.get("active", True) is True and now is not None:
                self._check_load(None, now)  # enabling a rule adds its work
            rule = self.store.enable(kind, name, msg.get("active", True))
        elif op == "rule_remove":
            self.store.remove(kind, _name(msg))
            rule = None
        else:
            raise RuleError(f"unknown op {op!r}")
        if kind == "event":
            self.conditions.set_rules(self.store.events)
        return {"ok": True, "rule": rule.to_dict() if rule is not None else None}


    def _check_load(self, raw: Any, now: float) -> None:
        """Refuse a new or changed event rule while the rules take more than ``max_load``."""
        if not self.max_load:
            return
        load = self.cost.load(now)
        if load <= self.max_load:
            return
        old = self.store.rules["event"].get(raw.get("name")) if isinstance(raw, dict) else None
        if old is not None and isinstance(raw, dict) and all(
                raw.get(k, getattr(old, k)) == getattr(old, k) for k in ("cond", "trigger", "hold", "cooldown")):
            return  # only its text, priority ... change: no more work
        self.refused += 1
        raise RuleError(f"the engine spends {load:.0%} of its time on event rules (budget "
                        f"[engine] max_rule_load = {self.max_load:.0%}): no new or changed rule "
                        "now; remove or disable rules first", "name")


def _name(msg: dict) -> str:
    name = msg.get("name")
    if not isinstance(name, str) or not name:
        raise RuleError("a rule op needs 'name' (text)", "name")
    return name
