"""The engine's resampled streams: view/<signal> (M4 at a point budget) and agg/<signal>."""

from __future__ import annotations

import time

import numpy as np
from rtoc.pipeline.bus import AggBatch, DataBatch, ViewBatch

from rtoc.app.harness import Instance

CONFIG = '''
[engine]
view_points = 200
aggregates = [0.5, 1.0]

[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 2000.0
frequency = 3.0
'''


def test_views_and_aggregates_follow_the_data() -> None:
    with Instance.start(CONFIG, ("Generator.Sine",)) as inst, \
            inst.subscriber(["Generator.Sine"], views=["Generator.Sine"],
                            aggregates=["Generator.Sine"]) as sub:
        t_data, y_data, views, aggs = [], [], [], []
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            msg = sub.recv(timeout=0.5)
            if isinstance(msg, DataBatch):
                t_data.append(msg.t)
                y_data.append(msg.y)
            elif isinstance(msg, ViewBatch):
                views.append(msg)
            elif isinstance(msg, AggBatch):
                aggs.append(msg)
    t, y = np.concatenate(t_data), np.concatenate(y_data)
    vt = np.concatenate([v.t for v in views])
    vy = np.concatenate([v.y for v in views])
    assert views and views[0].width == 4 / 200
    # (the subscription may join after the first data but before their view went out)
    seen = (vt >= t[0]) & (vt <= t[-1])
    assert seen.sum() > 100
    vt, vy = vt[seen], vy[seen]
    # every view point is a real sample, and the budget holds: <= 200 points per second
    assert np.isin(vt, t).all() and np.isin(vy, y).all()
    span = vt[-1] - vt[0]
    assert len(vt) <= 200 * (span + 2 * views[0].width) + 4
    # each bucket's extremes are kept (M4): compare one bucket with the raw samples
    idx = np.floor(t / views[0].width)
    inside = t[(t >= vt[0]) & (t <= vt[-1])]
    for b in np.unique(np.floor(inside / views[0].width))[1:4]:
        sel = idx == b
        got = vy[np.floor(vt / views[0].width) == b]
        assert got.max() == y[sel].max() and got.min() == y[sel].min()
    # aggregates: 0.5 s and 1 s rows; counts add up; means of whole periods are ~0
    widths = {a.width for a in aggs}
    assert widths == {0.5, 1.0}
    fine = [a for a in aggs if a.width == 0.5]
    start = np.concatenate([a.start for a in fine])
    count = np.concatenate([a.count for a in fine])
    full = count >= 999  # intervals the stream covered completely
    assert full.any()
    for s, c, lo, hi in zip(start[full], count[full], np.concatenate([a.min for a in fine])[full],
                            np.concatenate([a.max for a in fine])[full], strict=True):
        sel = (t >= s) & (t < s + 0.5)
        if sel.sum() == c:  # the subscriber saw the whole interval
            assert y[sel].min() == lo and y[sel].max() == hi
