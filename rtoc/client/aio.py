"""The asyncio client of ``rtoc.bin.v1`` (:class:`AsyncClient`); see :mod:`rtoc.client`.

Frames are :mod:`rtoc.client.frames`, encryption :mod:`rtoc.client.aead`: the same modules the server
uses, so the two ends cannot drift apart.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from rtoc.client.aead import Channel, FrameRefused, rtoc_token, scrypt_digest, session_key
from rtoc.client.frames import (
    SUBPROTOCOL,
    Control,
    Data,
    FrameError,
    decode,
    encode_control,
    encode_data,
    f8,
)
from rtoc.errors import LoginFailed, RtocError, raise_for_reply

__all__ = ["AsyncClient", "Batch", "ProtocolError", "NotConnected", "LoginFailed",
           "PushRefused"]

log = logging.getLogger(__name__)
MAX_PUSH = 1 << 20          # samples per pushed frame (larger pushes are split): 16 MiB


ProtocolError = FrameError
"""The server sent something that is not ``rtoc.bin.v1`` (the codec's own error)."""


class NotConnected(RtocError, ConnectionError):
    code = "not_connected"


class PushRefused(RtocError, ValueError):
    """The server refused pushed frames; ``errors`` holds its error messages
    (``{"sig", "seq", "error": {"code", "message"}}``)."""

    code = "push_refused"

    def __init__(self, message: str, errors: list[dict]):
        self.errors = errors
        super().__init__(message)

    @classmethod
    def from_reply(cls, message: str) -> PushRefused:
        return cls(message, [])


# -- batches ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Batch:
    """Samples of one signal: ``t`` (unix s), ``y`` float64[n] (read-only), ``seq`` of the
    first sample (ring sequence), ``lost`` (lost by the server's ring before this batch),
    ``gap`` (samples between the previous batch the consumer got and this one),
    ``replace`` (a plot replaced the signal from here), ``view`` (M4 view points of
    buckets ``width`` s; ``seq`` is then -1)."""

    name: str
    seq: int
    t: np.ndarray
    y: np.ndarray
    lost: int = 0
    gap: int = 0
    replace: bool = False
    view: bool = False
    width: float = 0.0


def _ws_url(url: str) -> str:
    for a, b in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(a):
            return b + url[len(a):]
    return url


class AsyncClient:
    """One ``rtoc.bin.v1`` connection, reconnecting by itself (asyncio).

    ``url``: ``ws://host:port/`` (``http://`` works too; ``wss://`` for TLS, ``ssl`` a
    context for it). ``user``/``password``: log in after connecting; with ``encrypt`` every
    frame is AES-GCM sealed with a key derived from the password (``user`` needed).
    ``reconnect``: seconds between attempts after a drop (None or 0: do not reconnect).
    ``max_batches``: received batches kept for ``recv`` before new ones are dropped (and
    show up as ``gap``). ``timeout``: seconds a request waits for its reply.

    Counters (per signal name): ``received`` samples, ``lost``, ``gaps``; ``dropped_frames``
    and ``dropped_samples`` the server reported for this connection, ``queue_dropped``
    batches this client dropped, ``reconnects``.
    """

    def __init__(self, url: str, user: str | None = None, password: str | None = None,
                 encrypt: bool = False, reconnect: float | None = 5.0, *, timeout: float = 15.0,
                 max_batches: int = 10_000, ssl: Any = None):
        if encrypt and (not user or password is None):
            raise ValueError("encrypt needs user and password (the key comes from the password)")
        self.url, self.user, self.password = _ws_url(url), user, password
        self.encrypt, self.reconnect, self.timeout = encrypt, reconnect, timeout
        self.max_batches, self.ssl = max_batches, ssl
        self.received: dict[str, int] = defaultdict(int)
        self.lost: dict[str, int] = defaultdict(int)
        self.gaps: dict[str, int] = defaultdict(int)
        self.dropped_frames = self.dropped_samples = self.queue_dropped = 0
        self.reconnects = 0
        self.acked = 0                      # samples the server acknowledged (ack, sync)
        self.role: str | None = None
        self.error: BaseException | None = None  # why the client stopped reconnecting
        self._push_errors: list[dict] = []
        self._raw: set[str] = set()
        self._all = False
        self._views: set[str] = set()
        self._expected: dict[str, int] = {}
        self._batches: deque[Data] = deque()
        self._ready = asyncio.Event()
        self._connected = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._channel: Channel | None = None
        self._send_lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future] = {}
        self._rids = itertools.count(1)
        self._push_seq = 0
        self._task: asyncio.Task | None = None
        self._closed = False
        self._secrets: dict[tuple, bytes] = {}

    # -- connecting -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def connect(self, wait: bool = True) -> None:
        """Connect (and log in); with ``wait=False`` return at once and keep trying in the
        background every ``reconnect`` seconds. Raises LoginFailed, OSError, ... when
        ``wait`` and the first attempt fails."""
        self._closed = False
        if self._task is None or self._task.done():
            self.error = None
            self._task = asyncio.create_task(self._run(first_raises=wait))
        if not wait:
            return
        waiter = asyncio.ensure_future(self._connected.wait())
        try:
            await asyncio.wait({waiter, self._task}, timeout=self.timeout + 5.0,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._connected.is_set():
            return
        if self._task.done():
            exc = self._task.exception() or self.error or NotConnected("the connection closed at once")
            raise exc
        raise TimeoutError(f"no connection to {self.url} within {self.timeout + 5.0:g} s")

    async def _run(self, first_raises: bool) -> None:
        first = True
        while not self._closed:
            try:
                ws, channel = await self._open()
            except LoginFailed as exc:
                self.error = exc
                self._ready.set()
                if first and first_raises:
                    raise
                log.error("rtoc client %s: %s; not reconnecting", self.url, exc)
                return
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed,
                    RtocError) as exc:
                if first and first_raises:
                    raise
                log.debug("rtoc client %s: connecting failed: %s", self.url, exc)
                if not self.reconnect:
                    self.error = exc
                    self._ready.set()
                    return
                await asyncio.sleep(self.reconnect)
                continue
            if not first:
                self.reconnects += 1
            first = False
            self._ws, self._channel = ws, channel
            reader = asyncio.create_task(self._read(ws, channel))
            try:
                await self._restore()
                self._connected.set()
                await reader
            except (NotConnected, ConnectionClosed, RtocError, TimeoutError) as exc:
                log.debug("rtoc client %s: %s", self.url, exc)
            finally:
                reader.cancel()
                self._connected.clear()
                self._ws = self._channel = None
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(NotConnected(f"the connection to {self.url} closed"))
                self._pending.clear()
                await ws.close()
            if self._closed or not self.reconnect:
                break
            log.info("rtoc client %s: connection lost; reconnecting every %g s", self.url,
                     self.reconnect)
            await asyncio.sleep(self.reconnect)
        self._ready.set()

    async def _open(self) -> tuple[ClientConnection, Channel | None]:
        ws = await ws_connect(self.url, subprotocols=[SUBPROTOCOL], max_size=None,
                              compression=None, open_timeout=self.timeout, close_timeout=2.0,
                              ssl=self.ssl)
        try:
            if ws.subprotocol != SUBPROTOCOL:
                raise ProtocolError(f"{self.url} does not speak {SUBPROTOCOL}")
            channel = None
            if self.encrypt:
                channel = await self._handshake(ws)
            elif self.user is not None:
                await ws.send(encode_control({"op": "login", "rid": 0, "user": self.user,
                                              "password": self.password or ""}))
                reply = await self._first_reply(ws, None)
                if not reply.get("ok"):
                    raise LoginFailed(f"login as {self.user!r} refused: {_message(reply)}")
                self.role = reply.get("role")
            return ws, channel
        except BaseException:
            await ws.close()
            raise

    async def _handshake(self, ws: ClientConnection) -> Channel:
        await ws.send(encode_control({"op": "hello", "rid": 0, "user": self.user, "encrypt": True}))
        hello = await self._first_reply(ws, None)
        if not hello.get("ok"):
            raise LoginFailed(f"encrypted hello refused: {_message(hello)}")
        try:
            n, r, p, dklen = (int(hello[k]) for k in ("n", "r", "p", "dklen"))
            hash_salt, salt = bytes(hello["hash_salt"]), bytes(hello["salt"])
        except (KeyError, TypeError, ValueError):
            raise ProtocolError("the server's hello lacks the hash parameters") from None
        if n < 2 or n & (n - 1) or 128 * r * n > 256 << 20 or not 1 <= p <= 16 or not 16 <= dklen <= 64:
            raise ProtocolError(f"the server asks for unreasonable scrypt costs (n={n}, r={r}, p={p})")
        cache = (hash_salt, n, r, p, dklen)
        secret = self._secrets.get(cache)
        if secret is None:
            secret = await asyncio.to_thread(scrypt_digest, rtoc_token(self.password or ""),
                                             hash_salt, n, r, p, dklen)
            self._secrets[cache] = secret
        channel = Channel(session_key(secret, salt), "client")
        await ws.send(channel.seal(encode_control({"op": "login", "rid": 0, "user": self.user})))
        reply = await self._first_reply(ws, channel)
        if not reply.get("ok"):
            raise LoginFailed(f"login as {self.user!r} refused: {_message(reply)}")
        self.role = reply.get("role")
        return channel

    async def _first_reply(self, ws: ClientConnection, channel: Channel | None) -> dict:
        raw = await asyncio.wait_for(ws.recv(), self.timeout)
        if isinstance(raw, str):
            raise ProtocolError("the server sent a text frame")
        if channel is not None:
            try:
                raw = channel.open(raw)
            except FrameRefused:
                pass  # a refused login is answered in the clear
        f = decode(raw)
        if not isinstance(f, Control):
            raise ProtocolError("expected the login reply, got data")
        return f.msg

    async def _restore(self) -> None:
        """Subscribe again to what was subscribed before the connection dropped."""
        if self._all:
            await self.request("subscribe", signals="*", mode="raw")
        if self._raw:
            await self.request("subscribe", signals=sorted(self._raw), mode="raw")
        if self._views:
            await self.request("subscribe", signals=sorted(self._views), mode="view")

    async def close(self) -> None:
        self._closed = True
        ws = self._ws
        if ws is not None:
            await ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._ready.set()

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- receiving ------------------------------------------------------------------------------
    async def _read(self, ws: ClientConnection, channel: Channel | None) -> None:
        async for raw in ws:
            if isinstance(raw, str):
                continue
            if channel is not None:
                try:
                    raw = channel.open(raw)
                except FrameRefused as exc:
                    log.error("rtoc client %s: a frame from the server was refused: %s; closing",
                              self.url, exc)
                    await ws.close(1008, "frame refused")
                    return
            try:
                f = decode(raw)
            except FrameError as exc:
                log.warning("rtoc client %s: %s", self.url, exc)
                continue
            if isinstance(f, Control):
                self._on_control(f.msg)
            elif len(self._batches) >= self.max_batches:
                self.queue_dropped += 1
            else:
                self._batches.append(f)
                self._ready.set()

    def _on_control(self, msg: dict) -> None:
        fut = self._pending.get(msg.get("re")) if msg.get("re") is not None else None
        if fut is not None:
            if not fut.done():
                fut.set_result(msg)
            return
        op = msg.get("op")
        if op == "dropped":
            self.dropped_frames = int(msg.get("frames", 0))
            self.dropped_samples = int(msg.get("samples", 0))
        elif op == "ack":
            self.acked = int(msg.get("pushed", 0))
        elif op == "push" and not msg.get("ok", True):
            if len(self._push_errors) < 1000:
                self._push_errors.append(msg)
        elif not msg.get("ok", True):
            log.warning("rtoc client %s: %s", self.url, _message(msg))

    async def recv(self, timeout: float | None = None) -> Batch | None:
        """The next batch; None after ``timeout`` s (None: wait) or once closed."""
        while not self._batches:
            if self._closed or (self._task is not None and self._task.done()):
                if self.error is not None and not self._closed:
                    raise self.error
                return None
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        return self._deliver(self._batches.popleft())

    def drain(self, limit: int | None = None) -> list[Batch]:
        """The batches received so far (at most ``limit``), without waiting."""
        out = []
        while self._batches and (limit is None or len(out) < limit):
            out.append(self._deliver(self._batches.popleft()))
        if not out and self.error is not None and self._task is not None and self._task.done():
            raise self.error
        return out

    def _deliver(self, f: Data) -> Batch:
        name, head, t, y = f.name, f.header, f.t, f.y
        if f.view:
            return Batch(name, -1, t, y, view=True, width=float(head.get("width", 0.0)))
        seq, lost, replace = int(head.get("seq", 0)), int(head.get("lost", 0)), bool(head.get("replace", False))
        expected = self._expected.get(name)
        gap = seq - expected if expected is not None and seq > expected and not replace else 0
        self._expected[name] = seq + len(t)
        self.received[name] += len(t)
        self.lost[name] += lost
        self.gaps[name] += gap
        return Batch(name, seq, t, y, lost, gap, replace)

    async def batches(self) -> AsyncIterator[Batch]:
        """Every received batch, in order, until the client is closed."""
        while True:
            b = await self.recv()
            if b is None:
                return
            yield b

    # -- requests ------------------------------------------------------------------------------
    async def _send(self, frame: bytes) -> None:
        ws = self._ws
        if ws is None:
            raise NotConnected(f"not connected to {self.url}")
        async with self._send_lock:  # sealing order is sending order
            channel = self._channel
            await ws.send(channel.seal(frame) if channel is not None else frame)

    async def request(self, op: str, **fields: Any) -> dict:
        """One control request; the reply map, or the RtocError its error names."""
        rid = next(self._rids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self._send(encode_control({"op": op, "rid": rid, **fields}))
            reply = await asyncio.wait_for(fut, self.timeout)
        except ConnectionClosed:
            raise NotConnected(f"the connection to {self.url} closed") from None
        finally:
            self._pending.pop(rid, None)
        if not reply.get("ok") and (reply.get("error") or {}).get("code") == "login_failed":
            raise LoginFailed(_message(reply))
        return raise_for_reply(reply)

    async def subscribe(self, signals: list[str] | str, mode: str = "raw") -> dict:
        """Receive every batch (``raw``) or the M4 view points (``view``) of these
        ``Device.Signal`` names; ``"*"``: all signals (raw only). Kept over reconnects."""
        names = [signals] if isinstance(signals, str) and signals != "*" else signals
        reply = await self.request("subscribe", signals=names, mode=mode)
        if names == "*":
            self._all = True
        else:
            (self._raw if mode == "raw" else self._views).update(names)
        return reply

    async def unsubscribe(self, signals: list[str] | str = "*", mode: str | None = None) -> dict:
        names = [signals] if isinstance(signals, str) and signals != "*" else signals
        sets = [self._raw, self._views] if mode is None else [self._raw if mode == "raw" else self._views]
        for s in sets:
            if names == "*":
                s.clear()
            else:
                s.difference_update(names)
        if names == "*" and mode != "view":
            self._all = False
        return await self.request("unsubscribe", signals=names, **({"mode": mode} if mode else {}))

    async def push(self, name: str, t: Any, y: Any, unit: str = "", replace: bool = False,
                   rate: float | None = None) -> None:
        """Write samples (``t`` unix s, ``y``: float64[n] or what numpy makes of it) into
        signal ``name`` ("Device.Signal"). Not acknowledged: ``sync()`` says whether
        everything pushed so far was stored. ``rate`` (samples/s) sizes the ring of a signal
        this push creates (by default it holds 64 pushes of this size, at most 4 M samples)."""
        ts, ys = f8(t), f8(y)
        if ts.shape != ys.shape:
            raise ValueError(f"t and y differ in length ({ts.shape[0]} != {ys.shape[0]})")
        for i in range(0, max(len(ts), 1), MAX_PUSH):
            header: dict[str, Any] = {"sig": name, "seq": self._push_seq}
            if unit:
                header["unit"] = unit
            if replace and i == 0:
                header["replace"] = True
            if rate is not None and i == 0:
                header["rate"] = float(rate)
            self._push_seq += 1
            await self._send(encode_data(header, ts[i:i + MAX_PUSH], ys[i:i + MAX_PUSH]))

    async def sync(self) -> int:
        """Wait until the server handled every push sent before; the samples it stored on
        this connection. Raises PushRefused when pushes were refused since the last sync."""
        reply = await self.request("sync")
        self.acked = int(reply.get("pushed", 0))
        errors, self._push_errors = self._push_errors, []
        if errors:
            first = errors[0]
            raise PushRefused(f"{len(errors)} push(es) refused; first: {first.get('sig')}: "
                              f"{_message(first)}", errors)
        return self.acked

    async def signals(self) -> list[dict]:
        return (await self.request("signals"))["signals"]

    async def events(self, **filters: float) -> list[dict]:
        """The instance's latest events; ``since``, ``until`` (unix s), ``min_priority``,
        ``limit`` (at most 10 000)."""
        return (await self.request("events", **filters))["events"]

    async def history(self, signal: str, t_from: float | None = None, t_to: float | None = None,
                      max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stored samples of ``signal`` (archive and ring): ``t``, ``y`` float64[n]."""
        fields: dict[str, Any] = {"signal": signal, "from": t_from, "to": t_to}
        if max_points is not None:
            fields["max_points"] = max_points
        reply = await self.request("history", **fields)
        return np.frombuffer(reply["t"], "<f8"), np.frombuffer(reply["y"], "<f8")


def _message(reply: dict) -> str:
    err = reply.get("error") or {}
    return str(err.get("message", "unknown error")) if isinstance(err, dict) else str(err)
