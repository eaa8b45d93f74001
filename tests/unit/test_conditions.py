"""Unit tests of rtoc.pipeline.evaluator: event rules over batches, against a plain reference.

The central invariant: however each signal's stream is cut into batches and however the
signals' batches interleave, the events fired are those of :func:`reference`, a plain-Python
evaluator written here from the documented semantics (time-ordered merge with zero-order
hold, truth per :func:`rtoc.events.language.evaluate`, the trigger rules of the docstring of
:func:`rtoc.pipeline.condition_kernels.trigger`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtoc.pipeline.evaluator import Conditions

from rtoc.events.language import compile_condition, evaluate
from rtoc.events.rules import TRIGGERS, EventRule
from rtoc.model import Event

NAN = math.nan
INF = math.inf
# the signals of the invariant and how a condition may spell them
SIGNALS = ("A.x", "B.y", "C d.e.f")
SPELLINGS = {"A.x": ("A.x", "A.x.latest"), "B.y": ("B.y",), "C d.e.f": ("`C d`.`e.f`",)}
TEXT = "{name}|{id}|{value}|{signal}|{device}|{foo}|{value!r}"

Stream = list[tuple[float, float]]  # (t, y) samples of one signal, t non-decreasing


def rule(name: str = "r", cond: str = "A.x > 0", **kw: object) -> EventRule:
    return EventRule.from_dict({"name": name, "cond": cond, **kw})


def feed(c: Conditions, name: str, t: Sequence[float], y: Sequence[float], now: float = 0.0) -> list[Event]:
    return c.feed(name, np.array(t, np.float64), np.array(y, np.float64), now)


def when(events: list[Event]) -> list[tuple[float, float, str, str]]:
    return [(e.time, e.value, e.device, e.signal) for e in events]


# -- the reference ------------------------------------------------------------------------

def first_use(cond: str, signal: str) -> int:
    found = [cond.find(s) for s in SPELLINGS[signal] if s in cond]
    return min(found) if found else -1


def reference_trigger(times: list[float], truths: list[bool], mode: str, hold: float,
                      cooldown: float) -> list[int]:
    """Which rows fire, from the docstring of ``trigger``: runs of equal truth; a run is
    eligible by how it starts; it fires at its first sample ``hold`` s into the run (edge
    modes once, true/false at every such sample) unless within ``cooldown`` of the last
    firing, and a dropped edge is not deferred."""
    edge = mode in ("rising", "falling", "both")
    fired: list[int] = []
    run: bool | None = None
    start = 0.0
    armed = False
    last = -INF
    for i, (t, c) in enumerate(zip(times, truths, strict=True)):
        if c != run:
            armed = {"rising": c, "falling": run is True and not c, "both": c or run is True,
                     "true": c, "false": not c}[mode]
            run, start = c, t
        if armed and t - start >= hold:
            if t - last >= cooldown:
                fired.append(i)
                last = t
            if edge:
                armed = False
    return fired


def reference_text(r: EventRule, value: float, source: str, device: str) -> str:
    if not r.text:
        return r.name
    out = r.text
    for key, shown in (("{value}", format(value, ".6g")), ("{signal}", source),
                       ("{device}", device), ("{name}", r.name), ("{id}", r.id or r.name)):
        out = out.replace(key, shown)
    return out


def reference(rules: list[EventRule], streams: dict[str, Stream]) -> dict[str, list[tuple]]:
    """The events of each rule (by event id) over the complete streams."""
    out: dict[str, list[tuple]] = {}
    for r in rules:
        if not r.active:
            continue
        program = compile_condition(r.cond)
        # columns in order of first use in the condition text
        cols = sorted((s for s in SIGNALS if first_use(r.cond, s) >= 0), key=lambda s: first_use(r.cond, s))
        assert sorted(cols) == sorted(program.signals)
        heads = dict.fromkeys(cols, 0)
        held: dict[str, float] = {}
        rows: list[tuple[float, float, str, bool]] = []
        while True:  # k-way merge by head time, ties to the lower column
            live = [j for j, s in enumerate(cols) if heads[s] < len(streams[s])]
            if not live:
                break
            j = min(live, key=lambda j: (streams[cols[j]][heads[cols[j]]][0], j))
            s = cols[j]
            t, y = streams[s][heads[s]]
            heads[s] += 1
            held[s] = y
            if len(held) == len(cols):
                rows.append((t, y, s, evaluate(program, [held[n] for n in program.signals])))
        fired = reference_trigger([row[0] for row in rows], [row[3] for row in rows],
                                  r.trigger, r.hold, r.cooldown)
        events = []
        for i in fired:
            t, y, s, _ = rows[i]
            dev, sig = s.split(".", 1)
            device = dev if r.device is None else r.device
            signal = sig if r.signal is None else r.signal
            events.append((t, _key(y), r.id or r.name, device, signal,
                           reference_text(r, y, s, device), r.priority))
        if events:
            out[r.id or r.name] = events
    return out


def _key(y: float) -> float | str:
    return "nan" if math.isnan(y) else y


def by_id(events: list[Event]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for e in events:
        out.setdefault(e.id, []).append(
            (e.time, _key(e.value), e.id, e.device, e.signal, e.text, e.priority))
    return out


def test_reference_trigger_by_hand() -> None:
    t = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    c = [True, True, False, True, True, True, False]
    assert reference_trigger(t, c, "rising", 0.0, 0.0) == [0, 3]
    assert reference_trigger(t, c, "falling", 0.0, 0.0) == [2, 6]
    assert reference_trigger(t, c, "both", 0.0, 0.0) == [0, 2, 3, 6]
    assert reference_trigger(t, c, "true", 0.0, 0.0) == [0, 1, 3, 4, 5]
    assert reference_trigger(t, c, "false", 0.0, 0.0) == [2, 6]
    assert reference_trigger(t, c, "rising", 1.0, 0.0) == [1, 4]
    assert reference_trigger(t, c, "true", 1.5, 0.0) == [5]
    assert reference_trigger(t, c, "rising", 0.0, 4.0) == [0]   # 3 is dropped, not deferred
    assert reference_trigger(t, c, "true", 0.0, 2.0) == [0, 3, 5]
    assert reference_trigger(t, [False, *c[1:]], "both", 0.0, 0.0) == [1, 2, 3, 6]


# -- strategies ---------------------------------------------------------------------------

NUMBERS = st.sampled_from(["0", "0.5", "1", "2", "-1", "1e3"])
COMPARE = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])


@functools.cache
def conditions(signals: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Condition texts over ``signals``: the fused ``signal <op> number`` shapes, arithmetic,
    chained comparisons, and/or/not (built once per signal set: building is slow)."""
    refs = st.sampled_from([s for name in signals for s in SPELLINGS[name]])
    arith = st.recursive(refs | NUMBERS, lambda inner: st.one_of(
        st.builds("({} {} {})".format, inner, st.sampled_from(["+", "-", "*", "/", "%", "**"]), inner),
        st.builds("abs({})".format, inner),
        st.builds("{}({}, {})".format, st.sampled_from(["min", "max"]), inner, inner),
        st.builds("-{}".format, inner),
    ), max_leaves=3)
    compare = st.one_of(
        st.builds("{} {} {}".format, refs, COMPARE, NUMBERS),
        st.builds("{} {} {}".format, NUMBERS, COMPARE, refs),
        st.builds("{} {} {}".format, refs, COMPARE, refs),
        st.builds("{} {} {} + {}".format, refs, COMPARE, refs, refs),
        st.builds("{} {} {}".format, arith, COMPARE, arith),
        st.builds("{} < {} <= {}".format, NUMBERS, arith, NUMBERS),
    )
    logic = st.recursive(compare | arith, lambda inner: st.one_of(
        st.builds("({}) {} ({})".format, inner, st.sampled_from(["and", "or"]), inner),
        st.builds("not ({})".format, inner),
    ), max_leaves=3)
    spelled = [s for name in SIGNALS for s in SPELLINGS[name]]
    return st.one_of(compare, logic).filter(lambda c: any(s in c for s in spelled))


@st.composite
def streams(draw: st.DrawFn, signals: tuple[str, ...]) -> dict[str, Stream]:
    out: dict[str, Stream] = {name: [] for name in SIGNALS}
    for name in signals:
        t = draw(st.sampled_from([0.0, 0.5, 1.0]))
        n = draw(st.integers(0, 16))
        samples = []
        for dt, y in draw(st.lists(st.tuples(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0]),
                                             st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, NAN])),
                                   min_size=n, max_size=n)):
            t += dt
            samples.append((t, y))
        out[name] = samples
    return out


@st.composite
def rule_sets(draw: st.DrawFn, signals: tuple[str, ...]) -> list[EventRule]:
    rules = []
    for i in range(draw(st.integers(1, 3))):
        rules.append(EventRule.from_dict({
            "name": f"rule{i}",
            "cond": draw(conditions(signals)),
            "trigger": draw(st.sampled_from(TRIGGERS)),
            "hold": draw(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.5])),
            "cooldown": draw(st.sampled_from([0.0, 0.0, 1.0, 2.0])),
            "id": draw(st.sampled_from(["", f"id{i}"])),
            "text": draw(st.sampled_from(["", TEXT])),
            "priority": draw(st.integers(0, 2)),
            "device": draw(st.sampled_from([None, None, "", "Dev"])),
            "signal": draw(st.sampled_from([None, None, "", "Sig"])),
            "active": draw(st.sampled_from([True, True, True, False])),
        }))
    return rules


# -- the invariant ------------------------------------------------------------------------

@settings(max_examples=500, deadline=None, database=None)
@given(st.data())
def test_any_batching_gives_the_reference_events(data: st.DataObject) -> None:
    signals = data.draw(st.sampled_from([("A.x",), ("A.x", "B.y"), ("B.y", "A.x"), SIGNALS]))
    rules = data.draw(rule_sets(signals))
    samples = data.draw(streams(signals))
    batches: dict[str, list[Stream]] = {}
    for name in signals:
        n = len(samples[name])
        cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
        bounds = [0, *cuts, n]
        batches[name] = [samples[name][a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    order = data.draw(st.permutations([name for name in signals for _ in batches[name]]))

    c = Conditions(sync_timeout=1e9, max_rate=INF)
    c.set_rules(rules)
    got: list[Event] = []
    pending = {name: iter(b) for name, b in batches.items()}
    for name in order:
        batch = next(pending[name])
        got += feed(c, name, [t for t, _ in batch], [y for _, y in batch])
        assert c.tick(0.0) == []
    got += c.flush(0.0)
    assert by_id(got) == reference(rules, samples)
    assert c.flush(0.0) == []
    for name, counts in c.stats().items():
        assert counts["suppressed"] == 0
        assert counts["fired"] == len([e for e in got if e.extra["rule"] == name])


# -- single rules by hand -----------------------------------------------------------------

def test_a_rule_fires_at_each_rising_edge() -> None:
    c = Conditions(max_rate=INF)
    c.set_rules([rule()])
    events = feed(c, "A.x", [0, 1, 2, 3, 4], [1, -1, 1, 1, -1])
    assert when(events) == [(0.0, 1.0, "A", "x"), (2.0, 1.0, "A", "x")]
    ev = events[0]
    assert (ev.id, ev.text, ev.priority, type(ev.value)) == ("r", "r", 0, float)
    assert ev.extra == {"rule": "r", "source": "A.x"}
    assert c.watched == {"A.x"}
    assert c.stats() == {"r": {"fired": 2, "suppressed": 0}}


def test_batches_of_other_signals_and_empty_batches_are_harmless() -> None:
    rules = [rule("one", "A.x > 0", trigger="both"), rule("two", "A.x > B.y", trigger="both")]
    plain, padded = Conditions(max_rate=INF), Conditions(max_rate=INF)
    plain.set_rules(rules)
    padded.set_rules(rules)
    want = feed(plain, "A.x", [0, 1, 2], [1, -1, 1]) + feed(plain, "B.y", [0.5, 3], [0, 0])
    want += plain.flush(0.0)
    got = []
    for name, t, y in [("B.y", [], []), ("A.x", [], []), ("Z.z", [0, 1], [5, 6]),
                       ("A.x", [0, 1, 2], [1, -1, 1]), ("A.x", [], []), ("B.y", [], []),
                       ("B.y", [0.5, 3], [0, 0]), ("B.y", [], []), ("A.x", [], [])]:
        got += feed(padded, name, t, y)
    got += padded.flush(0.0)
    assert want == got
    assert len(want) == 6
    assert feed(padded, "Z.z", [9], [9]) == []


@pytest.mark.parametrize(("cond", "source"), [
    ("A.x > 0 and B.y > 0", ("B", "y")),  # A is column 0: at equal times A goes first
    ("B.y > 0 and A.x > 0", ("A", "x")),
    ("B.y.latest > 0 and A.x > 0", ("A", "x")),
])
def test_equal_times_go_lower_column_first(cond: str, source: tuple[str, str]) -> None:
    c = Conditions(max_rate=INF)
    c.set_rules([rule(cond=cond)])
    events = feed(c, "A.x", [0], [1]) + feed(c, "B.y", [0], [2]) + c.flush(0.0)
    assert when(events) == [(0.0, 2.0 if source == ("B", "y") else 1.0, *source)]


def test_a_rule_over_several_signals_waits_for_every_value() -> None:
    c = Conditions(max_rate=INF)
    c.set_rules([rule(cond="A.x > 0 or B.y > 0")])
    assert feed(c, "A.x", [0, 1, 2], [1, 1, 1]) == []
    assert c.flush(0.0) == []  # B.y never had a value: nothing is evaluated
    assert when(feed(c, "B.y", [3], [0]) + c.flush(0.0)) == [(3.0, 0.0, "B", "y")]


# -- set_rules ----------------------------------------------------------------------------

def test_set_rules_keeps_unchanged_rules_and_resets_changed_ones() -> None:
    c = Conditions(max_rate=INF)
    c.set_rules([rule("a", "A.x > 0"), rule("b", "A.x > 5")])
    assert [e.id for e in feed(c, "A.x", [0], [1])] == ["a"]
    # 'a' rebuilt equal keeps its state (no re-fire while still true); 'c' is new
    c.set_rules([rule("a", "A.x > 0"), rule("b", "A.x > 5"), rule("c", "A.x > 1")])
    assert [e.id for e in feed(c, "A.x", [1], [2])] == ["c"]
    assert c.stats()["a"] == {"fired": 1, "suppressed": 0}
    # 'a' changed: a fresh state, so its first true value counts again; 'c' kept
    c.set_rules([rule("a", "A.x >= 0"), rule("c", "A.x > 1")])
    assert [e.id for e in feed(c, "A.x", [2], [2])] == ["a"]
    assert c.stats() == {"a": {"fired": 1, "suppressed": 0}, "c": {"fired": 1, "suppressed": 0}}
    assert c.watched == {"A.x"}


def test_set_rules_keeps_the_queued_samples_of_unchanged_rules() -> None:
    c = Conditions(max_rate=INF)
    both = rule("both", "A.x > 0 and B.y > 0")
    c.set_rules([both])
    assert feed(c, "A.x", [0, 1], [1, 1]) == []
    c.set_rules([both, rule("other", "C.z > 0")])
    assert when(feed(c, "B.y", [0], [1])) == [(0.0, 1.0, "B", "y")]
    assert c.watched == {"A.x", "B.y", "C.z"}


def test_inactive_rules_never_fire() -> None:
    c = Conditions(max_rate=INF)
    c.set_rules([rule("off", "A.x > 0", active=False, trigger="true"),
                 rule("off2", "A.x > 0 and B.y > 0", active=False)])
    assert c.watched == set()
    assert feed(c, "A.x", [0, 1], [1, 1]) == [] and feed(c, "B.y", [0], [1]) == []
    assert c.tick(1e9) == [] and c.flush(0.0) == []
    assert c.stats() == {}


def test_disabling_and_enabling_a_rule_starts_it_afresh() -> None:
    c = Conditions(max_rate=INF)
    on = rule("r", "A.x > 0")
    c.set_rules([on])
    assert len(feed(c, "A.x", [0], [1])) == 1
    c.set_rules([rule("r", "A.x > 0", active=False)])
    assert feed(c, "A.x", [1], [1]) == []
    c.set_rules([on])
    assert len(feed(c, "A.x", [2], [1])) == 1


# -- tick and the sync timeout ------------------------------------------------------------

def _waiting_on_b() -> Conditions:
    """A rule over A.x and B.y whose B.y fell silent after t=0, released by tick(1.5): the
    wait counts from the last time the merge made progress (now=0.5)."""
    c = Conditions(sync_timeout=1.0, max_rate=INF)
    c.set_rules([rule(cond="A.x > 0 and B.y > 0", trigger="both")])
    assert feed(c, "B.y", [0], [1], now=0.0) == []
    assert feed(c, "A.x", [1, 2], [-1, 1], now=0.5) == []  # waits for B.y beyond t=1
    assert c.tick(0.5) == []
    assert c.tick(1.49) == []
    assert when(c.tick(1.5)) == [(2.0, 1.0, "A", "x")]    # with B.y's held 1
    assert c.tick(5.0) == []
    return c


def test_tick_releases_a_rule_waiting_on_a_silent_signal_after_the_timeout() -> None:
    c = _waiting_on_b()
    # a late B.y sample (t=1.5, before the t=2 already evaluated) is still evaluated, in
    # arrival order, once the rule is released again
    assert feed(c, "B.y", [1.5], [-1], now=5.25) == []
    assert c.tick(6.0) == []
    c.tick(6.25)
    assert feed(c, "A.x", [3], [1], now=6.5) == []
    assert c.flush(6.5) == []                               # A=1, B=-1: still false
    # the late B=-1 made the condition false, so B=1 at t=4 is a new edge
    assert when(feed(c, "B.y", [4], [1], now=7.0) + c.flush(7.0)) == [(4.0, 1.0, "B", "y")]


def test_a_late_edge_fires_without_a_cooldown() -> None:
    c = _waiting_on_b()
    assert feed(c, "B.y", [1.5], [-1], now=5.25) == []
    assert when(c.tick(6.25)) == [(1.5, -1.0, "B", "y")]    # the falling edge of the late sample


def test_a_signal_that_keeps_coming_is_waited_for() -> None:
    # B.y at t=i may still be followed by A.x at t=i, so each B.y sample waits for A.x's next
    c = Conditions(sync_timeout=1.0, max_rate=INF)
    c.set_rules([rule(cond="A.x > B.y", trigger="true")])
    out = []
    for i in range(4):
        out += feed(c, "A.x", [i], [1], now=i / 10) + feed(c, "B.y", [i], [0], now=i / 10)
    assert [(e.time, e.signal) for e in out] == [(0.0, "y"), (1.0, "x"), (1.0, "y"), (2.0, "x"),
                                                 (2.0, "y"), (3.0, "x")]
    assert [(e.time, e.signal) for e in c.flush(1.0)] == [(3.0, "y")]


def test_tick_does_not_release_while_every_signal_keeps_coming() -> None:
    c = Conditions(sync_timeout=1.0, max_rate=INF)
    c.set_rules([rule(cond="A.x > B.y", trigger="true")])
    out = feed(c, "A.x", [0], [1], now=0.0) + feed(c, "B.y", [0], [0], now=0.0)
    out += feed(c, "A.x", [1], [1], now=0.5) + feed(c, "B.y", [1], [0], now=0.5)
    out += feed(c, "A.x", [2], [1], now=1.0)
    out += c.tick(1.0)            # A.x at t=2 has waited 0 s, B.y was last heard 0.5 s ago
    out += feed(c, "B.y", [1.9], [5], now=1.01) + c.flush(1.1)
    samples = {"A.x": [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0)], "B.y": [(0.0, 0.0), (1.0, 0.0), (1.9, 5.0)]}
    assert by_id(out) == reference([rule(cond="A.x > B.y", trigger="true")], samples)
    assert [(e.time, e.signal) for e in out] == [(0.0, "y"), (1.0, "x"), (1.0, "y")]


# -- the rate cap -------------------------------------------------------------------------

def test_max_rate_caps_events_per_rule_and_counts_the_rest() -> None:
    c = Conditions(max_rate=10.0)
    c.set_rules([rule("a", "A.x > 0", trigger="true"), rule("b", "A.x > -5", trigger="true")])
    t = np.arange(100.0)
    first = c.feed("A.x", t, np.ones(100), 0.0)
    assert [e.time for e in first if e.id == "a"] == [float(i) for i in range(10)]  # the burst
    assert len([e for e in first if e.id == "b"]) == 10
    half = c.feed("A.x", t + 100, np.ones(100), 0.5)
    assert [e.time for e in half if e.id == "a"] == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert len(c.feed("A.x", t + 200, np.ones(100), 100.0)) == 20                 # capped burst
    assert c.stats() == {"a": {"fired": 25, "suppressed": 275}, "b": {"fired": 25, "suppressed": 275}}


def test_max_rate_carries_fractions_of_tokens() -> None:
    c = Conditions(max_rate=10.0)
    c.set_rules([rule(trigger="true")])
    assert len(c.feed("A.x", np.arange(10.0), np.ones(10), 0.0)) == 10
    counts = [len(c.feed("A.x", np.array([10.0 + i]), np.ones(1), 0.05 * (i + 1))) for i in range(4)]
    assert counts == [0, 1, 0, 1]
    assert c.stats()["r"] == {"fired": 12, "suppressed": 2}


def test_no_cap_with_an_infinite_rate() -> None:
    c = Conditions(max_rate=INF)
    c.set_rules([rule(trigger="true")])
    assert len(c.feed("A.x", np.arange(5000.0), np.ones(5000), 0.0)) == 5000


# -- what an event says -------------------------------------------------------------------

@pytest.mark.parametrize(("device", "signal", "expected"), [
    (None, None, ("A", "x")),
    ("Pump", None, ("Pump", "x")),
    (None, "Alarm", ("A", "Alarm")),
    ("Pump", "Alarm", ("Pump", "Alarm")),
    ("", "", ("", "")),
    ("", None, ("", "x")),
])
def test_events_are_attributed(device: str | None, signal: str | None, expected: tuple) -> None:
    c = Conditions(max_rate=INF)
    c.set_rules([rule(device=device, signal=signal, id="alarm")])
    (ev,) = feed(c, "A.x", [1], [2])
    assert (ev.device, ev.signal) == expected
    assert ev.id == "alarm"  # an explicit id, not one derived from device/signal/text
    assert ev.extra["source"] == "A.x"


def test_events_of_several_signals_name_the_signal_that_fired() -> None:
    c = Conditions(max_rate=INF)
    c.set_rules([rule(cond="`C d`.`e.f` + A.x > 1", trigger="true", priority=2)])
    events = feed(c, "A.x", [0, 2], [1, 1]) + feed(c, "C d.e.f", [1, 3], [1, -5]) + c.flush(0.0)
    assert when(events) == [(1.0, 1.0, "C d", "e.f"), (2.0, 1.0, "A", "x")]
    assert {e.priority for e in events} == {2}


def test_text_placeholders_render() -> None:
    c = Conditions(max_rate=INF)
    c.set_rules([rule("hot", text=TEXT + "|{value.__class__}|{0}", id="alarm", device="Pump")])
    (ev,) = feed(c, "A.x", [1], [0.123456789])
    assert ev.text == "hot|alarm|0.123457|A.x|Pump|{foo}|{value!r}|{value.__class__}|{0}"
    c.set_rules([rule("plain", "A.x < 0")])
    (ev,) = feed(c, "A.x", [2], [-1])
    assert ev.text == "plain"
