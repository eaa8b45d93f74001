"""What the engine does about events: rules, the event list, actions (a pure core).

:class:`Reactions` owns the rule store, the compiled conditions and the bounded event
list. Batches go in (``feed``), driver events go in (``receive``); out come the events to
publish and the :class:`rtoc.events.rules.Effect` s the engine shell then carries out (control
requests, ring writes, notifications). ``handle(op, msg)`` answers the control-plane ops
for events and rules. No sockets, no clock reads: ``now`` is an argument.
"""

from __future__ import annotations

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


class Reactions:
    def __init__(self, rules_path: Path | None, events: tuple[EventRule, ...] = (),
                 actions: tuple[ActionRule, ...] = (), history: int = 10_000,
                 sync_timeout: float = 0.2, max_rate: float = 1000.0):
        self.store = RuleStore(rules_path, events, actions)
        self.conditions = Conditions(sync_timeout=sync_timeout, max_rate=max_rate)
        self.conditions.set_rules(self.store.events)
        self.log = EventLog(history)
        self.effects: list[tuple[Event, Effect]] = []

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
    def handle(self, op: str, msg: dict[str, Any]) -> dict:
        """Answer one of ``OPS``; errors raise (RtocError subclasses name what was wrong)."""
        if op == "events":
            found = self.log.numbered(**query_fields(msg))
            return {"ok": True, "events": [{**e.to_dict(), "seq": n} for n, e in found],
                    "total": self.log.total}
        if op == "rules":
            return {"ok": True, **self.store.listing(), "stats": self.conditions.stats()}
        kind = msg.get("kind")
        if op == "rule_put":
            rule = self.store.put(kind, msg.get("rule"))
        elif op == "rule_enable":
            rule = self.store.enable(kind, _name(msg), msg.get("active", True))
        elif op == "rule_remove":
            self.store.remove(kind, _name(msg))
            rule = None
        else:
            raise RuleError(f"unknown op {op!r}")
        if kind == "event":
            self.conditions.set_rules(self.store.events)
        return {"ok": True, "rule": rule.to_dict() if rule is not None else None}


def _name(msg: dict) -> str:
    name = msg.get("name")
    if not isinstance(name, str) or not name:
        raise RuleError("a rule op needs 'name' (text)", "name")
    return name
