"""The control plane's client side: msgpack requests ``{op, ...}`` over a DEALER socket.

Replies are ``{ok: true, ...}`` or ``{ok: false, error: {code, message}}``; every request
carries ``rid`` and its reply ``re`` with the same value.
"""

from __future__ import annotations

import itertools
import os

import zmq
from rtoc.pipeline.curve import client

from rtoc import wire
from rtoc.config import BusConfig
from rtoc.errors import ControlTimeout, raise_for_reply


class ControlClient:
    """A blocking request/reply client of an instance's control endpoint."""

    def __init__(self, endpoint: str, timeout: float = 5.0, ctx: zmq.Context | None = None,
                 identity: bytes | None = None, curve: BusConfig | None = None):
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.Context()
        self.endpoint, self.timeout = endpoint, timeout
        self.curve = curve  # a Subscriber of the same instance needs the same keys
        self.sock = self.ctx.socket(zmq.DEALER)
        client(self.sock, curve)  # ``[bus]``'s CURVE keys, needed on tcp:// (a child's ctx has them)
        self.sock.setsockopt(zmq.LINGER, 0)
        if identity:
            self.sock.setsockopt(zmq.IDENTITY, identity)
        self.sock.connect(endpoint)
        self._rids = itertools.count(1)
        self._prefix = f"{os.getpid()}-"

    def request(self, op: str, timeout: float | None = None, check: bool = True, **fields) -> dict:
        """Send ``{op, **fields}``; return the reply (raising its error when ``check``)."""
        rid = self._prefix + str(next(self._rids))
        self.sock.send(wire.pack({"op": op, "rid": rid, **fields}))
        wait = self.timeout if timeout is None else timeout
        deadline_ms = int(wait * 1000)
        while True:
            if not self.sock.poll(deadline_ms):
                raise ControlTimeout(f"no reply to {op!r} from {self.endpoint} within {wait:g} s "
                                     "(is rtoc running?)")
            reply = wire.unpack(self.sock.recv())
            if reply.get("re") == rid:
                return raise_for_reply(reply) if check else reply

    def close(self) -> None:
        self.sock.close(0)
        if self._own_ctx:
            self.ctx.term()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
