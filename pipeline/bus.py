"""The ZeroMQ data bus: the engine's publisher and the subscribers frontends use.

Topics: ``data/<Device.Signal>`` (``[topic, header{v, sig, seq, n, lost}, t, y]``),
``event`` and ``meta`` (``[topic, msgpack]``). ``seq`` is the ring sequence of the first
sample, so every subscriber detects every gap; ZeroMQ's PUB drops silently at its
high-water mark, so subscribers count what they missed themselves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import zmq
from rtoc.pipeline.curve import client as curve_client
from rtoc.pipeline.curve import server as curve_server

from rtoc import wire
from rtoc.config import BusConfig
from rtoc.model import Event, Notification

COPY_THRESHOLD = 1 << 16  # bytes; pyzmq copies smaller frames anyway
# Messages queued per subscriber before ZeroMQ drops (and subscribers count the gap). Data
# messages are up to 1 MiB, so 256 bounds a stalled subscriber's queue to ~256 MiB (2000 let
# one stalled subscriber cost the engine 2 GB and most of a core in the bench).
HWM = 256


class Publisher:
    """The engine's PUB socket."""

    def __init__(self, ctx: zmq.Context, endpoint: str, hwm: int = HWM,
                 curve: BusConfig | None = None):
        self.sock = ctx.socket(zmq.PUB)
        curve_server(self.sock, curve)  # ``[bus]``'s CURVE keys, if any
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)

    def data(self, name: str, sig: int, seq: int, t: np.ndarray, y: np.ndarray,
             lost: int = 0, replace: bool = False, resumed: int = 0) -> None:
        frames = wire.data_frames(name, sig, seq, t, y, lost, replace, resumed)
        self.sock.send_multipart(frames, copy=t.nbytes < COPY_THRESHOLD)

    def event(self, event: Event, seq: int | None = None) -> None:
        """``seq``: the event's number in the engine's event list (as the ``events`` op gives)."""
        body = event.to_dict() if seq is None else {**event.to_dict(), "seq": seq}
        self.sock.send_multipart([wire.EVENT_TOPIC.encode(), wire.pack(body)])

    def view(self, name: str, sig: int, t: np.ndarray, y: np.ndarray, width: float) -> None:
        self.sock.send_multipart(wire.view_frames(name, sig, t, y, width), copy=t.nbytes < COPY_THRESHOLD)

    def aggregates(self, name: str, sig: int, width: float, columns: list[np.ndarray]) -> None:
        self.sock.send_multipart(wire.agg_frames(name, sig, width, columns))

    def notify(self, note: Notification) -> None:
        self.sock.send_multipart([wire.NOTIFY_TOPIC.encode(), wire.pack(note.to_dict())])

    def meta(self, kind: str, fields: dict) -> None:
        body = {**fields, "v": wire.VERSION, "kind": kind}
        self.sock.send_multipart([wire.META_TOPIC.encode(), wire.pack(body)])

    def close(self, linger: float = 0.5) -> None:
        """Close; what is still queued gets ``linger`` seconds to go out (the final drain)."""
        self.sock.close(int(linger * 1000))


@dataclass
class DataBatch:
    """Samples ``seq .. seq+n`` of one signal; ``t`` float64[n] unix s, ``y`` float64[n].

    ``lost``: samples the engine found overwritten before this batch; ``gap``: samples
    this subscriber missed on the bus (ZeroMQ dropped them) before this batch.
    """

    name: str
    sig: int
    seq: int
    t: np.ndarray
    y: np.ndarray
    lost: int = 0
    gap: int = 0
    replace: bool = False
    resumed: int = 0  # the engine that sent it restarted and went on at this seq

    @property
    def n(self) -> int:
        return int(self.t.shape[0])


@dataclass
class ViewBatch:
    """M4 points of one signal for plotting: ``t``/``y`` float64[n], buckets ``width`` s."""

    name: str
    sig: int
    t: np.ndarray
    y: np.ndarray
    width: float


@dataclass
class AggBatch:
    """Closed aggregate rows of one level (``width`` s) of one signal: ``start``, ``mean``,
    ``min``, ``max`` float64[k]; ``count`` (non-NaN samples), ``n`` (all) int64[k]."""

    name: str
    sig: int
    width: float
    start: np.ndarray
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray
    n: np.ndarray


@dataclass
class Meta:
    kind: str
    fields: dict


@dataclass
class SignalCounters:
    next_seq: int | None = None
    received: int = 0
    lost: int = 0      # lost before the engine read them (ring overwrite)
    gap: int = 0       # lost on the bus (high-water mark)
    restart: int = 0   # skipped by a restarted engine (it resumes each ring at its end)


@dataclass
class GapCounter:
    """Pure core of loss accounting: feed each header, get the bus gap before it."""

    signals: dict[str, SignalCounters] = field(default_factory=dict)

    def feed(self, name: str, seq: int, n: int, lost: int, resumed: int = 0) -> int:
        c = self.signals.setdefault(name, SignalCounters())
        gap = 0
        if c.next_seq is not None and seq > c.next_seq:
            skipped = self._skipped(c, seq, resumed)
            gap = max(0, seq - c.next_seq - lost - skipped)
        # never rewind: a batch from before where we are (a repeat) must not turn the next
        # one into a phantom gap
        c.next_seq = seq + n if c.next_seq is None else max(c.next_seq, seq + n)
        c.received += n
        c.lost += lost
        c.gap += gap
        return gap

    @staticmethod
    def _skipped(c: SignalCounters, seq: int, resumed: int) -> int:
        """Of the jump from ``c.next_seq`` to ``seq``, what a restarted engine skipped (it
        went on at ``resumed``): counted as ``restart``, not as a bus gap, since a consumer
        handles the two differently."""
        skipped = max(0, min(seq, resumed) - c.next_seq)
        c.restart += skipped
        return skipped

    def expect(self, name: str, seq: int, resumed: int = 0) -> None:
        """Set where a signal's stream should continue (e.g. from a heartbeat's seq)."""
        c = self.signals.setdefault(name, SignalCounters())
        if c.next_seq is None:
            c.next_seq = seq
        elif seq > c.next_seq:
            c.gap += seq - c.next_seq - self._skipped(c, seq, resumed)
            c.next_seq = seq

    @property
    def received(self) -> int:
        return sum(c.received for c in self.signals.values())

    @property
    def lost(self) -> int:
        return sum(c.lost + c.gap for c in self.signals.values())


class Subscriber:
    """A SUB on the data bus. ``signals``: full names (exact), or None for all data.

    ``recv`` returns a :class:`DataBatch`, an :class:`rtoc.Event`, a
    :class:`rtoc.model.Notification` (with ``notify=True``), a :class:`ViewBatch` /
    :class:`AggBatch` (with ``views`` / ``aggregates``: a list of names, ``[]`` for all), a
    :class:`Meta`, or None
    on timeout. ``counters`` keeps received / lost / gap per signal.
    """

    def __init__(self, endpoint: str, signals: list[str] | None = None, events: bool = False,
                 meta: bool = False, ctx: zmq.Context | None = None, hwm: int = HWM,
                 notify: bool = False, views: list[str] | None = None,
                 aggregates: list[str] | None = None, curve: BusConfig | None = None):
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        curve_client(self.sock, curve)  # ``[bus]``'s CURVE keys (a child's ctx has them)
        self.sock.setsockopt(zmq.RCVHWM, hwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self._exact = set(signals) if signals is not None else None
        for name in signals if signals is not None else [""]:
            self.sock.setsockopt(zmq.SUBSCRIBE, wire.data_topic(name) if name else wire.DATA_PREFIX.encode())
        if events:
            self.sock.setsockopt(zmq.SUBSCRIBE, wire.EVENT_TOPIC.encode())
        if notify:
            self.sock.setsockopt(zmq.SUBSCRIBE, wire.NOTIFY_TOPIC.encode())
        # views / aggregates: None none, [] all, else these signals (exact names)
        self._views = set(views) if views else None
        self._aggs = set(aggregates) if aggregates else None
        for prefix, names in ((wire.VIEW_PREFIX, views), (wire.AGG_PREFIX, aggregates)):
            for name in (names or [""]) if names is not None else []:
                self.sock.setsockopt(zmq.SUBSCRIBE, (prefix + name).encode())
        if meta or signals is None or signals:
            self.sock.setsockopt(zmq.SUBSCRIBE, wire.META_TOPIC.encode())
        self._meta = meta
        self.counters = GapCounter()

    def recv(self, timeout: float | None = None) -> DataBatch | ViewBatch | AggBatch | Event | Notification | Meta | None:
        """The next message, or None after ``timeout`` seconds (None: wait forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ms = -1 if deadline is None else max(0, math.ceil((deadline - time.monotonic()) * 1000))
            if not self.sock.poll(ms):
                return None
            msg = self._parse(self.sock.recv_multipart(copy=False))
            if msg is not None:
                return msg  # else it was filtered out (a heartbeat): wait on

    def _parse(self, frames) -> DataBatch | ViewBatch | AggBatch | Event | Notification | Meta | None:
        topic = bytes(frames[0].buffer)
        if topic.startswith(b"data/"):
            name, header, t, y = wire.parse_data([f.buffer for f in frames])
            if self._exact is not None and name not in self._exact:
                return None  # a longer name sharing the subscribed prefix
            gap = self.counters.feed(name, header["seq"], header["n"], header.get("lost", 0),
                                     header.get("resumed", 0))
            return DataBatch(name, header["sig"], header["seq"], t, y, header.get("lost", 0),
                             gap, bool(header.get("replace")), int(header.get("resumed", 0)))
        if topic.startswith(b"view/"):
            name, header, t, y = wire.parse_view([f.buffer for f in frames])
            if self._views is not None and name not in self._views:
                return None
            return ViewBatch(name, header["sig"], t, y, header["width"])
        if topic.startswith(b"agg/"):
            name, header, cols = wire.parse_agg([f.buffer for f in frames])
            if self._aggs is not None and name not in self._aggs:
                return None
            return AggBatch(name, header["sig"], header["width"], **cols)
        body = wire.unpack(bytes(frames[1].buffer))
        if topic == b"event":
            return Event.from_dict(body)
        if topic == b"notify":
            return Notification.from_dict(body)
        if body.get("kind") == "heartbeat":
            resumed = body.get("resumed") or {}
            for name, seq in body.get("seq", {}).items():
                if self._exact is None or name in self._exact:
                    self.counters.expect(name, seq, resumed.get(name, 0))
        return Meta(body.pop("kind", ""), body) if self._meta else None

    def close(self) -> None:
        self.sock.close(0)
        if self._own_ctx:
            self.ctx.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
