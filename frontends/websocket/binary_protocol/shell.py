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

from rtoc.client.aead import Channel
from rtoc.client.frames import FrameError, samples_in

log = logging.getLogger(__name__)
MAX_FRAME = 32 << 20       # bytes of one frame from a client at most (a 2 M-sample push)
QUEUE_BYTES = 64 << 20     # bytes waiting for one client before pushed data is dropped
CLOSE_GRACE = 2.0          # s the last frames (an error) get before a policy close


class SendQueue:
    """A connection's outgoing ``(plaintext, channel)`` frames, bounded in bytes.

    ``put`` waits for room, ``offer`` refuses when there is none; a single frame larger
    than the bound still goes when the queue is empty (a large history reply).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.items: deque[tuple[bytes, Channel | None]] = deque()
        self.bytes = 0
        self.unfinished = 0
        self._more = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def _fits(self, frame: bytes) -> bool:
        return not self.items or self.bytes + len(frame) <= self.max_bytes

    def _append(self, frame: bytes, channel: Channel | None) -> None:
        self.items.append((frame, channel))
        self.bytes += len(frame)
        self.unfinished += 1
        self._idle.clear()
        self._more.set()

    def offer(self, frame: bytes, channel: Channel | None) -> bool:
        if not self._fits(frame):
            return False
        self._append(frame, channel)
        return True

    async def put(self, frame: bytes, channel: Channel | None) -> None:
        while not self._fits(frame):
            self._room.clear()
            await self._room.wait()
        self._append(frame, channel)

    async def get(self) -> tuple[bytes, Channel | None]:
        while not self.items:
            self._more.clear()
            await self._more.wait()
        frame, channel = self.items.popleft()
        self.bytes -= len(frame)
        self._room.set()
        return frame, channel

    def done(self) -> None:
        """The frame last taken with ``get`` was sent (or given up)."""
        self.unfinished -= 1
        if self.unfinished == 0:
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
    :class:`hub.Hub` (the core's World); ``max_message`` the server's frame limit (bytes)."""

    def __init__(self, hub: Any, max_message: int = 0, max_frame: int = MAX_FRAME,
                 queue_bytes: int = QUEUE_BYTES):
        self.fanout = BinaryFanout()
        self.proto = BinaryProtocol(hub)
        self.clients: dict[BinSession, BinClient] = {}
        self.max_frame = max(max_message, max_frame)
        self.queue_bytes = queue_bytes
        self.counters = {"connections": 0, "frames_in": 0, "frames_out": 0, "frames_dropped": 0}

    def sessions(self) -> list[BinSession]:
        return list(self.clients)

    def flush(self) -> None:
        """Move every session's waiting data frames to its send queue (the push timer)."""
        for client in list(self.clients.values()):
            s = client.session
            for frame in self.fanout.take(s):
                if not client.queue.offer(frame, s.channel):
                    s.dropped_frames += 1
                    s.dropped += samples_in(frame)
                    self.counters["frames_dropped"] += 1
            if client.queue.bytes <= client.queue.max_bytes // 2:
                report = dropped_report(s)
                if report is not None:
                    client.queue.offer(report, s.channel)


async def serve(server: Any, conn: ServerConnection, session: Session) -> None:
    """Run one ``rtoc.bin.v1`` connection until it closes. ``server`` is the websocket
    server (its ``binary`` and ``_resubscribe``); ``session`` the fresh JSON-style session
    whose address and roles this connection starts with."""
    b: Binary = server.binary
    s = BinSession.of(session)
    conn.protocol.max_message_size = b.max_frame  # pushes are larger than JSON messages
    client = BinClient(conn, s, SendQueue(b.queue_bytes))
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
            else:
                out = await b.proto.handle(s, message, time.time())
            channel = None if out.clear else s.channel
            for frame in out.frames:
                await client.queue.put(frame, channel)
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
