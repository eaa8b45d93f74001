"""The asyncio shell of ``rtoc.bin.v1`` (see :mod:`binary`): read, feed, drain, write.

The server owns one :class:`Binary` (the fan-out, the protocol core and the connections);
``serve(server, conn, session)`` runs one connection: each incoming frame goes to
:meth:`BinaryProtocol.handle`, its frames to the connection's send queue. The server's bus
loop feeds ``binary.fanout``; its push timer calls ``binary.flush()``, which moves each
session's data frames to its queue. One sender task per connection seals (encrypted
sessions) and sends, in queue order. The queue is bounded in bytes: replies wait for room
(a client that does not read slows only itself), pushed data that finds it full is dropped,
counted, and reported to the client with a ``dropped`` control message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtoc.frontends.websocket.binary_protocol.fanout import BinaryFanout, dropped_report
from rtoc.frontends.websocket.binary_protocol.protocol import (
    BinaryProtocol,
    BinSession,
    Outcome,
    error_frame,
)
from rtoc.frontends.websocket.session import Session
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from rtoc.client.aead import Channel
from rtoc.client.frames import FrameError, samples_in

log = logging.getLogger(__name__)
MAX_FRAME = 32 << 20       # bytes of one frame from a client at most (a 2 M-sample push)
MAX_FRAME_ANONYMOUS = 16 << 10  # bytes of one frame from a client that may not push
QUEUE_BYTES = 8 << 20      # bytes waiting for one client before pushed data is dropped
SLOW_TIMEOUT = 30.0        # s a client's send queue may stay full before it is closed
CLOSE_GRACE = 2.0          # s the last frames (an error) get before a policy close
CLOSE_POLICY = 1008


class SendQueue:
    """A connection's outgoing ``(payload, channel)`` items, bounded in bytes (and, with
    ``max_items``, in items).

    ``put`` waits for room (at most ``timeout`` s), ``offer`` refuses when there is none; a
    single item larger than the bound still goes when the queue is empty (a large history
    reply; "empty" means that the sender also wrote out what it took, so a client that does not
    read holds at most one such item). An item's tag (the second element) that is callable
    is called once the item is written out or dropped (a budget to give back).
    ``full_since`` is when the queue last ran out of room (``clock()`` s; None while
    there is room): a client whose queue :meth:`stays_full` does not read and is closed.
    :meth:`close` (the connection is gone) wakes every waiter: ``put`` then returns False,
    so the connection's handler ends whether or not its sender task still runs.
    """

    def __init__(self, max_bytes: int, max_items: int = 0, clock: Callable[[], float] = time.monotonic):
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.clock = clock
        self.items: deque[tuple[Any, Channel | None]] = deque()
        self.bytes = 0
        self.unfinished = 0
        self.closed = False
        self.full_since: float | None = None
        self._more = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def _fits(self, frame: bytes | str) -> bool:
        if not self.unfinished:
            return True
        fits = self.bytes + len(frame) <= self.max_bytes and \
            (not self.max_items or len(self.items) < self.max_items)
        if not fits and self.full_since is None:
            self.full_since = self.clock()
        return fits

    def _append(self, frame: bytes | str, channel: Channel | None) -> None:
        self.items.append((frame, channel))
        self.bytes += len(frame)
        self.unfinished += 1
        self._idle.clear()
        self._more.set()

    def offer(self, frame: bytes | str, channel: Channel | None) -> bool:
        if self.closed or not self._fits(frame):
            return False
        self._append(frame, channel)
        return True

    async def put(self, frame: bytes | str, channel: Channel | None, timeout: float | None = None) -> bool:
        """Queue ``frame`` once there is room; False (not queued) when the queue was closed
        or no room came within ``timeout`` s."""
        end = None if timeout is None else self.clock() + timeout
        while not self.closed and not self._fits(frame):
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), None if end is None else max(0.0, end - self.clock()))
            except TimeoutError:
                return False
        if self.closed:
            return False
        self._append(frame, channel)
        return True

    async def get(self) -> tuple[Any, Channel | None]:
        while not self.items:
            self._more.clear()
            await self._more.wait()
        frame, channel = self.items.popleft()
        self.bytes -= len(frame)
        if self.bytes <= self.max_bytes // 2:
            self.full_since = None
        self._room.set()
        return frame, channel

    def take_all(self) -> list[tuple[Any, Channel | None]]:
        """Every item waiting (after one :meth:`get`; each still needs its :meth:`done`)."""
        items = list(self.items)
        self.items.clear()
        self.bytes = 0
        self.full_since = None
        self._room.set()
        return items

    def done(self, n: int = 1) -> None:
        """The ``n`` items last taken were sent (or given up)."""
        self.unfinished -= n
        if self.unfinished == 0:
            self._idle.set()
            self._room.set()

    def stays_full(self, timeout: float) -> bool:
        """The queue has had no room for ``timeout`` s."""
        return self.full_since is not None and self.clock() - self.full_since >= timeout

    def close(self) -> None:
        """The connection is gone: drop what waits, wake every ``put`` (it returns False)."""
        self.closed = True
        for _, tag in self.items:
            if callable(tag):
                tag()
        self.items.clear()
        self.bytes = 0
        self._room.set()
        self._idle.set()

    async def drained(self) -> None:
        await self._idle.wait()


@dataclass(eq=False)
class BinClient:
    conn: ServerConnection
    session: BinSession
    queue: SendQueue
    sender: asyncio.Task | None = None


class Binary:
    """The binary connections of one websocket server. ``hub`` is the server's
    :class:`hub.Hub` (the core's World); ``max_message`` the server's frame limit (bytes);
    ``max_frame_anonymous`` the frame limit (bytes) of a session that may not push (before
    its login, unless anonymous clients have the write role); ``queue_bytes`` the send
    queue's bound; a client whose queue stays full ``slow_timeout`` s is closed (1008)."""

    def __init__(self, hub: Any, max_message: int = 0, max_frame: int = MAX_FRAME,
                 queue_bytes: int = QUEUE_BYTES, max_frame_anonymous: int = MAX_FRAME_ANONYMOUS,
                 slow_timeout: float = SLOW_TIMEOUT):
        self.fanout = BinaryFanout()
        self.proto = BinaryProtocol(hub)
        self.clients: dict[BinSession, BinClient] = {}
        self.max_frame = max(max_message, max_frame)
        self.max_frame_anonymous = max_frame_anonymous
        self.max_control = max(max_message, 1 << 16)
        self.queue_bytes = queue_bytes
        self.slow_timeout = slow_timeout
        self.counters = {"connections": 0, "frames_in": 0, "frames_out": 0, "frames_dropped": 0,
                         "slow_closed": 0}

    def sessions(self) -> list[BinSession]:
        return list(self.clients)

    def frame_limit(self, s: BinSession) -> int:
        """Bytes one frame of ``s`` may have: pushes only for who may write."""
        return self.max_frame if s.may("write") else self.max_frame_anonymous

    def flush(self) -> None:
        """Move every session's waiting data frames to its send queue (the push timer);
        close the clients whose queue stayed full."""
        for client in list(self.clients.values()):
            s = client.session
            for frame in self.fanout.take(s):
                if not client.queue.offer(frame, s.channel):
                    s.dropped_frames += 1
                    s.dropped += samples_in(frame)
                    self.counters["frames_dropped"] += 1
            if client.queue.stays_full(self.slow_timeout):
                self.close_slow(client)
            elif client.queue.bytes <= client.queue.max_bytes // 2:
                report = dropped_report(s)
                if report is not None:
                    client.queue.offer(report, s.channel)

    def close_slow(self, client: BinClient, code: int = CLOSE_POLICY, reason: str = "") -> None:
        """Close a client that does not read (its queue stayed full): counted, logged, its
        queue dropped at once (the handler then ends)."""
        if client.queue.closed:
            return
        self.counters["slow_closed"] += 1
        reason = reason or slow_reason(client.queue.max_bytes, self.slow_timeout)
        log.info("binary client %s closed: %s", client.session.address, reason)
        client.queue.close()
        close_now(client.conn, code, reason)


def slow_reason(max_bytes: int, timeout: float) -> str:
    return f"not reading: send queue over {max_bytes} bytes for {timeout:g} s"


def close_now(conn: ServerConnection, code: int, reason: str, grace: float = CLOSE_GRACE) -> None:
    """Close ``conn`` without waiting for it: the close frame goes behind what waits in the
    transport; a peer that does not read it within ``grace`` s is cut off (the memory its
    unread bytes hold is freed then)."""
    if conn.protocol.state is State.OPEN:
        conn.protocol.fail(code, reason)
        conn.send_data()  # the close frame to the transport
    transport = conn.transport
    conn.loop.call_later(grace, transport.abort)


def _on_lost(conn: ServerConnection, queue: SendQueue) -> None:
    """The queue closes when the TCP connection is gone, whatever the sender task does."""
    conn.connection_lost_waiter.add_done_callback(lambda _: queue.close())


async def serve(server: Any, conn: ServerConnection, session: Session) -> None:
    """Run one ``rtoc.bin.v1`` connection until it closes. ``server`` is the websocket
    server (its ``binary`` and ``_resubscribe``); ``session`` the fresh JSON-style session
    whose address and roles this connection starts with."""
    b: Binary = server.binary
    s = BinSession.of(session)
    conn.protocol.max_message_size = b.frame_limit(s)  # pushes are larger than JSON messages
    client = BinClient(conn, s, SendQueue(b.queue_bytes))
    _on_lost(conn, client.queue)
    client.sender = asyncio.create_task(_send_loop(b, client))
    b.clients[s] = client
    b.fanout.add(s)
    b.counters["connections"] += 1
    try:
        async for message in conn:
            b.counters["frames_in"] += 1
            if isinstance(message, str):
                out = Outcome([error_frame(None, None, FrameError(
                    "rtoc.bin.v1 uses binary websocket messages only"))])
            elif s.channel is None and message[:1] == b"\x01" and len(message) > b.max_control:
                out = Outcome([error_frame(None, None, FrameError(
                    f"control frame of {len(message)} bytes (at most {b.max_control})"))])
            else:
                out = await b.proto.handle(s, message, time.time())
            conn.protocol.max_message_size = b.frame_limit(s)  # a login changes it
            channel = None if out.clear else s.channel
            for frame in out.frames:
                if not await client.queue.put(frame, channel, b.slow_timeout):
                    b.close_slow(client)
                    return
            if out.resubscribe:
                server._resubscribe()
            if out.close is not None:
                log.info("binary client %s closed: %s", s.address, out.close[1])
                try:
                    await asyncio.wait_for(client.queue.drained(), CLOSE_GRACE)
                except TimeoutError:
                    pass
                await conn.close(*out.close)
                break
    except ConnectionClosed:
        pass
    finally:
        b.clients.pop(s, None)
        b.fanout.remove(s)
        client.queue.close()
        client.sender.cancel()
        server._resubscribe()


async def _send_loop(b: Binary, client: BinClient) -> None:
    try:
        while True:
            frame, channel = await client.queue.get()
            try:
                await client.conn.send(channel.seal(frame) if channel is not None else frame)
                b.counters["frames_out"] += 1
            finally:
                client.queue.done()
    except ConnectionClosed:
        pass
