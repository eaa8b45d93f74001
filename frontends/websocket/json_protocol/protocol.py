"""The RTOC JSON protocol core: one client message in, reply objects out. No sockets.

A message is one JSON object that may carry several commands (RTOC's keys, docs/PROTOCOL.md
"Websocket"). :meth:`JsonProtocol.handle` checks the raw text against the limits before
parsing (``guard``), checks every key (known, allowed for the client's role, of the
right shape) and answers each command; the reply is one object ``{"error": false, ...}``
with a key per answered command. A bad key is answered under ``errors`` (``"error": true``)
and nothing of it is stored, while the good keys of the same message still run. Only an
RtocError (a BadRequest of the command's shape, a refusal of the instance) is the client's
answer; any other exception is a bug of ours: logged with its traceback and answered
``internal error``.

Whatever needs the running system goes through the :class:`World` port, which the server
implements over the control plane, the rings and the inbox, and the tests over plain
dictionaries: the core itself reads no clock (``now`` is an argument) and opens nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import orjson
from rtoc.frontends.websocket.json_protocol import commands, manage
from rtoc.frontends.websocket.json_protocol.fanout import dumps
from rtoc.frontends.websocket.json_protocol.fastpush import SENT, PushGather
from rtoc.frontends.websocket.json_protocol.framing import encode
from rtoc.frontends.websocket.json_protocol.guard import Limits, MessageRejected, loads
from rtoc.frontends.websocket.session import Session, SubscriptionLimit

from rtoc.errors import RtocError

log = logging.getLogger(__name__)
#: the answer to a command that failed by a bug of ours (the traceback is logged)
INTERNAL = "internal error (the server logged it)"
#: getSignal replies read, decimated and encoded on worker threads at once (the rest wait)
HEAVY_THREADS = 1
#: the frame of the shared "sent" reply of the fast push road, encoded once
SENT_FRAME = encode(dumps(SENT).encode())
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS  # as fanout.dumps
Wrap = Callable[[bytes], bytes]  # a reply's JSON -> what its frame carries

class World(Protocol):
    """What the protocol needs of the running system (the server's adapter implements it)."""

    async def request(self, op: str, **fields: Any) -> dict:
        """A control-plane request; raises the RtocError of an error reply."""

    async def push(self, device: str, signal: str, unit: str, t: np.ndarray, y: np.ndarray,
                   replace: bool, client: str = "") -> None:
        """Write samples (float64[n] each) into the signal's ring; ``replace``: a plot. A
        new ring counts against ``client``'s ring budget (``Session.budget_key``)."""

    def writes(self, name: str) -> bool:
        """True while pushes to ``name`` go straight into a ring this process holds (its
        names were checked when it was claimed; such a write cannot be refused)."""

    async def remove_signal(self, name: str) -> dict:
        """Remove a signal that clients pushed (its ring; the archive keeps its history)."""

    def emit_event(self, event: dict) -> None:
        """Hand an event (``Event.to_dict()`` shape) to the engine."""

    def ring(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """What the signal's ring holds now (t, y float64[n]), or None when unknown."""

    async def login(self, user: str | None, secret: str, is_token: bool,
                    address: str, now: float) -> tuple[str, str] | None | float:
        """(user, role) when the secret fits; None when not; a float (seconds to wait)
        when the address is throttled."""


#: Every key a message may carry (the data push is filed under "y").
TABLE = {**commands.TABLE, **manage.TABLE}
RANK = {k: i for i, k in enumerate(commands.ORDER)}
#: RTOC's data push: these keys together are one command.
PUSH_KEYS = ("y", "x", "sname", "dname", "unit", "plot")


class JsonProtocol:
    """Answers the RTOC JSON protocol for every session of one server."""

    def __init__(self, world: World, limits: Limits, subscriptions: SubscriptionLimit | None = None,
                 reply_points: int = commands.REPLY_POINTS):
        """``subscriptions`` is shared with the binary road (the total is the server's);
        ``reply_points``: points in all of one ``getSignal`` reply at most."""
        self.world = world
        self.limits = limits
        self.subscriptions = subscriptions or SubscriptionLimit()
        self.reply_points = reply_points
        self.replies_refused = 0  # getSignal requests past reply_points
        self.heavy = asyncio.Semaphore(HEAVY_THREADS)

    async def handle(self, session: Session, data: str | bytes, now: float) -> list[dict]:
        """The replies to one message, in order (``authorize`` adds ``{"authorized": b}``
        after the main reply, as RTOC did)."""
        try:
            msg = loads(data, self.limits)
        except MessageRejected as exc:
            return [{"error": True, "message": str(exc), "errors": {"message": str(exc)}}]
        reply: dict[str, Any] = {"error": False}
        errors: dict[str, str] = {}
        extra: list[dict] = []
        unknown = [k for k in msg if k not in TABLE and k not in PUSH_KEYS]
        for key in unknown:
            errors[_short(key)] = f"unknown key {_short(key)!r}"
        if any(k in msg for k in PUSH_KEYS):
            await self._run(session, "y", {k: msg[k] for k in PUSH_KEYS if k in msg}, msg,
                            now, reply, errors)
        for key in sorted((k for k in msg if k in TABLE and k != "y"), key=RANK.__getitem__):
            result = await self._run(session, key, msg[key], msg, now, reply, errors)
            if key == "authorize":  # RTOC clients wait for this answer, also on errors
                # authorized: the role the client asked for (RTOC knew one: everything); a
                # client that got less (read) is told so, and which role it has
                full = bool(result) and session.may("write")
                extra.append({"authorized": full, "role": session.role,
                              **({} if full or not result else {"message": "logged in read-only"})})
        if errors:
            reply["error"] = True
            reply["errors"] = errors
            reply["message"] = "; ".join(f"{k}: {v}" for k, v in errors.items())
        self._report_dropped(session, reply)
        return [reply, *extra]

    async def handle_batch(self, session: Session, messages: list, now: float) -> list[dict]:
        """The replies to several messages in order, as :meth:`handle` gives them one by one.

        Plain data pushes take the fast road (``fastpush``): their samples are gathered per
        signal and written once, before the next message that takes the full road and at
        the end, so every command sees the samples sent before it. Their reply is the
        shared :data:`SENT` object (a shell may send it pre-encoded).
        """
        gather = PushGather(self.limits)
        checked = gather.numbers_short(messages)
        out: list[dict] = []
        i = 0
        while i < len(messages):
            if session.may("write") and session.dropped == session.reported_dropped:
                taken = gather.take(messages, i, now, self.world.writes, len(out), checked)
                if taken:
                    out += [SENT] * taken
                    i += taken
                    continue
            await self._write_gathered(gather, out)
            out += await self.handle(session, messages[i], now)
            i += 1
        await self._write_gathered(gather, out)
        return out

    async def encode(self, replies: list[dict], wrap: Wrap | None = None) -> bytes:
        """The replies as one block of websocket text frames, each payload passed through
        ``wrap`` when given (RTOC 3.0's encryption). A block holding a big ``getSignal``
        answer (``commands.Heavy``: megabytes of JSON) is encoded on a worker thread, so the
        other clients' replies do not wait for it."""
        if any(type(r.get("signals")) is commands.Heavy for r in replies if r is not SENT):
            async with self.heavy:
                return await asyncio.to_thread(encode_replies, replies, wrap)
        return encode_replies(replies, wrap)

    async def _write_gathered(self, gather: PushGather, out: list[dict]) -> None:
        for device, signal, unit, t, y, replies in gather.drain():
            try:
                await self.world.push(device, signal, unit, t, y, False)
            except (RtocError, ValueError) as exc:  # the ring went away meanwhile (a remove)
                failed = {"error": True, "errors": {"y": _message(exc)},
                          "message": f"y: {_message(exc)}"}
                for i in replies:
                    out[i] = failed

    async def _run(self, session: Session, key: str, value: Any, msg: dict, now: float,
                   reply: dict, errors: dict) -> Any:
        spec = TABLE[key]
        if not session.may(spec.role):
            errors[key] = (f"needs the {spec.role} role (you have {session.role}"
                           f"{'' if session.user else '; log in with authorize or login'})")
            return None
        try:
            result = await spec.run(self, session, value, msg, now)
        except RtocError as exc:
            errors[key] = _message(exc)
            return None
        except Exception:
            log.exception("websocket command %r of %s failed", key, session.address)
            errors[key] = INTERNAL
            return None
        if spec.reply is not None and result is not None:
            reply[spec.reply] = result
        return result

    @staticmethod
    def _report_dropped(session: Session, reply: dict) -> None:
        if session.report_dropped():
            reply["dropped"] = session.dropped


def encode_replies(replies: list[dict], wrap: Wrap | None = None) -> bytes:
    """One text frame per reply, joined (``SENT`` pre-encoded); a reply with a big
    ``getSignal`` answer (``commands.Heavy``) with its arrays encoded in chunks. ``wrap``
    turns each reply's JSON into what the frame carries (RTOC 3.0's encryption)."""
    if wrap is not None:
        return b"".join(encode(wrap(_payload(r))) for r in replies)
    return b"".join(SENT_FRAME if r is SENT else encode(_payload(r)) for r in replies)


def _payload(reply: dict) -> bytes:
    """A reply's JSON text (UTF-8)."""
    if type(reply.get("signals")) is not commands.Heavy:
        return dumps(reply).encode()
    heavy = reply["signals"]
    try:
        return orjson.dumps({**reply, "signals": heavy.fragments()}, option=_OPTIONS)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits elsewhere: the slow encoder
        return dumps({**reply, "signals": heavy.lists()}).encode()


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _short(key: str, n: int = 60) -> str:
    return key if len(key) <= n else key[:n] + "..."

