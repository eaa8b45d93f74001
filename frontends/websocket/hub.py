"""The websocket process's connection to the instance: the protocol's :class:`World`.

* Control: one asyncio DEALER (identity ``websocket``); each request has its own ``rid``
  and waits on a future, so many clients' requests are in flight at once.
* Data in: a client's samples go straight into shared-memory rings that this process
  claims with ``create_signal`` (owner ``client:websocket``), like a driver; events go to
  the engine's inbox.
* Rings out: ``getSignal`` reads a ring directly (a snapshot copy) when it covers the range,
  on a worker thread: :meth:`Hub.ring` may run on several threads at once.
* Logins: scrypt runs on a worker thread, so a login never stalls the other clients.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import zmq
import zmq.asyncio
from rtoc.frontends.websocket.auth import Throttle, Users
from rtoc.pipeline.ring import Ring, RingReader, RingWriter

from rtoc import wire
from rtoc.errors import ControlTimeout, SignalOwned, raise_for_reply
from rtoc.model import as_batch

log = logging.getLogger(__name__)
OWNER = "websocket"
REQUEST_TIMEOUT = 15.0   # s; the supervisor answers (or times out a driver) within 10 s


def _lower_priority() -> None:
    """Nice +10 for the calling thread only (Linux takes a thread id for PRIO_PROCESS)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (OSError, AttributeError):
        pass  # not Linux, or not allowed: logins run at the process's priority


class Hub:
    def __init__(self, endpoints: dict, ctx: zmq.asyncio.Context, users: Users,
                 throttle: Throttle, ring_seconds: float = 10.0):
        self.users, self.throttle = users, throttle
        self.ring_seconds = ring_seconds
        self.ctrl = ctx.socket(zmq.DEALER)
        self.ctrl.setsockopt(zmq.IDENTITY, OWNER.encode())
        self.ctrl.setsockopt(zmq.LINGER, 0)
        self.ctrl.connect(endpoints["control"])
        self.inbox = ctx.socket(zmq.PUSH)
        self.inbox.setsockopt(zmq.SNDHWM, 10_000)
        self.inbox.setsockopt(zmq.LINGER, 500)
        self.inbox.connect(endpoints["inbox"])
        self._rids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future] = {}
        self.writers: dict[str, RingWriter] = {}
        self._claiming: dict[str, asyncio.Lock] = {}
        self.readers: dict[str, Ring] = {}
        self._opening = threading.Lock()  # ring() runs on worker threads
        # scrypt on one thread of its own at a lower priority (nice +10): parallel logins
        # (9 at the default cost took 1.3 cores) took the CPU the event loop needed on a
        # 2-core machine (the witness's round trip 20 -> 170 ms in the attack suite); now a
        # login waits for spare CPU instead of every client waiting for the login
        self._scrypt = ThreadPoolExecutor(1, thread_name_prefix="rtoc-scrypt",
                                          initializer=_lower_priority)
        self.paths: dict[str, str] = {}
        self.events_dropped = 0
        self.pushed = 0

    # -- control ---------------------------------------------------------------------------
    async def replies(self) -> None:
        """Run for the process's life: hand each reply to the request waiting for it."""
        while True:
            msg = wire.unpack(await self.ctrl.recv())
            fut = self._waiting.pop(msg.get("re"), None) if isinstance(msg.get("re"), str) else None
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def request(self, op: str, **fields: Any) -> dict:
        rid = f"ws-{next(self._rids)}"
        fut = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            await self.ctrl.send(wire.pack({"op": op, "rid": rid, **fields}))
            reply = await asyncio.wait_for(fut, REQUEST_TIMEOUT)
        except TimeoutError:
            raise ControlTimeout(f"no reply to {op!r} within {REQUEST_TIMEOUT:g} s") from None
        finally:
            self._waiting.pop(rid, None)
        if op == "signals" and reply.get("ok"):
            self.paths = {s["name"]: s.get("path", "") for s in reply["signals"]}
        return raise_for_reply(reply)

    # -- data in ---------------------------------------------------------------------------
    async def push(self, device: str, signal: str, unit: str, t: np.ndarray, y: np.ndarray,
                   replace: bool, client: str = "") -> None:
        """Write samples into the signal's ring, claiming it first (charged to ``client``'s
        ring budget: a logged-in user, else an address)."""
        name = f"{device}.{signal}"
        writer = self.writers.get(name) or await self._claim(device, signal, unit, client)
        ts, ys = as_batch(t, y, name)
        if replace:
            writer.plot(ts, ys)
        else:
            writer.write(ts, ys)
        self.pushed += len(ts)

    def writes(self, name: str) -> bool:
        return name in self.writers

    async def _claim(self, device: str, signal: str, unit: str, client: str = "") -> RingWriter:
        name = f"{device}.{signal}"
        lock = self._claiming.setdefault(name, asyncio.Lock())
        async with lock:  # two clients' first samples of one signal: one claim
            if name in self.writers:
                return self.writers[name]
            try:
                reply = await self.request("create_signal", device=device, signal=signal, unit=unit,
                                           owner=OWNER, rate=1.0, seconds=self.ring_seconds,
                                           client=client)
            except SignalOwned as exc:
                raise SignalOwned(f"{name} is written by another writer ({exc}); "
                                  "a client can only push signals no driver writes", name) from None
            writer = self.writers[name] = RingWriter(Ring.open(reply["path"]))
            return writer

    async def remove_signal(self, name: str) -> dict:
        """Remove a signal clients pushed: this process lets go of its ring first."""
        for table in (self.writers, self.readers):
            with self._opening:
                held = table.pop(name, None)
            if held is not None:
                (held.ring if isinstance(held, RingWriter) else held).close()
        return await self.request("remove_signal", name=name)

    def emit_event(self, event: dict) -> None:
        try:
            self.inbox.send(wire.pack({"kind": "event", "event": event}), zmq.NOBLOCK)
        except zmq.Again:
            self.events_dropped += 1

    # -- rings out -------------------------------------------------------------------------
    def ring(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """A copy of what the signal's ring holds (t, y float64[n]), or None. Thread-safe:
        getSignal calls it on worker threads; a ring closed meanwhile (``remove_signal``)
        reads as None."""
        with self._opening:
            ring = self.readers.get(name)
            if ring is None:
                path = self.paths.get(name)
                if not path:
                    return None
                try:
                    ring = self.readers[name] = Ring.open(path)
                except (OSError, ValueError):
                    return None
        try:
            res = RingReader(ring, cursor=0, max_batch=ring.capacity).snapshot()
        except (TypeError, AttributeError, ValueError):  # closed under us (hdr is None)
            return None
        return res.t, res.y

    # -- logins ----------------------------------------------------------------------------
    async def login(self, user: str | None, secret: str, is_token: bool, address: str,
                    now: float) -> tuple[str, str] | None | float:
        # The throttle runs on the monotonic clock, whatever ``now`` the road passes: the
        # JSON road's is wall time (its samples' stamps), HTTP's was monotonic, and one
        # throttle on two clocks locked an address out of HTTP for decades after five failed
        # JSON logins, while HTTP failures never locked the JSON road.
        now = time.monotonic()
        # counted before scrypt, so parallel guesses cannot all get past the throttle
        wait = self.throttle.begin(address, now, user)
        if wait > 0:
            return float(wait)
        found = await asyncio.get_running_loop().run_in_executor(
            self._scrypt, functools.partial(self.users.login, user, secret, is_token=is_token))
        if found is None:
            self.throttle.failed(address, now, user)
            return None
        self.throttle.succeeded(address, now, found.name)
        return found.name, found.role

    def close(self) -> None:
        self._scrypt.shutdown(wait=False, cancel_futures=True)
        for ring in [*(w.ring for w in self.writers.values()), *self.readers.values()]:
            ring.close()
        self.writers.clear()
        self.readers.clear()
        self.ctrl.close(0)
        self.inbox.close(500)
