"""The binary websocket subprotocol ``rtoc.bin.v1``: the protocol core. Pure.

No sockets, no clock (``now`` is an argument), no logging set-up. The frame codec is
:mod:`rtoc.client.frames`, the AES-GCM channel :mod:`rtoc.client.aead` (both shared with the client,
:mod:`rtoc.client`); the fan-out of pushed data is :mod:`binary_fanout`, the asyncio shell
:mod:`binary_shell`. docs/PROTOCOL.md describes the protocol for client authors.

Negotiation. A client that offers the websocket subprotocol ``rtoc.bin.v1`` gets this
protocol (:func:`select_subprotocol`); every other connection keeps the JSON protocol.

Control messages. Client requests carry ``op`` and an optional ``rid``; replies are
``{"re": rid, "op": op, "ok": true, ...}`` or ``{"re": rid, "op": op, "ok": false,
"error": {"code", "message"}}``. Server pushes carry ``op`` and no ``re``: ``dropped``
``{frames, samples}`` (totals this client missed), ``ack`` ``{pushed, frames, seq}``
(every :data:`ACK_EVERY` pushed frames), ``push`` with ``ok: false`` (a refused push, with
its ``sig`` and the client's ``seq``).

Ops (role needed): ``hello {encrypt, user?}`` (none; first frame when encrypting),
``login {user, password}`` (none; unencrypted sessions), ``logout``, ``ping``,
``subscribe {signals: [names] | "*", mode: "raw" | "view"}`` and ``unsubscribe {signals,
mode?}`` (read), ``signals``, ``drivers``, ``history {signal, from?, to?, max_points?}``
(read; ``t``/``y`` as float64 LE bytes), ``sync`` (``{pushed, frames, refused}``: pushes are
acknowledged only by ``ack`` pushes and ``sync``, to keep the rate high), ``call``, ``set``,
``start``, ``stop`` (write; as the JSON ``plugin`` command). A data frame from a client is a
push and needs ``write``. A malformed frame is answered with an error (code ``bad_frame``)
and the connection lives on, except inside an encrypted session (below). Names, numbers
and limits follow the rules the JSON protocol uses too (:mod:`validate`). Only an RtocError
is the client's answer; any other exception is a bug of ours: logged with its traceback and
answered with code ``internal``.

Encryption (:class:`rtoc.client.aead.Channel`). The server stores no passwords, only
``scrypt(rtoc_token(password), hash_salt, n, r, p)`` per user (:mod:`auth`); that digest is
the shared secret:

1. client -> server, clear: ``hello {user, encrypt: true}``;
2. server -> client, clear: ``{op: "hello", ok, salt: 16 fresh random bytes, hash_salt,
   n, r, p, dklen}``, the user's hash parameters. For an unknown user the parameters are
   made up (``hash_salt`` = HMAC of the name under a per-server secret, the first user's
   costs), so the reply does not tell which names exist;
3. both: ``secret`` = the scrypt digest (the client computes it from the password),
   ``key = session_key(secret, salt)`` (HKDF-SHA256); from now on every frame both ways is
   ``Channel.seal``-ed (byte 0 of the plaintext is the frame kind);
4. client -> server, sealed: ``login {user}``. It opens iff the client knows the secret;
   the session is then logged in as that user (reply sealed, so the client also knows it
   talks to a server that holds the hash). A login frame that does not open counts as a
   failed login (throttled like any other) and closes the connection (1008).

After the login, a frame that does not open (tampered, replayed, reordered, from another
session) is answered with a sealed error and closes the connection (1008).

Threat model (see also :mod:`rtoc.client.aead`). Against a network attacker who knows neither the
password nor the stored hash: confidentiality and integrity of every frame, mutual
authentication, no replay. The stored hash is a password equivalent for this channel:
whoever reads the server's config can log in as that user over ``rtoc.bin.v1`` (never over
the JSON protocol, which needs the password itself). A recorded session allows offline
guessing of the password at one scrypt (the stored hash's cost) per guess. The handshake
is in the clear: user names and hash parameters travel unencrypted. TLS (``wss://``,
``tls_cert``/``tls_key``) protects everything, including the JSON protocol, and is the
better tool where certificates can be had.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from rtoc.frontends.websocket.auth import SCRYPT_N, SCRYPT_P, SCRYPT_R, Throttle, Users, parse_hash
from rtoc.frontends.websocket.ring_window import from_ring
from rtoc.frontends.websocket.session import Session, SubscriptionLimit
from rtoc.frontends.websocket.validate import (
    MAX_PASSWORD,
    MAX_POINTS,
    MAX_UNIT,
    MAX_USER,
    integer,
    number,
    signal_name,
)
from rtoc.frontends.websocket.validate import names as name_list

from rtoc.client.aead import Channel, FrameRefused, session_key
from rtoc.client.frames import (
    SUBPROTOCOL,
    VERSION,
    Control,
    Data,
    FrameError,
    decode,
    encode_control,
)
from rtoc.errors import (
    ArchiveOff,
    BadRequest,
    EngineUnavailable,
    Forbidden,
    LoginFailed,
    RtocError,
    SignalOwned,
)

log = logging.getLogger(__name__)
ACK_EVERY = 64              # pushed frames between two ``ack`` pushes
CLAIM_FRAMES = 64           # a pushed signal's ring holds this many first frames (<= 4 M samples)
OWNER = "websocket"         # hub.OWNER: the pre-claim must be the hub's own claim
CLOSE_POLICY = 1008         # websocket close code: policy violation


def select_subprotocol(conn: Any, offered: Any) -> str | None:
    """websockets' ``select_subprotocol``: ``rtoc.bin.v1`` when offered, else none (JSON).

    (``serve(subprotocols=[...])`` would refuse every client that offers no subprotocol.)
    """
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def error_frame(rid: Any, op: Any, exc: RtocError, **extra: Any) -> bytes:
    """The error reply to a request (``rid``, ``op``) that ``exc`` refused."""
    return encode_control({"re": rid, "op": op, "ok": False, **extra,
                           "error": {"code": exc.code, "message": str(exc) or type(exc).__name__}})


def internal_frame(rid: Any, op: Any, exc: BaseException, **extra: Any) -> bytes:
    """The reply to a request that failed by a bug of ours (``exc``, already logged)."""
    return encode_control({"re": rid, "op": op, "ok": False, **extra, "error": {
        "code": "internal", "message": f"internal error ({type(exc).__name__}; the server logged it)"}})


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

    def report_dropped(self) -> bool:
        """As :meth:`Session.report_dropped`, counting lost frames too."""
        if (self.dropped, self.dropped_frames) == (self.reported_dropped, self.reported_frames):
            return False
        self.reported_dropped, self.reported_frames = self.dropped, self.dropped_frames
        return True

    @classmethod
    def of(cls, s: Session) -> BinSession:
        return cls(s.address, s.role, s.anonymous_role, user=s.user, event_level=s.event_level)


class BinWorld(Protocol):
    """What the core needs of the running system: :class:`hub.Hub` has it all."""

    users: Users
    throttle: Throttle

    async def request(self, op: str, **fields: Any) -> dict: ...
    async def push(self, device: str, signal: str, unit: str, t: np.ndarray, y: np.ndarray,
                   replace: bool, client: str = "") -> None: ...
    def ring(self, name: str) -> tuple[np.ndarray, np.ndarray] | None: ...
    async def login(self, user: str | None, secret: str, is_token: bool, address: str,
                    now: float) -> tuple[str, str] | None | float: ...


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
          "history": "read", "events": "read", "call": "write", "set": "write", "start": "write",
          "stop": "write"}
EVENT_FIELDS = ("since", "until", "min_priority", "limit")  # numbers only; the rest is refused


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
        self.subscriptions = SubscriptionLimit()  # the server shares one with the JSON road
        self.heavy = asyncio.Semaphore(1)  # ring copies on worker threads (shared with JSON too)

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
        except RtocError as exc:
            out.frames.append(error_frame(rid, op, exc))
            return out
        except Exception as exc:
            log.exception("rtoc.bin.v1 %r of %s failed", op, s.address)
            out.frames.append(internal_frame(rid, op, exc))
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
            device, signal = signal_name(f.name)
            unit = f.header.get("unit", "")
            replace = f.header.get("replace", False)
            if not isinstance(unit, str) or len(unit) > MAX_UNIT or not isinstance(replace, bool):
                raise BadRequest(f"a push's unit must be text (at most {MAX_UNIT} characters) "
                                 "and replace true or false")
            if f.name not in self.claimed:
                await self._claim(device, signal, unit, len(f.t), f.header.get("rate"), s.budget_key)
                self.claimed.add(f.name)
            await self.world.push(device, signal, unit, f.t, f.y, replace)
        except RtocError as exc:
            s.refused += 1
            return [error_frame(None, "push", exc, sig=f.name, seq=cseq)]
        except Exception as exc:
            log.exception("rtoc.bin.v1 push of %s from %s failed", f.name, s.address)
            s.refused += 1
            return [internal_frame(None, "push", exc, sig=f.name, seq=cseq)]
        s.pushed += len(f.t)
        s.push_frames += 1
        if s.push_frames % self.ack_every == 0:
            return [encode_control({"op": "ack", "pushed": s.pushed, "frames": s.push_frames,
                                    "seq": cseq})]
        return []

    async def _claim(self, device: str, signal: str, unit: str, n: int, hint: Any,
                     client: str) -> None:
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
                                     owner=OWNER, rate=max(rate, 1.0), seconds=seconds,
                                     client=client)
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
        if not isinstance(user, str) or not 0 < len(user) <= MAX_USER:
            raise BadRequest("an encrypting hello needs the user name (the key comes from its password)")
        wait = self.world.throttle.begin(s.address, now, user)  # decided by the login frame
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
        self.world.throttle.succeeded(s.address, now, user)
        return Outcome([encode_control({"re": msg.get("rid"), "op": "login", "ok": True,
                                        "user": user, "role": role})])

    def _login_failed(self, s: BinSession, now: float) -> Outcome:
        self.world.throttle.failed(s.address, now, s.pending_user)  # begun by the hello
        s.channel = None
        s.pending_user = s.pending_role = None
        return Outcome([error_frame(None, "login", LoginFailed("wrong user or password"))],
                       clear=True, close=(CLOSE_POLICY, "login failed"))

    async def _op_login(self, s: BinSession, msg: dict, now: float, first: bool,
                        out: Outcome) -> dict:
        user, password = msg.get("user"), msg.get("password")
        if not isinstance(user, str) or not isinstance(password, str) or len(password) > MAX_PASSWORD:
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
            target = s.signals if mode == "raw" else s.views
            new = set(_names(names)) - target
            self.subscriptions.admit(s, s.subscription_count() + len(new))
            target.update(new)
        s.changed()
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
        s.changed()
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

    async def _op_events(self, s: BinSession, msg: dict, now: float, first: bool,
                         out: Outcome) -> dict:
        """The engine's latest events (``since``/``until`` unix s, ``min_priority``,
        ``limit`` at most 10 000): the viewer's events panel over the network."""
        fields = {}
        for key in EVENT_FIELDS:
            if key in msg:
                value = msg[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                    raise BadRequest(f"'{key}' must be a number")
                fields[key] = value
        fields["limit"] = max(1, min(int(fields.get("limit", 1000)), 10_000))
        return {"events": (await self.world.request("events", **fields))["events"]}

    async def _op_history(self, s: BinSession, msg: dict, now: float, first: bool,
                          out: Outcome) -> dict:
        name = msg.get("signal")
        if not isinstance(name, str):
            raise BadRequest("history needs signal, a \"Device.Signal\" name")
        signal_name(name)
        lo, hi = _time(msg.get("from"), "from"), _time(msg.get("to"), "to")
        max_points = msg.get("max_points")
        if max_points is not None:
            integer(max_points, "max_points", 4, MAX_POINTS)
        fields: dict[str, Any] = {"signal": name, "from": lo, "to": hi}
        if max_points is not None:
            fields["max_points"] = max_points
        try:
            reply = await self.world.request("history", **fields)
            t, y = reply["t"], reply["y"]
        except (ArchiveOff, EngineUnavailable):
            # the ring alone: copied and decimated on a worker thread, one at a time, at
            # most max_points (the archive's own bound without it) samples
            async with self.heavy:
                got = await asyncio.to_thread(from_ring, self.world, name, lo, hi,
                                              max_points or MAX_POINTS, True)
            if got is None:
                raise
            t, y = got[0].astype("<f8").tobytes(), got[1].astype("<f8").tobytes()
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


def _time(v: Any, what: str) -> float | None:
    return None if v is None else number(v, what, "unix seconds", nan=False)


def _names(v: Any) -> list[str]:
    return name_list(v, "signals", ' or "*" (raw only)')


def _subscription(s: BinSession) -> dict:
    return {"signals": sorted(s.signals), "all": s.all_signals, "views": sorted(s.views)}
