"""Unit tests of rtoc.events.event_log: the bounded list of recent events and its query filters."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtoc.errors import EventError
from rtoc.events.event_log import MAX_RESULTS, EventLog, query_fields
from rtoc.model import Event

EVENTS = [
    Event(time=1.0, text="Pump started", device="Pump", signal="Flow", priority=0, id="start"),
    Event(time=2.0, text="Flow LOW", device="Pump", signal="Flow", priority=1, id="low"),
    Event(time=2.0, text="tank empty", device="Tank", signal="Level", priority=2, id="empty"),
    Event(time=3.5, text="flow low again", device="Pump", signal="Flow", priority=1, id="low"),
    Event(time=4.0, text="Überdruck", device="Tank", signal="", priority=2, id="pressure"),
    Event(time=5.0, text="", device="", signal="", priority=0, id="tick"),
]


@pytest.fixture
def log() -> EventLog:
    out = EventLog()
    for ev in EVENTS:
        out.add(ev)
    return out


def ids(events: list[Event]) -> list[tuple[float, str]]:
    return [(e.time, e.id) for e in events]


def test_everything_oldest_first(log: EventLog) -> None:
    assert log.query() == EVENTS
    assert log.total == len(EVENTS)


def test_size_is_bounded_oldest_drop_total_counts_all() -> None:
    log = EventLog(size=3)
    for i in range(10):
        log.add(Event(time=float(i), id=str(i)))
    assert [e.id for e in log.query()] == ["7", "8", "9"]
    assert log.total == 10
    assert len(log.events) == 3


@pytest.mark.parametrize("size", [0, -5, 1])
def test_a_log_keeps_at_least_one_event(size: int) -> None:
    log = EventLog(size=size)
    log.add(Event(time=1.0, id="a"))
    log.add(Event(time=2.0, id="b"))
    assert [e.id for e in log.query()] == ["b"]
    assert log.total == 2


def test_empty_log() -> None:
    assert EventLog().query(text="x") == []
    assert EventLog().total == 0


@pytest.mark.parametrize(("filters", "expected"), [
    ({"since": 2.0}, [2.0, 2.0, 3.5, 4.0, 5.0]),
    ({"since": 2}, [2.0, 2.0, 3.5, 4.0, 5.0]),
    ({"since": 5.0}, [5.0]),
    ({"since": 5.5}, []),
    ({"until": 2.0}, [1.0, 2.0, 2.0]),
    ({"until": 0.5}, []),
    ({"since": 2.0, "until": 3.5}, [2.0, 2.0, 3.5]),
    ({"since": 3.0, "until": 2.0}, []),
    ({"since": -math.inf, "until": math.inf}, [1.0, 2.0, 2.0, 3.5, 4.0, 5.0]),
])
def test_time_filters_are_inclusive(log: EventLog, filters: dict, expected: list[float]) -> None:
    assert [e.time for e in log.query(**filters)] == expected


@pytest.mark.parametrize(("filters", "expected"), [
    ({"priority": 0}, ["start", "tick"]),
    ({"priority": 1}, ["low", "low"]),
    ({"priority": [2]}, ["empty", "pressure"]),
    ({"priority": [0, 2]}, ["start", "empty", "pressure", "tick"]),
    ({"priority": []}, []),
    ({"min_priority": 0}, ["start", "low", "empty", "low", "pressure", "tick"]),
    ({"min_priority": 1}, ["low", "empty", "low", "pressure"]),
    ({"min_priority": 2}, ["empty", "pressure"]),
    ({"priority": 1, "min_priority": 2}, []),
    ({"priority": [0, 1], "min_priority": 1}, ["low", "low"]),
])
def test_priority_filters(log: EventLog, filters: dict, expected: list[str]) -> None:
    assert [e.id for e in log.query(**filters)] == expected


@pytest.mark.parametrize(("filters", "expected"), [
    ({"device": "Pump"}, ["start", "low", "low"]),
    ({"device": "pump"}, []),
    ({"device": "Pum"}, []),
    ({"device": ""}, ["tick"]),
    ({"signal": "Flow"}, ["start", "low", "low"]),
    ({"signal": ""}, ["pressure", "tick"]),
    ({"signal": "Level"}, ["empty"]),
    ({"id": "low"}, ["low", "low"]),
    ({"id": "lo"}, []),
    ({"id": "LOW"}, []),
    ({"text": "low"}, ["low", "low"]),
    ({"text": "FLOW LOW"}, ["low", "low"]),
    ({"text": "W l"}, ["low", "low"]),
    ({"text": "überdruck"}, ["pressure"]),
    ({"text": "UEBER"}, []),
    ({"text": ""}, ["start", "low", "empty", "low", "pressure", "tick"]),
])
def test_name_and_text_filters(log: EventLog, filters: dict, expected: list[str]) -> None:
    assert [e.id for e in log.query(**filters)] == expected


def test_text_filter_folds_case_fully() -> None:
    log = EventLog()
    log.add(Event(time=0.0, text="STRASSE gesperrt", id="a"))
    assert [e.id for e in log.query(text="straße")] == ["a"]


def test_filters_combine(log: EventLog) -> None:
    found = log.query(device="Pump", min_priority=1, since=3.0)
    assert ids(found) == [(3.5, "low")]
    assert log.query(device="Tank", signal="Level", text="EMPTY", priority=[2], until=2.0) == [EVENTS[2]]
    assert log.query(device="Tank", id="low") == []


def test_limit_gives_the_newest_oldest_first(log: EventLog) -> None:
    assert ids(log.query(limit=2)) == [(4.0, "pressure"), (5.0, "tick")]
    assert ids(log.query(limit=1)) == [(5.0, "tick")]
    assert ids(log.query(device="Pump", limit=2)) == [(2.0, "low"), (3.5, "low")]
    assert log.query(limit=MAX_RESULTS) == EVENTS


@settings(max_examples=50, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["A", "B"])), max_size=40),
       st.integers(1, 50), st.integers(1, 30))
def test_query_is_a_filter_of_the_kept_events(spec: list, size: int, limit: int) -> None:
    log = EventLog(size=size)
    events = [Event(time=float(i), priority=p, device=d, id=str(i)) for i, (p, d) in enumerate(spec)]
    for e in events:
        log.add(e)
    kept = events[-size:] if events else []
    want = [e for e in kept if e.priority >= 1 and e.device == "A"][-limit:]
    assert log.query(min_priority=1, device="A", limit=limit) == want
    assert log.total == len(events)


@pytest.mark.parametrize("filters", [
    {"since": "1"}, {"since": True}, {"until": "x"}, {"until": False},
    {"since": [1.0]},
    {"priority": "1"}, {"priority": True}, {"priority": 1.0}, {"priority": [0, "1"]},
    {"priority": [0, True]}, {"priority": (0, 1)},
    {"min_priority": "1"}, {"min_priority": 1.5}, {"min_priority": True},
    {"device": 1}, {"signal": ["Flow"]}, {"id": 3}, {"text": b"low"},
    {"limit": 0}, {"limit": -1}, {"limit": MAX_RESULTS + 1}, {"limit": 1.0}, {"limit": "5"},
    {"limit": True}, {"limit": None},
])
def test_bad_filter_values_raise_event_error(log: EventLog, filters: dict) -> None:
    with pytest.raises(EventError):
        log.query(**filters)


@pytest.mark.parametrize("filters", [{"priority": 3}, {"priority": [0, -1]}, {"min_priority": 3}])
def test_priority_levels_outside_the_range_are_refused(log: EventLog, filters: dict) -> None:
    with pytest.raises(EventError):
        log.query(**filters)


def test_query_fields_keeps_only_filters() -> None:
    msg = {"op": "events", "since": 1.0, "limit": 5, "text": "x", "bogus": 1, "priority": [1]}
    assert query_fields(msg) == {"since": 1.0, "limit": 5, "text": "x", "priority": [1]}
    assert query_fields({}) == {}
