"""A Python client of the binary websocket subprotocol ``rtoc.bin.v1``.

    async with AsyncClient("ws://host:5050/", user="lab", password="...") as c:
        await c.subscribe(["Generator.Sine"])
        async for batch in c.batches():          # name, seq, t, y (float64[n]), lost, gap
            ...
        await c.push("Lab.Temp", t, y, unit="K")   # numpy arrays, no JSON
        await c.sync()                             # every push so far stored (or raises)

    with Client("ws://host:5050/") as c:           # the same, blocking, for threads/scripts
        c.subscribe(["Generator.Sine"])
        batch = c.recv(timeout=1.0)

The protocol (frames, ops, the encrypted handshake and its threat model) is described in
``rtoc/frontends/websocket/binary.py``; the client keeps its own copy of the frame codec and
of the AES-GCM channel, so that it depends on no server code (the unit tests check the two
copies against each other).

Reconnecting: after the connection drops, the client connects again every ``reconnect``
seconds, logs in again and restores its subscriptions; batches received before are kept.
A wrong password is not retried: it is raised by ``connect`` (or by ``recv`` when it
happens on a reconnect). ``gap`` counts samples of a signal that the consumer did not get
(``seq`` jumped: dropped by a slow network or consumer, or missed while reconnecting);
``lost`` samples the server's ring lost before its engine read them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import logging
import os
import threading
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
from Cryptodome.Cipher import AES
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from rtoc.errors import RtocError, raise_for_reply

__all__ = ["AsyncClient", "Client", "Batch", "ProtocolError", "NotConnected", "LoginFailed",
           "PushRefused", "SUBPROTOCOL"]

log = logging.getLogger(__name__)

SUBPROTOCOL = "rtoc.bin.v1"
VERSION = 1
CONTROL, DATA, VIEW = 0x01, 0x02, 0x03
MAX_PUSH = 1 << 20          # samples per pushed frame (larger pushes are split): 16 MiB
KEY_INFO = b"rtoc.bin.v1 session key"


class ProtocolError(RtocError, ValueError):
    """The server sent a frame this client cannot read (or that did not authenticate)."""

    code = "bad_frame"


class NotConnected(RtocError, ConnectionError):
    code = "not_connected"


class LoginFailed(RtocError, PermissionError):
    code = "login_failed"


class PushRefused(RtocError, ValueError):
    """The server refused pushed frames; ``errors`` holds its error messages
    (``{"sig", "seq", "error": {"code", "message"}}``)."""

    code = "push_refused"

    def __init__(self, message: str, errors: list[dict]):
        self.errors = errors
        super().__init__(message)


# -- frames (the same codec as frontends/websocket/binary.py) -------------------------------
def pack(obj: dict) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, default=_plain)


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _unpack(data: Any, what: str) -> dict:
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=False, ext_hook=_no_ext)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"{what}: not msgpack ({exc})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what}: expected a map, got {type(obj).__name__}")
    return obj


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not accepted")


def encode_control(msg: dict) -> bytes:
    return bytes((CONTROL,)) + pack(msg)


def encode_data(header: dict, t: Any, y: Any, kind: int = DATA) -> bytes:
    """A data frame: ``header`` gets ``v`` and ``n``; ``t``/``y`` float64[n]; ``t`` aligned."""
    ts = np.ascontiguousarray(t, dtype="<f8").reshape(-1)
    ys = np.ascontiguousarray(y, dtype="<f8").reshape(-1)
    if ts.shape != ys.shape:
        raise ValueError(f"t and y differ in length ({ts.shape[0]} != {ys.shape[0]})")
    head = {"v": VERSION, **header, "n": int(ts.shape[0])}
    packed = pack(head)
    if (5 + len(packed)) % 8:
        for k in ((-(5 + len(packed) + 6)) % 8, *range(8)):
            packed = pack({**head, "pad": bytes(k)})
            if (5 + len(packed)) % 8 == 0:
                break
    return b"".join((bytes((kind,)), len(packed).to_bytes(4, "little"), packed,
                     ts.tobytes(), ys.tobytes()))


def decode(frame: bytes) -> tuple[int, dict, np.ndarray | None, np.ndarray | None]:
    """``(kind, msg or header, t, y)``; raises ProtocolError when malformed."""
    if not frame:
        raise ProtocolError("empty frame")
    kind = frame[0]
    if kind == CONTROL:
        return kind, _unpack(frame[1:], "control frame"), None, None
    if kind not in (DATA, VIEW) or len(frame) < 5:
        raise ProtocolError(f"unknown or truncated frame (kind 0x{kind:02x}, {len(frame)} bytes)")
    hlen = int.from_bytes(frame[1:5], "little")
    if 5 + hlen > len(frame):
        raise ProtocolError(f"truncated frame: header of {hlen} bytes, {len(frame) - 5} follow")
    header = _unpack(frame[5:5 + hlen], "data header")
    n = header.get("n")
    if (not isinstance(n, int) or isinstance(n, bool) or n < 0 or len(frame) - 5 - hlen != 16 * n
            or not isinstance(header.get("sig"), str)):
        raise ProtocolError(f"data frame whose header ({header.get('sig')!r}, n={n!r}) does not "
                            f"fit its {len(frame) - 5 - hlen} bytes")
    t = np.frombuffer(frame, "<f8", count=n, offset=5 + hlen)
    y = np.frombuffer(frame, "<f8", count=n, offset=5 + hlen + 8 * n)
    if n and not (t.flags.aligned and y.flags.aligned):
        t, y = t.copy(), y.copy()
    return kind, header, t, y


# -- the encrypted channel (the same frames as frontends/websocket/crypto.py) -------------------
def rtoc_token(password: str) -> str:
    """base64(SHA-256(password)): what the server's stored scrypt hash is taken of."""
    return base64.b64encode(hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()).decode()


def session_key(secret: bytes, salt: bytes) -> bytes:
    """HKDF-SHA256 of the user's scrypt digest with the session's salt (32 bytes)."""
    prk = hmac.new(bytes(salt), bytes(secret), hashlib.sha256).digest()
    return hmac.new(prk, KEY_INFO + b"\x01", hashlib.sha256).digest()


class _Channel:
    """The client end of crypto.Channel: ``1 | nonce(12) | AES-GCM(counter(8) | payload) |
    tag(16)``, direction ``C``/``S`` as associated data, strictly increasing counters."""

    def __init__(self, key: bytes):
        self._key = key
        self._sent = 0
        self._expected = 0

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=16)
        cipher.update(b"C")
        body, tag = cipher.encrypt_and_digest(self._sent.to_bytes(8, "little") + plaintext)
        self._sent += 1
        return b"".join((b"\x01", nonce, body, tag))

    def open(self, frame: bytes) -> bytes:
        if len(frame) < 37 or frame[0] != 1:
            raise ProtocolError("not a sealed frame")
        view = memoryview(frame)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=view[1:13], mac_len=16)
        cipher.update(b"S")
        try:
            plain = cipher.decrypt_and_verify(view[13:-16], view[-16:])
        except ValueError:
            raise ProtocolError("a frame from the server did not authenticate") from None
        if int.from_bytes(plain[:8], "little") != self._expected:
            raise ProtocolError("a frame from the server was replayed or is out of order")
        self._expected += 1
        return plain[8:]


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
        self._batches: deque[tuple] = deque()
        self._ready = asyncio.Event()
        self._connected = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._channel: _Channel | None = None
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

    async def _open(self) -> tuple[ClientConnection, _Channel | None]:
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

    async def _handshake(self, ws: ClientConnection) -> _Channel:
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
            token = rtoc_token(self.password or "").encode()
            secret = await asyncio.to_thread(hashlib.scrypt, token, salt=hash_salt, n=n, r=r, p=p,
                                             dklen=dklen, maxmem=128 * r * (n + p + 2) + (1 << 20))
            self._secrets[cache] = secret
        channel = _Channel(session_key(secret, salt))
        await ws.send(channel.seal(encode_control({"op": "login", "rid": 0, "user": self.user})))
        reply = await self._first_reply(ws, channel)
        if not reply.get("ok"):
            raise LoginFailed(f"login as {self.user!r} refused: {_message(reply)}")
        self.role = reply.get("role")
        return channel

    async def _first_reply(self, ws: ClientConnection, channel: _Channel | None) -> dict:
        raw = await asyncio.wait_for(ws.recv(), self.timeout)
        if isinstance(raw, str):
            raise ProtocolError("the server sent a text frame")
        if channel is not None:
            try:
                raw = channel.open(raw)
            except ProtocolError:
                pass  # a refused login is answered in the clear
        kind, msg, _, _ = decode(raw)
        if kind != CONTROL:
            raise ProtocolError("expected the login reply, got data")
        return msg

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
    async def _read(self, ws: ClientConnection, channel: _Channel | None) -> None:
        async for raw in ws:
            if isinstance(raw, str):
                continue
            if channel is not None:
                try:
                    raw = channel.open(raw)
                except ProtocolError as exc:
                    log.error("rtoc client %s: %s; closing", self.url, exc)
                    await ws.close(1008, "frame refused")
                    return
            try:
                kind, head, t, y = decode(raw)
            except ProtocolError as exc:
                log.warning("rtoc client %s: %s", self.url, exc)
                continue
            if kind == CONTROL:
                self._on_control(head)
            elif len(self._batches) >= self.max_batches:
                self.queue_dropped += 1
            else:
                self._batches.append((kind, head, t, y))
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
        return self._deliver(*self._batches.popleft())

    def drain(self, limit: int | None = None) -> list[Batch]:
        """The batches received so far (at most ``limit``), without waiting."""
        out = []
        while self._batches and (limit is None or len(out) < limit):
            out.append(self._deliver(*self._batches.popleft()))
        if not out and self.error is not None and self._task is not None and self._task.done():
            raise self.error
        return out

    def _deliver(self, kind: int, head: dict, t: np.ndarray, y: np.ndarray) -> Batch:
        name = head["sig"]
        if kind == VIEW:
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
        ts = np.ascontiguousarray(t, dtype="<f8").reshape(-1)
        ys = np.ascontiguousarray(y, dtype="<f8").reshape(-1)
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


class Client:
    """:class:`AsyncClient` for threads and scripts: the same methods, blocking, run on an
    event loop in a background thread (one per client). ``recv(timeout)`` returns the next
    :class:`Batch` or None."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None,
                 encrypt: bool = False, reconnect: float | None = 5.0, **kw: Any):
        self.aio = AsyncClient(url, user, password, encrypt, reconnect, **kw)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rtoc-client",
                                        daemon=True)
        self._thread.start()

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        if not self._thread.is_alive():
            coro.close()
            raise NotConnected("this client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __getattr__(self, name: str) -> Any:  # counters: received, lost, gaps, error, ...
        if name.startswith("_") or name == "aio":
            raise AttributeError(name)
        return getattr(self.aio, name)

    def connect(self, wait: bool = True) -> None:
        self._call(self.aio.connect(wait))

    def subscribe(self, signals: list[str] | str, mode: str = "raw") -> dict:
        return self._call(self.aio.subscribe(signals, mode))

    def unsubscribe(self, signals: list[str] | str = "*", mode: str | None = None) -> dict:
        return self._call(self.aio.unsubscribe(signals, mode))

    def push(self, name: str, t: Any, y: Any, unit: str = "", replace: bool = False,
             rate: float | None = None) -> None:
        self._call(self.aio.push(name, t, y, unit, replace, rate))

    def sync(self) -> int:
        return self._call(self.aio.sync())

    def request(self, op: str, **fields: Any) -> dict:
        return self._call(self.aio.request(op, **fields))

    def signals(self) -> list[dict]:
        return self._call(self.aio.signals())

    def history(self, signal: str, t_from: float | None = None, t_to: float | None = None,
                max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self._call(self.aio.history(signal, t_from, t_to, max_points))

    def recv(self, timeout: float | None = None) -> Batch | None:
        return self._call(self.aio.recv(timeout))

    def drain(self, limit: int | None = None) -> list[Batch]:
        """The batches received so far (at most ``limit``), without waiting."""
        return self._call(self._drain(limit))

    async def _drain(self, limit: int | None) -> list[Batch]:
        return self.aio.drain(limit)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self.aio.close(), timeout=10.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> Client:
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

