"""Where the viewer's data comes from: the local instance's bus and control plane, or a
remote instance over the websocket binary subprotocol (``rtoc.client``).

Both answer the same few calls, made only on the viewer's worker thread (never the GUI's):
``read(seconds)`` (view points and events that arrived), ``request(op, **fields)``
(``signals``, ``drivers``, ``start``, ``stop``, ``set``, ``call``), ``history`` and
``events``. A source that cannot reach its instance raises :class:`SourceDown`; the worker
reopens it with back-off (the viewer reconnects by itself when the instance restarts).
``lane()`` is a second, independent source to the same instance (its own sockets, opened
without the live stream) for the history worker, so a slow archive query never holds up
the live edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtoc.errors import RtocError


class SourceDown(RtocError, ConnectionError):
    """The instance does not answer (stopped, restarting, unreachable)."""

    code = "viewer_source_down"


@dataclass
class Incoming:
    points: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)

    def add(self, name: str, t: np.ndarray, y: np.ndarray) -> None:
        self.points.setdefault(name, []).append((t, y))

    def __bool__(self) -> bool:
        return bool(self.points or self.events)


class LocalSource:
    """The instance on this machine: ``view/`` and ``event`` on the bus, the control plane
    for the rest. Local users have every role (as ``rtoc`` on this machine has)."""

    role = "admin"

    def __init__(self, config: Any, instance: str | None = None):
        from rtoc.paths import endpoints

        self.cfg = config
        self.name = instance or config.instance
        self.endpoints = endpoints(self.name, config.bus.control, config.bus.data, config.bus.inbox)
        self.label = f"local instance {self.name}"
        self.ctx = self.sub = self.ctl = None

    def lane(self) -> LocalSource:
        return LocalSource(self.cfg, self.name)

    def open(self, live: bool = True) -> None:
        import zmq
        from rtoc.pipeline.bus import Subscriber
        from rtoc.pipeline.control import ControlClient

        self.ctx = zmq.Context()
        self.ctl = ControlClient(self.endpoints["control"], timeout=3.0, ctx=self.ctx, curve=self.cfg.bus)
        self.request("ping")  # SourceDown when it is not running
        if live:
            self.sub = Subscriber(self.endpoints["data"], [], events=True, views=[], ctx=self.ctx,
                                  curve=self.cfg.bus)

    def read(self, seconds: float) -> Incoming:
        from rtoc.pipeline.bus import ViewBatch

        from rtoc.model import Event

        out = Incoming()
        msg = self.sub.recv(timeout=seconds)
        for _ in range(10_000):
            if msg is None:
                break
            if isinstance(msg, ViewBatch):
                out.add(msg.name, msg.t, msg.y)
            elif isinstance(msg, Event):
                out.events.append(msg.to_dict())
            msg = self.sub.recv(timeout=0)
        return out

    def request(self, op: str, **fields: Any) -> dict:
        from rtoc.errors import ControlTimeout

        try:
            return self.ctl.request(op, **fields)
        except ControlTimeout as exc:
            raise SourceDown(str(exc)) from None

    def history(self, name: str, t0: float, t1: float, max_points: int | None) -> tuple[np.ndarray, np.ndarray]:
        fields = {"signal": name, "from": t0, "to": t1, "timeout": 30.0}
        if max_points:
            fields["max_points"] = max_points
        r = self.request("history", **fields)
        return np.frombuffer(r["t"], np.float64), np.frombuffer(r["y"], np.float64)

    def events(self, since: float) -> list[dict]:
        return self.request("events", since=since, limit=1000)["events"]

    def close(self) -> None:
        for s in (self.sub, self.ctl):
            if s is not None:
                s.close()
        if self.ctx is not None:
            self.ctx.term()
        self.ctx = self.sub = self.ctl = None


class RemoteSource:
    """An instance elsewhere, over ``rtoc.bin.v1`` (``ws://`` or ``wss://``); the role is
    what the login gave. Views are subscribed by name as signals appear."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None):
        self.url, self.user, self.password = url, user, password
        self.label = url
        self.role = "none"
        self.client = None
        self.viewing: set[str] = set()

    def lane(self) -> RemoteSource:
        return RemoteSource(self.url, self.user, self.password)

    def open(self, live: bool = True) -> None:  # views are subscribed by ``request("signals")``
        from rtoc.client import Client

        self.client = Client(self.url, self.user, self.password, reconnect=2.0, timeout=10.0)
        try:
            self.client.connect()
        except (OSError, RtocError) as exc:
            self.close()
            raise SourceDown(f"{self.url}: {exc}") from None
        self.role = self.client.role or "none"
        self.viewing = set()

    def read(self, seconds: float) -> Incoming:
        out = Incoming()
        first = self.client.recv(timeout=seconds)  # wait for one, then take what is there at once
        for batch in ([first, *self.client.drain(10_000)] if first is not None else ()):
            if batch.view:
                out.add(batch.name, np.asarray(batch.t), np.asarray(batch.y))
        return out

    def request(self, op: str, **fields: Any) -> dict:
        try:
            reply = self.client.request(op, **fields)
        except (OSError, TimeoutError) as exc:
            raise SourceDown(f"{self.url}: {exc}") from None
        if op == "signals":  # the view stream of every signal, new ones too
            names = {s["name"] for s in reply["signals"]}
            if names - self.viewing:
                self.client.subscribe(sorted(names), mode="view")
                self.viewing = names
        return reply

    def history(self, name: str, t0: float, t1: float, max_points: int | None) -> tuple[np.ndarray, np.ndarray]:
        return self.client.history(name, t0, t1, max_points)

    def events(self, since: float) -> list[dict]:
        return self.client.events(since=since, limit=1000)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
