"""The viewer's pure parts: live points joined with history, history requests only where
the live buffer does not reach, and the measure tool's figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rtoc.frontends.viewer.measure import measure
from rtoc.frontends.viewer.model import Trace, ViewerModel, column_step, decimate


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


def test_the_live_ring_keeps_the_newest_points_without_copying_the_buffer_per_message() -> None:
    """The bench: ``Trace.add`` concatenated the whole buffer per message (167 us per
    100-point message into a full buffer; 286 messages/s at 16 x 100 kS/s)."""
    tr = Trace(capacity=1000)
    arrays = (tr._t, tr._y)
    sent = []
    for k in range(250):  # 25 x the capacity, in messages of 0..99 points
        n = k % 100
        t = 1000.0 * k + np.arange(n, dtype=np.float64)
        tr.add(t, t * 2)
        sent.append(t)
    every = np.concatenate(sent)
    assert np.array_equal(tr.t, every[-1000:]) and np.array_equal(tr.y, every[-1000:] * 2)
    assert tr._t is arrays[0] and tr._y is arrays[1]  # appended in place, never reallocated
    tr.add(np.arange(1e9, 1e9 + 5000), np.zeros(5000))  # one message larger than the ring
    assert len(tr.t) == 1000 and tr.t[-1] == 1e9 + 4999


def test_decimate_keeps_each_columns_min_and_max_on_a_fixed_grid() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0.0, 100.0, 50_000))
    y = rng.standard_normal(len(t))
    y[(t > 40.0) & (t < 41.0)] = np.nan  # a gap wider than a column
    step = column_step(0.0, 100.0, 200)
    dt, dy = decimate(t, y, step)
    assert step == 0.5 and len(dt) <= 2 * 201 and np.all(np.diff(dt) >= 0)
    col = np.floor(t / step)
    for c in (0, 57, 150, 199):  # each column's extremes survive exactly
        seg = y[col == c]
        got = dy[np.floor(dt / step) == c]
        assert sorted(got) == [np.nanmin(seg), np.nanmax(seg)]
    assert np.isnan(dy[(dt > 40.2) & (dt < 40.8)]).all()  # the gap stays a gap
    rising = np.arange(0.0, 100.0, 0.01)  # a rising column gives min then max; falling: max, min
    assert np.all(np.diff(decimate(rising, rising, 1.0)[1]) > 0)
    assert np.all(np.diff(decimate(rising, -rising, 1.0)[1]) < 0)
    few_t, few_y = decimate(t[::300], y[::300], step)  # under 2 a column: as they are
    assert np.array_equal(few_t, t[::300]) and np.array_equal(few_y, y[::300], equal_nan=True)


def test_the_live_part_is_thinned_the_same_from_the_cache_as_at_once() -> None:
    """A sliding window thins only the new points (the cache), and draws what thinning the
    whole range at once would."""
    rng = np.random.default_rng(5)
    tr = Trace(capacity=30_000)
    now, width = 100.0, 400
    tr.add(np.arange(0.0, now, 0.002), rng.standard_normal(50_000))
    for frame in range(40):
        t = now + np.arange(0.0, 0.05, 0.002)
        tr.add(t, rng.standard_normal(len(t)))
        now = t[-1]
        got_t, got_y = tr.visible(now - 30.0, now, width)
        step = column_step(now - 30.0, now, width)
        a = np.searchsorted(tr.t, np.floor((now - 30.0) / step) * step)
        want_t, want_y = decimate(tr.t[a:], tr.y[a:], step)
        inner, want = got_t > want_t[0], want_t > want_t[0]  # the first column may be cut
        assert np.array_equal(got_t[inner], want_t[want]), frame
        assert np.array_equal(got_y[inner], want_y[want]), frame


def test_a_dense_live_buffer_does_not_thin_the_joined_history() -> None:
    """The bench: pyqtgraph's auto downsampling thinned the joined curve by index, so the
    1244 history points of a 24 h view fell to 412 as the live buffer grew to 40 k."""
    tr = Trace()
    now = 86_400.0
    tr.add(np.linspace(now - 120.0, now, 40_000), np.sin(np.arange(40_000.0)))
    want = tr.needs_history(0.0, now, 1244)
    tr.got_history(*want, np.linspace(0.0, now - 120.0, 1244, endpoint=False), np.ones(1244))
    t, y = tr.visible(0.0, now, 1244)
    assert np.count_nonzero(t < now - 120.0) == 1244  # every history point drawn
    assert len(t) < 1244 + 2 * 10 + 8  # the live two minutes: a few columns' worth
    assert y[t >= now - 120.0].max() == pytest.approx(1.0, abs=1e-3)


def test_thinning_costs_the_points_not_the_time_span_and_nan_times_are_dropped() -> None:
    """Review: a grid of every column between two points days apart (an old stretch and a
    restarted instance's burst) took 1.2 s and 415 MB a frame (4 GB zoomed to 1 s); a NaN
    time broke every later frame of its curve."""
    import tracemalloc

    now = 1.75e9
    tr = Trace()
    tr.add(np.linspace(now - 2 * 86_400, now - 2 * 86_400 + 10, 100), np.zeros(100))
    t = np.linspace(now - 10, now, 20_000)
    tr.add(t, np.sin(t))
    tracemalloc.start()
    try:
        for span in (10.0, 1.0):
            vt, _ = tr.visible(now - span, now, 1000)
            assert len(vt) <= 2 * 1000 + 8
        assert tracemalloc.get_traced_memory()[1] < 20e6
    finally:
        tracemalloc.stop()
    tr.add(np.array([now + 0.001, np.nan]), np.zeros(2))
    tr.add(np.array([now + 1.0]), np.ones(1))
    assert np.isfinite(tr.t).all() and tr.t[-1] == now + 1.0
    vt, _ = tr.visible(now - 10, now + 1, 1000)
    assert np.isfinite(vt).all()
