"""The binary websocket subprotocol ``rtoc.bin.v1``: frame codec, protocol core, fan-out.

Pure: no sockets, no clock (``now`` is an argument), no logging set-up. The asyncio shell
is :mod:`binary_shell`; the client is :mod:`rtoc.client`.

Negotiation. A client that offers the websocket subprotocol ``rtoc.bin.v1`` gets this
protocol (:func:`select_subprotocol`); every other connection keeps the JSON protocol.

Frames. Only BINARY websocket messages; byte 0 is the kind:

* ``0x01`` control: a msgpack map follows. Client requests carry ``op`` and an optional
  ``rid``; replies are ``{"re": rid, "op": op, "ok": true, ...}`` or
  ``{"re": rid, "op": op, "ok": false, "error": {"code", "message"}}``. Server pushes carry
  ``op`` and no ``re``: ``dropped`` ``{frames, samples}`` (totals this client missed),
  ``ack`` ``{pushed, seq}`` (every :data:`ACK_EVERY` pushed frames), ``push`` with
  ``ok: false`` (a refused push, with its ``sig`` and the client's ``seq``).
* ``0x02`` data: ``len`` (4 bytes, little-endian) | msgpack header (``len`` bytes) |
  ``n`` float64 LE ``t`` | ``n`` float64 LE ``y``. Header ``{v: 1, sig: "Device.Signal",
  seq, n, lost, replace?}`` from the server (``seq``: ring sequence of the first sample, so a
  client sees every gap; ``lost``: samples the ring lost before the engine read them);
  ``{v: 1, sig, n, unit?, replace?, seq?, rate?}`` from a client (a push; ``seq`` is the
  client's own counter, echoed in errors; ``rate``, samples/s, sizes the ring of a signal
  the push creates). Encoders pad the header (a ``pad`` entry) so ``t`` starts
  8-byte aligned; decoders accept any alignment (an unaligned body is copied).
* ``0x03`` view data: same layout, header ``{v: 1, sig, n, width}`` (M4 points, server
  to client only).

Ops (role needed): ``hello {encrypt, user?}`` (none; first frame when encrypting),
``login {user, password}`` (none; unencrypted sessions), ``logout``, ``ping``,
``subscribe {signals: [names] | "*", mode: "raw" | "view"}`` and ``unsubscribe {signals,
mode?}`` (read), ``signals``, ``drivers``, ``history {signal, from?, to?, max_points?}``
(read; ``t``/``y`` as float64 LE bytes), ``sync`` (``{pushed, frames, refused}``: pushes are
acknowledged only by ``ack`` pushes and ``sync``, to keep the rate high), ``call``, ``set``,
``start``, ``stop`` (write; as the JSON ``plugin`` command). A data frame from a client is a
push and needs ``write``. A malformed frame is answered with an error (code ``bad_frame``)
and the connection lives on, except inside an encrypted session (below).

Encryption (AES-GCM, :class:`crypto.Channel`). The server stores no passwords, only
``scrypt(rtoc_token(password), hash_salt, n, r, p)`` per user (:mod:`auth`); that digest is
the shared secret:

1. client -> server, clear: ``hello {user, encrypt: true}``;
2. server -> client, clear: ``{op: "hello", ok, salt: 16 fresh random bytes, hash_salt,
   n, r, p, dklen}``, the user's hash parameters. For an unknown user the parameters are
   made up (``hash_salt`` = HMAC of the name under a per-server secret, the first user's
   costs), so the reply does not tell which names exist;
3. both: ``secret`` = the scrypt digest (the client computes it from the password),
   ``key = HKDF-SHA256(secret, salt, info="rtoc.bin.v1 session key")`` (:func:`session_key`);
   from now on every frame both ways is ``Channel.seal``-ed (byte 0 of the plaintext is the
   kind above);
4. client -> server, sealed: ``login {user}``. It opens iff the client knows the secret;
   the session is then logged in as that user (reply sealed, so the client also knows it
   talks to a server that holds the hash). A login frame that does not open counts as a
   failed login (throttled like any other) and closes the connection (1008).

After the login, a frame that does not open (tampered, replayed, reordered, from another
session) is answered with a sealed error and closes the connection (1008).

Threat model. Against a network attacker who knows neither the password nor the stored
hash, this gives confidentiality and integrity of every frame, mutual authentication and
no replay (crypto.py's docstring lists what Channel refuses). The stored hash is a
password equivalent for this channel: whoever reads the server's config can log in as that
user over ``rtoc.bin.v1`` (never over the JSON protocol, which needs the password itself).
A recorded session allows offline guessing of the password at one scrypt (the stored
hash's cost) per guess. The handshake is in the clear: user names and hash parameters
travel unencrypted. TLS (``wss://``, ``tls_cert``/``tls_key``) protects everything,
including the JSON protocol, and is the better tool where certificates can be had.

Why HKDF and not ``crypto.derive_key`` (scrypt) for the session key: the secret is
already a 32-byte scrypt output, so a second scrypt adds no strength, but it would cost
the server ~50 ms and 16 MiB per ``hello`` from anyone, before any authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from rtoc.frontends.websocket.auth import SCRYPT_N, SCRYPT_P, SCRYPT_R, Throttle, Users, parse_hash
from rtoc.frontends.websocket.crypto import Channel, FrameRefused
from rtoc.frontends.websocket.session import Session

from rtoc import wire
from rtoc.errors import ArchiveOff, EngineUnavailable, RtocError, SignalOwned
from rtoc.model import check_part, split_name

SUBPROTOCOL = "rtoc.bin.v1"
VERSION = 1
CONTROL, DATA, VIEW = 0x01, 0x02, 0x03
MAX_HEADER = 1 << 16        # bytes of a data frame's msgpack header at most
MAX_NAMES = 10_000          # names in one subscribe
MAX_NAME = 1024             # characters of a signal name
ACK_EVERY = 64              # pushed frames between two ``ack`` pushes
CLAIM_FRAMES = 64           # a pushed signal's ring holds this many first frames (<= 4 M samples)
OWNER = "websocket"         # hub.OWNER: the pre-claim must be the hub's own claim
KEY_INFO = b"rtoc.bin.v1 session key"
CLOSE_POLICY = 1008         # websocket close code: policy violation


class FrameError(RtocError, ValueError):
    """A frame that is not ``rtoc.bin.v1``; the message says what is wrong with it."""

    code = "bad_frame"


class Forbidden(RtocError, PermissionError):
    code = "forbidden"


class BadRequest(RtocError, ValueError):
    code = "bad_request"


class LoginFailed(RtocError, PermissionError):
    code = "login_failed"


def select_subprotocol(conn: Any, offered: Any) -> str | None:
    """websockets' ``select_subprotocol``: ``rtoc.bin.v1`` when offered, else none (JSON).

    (``serve(subprotocols=[...])`` would refuse every client that offers no subprotocol.)
    """
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


# -- frames ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Control:
    msg: dict


@dataclass(frozen=True)
class Data:
    """A data (or view) frame: ``t``/``y`` float64[n] (read-only views of the frame)."""

    name: str
    header: dict
    t: np.ndarray
    y: np.ndarray
    view: bool = False


def encode_control(msg: dict) -> bytes:
    """A control frame carrying ``msg`` (a map of msgpack-able values)."""
    return bytes((CONTROL,)) + wire.pack(msg)


def _f8(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a, dtype="<f8").reshape(-1)


def encode_data(header: dict, t: Any, y: Any, kind: int = DATA) -> bytes:
    """A data (or view, ``kind=VIEW``) frame: ``header`` gets ``v`` and ``n``; ``t``/``y``
    float64[n] (anything numpy turns into that). The header is padded so ``t`` is aligned."""
    ts, ys = _f8(t), _f8(y)
    if ts.shape != ys.shape:
        raise ValueError(f"t and y differ in length ({ts.shape[0]} != {ys.shape[0]})")
    head = {"v": VERSION, **header, "n": int(ts.shape[0])}
    packed = wire.pack(head)
    if (5 + len(packed)) % 8:
        pad = (-(5 + len(packed) + 6)) % 8  # "pad" key (4 bytes) + bin8 prefix (2) + pad
        for k in (pad, *range(8)):  # (a map past 15 entries grows by 2 bytes: then search)
            packed = wire.pack({**head, "pad": bytes(k)})
            if (5 + len(packed)) % 8 == 0:
                break
    return b"".join((bytes((kind,)), len(packed).to_bytes(4, "little"), packed,
                     ts.tobytes(), ys.tobytes()))


def encode_view(name: str, t: Any, y: Any, width: float) -> bytes:
    return encode_data({"sig": name, "width": float(width)}, t, y, VIEW)


def decode(frame: bytes | bytearray | memoryview) -> Control | Data:
    """The frame's content; raises FrameError (never anything else) when it is malformed."""
    size = len(frame)
    if size == 0:
        raise FrameError("empty frame")
    kind = frame[0]
    if kind == CONTROL:
        msg = _unpack(frame[1:], "control frame")
        return Control(msg)
    if kind not in (DATA, VIEW):
        raise FrameError(f"unknown frame kind 0x{kind:02x} (0x01 control, 0x02 data, 0x03 view)")
    what = "data frame" if kind == DATA else "view frame"
    if size < 5:
        raise FrameError(f"truncated {what}: {size} bytes, the header length needs 5")
    hlen = int.from_bytes(frame[1:5], "little")
    if hlen > MAX_HEADER:
        raise FrameError(f"{what} header of {hlen} bytes (at most {MAX_HEADER})")
    if 5 + hlen > size:
        raise FrameError(f"truncated {what}: header of {hlen} bytes, {size - 5} follow")
    header = _unpack(frame[5:5 + hlen], f"{what} header")
    v = header.get("v", VERSION)
    if v != VERSION or isinstance(v, bool):
        raise FrameError(f"{what} version {v!r} (this server speaks {VERSION})")
    name = header.get("sig")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise FrameError(f"{what} header needs 'sig', a signal name (text of 1-{MAX_NAME} characters)")
    n = header.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise FrameError(f"{what} of {name}: header 'n' must be a sample count, got {n!r}")
    body = size - 5 - hlen
    if body != 16 * n:
        raise FrameError(f"{what} of {name}: header says n={n} ({16 * n} bytes of t and y), "
                         f"{body} bytes follow")
    off = 5 + hlen
    t = np.frombuffer(frame, "<f8", count=n, offset=off)
    y = np.frombuffer(frame, "<f8", count=n, offset=off + 8 * n)
    if n and not (t.flags.aligned and y.flags.aligned):
        t, y = t.copy(), y.copy()
    return Data(name, header, t, y, view=kind == VIEW)


def _unpack(data: Any, what: str) -> dict:
    try:
        return wire.unpack(bytes(data))
    except ValueError as exc:
        raise FrameError(f"{what}: {exc}") from None


def samples_in(frame: bytes) -> int:
    """Samples a server data/view frame carries (0 for control frames or garbage)."""
    try:
        f = decode(frame)
    except FrameError:
        return 0
    return len(f.t) if isinstance(f, Data) else 0


def error_frame(rid: Any, op: Any, exc: BaseException, **extra: Any) -> bytes:
    code = getattr(exc, "code", None) if isinstance(exc, RtocError) else None
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return encode_control({"re": rid, "op": op, "ok": False, **extra,
                           "error": {"code": code or "bad_request", "message": text or type(exc).__name__}})


# -- sessions and the port to the running system -------------------------------------------------
@dataclass(eq=False)
class BinSession(Session):
    """A binary connection's state. ``signals``/``all_signals`` are its raw subscriptions,
    ``views`` its view subscriptions (so the server's bus subscription covers them);
    ``dropped`` counts samples it missed, ``dropped_frames`` frames."""

    channel: Channel | None = None       # set by an encrypting hello
    pending_user: str | None = None      # encrypted hello done, the sealed login awaited
    pending_role: str | None = None      # that user's role (None: unknown user)
    started: bool = False                # a frame was handled (hello must come first)
    pushed: int = 0                      # samples pushed
    push_frames: int = 0
    refused: int = 0                     # pushed frames refused
    dropped_frames: int = 0
    reported_frames: int = 0

    @classmethod
    def of(cls, s: Session) -> BinSession:
        return cls(s.address, s.role, s.anonymous_role, user=s.user, event_level=s.event_level)


class BinWorld(Protocol):
    """What the core needs of the running system: :class:`hub.Hub` has it all."""

    users: Users
    throttle: Throttle

    async def request(self, op: str, **fields: Any) -> dict: ...
    async def push(self, device: str, signal: str, unit: str, t: np.ndarray, y: np.ndarray,
                   replace: bool) -> None: ...
    def ring(self, name: str) -> tuple[np.ndarray, np.ndarray] | None: ...
    async def login(self, user: str | None, secret: str, is_token: bool, address: str,
                    now: float) -> tuple[str, str] | None | float: ...


def session_key(secret: bytes, salt: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869, one block): the 32-byte AES key of a session from the user's
    stored scrypt digest ``secret`` and the session's ``salt``."""
    prk = hmac.new(bytes(salt), bytes(secret), hashlib.sha256).digest()
    return hmac.new(prk, KEY_INFO + b"\x01", hashlib.sha256).digest()


@dataclass
class Outcome:
    """What one incoming frame produced: plaintext frames to send (sealed by the shell
    when the session is encrypted, unless ``clear``), whether the bus subscription must
    change, and the close code and reason when the connection must end."""

    frames: list[bytes] = field(default_factory=list)
    clear: bool = False
    resubscribe: bool = False
    close: tuple[int, str] | None = None


# -- the protocol core ---------------------------------------------------------------------------
_ROLES = {"hello": "none", "login": "none", "logout": "none", "ping": "none", "sync": "none",
          "subscribe": "read", "unsubscribe": "read", "signals": "read", "drivers": "read",
          "history": "read", "call": "write", "set": "write", "start": "write", "stop": "write"}


class BinaryProtocol:
    """Answers ``rtoc.bin.v1`` frames for every session of one server.

    ``secret`` keys the made-up hash salts of unknown users (random per server by
    default); ``random(n)`` gives the session salts (``os.urandom``).
    """

    def __init__(self, world: BinWorld, *, secret: bytes | None = None,
                 random: Callable[[int], bytes] = os.urandom, ack_every: int = ACK_EVERY):
        self.world = world
        self.random = random
        self.secret = secret if secret is not None else random(32)
        self.ack_every = ack_every
        self.claimed: set[str] = set()  # signals whose ring this core sized

    async def handle(self, s: BinSession, frame: bytes, now: float) -> Outcome:
        """The outcome of one frame from the client of ``s`` (``now``: unix s)."""
        if s.channel is not None:
            try:
                frame = s.channel.open(frame)
            except FrameRefused as exc:
                if s.pending_user is not None:
                    return self._login_failed(s, now)
                return Outcome([error_frame(None, None, exc, reason=exc.reason)],
                               close=(CLOSE_POLICY, exc.reason))
        try:
            f = decode(frame)
        except FrameError as exc:
            close = (CLOSE_POLICY, "bad login frame") if s.pending_user is not None else None
            return Outcome([error_frame(None, None, exc)], close=close)
        first, s.started = not s.started, True
        if s.pending_user is not None:
            return self._login_sealed(s, f, now)
        if isinstance(f, Data):
            return Outcome(await self._push(s, f))
        msg = f.msg
        op, rid = msg.get("op"), msg.get("rid")
        if rid is not None and not (isinstance(rid, int | str) and not isinstance(rid, bool)
                                    and len(str(rid)) <= 64):
            return Outcome([error_frame(None, op, BadRequest("rid must be an integer or short text"))])
        need = _ROLES.get(op) if isinstance(op, str) else None
        if need is None:
            return Outcome([error_frame(rid, op, BadRequest(
                f"unknown op {str(op)[:40]!r} (ops: {', '.join(sorted(_ROLES))})"))])
        if not s.may(need):
            return Outcome([error_frame(rid, op, Forbidden(
                f"{op} needs the {need} role (you have {s.role}"
                f"{'' if s.user else '; log in first'})"))])
        out = Outcome()
        try:
            reply = await getattr(self, f"_op_{op}")(s, msg, now, first, out)
        except (RtocError, ValueError, TypeError, KeyError) as exc:
            out.frames.append(error_frame(rid, op, exc))
            return out
        out.frames.append(encode_control({"re": rid, "op": op, "ok": True, **reply}))
        return out

    # -- pushes ------------------------------------------------------------------------------
    async def _push(self, s: BinSession, f: Data) -> list[bytes]:
        cseq = f.header.get("seq")
        cseq = cseq if isinstance(cseq, int) and not isinstance(cseq, bool) else None
        try:
            if f.view:
                raise BadRequest("clients cannot send view frames (0x03)")
            if not s.may("write"):
                raise Forbidden(f"pushing needs the write role (you have {s.role}"
                                f"{'' if s.user else '; log in first'})")
            device, signal = split_name(f.name)
            check_part("device", device)
            check_part("signal", signal)
            unit = f.header.get("unit", "")
            replace = f.header.get("replace", False)
            if not isinstance(unit, str) or len(unit) > 64 or not isinstance(replace, bool):
                raise BadRequest("a push's unit must be text (at most 64 characters) and "
                                 "replace true or false")
            if f.name not in self.claimed:
                await self._claim(device, signal, unit, len(f.t), f.header.get("rate"))
                self.claimed.add(f.name)
            await self.world.push(device, signal, unit, f.t, f.y, replace)
        except (RtocError, ValueError, TypeError) as exc:
            s.refused += 1
            return [error_frame(None, "push", exc, sig=f.name, seq=cseq)]
        s.pushed += len(f.t)
        s.push_frames += 1
        if s.push_frames % self.ack_every == 0:
            return [encode_control({"op": "ack", "pushed": s.pushed, "frames": s.push_frames,
                                    "seq": cseq})]
        return []

    async def _claim(self, device: str, signal: str, unit: str, n: int, hint: Any) -> None:
        """Create the signal with a ring for high-rate pushes before the hub's first write
        (the hub would size it for 1 sample/s: 65536 samples, one 64 k push). The ring holds
        ``CLAIM_FRAMES`` first frames, or ``ring_seconds`` at the header's ``rate`` (samples/s)
        when that is more; an existing signal keeps its ring."""
        seconds = float(getattr(self.world, "ring_seconds", 10.0))
        rate = CLAIM_FRAMES * n / seconds
        if isinstance(hint, int | float) and not isinstance(hint, bool) and 0 < hint < 1e12:
            rate = max(rate, float(hint))
        try:
            await self.world.request("create_signal", device=device, signal=signal, unit=unit,
                                     owner=OWNER, rate=max(rate, 1.0), seconds=seconds)
        except SignalOwned as exc:
            raise SignalOwned(f"{device}.{signal} is written by another writer ({exc}); a client "
                              "can only push signals no driver writes", f"{device}.{signal}") from None

    # -- logins ------------------------------------------------------------------------------
    async def _op_hello(self, s: BinSession, msg: dict, now: float, first: bool,
                        out: Outcome) -> dict:
        encrypt = msg.get("encrypt", False)
        if not isinstance(encrypt, bool):
            raise BadRequest("hello's encrypt must be true or false")
        if not encrypt:
            return {"server": "rtoc", "version": VERSION, "role": s.role, "user": s.user}
        if not first:
            raise BadRequest("an encrypting hello must be the connection's first frame")
        user = msg.get("user")
        if not isinstance(user, str) or not 0 < len(user) <= 64:
            raise BadRequest("an encrypting hello needs the user name (the key comes from its password)")
        wait = self.world.throttle.check(s.address, now)
        if wait > 0:
            out.close = (CLOSE_POLICY, "too many failed logins")
            raise LoginFailed(f"too many failed logins from {s.address}; wait {math.ceil(wait)} s")
        known = self.world.users.get(user)
        if known is not None:
            h = parse_hash(known.password_hash)
            n, r, p, hash_salt, secret, dklen = h.n, h.r, h.p, h.salt, h.digest, len(h.digest)
            s.pending_role = known.role
        else:  # the same answer shape as for a real user, and a key nobody can know
            n, r, p = self._default_cost()
            hash_salt = hmac.new(self.secret, b"salt\0" + user.encode("utf-8", "surrogatepass"),
                                 hashlib.sha256).digest()[:16]
            secret, dklen = self.random(32), 32
            s.pending_role = None
        salt = self.random(16)
        s.channel = Channel(session_key(secret, salt), "server")
        s.pending_user = user
        out.clear = True
        return {"salt": salt, "hash_salt": hash_salt, "n": n, "r": r, "p": p, "dklen": dklen}

    def _default_cost(self) -> tuple[int, int, int]:
        # Users checks unknown names against a dummy hash of the first user's cost: the same
        # cost here, so the reply for an unknown name looks like one for a real name
        dummy = getattr(self.world.users, "_dummy", None)
        if dummy is not None:
            return dummy.n, dummy.r, dummy.p
        return SCRYPT_N, SCRYPT_R, SCRYPT_P

    def _login_sealed(self, s: BinSession, f: Control | Data, now: float) -> Outcome:
        msg = f.msg if isinstance(f, Control) else {}
        if msg.get("op") != "login" or msg.get("user") != s.pending_user or s.pending_role is None:
            return Outcome([error_frame(msg.get("rid"), msg.get("op"), BadRequest(
                "the first sealed frame must be {op: 'login', user} with the hello's user"))],
                close=(CLOSE_POLICY, "bad login frame"))
        user, role = s.pending_user, s.pending_role
        s.pending_user = s.pending_role = None
        s.log_in(user, role)
        self.world.throttle.succeeded(s.address, now)
        return Outcome([encode_control({"re": msg.get("rid"), "op": "login", "ok": True,
                                        "user": user, "role": role})])

    def _login_failed(self, s: BinSession, now: float) -> Outcome:
        self.world.throttle.failed(s.address, now)
        s.channel = None
        s.pending_user = s.pending_role = None
        return Outcome([error_frame(None, "login", LoginFailed("wrong user or password"))],
                       clear=True, close=(CLOSE_POLICY, "login failed"))

    async def _op_login(self, s: BinSession, msg: dict, now: float, first: bool,
                        out: Outcome) -> dict:
        user, password = msg.get("user"), msg.get("password")
        if not isinstance(user, str) or not isinstance(password, str) or len(password) > 1024:
            raise BadRequest("login needs user and password (text)")
        if s.channel is not None:
            raise BadRequest("an encrypted session is logged in by its handshake")
        found = await self.world.login(user, password, False, s.address, now)
        if isinstance(found, float):
            raise LoginFailed(f"too many failed logins from {s.address}; wait {math.ceil(found)} s")
        if found is None:
            raise LoginFailed("wrong user or password")
        s.log_in(*found)
        return {"user": s.user, "role": s.role}

    async def _op_logout(self, s: BinSession, msg: dict, now: float, first: bool,
                         out: Outcome) -> dict:
        s.log_out()
        return {"role": s.role}

    async def _op_ping(self, s: BinSession, msg: dict, now: float, first: bool,
                       out: Outcome) -> dict:
        return {"pong": True, "time": now}

    async def _op_sync(self, s: BinSession, msg: dict, now: float, first: bool,
                       out: Outcome) -> dict:
        return {"pushed": s.pushed, "frames": s.push_frames, "refused": s.refused}

    # -- subscriptions -------------------------------------------------------------------------
    async def _op_subscribe(self, s: BinSession, msg: dict, now: float, first: bool,
                            out: Outcome) -> dict:
        mode = msg.get("mode", "raw")
        if mode not in ("raw", "view"):
            raise BadRequest("mode must be 'raw' or 'view'")
        names = msg.get("signals")
        if names == "*" and mode == "raw":
            s.all_signals = True
        else:
            (s.signals if mode == "raw" else s.views).update(_names(names))
        out.resubscribe = True
        return _subscription(s)

    async def _op_unsubscribe(self, s: BinSession, msg: dict, now: float, first: bool,
                              out: Outcome) -> dict:
        mode = msg.get("mode")
        if mode not in (None, "raw", "view"):
            raise BadRequest("mode must be 'raw', 'view' or absent (both)")
        names = msg.get("signals", "*")
        sets = [s.signals, s.views] if mode is None else [s.signals if mode == "raw" else s.views]
        if names == "*":
            for x in sets:
                x.clear()
            if mode != "view":
                s.all_signals = False
        else:
            for x in sets:
                x.difference_update(_names(names))
        out.resubscribe = True
        return _subscription(s)

    # -- reading -------------------------------------------------------------------------------
    async def _op_signals(self, s: BinSession, msg: dict, now: float, first: bool,
                          out: Outcome) -> dict:
        signals = (await self.world.request("signals"))["signals"]
        return {"signals": [{k: v for k, v in sig.items() if k != "path"} for sig in signals]}

    async def _op_drivers(self, s: BinSession, msg: dict, now: float, first: bool,
                          out: Outcome) -> dict:
        return {"drivers": (await self.world.request("drivers"))["drivers"]}

    async def _op_history(self, s: BinSession, msg: dict, now: float, first: bool,
                          out: Outcome) -> dict:
        name = msg.get("signal")
        if not isinstance(name, str):
            raise BadRequest("history needs signal, a \"Device.Signal\" name")
        split_name(name)
        lo, hi = _number(msg.get("from"), "from"), _number(msg.get("to"), "to")
        max_points = msg.get("max_points")
        if max_points is not None and not (isinstance(max_points, int) and not isinstance(max_points, bool)
                                           and 4 <= max_points <= 2_000_000):
            raise BadRequest("max_points must be an integer 4..2000000")
        fields: dict[str, Any] = {"signal": name, "from": lo, "to": hi}
        if max_points is not None:
            fields["max_points"] = max_points
        try:
            reply = await self.world.request("history", **fields)
            t, y = reply["t"], reply["y"]
        except (ArchiveOff, EngineUnavailable):
            ring = self.world.ring(name)
            if ring is None:
                raise
            rt, ry = ring
            keep = (rt >= (-math.inf if lo is None else lo)) & (rt <= (math.inf if hi is None else hi))
            t, y = rt[keep].astype("<f8").tobytes(), ry[keep].astype("<f8").tobytes()
        return {"signal": name, "n": len(t) // 8, "t": bytes(t), "y": bytes(y)}

    # -- drivers -------------------------------------------------------------------------------
    async def _op_call(self, s: BinSession, msg: dict, now: float, first: bool,
                       out: Outcome) -> dict:
        args, kwargs = msg.get("args") or [], msg.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise BadRequest("call's args must be a list and kwargs a map")
        reply = await self.world.request("call", driver=_text(msg, "driver"),
                                         function=_text(msg, "function"), args=args, kwargs=kwargs)
        return {"result": reply.get("result")}

    async def _op_set(self, s: BinSession, msg: dict, now: float, first: bool,
                      out: Outcome) -> dict:
        if "value" not in msg:
            raise BadRequest("set needs driver, param and value")
        reply = await self.world.request("set", driver=_text(msg, "driver"),
                                         param=_text(msg, "param"), value=msg["value"])
        return {"value": reply.get("value")}

    async def _op_start(self, s: BinSession, msg: dict, now: float, first: bool,
                        out: Outcome) -> dict:
        return {"state": (await self.world.request("start", driver=_text(msg, "driver")))["state"]}

    async def _op_stop(self, s: BinSession, msg: dict, now: float, first: bool,
                       out: Outcome) -> dict:
        return {"state": (await self.world.request("stop", driver=_text(msg, "driver")))["state"]}


def _text(msg: dict, key: str) -> str:
    v = msg.get(key)
    if not isinstance(v, str) or not v or len(v) > 256:
        raise BadRequest(f"{msg.get('op')} needs {key} (text)")
    return v


def _number(v: Any, what: str) -> float | None:
    if v is None:
        return None
    if not isinstance(v, int | float) or isinstance(v, bool) or (isinstance(v, float) and math.isnan(v)):
        raise BadRequest(f"{what} must be a number (unix seconds)")
    return float(v)


def _names(v: Any) -> list[str]:
    if not (isinstance(v, list) and len(v) <= MAX_NAMES and all(isinstance(x, str) for x in v)):
        raise BadRequest(f"signals must be a list of \"Device.Signal\" names (at most {MAX_NAMES})"
                         " or \"*\" (raw only)")
    for x in v:
        split_name(x)
        if "/" in x or len(x) > MAX_NAME:
            raise BadRequest(f"bad signal name {x[:60]!r}")
    return v


def _subscription(s: BinSession) -> dict:
    return {"signals": sorted(s.signals), "all": s.all_signals, "views": sorted(s.views)}


# -- the fan-out ---------------------------------------------------------------------------------
@dataclass
class _Run:
    """Consecutive samples of one signal waiting for the next push (chunks, in order)."""

    seq: int
    lost: int
    replace: bool
    t: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    n: int = 0


@dataclass
class _Views:
    t: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    width: float = 0.0
    n: int = 0


class BinaryFanout:
    """The waiting data frames of every binary session. Pure.

    The server's bus loop feeds each batch in (``data``, ``view``); every ``push_interval``
    ``take(session)`` gives that session's frames: per signal, the batches since the last
    take, concatenated while consecutive (``seq`` continues, nothing lost or replaced in
    between), cut into frames of at most ``max_frame`` samples. A session that lets more
    than ``max_pending`` samples of one signal pile up loses the oldest (counted in
    ``session.dropped``; the client sees the gap in ``seq``).
    """

    def __init__(self, max_pending: int = 1 << 22, max_frame: int = 1 << 19):
        self.max_pending, self.max_frame = max_pending, max_frame
        self.pending: dict[BinSession, dict[str, list[_Run]]] = {}
        self.views: dict[BinSession, dict[str, _Views]] = {}

    def add(self, session: BinSession) -> None:
        self.pending[session] = {}
        self.views[session] = {}

    def remove(self, session: BinSession) -> None:
        self.pending.pop(session, None)
        self.views.pop(session, None)

    def sessions(self) -> list[BinSession]:
        return list(self.pending)

    def data(self, name: str, seq: int, lost: int, t: np.ndarray, y: np.ndarray,
             replace: bool = False) -> None:
        """A bus batch (``t``/``y`` float64[n], kept: pass owned or read-only buffers)."""
        n = len(t)
        if not n and not replace:
            return
        for session, waiting in self.pending.items():
            if not session.wants_signal(name):
                continue
            runs = waiting.setdefault(name, [])
            last = runs[-1] if runs else None
            if last is not None and not lost and not replace and last.seq + last.n == seq:
                run = last
            else:
                run = _Run(seq, lost, replace)
                runs.append(run)
            run.t.append(t)
            run.y.append(y)
            run.n += n
            self._trim(session, runs)

    def _trim(self, session: BinSession, runs: list[_Run]) -> None:
        total = sum(r.n for r in runs)
        while total > self.max_pending and (len(runs) > 1 or len(runs[0].t) > 1):
            run = runs[0]
            k = len(run.t[0])
            del run.t[0], run.y[0]
            run.n -= k
            run.seq += k
            run.lost = 0
            total -= k
            session.dropped += k
            if not run.t:
                del runs[0]

    def view(self, name: str, t: np.ndarray, y: np.ndarray, width: float) -> None:
        for session, waiting in self.views.items():
            if name in session.views and session.may("read"):
                v = waiting.setdefault(name, _Views())
                v.t.append(t)
                v.y.append(y)
                v.n += len(t)
                v.width = width
                while v.n > self.max_pending and len(v.t) > 1:
                    v.n -= len(v.t[0])
                    del v.t[0], v.y[0]

    def take(self, session: BinSession) -> list[bytes]:
        """The session's frames since the last call (plaintext), then nothing waits."""
        out: list[bytes] = []
        waiting = self.pending.get(session)
        if waiting:
            for name, runs in waiting.items():
                for run in runs:
                    t, y = _cat(run.t), _cat(run.y)
                    for i in range(0, max(run.n, 1), self.max_frame):
                        header = {"sig": name, "seq": run.seq + i, "lost": run.lost if i == 0 else 0}
                        if run.replace and i == 0:
                            header["replace"] = True
                        out.append(encode_data(header, t[i:i + self.max_frame], y[i:i + self.max_frame]))
            waiting.clear()
        views = self.views.get(session)
        if views:
            for name, v in views.items():
                out.append(encode_view(name, _cat(v.t), _cat(v.y), v.width))
            views.clear()
        return out


def dropped_report(session: BinSession) -> bytes | None:
    """The ``dropped`` push when the session missed more since the last report, else None."""
    if (session.dropped, session.dropped_frames) == (session.reported_dropped, session.reported_frames):
        return None
    session.reported_dropped, session.reported_frames = session.dropped, session.dropped_frames
    return encode_control({"op": "dropped", "frames": session.dropped_frames,
                           "samples": session.dropped})


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.empty(0, np.float64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
