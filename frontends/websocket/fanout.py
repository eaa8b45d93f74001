"""Pushes to clients: samples of subscribed signals, resampled views, events. Pure.

The server feeds every data batch from the bus in (``data``), and every ``push_interval``
asks for each client's messages (``take``): one ``{"signal": {...}}`` per signal with
every sample that arrived since the last push, never one message per sample. Events go
out at once, filtered by the client's level. What a client's full send queue cannot take
is counted in its session (``dropped``) and reported to it; the engine and the other
clients never wait for it.
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
    n: int = 0


class Fanout:
    """The waiting pushes of every client. ``units``/``ids`` describe signals (kept by the
    server from the control plane)."""

    def __init__(self, max_pending: int = 1 << 20):
        self.max_pending = max_pending  # samples per client and signal before the oldest go
        self.pending: dict[Session, dict[str, Pending]] = {}
        self.views: dict[Session, dict[str, Pending]] = {}
        self.units: dict[str, str] = {}
        self.ids: dict[str, int] = {}

    def add(self, session: Session) -> None:
        self.pending[session] = {}
        self.views[session] = {}

    def remove(self, session: Session) -> None:
        self.pending.pop(session, None)
        self.views.pop(session, None)

    def data(self, name: str, t: np.ndarray, y: np.ndarray) -> None:
        """A batch from the bus (the arrays are kept: pass copies or owned buffers)."""
        for session, waiting in self.pending.items():
            if session.wants_signal(name):
                _append(waiting, name, t, y, self.max_pending, session)

    def view(self, name: str, t: np.ndarray, y: np.ndarray) -> None:
        for session, waiting in self.views.items():
            if name in session.views and session.may("read"):
                _append(waiting, name, t, y, self.max_pending, session)

    def take(self, session: Session) -> list[str]:
        """The client's messages since the last call (JSON text), then nothing waits."""
        out = []
        waiting = self.pending.get(session)
        if waiting:
            for name, p in waiting.items():
                device, _, signal = name.partition(".")
                out.append(dumps({"signal": {
                    "x": _cat(p.t).tolist(), "y": _cat(p.y).tolist(), "unit": self.units.get(name, ""),
                    "dname": device, "sname": signal, "id": self.ids.get(name)}}))
            waiting.clear()
        views = self.views.get(session)
        if views:
            for name, p in views.items():
                out.append(dumps({"view": {"name": name, "x": _cat(p.t).tolist(),
                                           "y": _cat(p.y).tolist(), "unit": self.units.get(name, "")}}))
            views.clear()
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


def _append(waiting: dict[str, Pending], name: str, t: np.ndarray, y: np.ndarray,
            limit: int, session: Session) -> None:
    p = waiting.get(name)
    if p is None:
        p = waiting[name] = Pending()
    p.t.append(t)
    p.y.append(y)
    p.n += len(t)
    while p.n > limit and len(p.t) > 1:  # a client that cannot keep up loses the oldest
        p.n -= len(p.t[0])
        session.dropped += len(p.t[0])
        del p.t[0], p.y[0]


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
