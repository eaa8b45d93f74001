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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rtoc.frontends.websocket.session import Session


def dumps(obj: Any) -> str:
    """JSON text for browsers: NaN and infinities become null (JSON has neither)."""
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(obj), allow_nan=False, separators=(",", ":"))


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


@dataclass
class Pending:
    """Samples of one signal waiting for the next push (float64 chunks, in order)."""

    t: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)


class Fanout:
    """What waits for the next push, per signal (not per client: each push is serialized
    once and the same text goes to every client that wants it). ``units``/``ids``
    describe signals (kept by the server from the control plane)."""

    def __init__(self) -> None:
        self.data_waiting: dict[str, Pending] = {}
        self.view_waiting: dict[str, Pending] = {}
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
            out.append(("signal", name, dumps({"signal": {
                "x": _cat(p.t).tolist(), "y": _cat(p.y).tolist(), "unit": self.units.get(name, ""),
                "dname": device, "sname": signal, "id": self.ids.get(name)}})))
        for name, p in self.view_waiting.items():
            if not any(self.wants(s, "view", name) for s in sessions):
                continue
            out.append(("view", name, dumps({"view": {"name": name, "x": _cat(p.t).tolist(),
                                                      "y": _cat(p.y).tolist(),
                                                      "unit": self.units.get(name, "")}})))
        self.data_waiting.clear()
        self.view_waiting.clear()
        return out

    @staticmethod
    def wants(session: Session, kind: str, name: str) -> bool:
        if kind == "signal":
            return session.wants_signal(name)
        return name in session.views and session.may("read")

    @staticmethod
    def event(session: Session, ev: dict, number: int) -> str | None:
        """RTOC's event push for ``session``, or None when it does not want it."""
        if not session.wants_event(int(ev.get("priority", 0))):
            return None
        return dumps({"event": {"x": ev.get("time"), "text": ev.get("text", ""),
                                "dname": ev.get("device", ""), "sname": ev.get("signal", ""),
                                "priority": ev.get("priority", 0), "value": ev.get("value"),
                                "id": ev.get("id", ""), "eventId": number}})


def _append(waiting: dict[str, Pending], name: str, t: np.ndarray, y: np.ndarray) -> None:
    p = waiting.get(name)
    if p is None:
        p = waiting[name] = Pending()
    p.t.append(t)
    p.y.append(y)


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
