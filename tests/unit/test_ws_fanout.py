"""The JSON fan-out: one serialization per signal, only for what some client wants."""

from __future__ import annotations

import json

import numpy as np
from rtoc.frontends.websocket.json_protocol.fanout import Fanout, dumps
from rtoc.frontends.websocket.session import Session


def _session(**subs) -> Session:
    s = Session("1.2.3.4", "read", "read")
    for kind, names in subs.items():
        for n in names:
            s.subscribe(kind, n)
    return s


def test_batches_between_pushes_become_one_message_per_signal() -> None:
    f = Fanout()
    f.units["D.a"] = "V"
    f.ids["D.a"] = 3
    f.data("D.a", np.array([1.0, 2.0]), np.array([10.0, 20.0]))
    f.data("D.a", np.array([3.0]), np.array([np.nan]))
    ((kind, name, text),) = f.take([_session(signal=["D.a"])])
    assert (kind, name) == ("signal", "D.a")
    assert json.loads(text) == {"signal": {"x": [1.0, 2.0, 3.0], "y": [10.0, 20.0, None], "unit": "V",
                                           "dname": "D", "sname": "a", "id": 3}}
    assert f.take([_session(signal=["D.a"])]) == []  # nothing waits any more


def test_what_no_json_client_wants_is_not_serialized() -> None:
    f = Fanout()
    f.data("Fast.x", np.arange(1e6), np.arange(1e6))  # e.g. only a binary client subscribed
    f.data("D.b", np.array([1.0]), np.array([2.0]))
    f.view("Fast.x", np.array([1.0]), np.array([2.0]))
    out = f.take([_session(device=["D"])])
    assert [(k, n) for k, n, _ in out] == [("signal", "D.b")]
    viewer = _session()
    viewer.views = {"Fast.x"}
    f.view("Fast.x", np.array([1.0]), np.array([2.0]))
    assert [(k, n) for k, n, _ in f.take([viewer])] == [("view", "Fast.x")]


def test_events_follow_the_client_level_and_dumps_never_writes_nan() -> None:
    low, high = _session(), _session()
    high.event_level = 2
    ev = {"time": 5.0, "text": "t", "device": "D", "signal": "a", "priority": 1, "id": "i", "value": float("inf")}
    assert json.loads(Fanout.event(low, ev, 7))["event"]["eventId"] == 7
    assert Fanout.event(high, ev, 7) is None
    assert "Infinity" not in Fanout.event(low, ev, 7) and dumps({"v": float("nan")}) == '{"v":null}'
