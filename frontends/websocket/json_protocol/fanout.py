"""Pushes to clients: samples of subscribed signals, resampled views, events. Pure.

The server feeds every data batch from the bus in (``data``) and, as soon as something
waits but at most every ``push_interval``, takes the pushes (``take``): one
``{"signal": {...}}`` per signal with every sample that arrived since the last push, never
one message per sample. Events go
out at once, filtered by the client's level. Each push is serialized once, whatever the
number of clients. What a client's full send queue cannot take is counted in its session
(``dropped``) and reported to it; the engine and the other clients never wait for it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson
from rtoc.frontends.websocket.fanout import Chunks, FanoutBase
from rtoc.frontends.websocket.session import Session

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> str:
    """JSON text for browsers: NaN and infinities become null (JSON has neither).

    ``orjson`` writes them as null itself, and numpy arrays and scalars as numbers, in one
    pass. Only an integer beyond 64 bits (a client's own value echoed back) makes it give
    up; the standard library then writes that rare reply.
    """
    try:
        return orjson.dumps(obj, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(_finite(obj), allow_nan=False, separators=(",", ":"))


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    if isinstance(v, np.ndarray | np.generic):
        return _finite(v.tolist())
    return v


class Fanout(FanoutBase):
    """What waits for the next push, per signal (not per client: each push is serialized
    once and the same text goes to every client that wants it). ``units``/``ids``
    describe signals (kept by the server from the control plane)."""

    def __init__(self) -> None:
        self.data_waiting: dict[str, Chunks] = {}
        self.view_waiting: dict[str, Chunks] = {}
        self.units: dict[str, str] = {}
        self.ids: dict[str, int] = {}

    def data(self, name: str, t: np.ndarray, y: np.ndarray) -> None:
        """A batch from the bus (the arrays are kept until the next ``take``)."""
        _append(self.data_waiting, name, t, y)

    def view(self, name: str, t: np.ndarray, y: np.ndarray) -> None:
        _append(self.view_waiting, name, t, y)

    def take(self, sessions: list[Session]) -> list[tuple[str, str, str]]:
        """``(kind, signal, JSON text)`` of every push since the last call that one of
        ``sessions`` wants (kind: "signal" or "view"; the rest, e.g. what only binary
        clients subscribed, is never serialized); then nothing waits."""
        out = []
        for name, p in self.data_waiting.items():
            if not any(s.wants_signal(name) for s in sessions):
                continue
            device, _, signal = name.partition(".")
            t, y = _native(p)
            out.append(("signal", name, dumps({"signal": {
                "x": t, "y": y, "unit": self.units.get(name, ""),
                "dname": device, "sname": signal, "id": self.ids.get(name)}})))
        for name, p in self.view_waiting.items():
            if not any(s.wants_view(name) for s in sessions):
                continue
            t, y = _native(p)
            out.append(("view", name, dumps({"view": {"name": name, "x": t, "y": y,
                                                      "unit": self.units.get(name, "")}})))
        self.data_waiting.clear()
        self.view_waiting.clear()
        return out

    @staticmethod
    def event(session: Session, ev: dict, number: int) -> str | None:
        """RTOC's event push for ``session``, or None when it does not want it."""
        if not session.wants_event(int(ev.get("priority", 0))):
            return None
        return dumps({"event": {"x": ev.get("time"), "text": ev.get("text", ""),
                                "dname": ev.get("device", ""), "sname": ev.get("signal", ""),
                                "priority": ev.get("priority", 0), "value": ev.get("value"),
                                "id": ev.get("id", ""), "eventId": number}})


def _append(waiting: dict[str, Chunks], name: str, t: np.ndarray, y: np.ndarray) -> None:
    p = waiting.get(name)
    if p is None:
        p = waiting[name] = Chunks()
    p.add(t, y)


def _native(p: Chunks) -> tuple[np.ndarray, np.ndarray]:
    """The waiting samples as contiguous native float64 (what orjson writes directly; no
    copy when the bus gave them so)."""
    t, y = p.joined()
    return np.ascontiguousarray(t, np.float64), np.ascontiguousarray(y, np.float64)
