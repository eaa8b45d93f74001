"""A ``websockets`` server connection that hands a JSON client's messages over in batches.

``websockets`` does the handshake, keepalive pings, pongs and the closing handshake; for
a JSON connection the data frames take a faster road (see ``framing.py`` for why):

* Until the handshake request is complete, only the request's bytes reach ``websockets``;
  whatever the client sent after it waits until the handler chooses a road:
  :meth:`use_batches` (JSON) or :meth:`use_websockets` (the binary subprotocol, which keeps
  the library's per-message ``recv``).
* On the batch road each TCP read goes through one :class:`FrameReader`; the messages it
  completes wait in an inbox that :meth:`next_batch` empties at once, and control frames
  go to ``websockets`` as received. A frame that breaks RFC 6455 ends the inbox; the
  handler answers the messages before it and then calls :meth:`fail`. When the inbox and
  the batch the handler holds (it is done with it when it asks for the next) take more than
  ``inbox_bytes`` (each message counted with ``OVERHEAD`` bytes of Python object, so tiny
  messages count what they cost) or ``HIGH`` messages, the socket stops being read (TCP
  pushes back on the client; nothing is dropped) until the handler asks for the next
  batch, so a client that sends faster than it is answered costs at most that much here
  (plus one message and one partial frame).
* Out, :meth:`send_frames` writes frames the caller encoded (a whole batch of replies in
  one write) and waits while the transport's buffer is over its limit.
"""

from __future__ import annotations

import asyncio
from collections import deque

from rtoc.frontends.websocket.json_protocol.framing import CONTROL, FrameReader
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosedError
from websockets.protocol import State

HEAD_LIMIT = 1 << 16   # bytes of a handshake request (websockets refuses far less)
HIGH = 20_000          # messages waiting for the handler before reading pauses
INBOX_BYTES = 1 << 20  # bytes waiting for (or held by) the handler before reading pauses
OVERHEAD = 64          # bytes a message costs besides its payload (bytes object, list slot)
EARLY_LIMIT = 1 << 20  # bytes sent after the handshake request before the handler starts
READ_SIZE = 64 << 10   # bytes of one read of a JSON connection (asyncio's default: 256 KiB)


class BatchConnection(ServerConnection):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._road = "handshake"            # -> "waiting" -> "batches" | "websockets"
        self._head = bytearray()
        self._early = bytearray()           # sent after the request, before a road is chosen
        self.frames: FrameReader | None = None
        self._inbox: deque[bytes] = deque()
        self._inbox_bytes = 0
        self._held_bytes = 0                # of the batch the handler holds
        self.inbox_limit = INBOX_BYTES
        self._ended = False
        self._wake: asyncio.Future | None = None
        self._reading_paused = False

    # -- choosing the road -------------------------------------------------------------------
    def use_batches(self, max_size: int | None, inbox_bytes: int = INBOX_BYTES) -> None:
        self.frames = FrameReader(max_size)
        if hasattr(self.transport, "max_size"):  # asyncio's selector transport: recv() size
            # 256 KiB of tiny messages is ~7000 frames parsed in one callback; with a dozen
            # flooding connections one turn of the loop took 100 ms before a small request
            # of another client was read
            self.transport.max_size = READ_SIZE
        self.inbox_limit = inbox_bytes
        self._road = "batches"
        early = self._take_early()
        if early:
            self._read_frames(early)

    def use_websockets(self) -> None:
        self._road = "websockets"
        early = self._take_early()
        if early:
            super().data_received(early)

    def _take_early(self) -> bytes:
        early, self._early = bytes(self._early), bytearray()
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        return early

    # -- bytes in ----------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        road = self._road
        if road == "batches":
            self._read_frames(data)
        elif road == "websockets":
            super().data_received(data)
        elif road == "waiting":
            self._early += data
            if len(self._early) > EARLY_LIMIT and not self._reading_paused:
                self._reading_paused = True  # resumed once the handler chose a road
                self.transport.pause_reading()
        else:
            seen = len(self._head)
            self._head += data
            end = self._head.find(b"\r\n\r\n", max(0, seen - 3))
            if end < 0 and len(self._head) <= HEAD_LIMIT:
                return
            cut = end + 4 if end >= 0 else len(self._head)
            request, self._early = bytes(self._head[:cut]), bytearray(self._head[cut:])
            self._head = bytearray()
            self._road = "waiting"
            super().data_received(request)

    def _read_frames(self, data: bytes) -> None:
        for opcode, payload in self.frames.feed(data):
            if opcode >= CONTROL:  # ping -> pong, pong -> keepalive, close -> closing
                super().data_received(payload)
            else:
                self._inbox.append(payload)
                self._inbox_bytes += len(payload) + OVERHEAD
        if self.frames.closed or self.frames.fault is not None:
            self._end()  # a broken frame: the handler answers what came before, then fail()
        elif self._over() and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wakeup()

    def _over(self) -> bool:
        return self._inbox_bytes + self._held_bytes > self.inbox_limit or len(self._inbox) > HIGH

    @property
    def fault(self) -> tuple[int, str] | None:
        """(close code, reason) of a frame that broke RFC 6455, else None."""
        return None if self.frames is None else self.frames.fault

    def fail(self) -> None:
        """Fail the connection for :attr:`fault` (the close frame with its code)."""
        if self.fault is not None and self.protocol.state is State.OPEN:
            self.protocol.fail(*self.fault)
            super().data_received(b"")  # sends the close frame, arms the close timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        super().connection_lost(exc)

    def _end(self) -> None:
        self._ended = True
        self._wakeup()

    def _wakeup(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def next_batch(self) -> list[bytes] | None:
        """Every message received so far, in order; None once the client closed or the
        connection was lost (and nothing is left). The caller is done with the batch it
        took before."""
        self._held_bytes = 0
        self._resume()
        while not self._inbox:
            if self._ended:
                return None
            self._wake = self.loop.create_future()
            await self._wake
        batch = list(self._inbox)
        self._inbox.clear()
        self._held_bytes, self._inbox_bytes = self._inbox_bytes, 0
        self._resume()
        return batch

    def _resume(self) -> None:
        if self._reading_paused and not self._ended and not self._over():
            self._reading_paused = False
            self.transport.resume_reading()

    # -- bytes out ---------------------------------------------------------------------------
    async def send_frames(self, frames: bytes) -> None:
        """Write encoded server frames; ConnectionClosed once the connection is closing."""
        if self.protocol.state is not State.OPEN:
            raise ConnectionClosedError(None, None)
        self.transport.write(frames)
        try:
            await self.drain()
        except OSError as exc:
            # A reset while waiting: ``exc`` is the connection's own (websockets keeps it);
            # the traceback it gathered on the way up would keep this frame and ``frames``
            # (megabytes) alive as long as the connection object.
            exc.__traceback__ = None
            raise ConnectionClosedError(None, None) from None
