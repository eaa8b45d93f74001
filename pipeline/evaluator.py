"""The engine's event rules at work: batches in, events out (a pure core; no clock reads).

``Conditions.feed(name, t, y, now)`` runs every active rule that watches ``name`` over the
whole batch with the numba kernels and returns the events fired. A rule over one signal is
evaluated at once. A rule over several signals evaluates at every new sample of any of
them, with the others' latest values (zero-order hold), in time order: its samples wait
until every signal it reads has data beyond them, so how batches happen to arrive does
not change the result. A signal that falls silent would hold the others back forever, so
``tick(now)`` lets a rule that waited ``sync_timeout`` s go on with the silent signal's
held value (a sample that then arrives late is evaluated when it comes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from rtoc.pipeline.condition_kernels import (
    MODES,
    compare_const,
    eval_program,
    merge_hold,
    new_trigger_state,
    trigger,
)

from rtoc.events.language import Program, compile_condition
from rtoc.events.rules import EventRule, render
from rtoc.model import Event, split_name

EMPTY = np.empty(0, np.float64)


@dataclass
class Firing:
    """Where a rule fired: times, values and source signal index, float64/int64[k]."""

    t: np.ndarray
    value: np.ndarray
    source: np.ndarray


class RuleState:
    """One rule's compiled program, trigger state and (several signals) merge queues."""

    def __init__(self, rule: EventRule, program: Program | None = None):
        self.rule = rule
        self.program = program or compile_condition(rule.cond)
        p = self.program
        self.ops = np.array(p.ops, np.int64)
        self.args = np.array(p.args, np.int64)
        self.consts = np.array(p.consts, np.float64)
        self.fused = p.threshold()
        self.mode = MODES[rule.trigger]
        self.state = new_trigger_state()
        k = len(p.signals)
        self.queues: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(k)]
        self.held = np.zeros(k)
        self.has = np.zeros(k, np.uint8)
        self.waiting_since: float | None = None
        self.fired = 0
        self.suppressed = 0
        self.late = 0
        self.unreported = 0                  # suppressed since the last throttle report
        self.reported_at: float | None = None  # `now` of that report
        self.last_t = 0.0                    # unix s of the last sample it fired at

    @property
    def signals(self) -> tuple[str, ...]:
        return self.program.signals

    def feed(self, index: int, t: np.ndarray, y: np.ndarray, now: float) -> Firing | None:
        if len(self.signals) == 1:
            return self._single(t, y)
        if len(t):
            self.queues[index].append((t, y))
        return self._merge(now, release=False)

    def release(self, now: float, sync_timeout: float) -> Firing | None:
        """Go on without the silent signals once this rule waited ``sync_timeout`` s."""
        if self.waiting_since is None or now - self.waiting_since < sync_timeout:
            return None
        return self._merge(now, release=True)

    def _single(self, t: np.ndarray, y: np.ndarray) -> Firing | None:
        n = len(t)
        if not n:
            return None
        c = np.empty(n, np.uint8)
        if self.fused is not None:
            compare_const(y, self.fused[0], self.fused[1], c)
        else:
            cols = np.ascontiguousarray(y).reshape(1, n)
            eval_program(self.ops, self.args, self.consts, self.program.depth, cols, c)
        return self._trigger(t, c, y, None)

    def _merge(self, now: float, release: bool) -> Firing | None:
        if not release and not all(self.queues):  # a signal has nothing pending: no progress
            if any(self.queues) and self.waiting_since is None:
                self.waiting_since = now
            return None
        sizes = [sum(len(t) for t, _ in q) for q in self.queues]
        total = sum(sizes)
        if total == 0:
            self.waiting_since = None
            return None
        offsets = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        ts = np.concatenate([t for q in self.queues for t, _ in q])
        ys = np.concatenate([y for q in self.queues for _, y in q])
        heads = np.zeros(len(sizes), np.int64)
        k = len(sizes)
        cols = np.empty((k, total))
        tm, sy = np.empty(total), np.empty(total)
        src = np.empty(total, np.int64)
        rows = merge_hold(ts, ys, offsets, heads, release, self.held, self.has, cols, tm, src, sy)
        for j in range(k):  # keep what was not consumed
            rest = int(offsets[j] + heads[j]), int(offsets[j + 1])
            self.queues[j] = [(ts[rest[0]:rest[1]], ys[rest[0]:rest[1]])] if rest[0] < rest[1] else []
        if not any(self.queues):
            self.waiting_since = None
        elif self.waiting_since is None or heads.any():
            # waiting starts when the merge stops making progress: two live signals nearly
            # always leave a sample queued, and that is no stall
            self.waiting_since = now
        if rows == 0:
            return None
        c = np.empty(rows, np.uint8)
        eval_program(self.ops, self.args, self.consts, self.program.depth, cols, c)
        return self._trigger(tm[:rows], c, sy[:rows], src[:rows])

    def _trigger(self, t, c, values, source) -> Firing | None:
        r = self.rule
        idx = np.empty(len(c), np.int64)
        k = trigger(t, c, self.mode, r.hold, r.cooldown, self.state, idx)
        if k == 0:
            return None
        idx = idx[:k]
        src = source[idx] if source is not None else np.zeros(k, np.int64)
        return Firing(t[idx], values[idx], src)


THROTTLE_ID = "rtoc.rule_throttled"  # the id of the events that report a throttled rule


@dataclass
class Conditions:
    """All active event rules; ``max_rate`` caps each rule's events per second and
    ``max_total_rate`` all rules' together (the rest are counted in ``suppressed``): a
    ``true`` trigger on a 1 MS/s signal, or hundreds of rules, must not flood the engine. A
    throttled rule is reported by an event (id ``rtoc.rule_throttled``, priority 1, the
    count in ``value``) at most every ``report_every`` s (0: never)."""

    sync_timeout: float = 0.2
    max_rate: float = 1000.0
    max_total_rate: float = math.inf
    report_every: float = 0.0
    states: dict[str, RuleState] = field(default_factory=dict)
    by_signal: dict[str, list[tuple[RuleState, int]]] = field(default_factory=dict)
    _budget: dict[str, tuple[float, float]] = field(default_factory=dict)
    _total: tuple[float, float] | None = None
    _unreported: set[str] = field(default_factory=set)

    def set_rules(self, rules: list[EventRule]) -> None:
        """Use ``rules`` (active ones); a rule whose definition did not change keeps its
        state, so editing one rule does not re-fire the others."""
        states: dict[str, RuleState] = {}
        for rule in rules:
            if not rule.active:
                continue
            old = self.states.get(rule.name)
            if old is not None and _logic(old.rule) == _logic(rule):
                old.rule = rule  # only how its events look changed: keep the state
                states[rule.name] = old
            else:
                states[rule.name] = RuleState(rule)
        self.states = states
        self.by_signal = {}
        for st in states.values():
            for i, name in enumerate(st.signals):
                self.by_signal.setdefault(name, []).append((st, i))

    @property
    def watched(self):
        """The names of the signals some active rule reads (a view: no copy per batch)."""
        return self.by_signal.keys()

    def feed(self, name: str, t: np.ndarray, y: np.ndarray, now: float) -> list[Event]:
        """Evaluate every rule reading ``name`` over this batch (float64[n] t, y)."""
        out: list[Event] = []
        for st, index in self.by_signal.get(name, ()):
            self._events(st, st.feed(index, t, y, now), now, out)
        return out

    def tick(self, now: float) -> list[Event]:
        out: list[Event] = []
        for st in self.states.values():
            if st.waiting_since is not None:
                self._events(st, st.release(now, self.sync_timeout), now, out)
        for name in list(self._unreported):  # a rule throttled, then quiet: its last report
            st = self.states.get(name)
            if st is None:
                self._unreported.discard(name)
            else:
                self._report(st, now, out)
        return out

    def flush(self, now: float) -> list[Event]:
        """Evaluate everything still waiting (the engine is stopping)."""
        out: list[Event] = []
        for st in self.states.values():
            if len(st.signals) > 1:
                self._events(st, st._merge(now, release=True), now, out)
        return out

    def stats(self) -> dict:
        return {name: {"fired": st.fired, "suppressed": st.suppressed} for name, st in self.states.items()}

    def _events(self, st: RuleState, firing: Firing | None, now: float, out: list[Event]) -> list[Event]:
        if firing is None:
            return out
        n = len(firing.t)
        allowed = self._allow_total(self._allow(st.rule.name, n, now), now)
        st.fired += allowed
        st.suppressed += n - allowed
        st.last_t = float(firing.t[-1])
        if allowed < n and self.report_every > 0:
            st.unreported += n - allowed
            self._unreported.add(st.rule.name)
        r = st.rule
        for i in range(allowed):  # at most max_rate per second: Python per event is fine
            source = st.signals[int(firing.source[i])]
            device, signal = split_name(source)
            ev = Event(time=float(firing.t[i]), text="", priority=r.priority, id=r.event_id,
                       device=device if r.device is None else r.device,
                       signal=signal if r.signal is None else r.signal,
                       value=float(firing.value[i]), extra={"rule": r.name, "source": source})
            text = render(r.text, ev, r.name) if r.text else r.name
            out.append(Event(ev.time, text, ev.device, ev.signal, ev.priority, ev.id, ev.value, ev.extra))
        if st.unreported:
            self._report(st, now, out)
        return out

    def _report(self, st: RuleState, now: float, out: list[Event]) -> None:
        """The throttle report of ``st``, when one is due."""
        if st.reported_at is not None and now - st.reported_at < self.report_every:
            return
        name, k = st.rule.name, st.unreported
        out.append(Event(time=st.last_t, priority=1, id=THROTTLE_ID, value=k,
                         text=f"rule {name} throttled: {k} events suppressed (at most "
                              f"{self.max_rate:g}/s per rule, {self.max_total_rate:g}/s for all)",
                         extra={"rule": name, "suppressed": k, "total_suppressed": st.suppressed}))
        st.unreported, st.reported_at = 0, now
        self._unreported.discard(name)

    def _allow_total(self, n: int, now: float) -> int:
        """Token bucket over all rules: ``max_total_rate`` per second."""
        if math.isinf(self.max_total_rate) or n == 0:
            return n
        tokens, last = self._total or (self.max_total_rate, now)
        tokens = min(self.max_total_rate, tokens + (now - last) * self.max_total_rate)
        allowed = min(n, int(math.floor(tokens)))
        self._total = (tokens - allowed, now)
        return allowed

    def _allow(self, name: str, n: int, now: float) -> int:
        """Token bucket: ``max_rate`` per second, bursts up to ``max_rate``."""
        if math.isinf(self.max_rate):
            return n
        tokens, last = self._budget.get(name, (self.max_rate, now))
        tokens = min(self.max_rate, tokens + (now - last) * self.max_rate)
        allowed = min(n, int(math.floor(tokens)))
        self._budget[name] = (tokens - allowed, now)
        return allowed


def _logic(rule: EventRule) -> tuple:
    """What decides when a rule fires (text, id, priority only shape its events)."""
    return rule.cond, rule.trigger, rule.hold, rule.cooldown


def warm_up() -> None:
    """Compile (or load from numba's cache) the condition kernels with the types the
    engine uses, so the first batch after a start does not wait for the compiler."""
    t = np.arange(4, dtype=np.float64)
    rules = [EventRule("warm-1", "W.a > 1"), EventRule("warm-2", "abs(W.a - W.b) > 1", "both")]
    conditions = Conditions(max_rate=math.inf)
    conditions.set_rules(rules)
    conditions.feed("W.a", t, t, 0.0)
    conditions.feed("W.b", t, t, 0.0)
    conditions.flush(0.0)
