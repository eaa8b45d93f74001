"""The viewer's pure parts: live points joined with history, history requests only where
the live buffer does not reach, and the measure tool's figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rtoc.frontends.viewer.measure import measure
from rtoc.frontends.viewer.model import Trace, ViewerModel


def test_live_points_stay_ascending_and_bounded() -> None:
    tr = Trace(capacity=100)
    tr.add(np.arange(80.0), np.zeros(80))
    tr.add(np.arange(70.0, 150.0), np.ones(80))  # a replay overlapping what is there
    assert np.all(np.diff(tr.t) > 0) and len(tr.t) == 100 and tr.t[-1] == 149.0


def test_a_range_older_than_the_live_buffer_asks_history_once_and_joins_it() -> None:
    tr = Trace()
    tr.add(np.arange(1000.0, 1100.0), np.ones(100))
    assert tr.needs_history(1050.0, 1099.0, 800) is None  # all live
    want = tr.needs_history(0.0, 1099.0, 800)
    assert want == (0.0, 1000.0, 800)
    assert tr.needs_history(0.0, 1099.0, 800) is None  # on its way
    tr.got_history(*want, np.arange(0.0, 1000.0, 10.0), np.full(100, 2.0))
    t, y = tr.visible(0.0, 1099.0)
    assert np.all(np.diff(t) > 0) and t[0] == 0.0 and t[-1] == 1099.0
    assert set(y) == {1.0, 2.0}
    assert tr.needs_history(10.0, 1099.0, 800) is None  # covered
    assert tr.needs_history(500.0, 520.0, 800) is not None  # zoomed far in: finer points


def test_events_are_kept_once_and_filtered_by_range_and_device() -> None:
    m = ViewerModel()
    ev = {"time": 10.0, "id": "a", "text": "x", "device": "Gen", "signal": "Sine"}
    m.on_events([ev, dict(ev)])
    m.on_events([{**ev, "time": 20.0, "device": "Other"}])
    assert len(m.events) == 2
    assert [e["time"] for e in m.events_between(0, 30, {"Gen.Sine"})] == [10.0]
    assert m.events_between(11, 30) == [m.events[1]]


def test_measure_gives_duration_delta_stats_and_frequency() -> None:
    t = np.arange(0, 10, 0.001)
    y = 2 * np.sin(2 * np.pi * 3.0 * t) + 0.05 * np.random.default_rng(1).standard_normal(len(t))
    m = measure(t, y, 1.0, 9.0)
    assert m["duration"] == 8.0 and m["frequency"] == pytest.approx(3.0, rel=0.01)
    assert m["max"] == pytest.approx(2.0, abs=0.2) and m["mean"] == pytest.approx(0.0, abs=0.05)
    flat = measure(t, np.ones(len(t)), 1.0, 2.0)
    assert math.isnan(flat["frequency"]) and flat["dy"] == 0.0
    assert math.isnan(measure(t, y, 20.0, 30.0)["mean"])


def test_a_live_buffer_moving_on_asks_no_history_again() -> None:
    """The viewer bench: with a full live buffer its start moves with every message, and
    holding a 24 h view sent 132 history requests in 10 s."""
    tr = Trace(capacity=1000)
    tr.add(np.arange(0.0, 1000.0), np.ones(1000))
    want = tr.needs_history(-86_400.0, 1000.0, 800)
    tr.got_history(*want, np.linspace(-86_400.0, 0.0, 100), np.zeros(100))
    for step in range(1, 50):  # the buffer slides on, the view stays on the last 24 h
        tr.add(np.arange(1000.0 + 10 * (step - 1), 1000.0 + 10 * step), np.ones(10))
        assert tr.needs_history(-86_400.0 + 10 * step, 1000.0 + 10 * step, 800) is None, step
