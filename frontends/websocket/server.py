"""The websocket process: asyncio shell around the protocol core, the fan-out and HTTP.

Read, feed, drain, write: the websocket messages a JSON client sent since the last turn
(``BatchConnection.next_batch``) go to :meth:`JsonProtocol.handle_batch` and their replies,
encoded as one block of frames, to the client's send queue; the bus reader feeds :class:`Fanout`, whose messages
a timer moves to the send queues every ``push_interval``. Each client has one sender task
and a queue bounded in bytes (``send_queue_bytes``; its inbox too, ``inbox_bytes``):
replies wait for room (a client that does not read slows only itself), pushes that find
the queue full are dropped and counted, and a client whose queue stays full
``slow_client_timeout`` s is closed (1008) and counted. A connection's slot (``max_clients``,
``max_clients_per_address``) and its queue are freed when its TCP connection is lost,
whatever its tasks are waiting for.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import http
import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import zmq
import zmq.asyncio
from rtoc.frontends.websocket import http as routes
from rtoc.frontends.websocket import legacy_crypto
from rtoc.frontends.websocket.auth import (
    Throttle,
    User,
    Users,
    accepted_hosts,
    hash_password,
    host_allowed,
    origin_allowed,
)
from rtoc.frontends.websocket.binary_protocol import shell as binary_shell
from rtoc.frontends.websocket.binary_protocol.protocol import SUBPROTOCOL, select_subprotocol
from rtoc.frontends.websocket.binary_protocol.shell import SendQueue, close_now, slow_reason
from rtoc.frontends.websocket.hub import Hub
from rtoc.frontends.websocket.json_protocol.batch_conn import BatchConnection
from rtoc.frontends.websocket.json_protocol.fanout import Fanout, dumps
from rtoc.frontends.websocket.json_protocol.fastpush import SENT
from rtoc.frontends.websocket.json_protocol.framing import encode, warm_up
from rtoc.frontends.websocket.json_protocol.guard import Limits
from rtoc.frontends.websocket.json_protocol.protocol import JsonProtocol
from rtoc.frontends.websocket.loop_lag import LoopLag
from rtoc.frontends.websocket.session import Session, SubscriptionLimit
from rtoc.pipeline.child import ChildSpec, run_child
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rtoc import wire
from rtoc.config import LEGACY_USER, WebsocketConfig
from rtoc.errors import ConfigError

log = logging.getLogger(__name__)
SENT_FRAME = encode(dumps(SENT).encode())
FAULT_FLUSH = 1.0  # s: a broken frame's connection waits this long at most for earlier replies
REFRESH = 1.0  # s between refreshes of the signal table (units, ids, ring paths)
CHUNK = 1000  # messages of a batch handled at most before their replies wait for room
CLOSE_SLOW = 1008  # close code for a client that does not read (policy violation)
CLOSE_STUCK = 1011  # ... that has not read for ping_timeout (as a missed pong: PROTOCOL.md)
TCP_ESTABLISHED = 1  # tcp_info's first byte: the connection's state (Linux)
BIG_WAIT = 1.0  # s between checks that a client waiting for a big-reply slot is still there
BIG_POLL = 0.05  # s between looks whether its address may take another slot
BIG_MESSAGES = 64 << 10  # bytes of a chunk of messages past which it takes the big lane
BIG_REST = 0.1  # s the big lane rests at most after one chunk
NEWCONNECTED = dumps({"client": "newconnected"})  # RTOC's push when a client connects
ANNOUNCE_EVERY = 1.0  # s between two newconnected pushes at least
CLOSE_LEGACY = 1008  # close code for an encrypted RTOC 3.0 message the server cannot take
LEGACY_OFF = ("RTOC 3.0's encrypted messages need [websocket] legacy_rtoc_encryption = true; "
              "its client encrypts with a password for any host but localhost and 127.0.0.1: "
              "better connect over TLS (wss://) or to localhost")


def _machine_names() -> tuple[str, ...]:
    """This machine's names, for a server listening on every address."""
    name = socket.gethostname().lower()
    return (name, f"{name}.local", socket.getfqdn().lower()) if name else ()


def anonymous_role(cfg: WebsocketConfig) -> str:
    """The configured role, else admin for a password-less server on loopback (RTOC's
    behaviour without a password), else read."""
    if cfg.anonymous:
        return cfg.anonymous
    if cfg.users or cfg.legacy_rtoc_encryption:  # RTOC's password is a user too
        return "read"
    try:
        loopback = ipaddress.ip_address(cfg.host).is_loopback
    except ValueError:
        loopback = cfg.host == "localhost"
    return "admin" if loopback else "read"


def legacy_password(cfg: WebsocketConfig) -> str:
    """RTOC's one password, from the environment variable ``legacy_password_env`` names."""
    password = os.environ.get(cfg.legacy_password_env, "")
    if not password:
        raise ConfigError(f"the environment variable {cfg.legacy_password_env} is not set: "
                          "legacy_rtoc_encryption needs RTOC's password",
                          "websocket.legacy_password_env")
    return password


@dataclass(eq=False)
class Client:
    conn: BatchConnection
    session: Session
    queue: SendQueue  # (reply frames: bytes | push text: str, None)
    sender: asyncio.Task | None = None
    first: bool = True        # no message seen yet (the first tells whether it encrypts)
    key: bytes | None = None  # RTOC 3.0's AES key once its first message decrypted with it

    def wrap(self, payload: bytes) -> bytes:
        """A reply or push as this client reads it (encrypted for an encrypting one)."""
        return payload if self.key is None else legacy_crypto.encrypt(self.key, payload).encode()


class Server:
    def __init__(self, cfg: WebsocketConfig, endpoints: dict[str, str], ctx: zmq.asyncio.Context):
        self.cfg = cfg
        self.anonymous = anonymous_role(cfg)
        known = [User(u.name, u.role, u.password_hash) for u in cfg.users]
        self.legacy_key: bytes | None = None
        if cfg.legacy_rtoc_encryption:
            password = legacy_password(cfg)
            self.legacy_key = legacy_crypto.key_of(password)
            # RTOC's one password logs in (authorize) like a configured user with legacy_role
            known.append(User(LEGACY_USER, cfg.legacy_role, hash_password(password)))
            log.warning("[websocket] legacy_rtoc_encryption is on: RTOC 3.0 clients may encrypt "
                        "with AES-CBC, which has no integrity (messages can be replayed and "
                        "altered on the way) and whose key is a prefix of the replayable "
                        "authorize token; use TLS (tls_cert, tls_key) or rtoc.bin.v1 and switch "
                        "it off once the clients moved over")
        users = Users(known, self.anonymous, section="websocket")
        self.hub = Hub(endpoints, ctx, users, self.throttle_for(cfg))
        self.hosts = accepted_hosts(cfg.host, cfg.hosts, machine=_machine_names())
        self.subscriptions = SubscriptionLimit(cfg.max_subscriptions, cfg.max_subscriptions_total)
        self.proto = JsonProtocol(self.hub, Limits(max_bytes=cfg.max_message,
                                                   max_depth=cfg.max_depth),
                                  self.subscriptions, cfg.max_reply_points)
        self.fanout = Fanout()
        self.binary = binary_shell.Binary(self.hub, cfg.max_message, queue_bytes=cfg.binary_send_queue_bytes,
                                          max_frame_anonymous=cfg.max_frame_anonymous,
                                          slow_timeout=cfg.slow_client_timeout)
        self.open: Counter[str] = Counter()  # TCP connections per address past the upgrade check
        self.lag = LoopLag()
        self.big = asyncio.Semaphore(cfg.max_big_replies)
        # one address holds at most half of them: a few hosts that never read cannot hold
        # every slot until slow_client_timeout closes them
        self.big_per_address = max(1, cfg.max_big_replies // 2)
        self.big_held: Counter[str] = Counter()
        self.big_lane = asyncio.Lock()  # big messages, one connection at a time  # get... replies not yet written out
        self.binary.proto.subscriptions = self.subscriptions  # one total for both roads
        self.binary.proto.heavy = self.proto.heavy  # one ring copy or big encode at a time
        self.clients: dict[Session, Client] = {}
        self.announced_at = -ANNOUNCE_EVERY  # the last newconnected push (monotonic s)
        self.announce_owed = False
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 1000)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.connect(endpoints["data"])
        self.sub.setsockopt(zmq.SUBSCRIBE, wire.EVENT_TOPIC.encode())
        self.topics: set[bytes] = set()
        self._subscribed: list[tuple[int, int]] = []  # (session id, version) of the last topics
        self.waiting = asyncio.Event()  # data waits for the push loop
        self.events_seen = 0
        self.started = time.time()
        self.counters = {"messages_in": 0, "messages_out": 0, "pushes_dropped": 0,
                           "connections": 0, "refused": 0, "refused_address": 0, "slow_closed": 0,
                           "legacy_connections": 0, "legacy_failed": 0, "legacy_refused": 0}

    # -- connections -----------------------------------------------------------------------
    async def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        headers = request.headers
        if not host_allowed(headers.get("Host"), self.hosts):
            self.counters["refused"] += 1
            return conn.respond(http.HTTPStatus.FORBIDDEN,
                                "Host not accepted (see [websocket] hosts)\n")
        if not origin_allowed(headers.get("Origin"), headers.get("Host"),
                              self.cfg.allowed_origins):
            self.counters["refused"] += 1
            return conn.respond(http.HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        if headers.get("Upgrade", "").lower() == "websocket":
            address = _address(conn)
            if self.open.total() >= self.cfg.max_clients:
                self.counters["refused"] += 1
                return conn.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "too many clients\n")
            if 0 < self.cfg.max_clients_per_address <= self.open[address]:
                self.counters["refused"] += 1
                self.counters["refused_address"] += 1
                return conn.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                    "too many clients from this address (max_clients_per_address)\n")
            self._hold_slot(conn, address)
            return None
        session = await self._http_session(conn, headers)
        status, kind, body = await routes.route(self.proto, session, request.path, self.metrics,
                                                metrics_allowed=self._metrics_token(headers))
        hdrs = Headers([("Content-Type", kind), ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")])
        if status == 401:
            hdrs["WWW-Authenticate"] = 'Basic realm="rtoc"'
        return Response(status, http.HTTPStatus(status).phrase, hdrs, body)

    def _hold_slot(self, conn: ServerConnection, address: str) -> None:
        """Count the connection against the limits until its TCP connection is lost (not
        until a handler ends: a handler may wait on a client that is gone)."""
        self.open[address] += 1

        def free(_: object) -> None:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]

        conn.connection_lost_waiter.add_done_callback(free)

    def _metrics_token(self, headers: Headers) -> bool:
        """The request carries ``Authorization: Bearer <metrics_token>``."""
        token = self.cfg.metrics_token
        got = headers.get("Authorization", "")
        return bool(token) and got.startswith("Bearer ") and \
            hmac.compare_digest(got[7:].strip().encode(), token.encode())

    async def _http_session(self, conn: ServerConnection, headers: Headers) -> Session:
        session = Session(_address(conn), self.anonymous, self.anonymous)
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return session
            found = await self.hub.login(user, password, False, session.address, time.monotonic())
            if isinstance(found, tuple):
                session.log_in(*found)
        return session

    async def handler(self, conn: BatchConnection) -> None:
        session = Session(_address(conn), self.anonymous, self.anonymous,
                          event_level=self.cfg.event_level)
        if conn.subprotocol == SUBPROTOCOL:
            conn.use_websockets()
            self.counters["connections"] += 1
            await binary_shell.serve(self, conn, session)
            return
        conn.use_batches(self.cfg.max_message, self.cfg.inbox_bytes)
        client = Client(conn, session, SendQueue(self.cfg.send_queue_bytes, self.cfg.send_queue))
        conn.connection_lost_waiter.add_done_callback(lambda _: client.queue.close())
        client.sender = asyncio.create_task(self._send_loop(client))
        self.clients[session] = client
        self.counters["connections"] += 1
        self._announce(client)
        try:
            while (batch := await conn.next_batch()) is not None:
                self.counters["messages_in"] += len(batch)
                refusal = None
                if client.first or client.key is not None:
                    batch, refusal = self._legacy_in(client, batch)
                if batch and not await self._answer(client, batch):
                    break
                if refusal is not None:
                    await self._refuse(client, refusal)
                    break
            if conn.fault is not None:  # a broken frame: first the replies to what came before
                await self._sent(client, FAULT_FLUSH)
                conn.fail()
        finally:
            self._forget(client)

    # -- RTOC 3.0's encryption ([websocket] legacy_rtoc_encryption) --------------------------
    def _legacy_in(self, client: Client, batch: list[bytes]) -> tuple[list[bytes], str | None]:
        """The messages of ``batch`` as JSON text and, when one cannot be taken, why (the
        messages before it are answered, then the connection is refused). The first message
        of a connection decides: JSON text is a plain client for good (as always); one that
        looks encrypted is RTOC 3.0's client talking to a host it does not trust. The peer's
        address does not decide: the client decides by the name it dialled, which the server
        cannot see (a client dialling 127.0.0.2 arrives from 127.0.0.1). Every later
        message of an encrypting client must decrypt; one that does not closes the
        connection and counts as a failed login of its address (the login throttle), so
        the server cannot serve as a padding oracle."""
        address = client.session.address
        if client.first:
            client.first = False
            if not legacy_crypto.looks_encrypted(batch[0]):
                return batch, None
            if self.legacy_key is None:
                self.counters["legacy_refused"] += 1
                log.warning("client %s refused: %s", address, LEGACY_OFF)
                return [], LEGACY_OFF
            wait = self.hub.throttle.check(address, time.monotonic())
            if wait > 0:
                self.hub.throttle.refused += 1
                return [], f"too many failed logins from {address}; wait {wait:.0f} s"
        key = client.key or self.legacy_key
        out: list[bytes] = []
        for raw in batch:
            try:
                out.append(legacy_crypto.open_message(key, raw))
            except legacy_crypto.LegacyCryptoError as exc:
                self.counters["legacy_failed"] += 1
                self.hub.throttle.failed(address, time.monotonic())
                log.warning("client %s closed: %s", address, exc)
                return out, str(exc)
            if client.key is None:
                client.key = key
                self.counters["legacy_connections"] += 1
                log.info("client %s encrypts as RTOC 3.0 did (legacy_rtoc_encryption)", address)
        return out, None

    async def _refuse(self, client: Client, reason: str) -> None:
        """Answer ``reason`` (encrypted for a client whose messages decrypted before), wait
        until it is written out (at most FAULT_FLUSH s) and close the connection (1008)."""
        reply = dumps({"error": True, "message": reason, "errors": {"message": reason}}).encode()
        if await client.queue.put(encode(client.wrap(reply)), None, FAULT_FLUSH):
            await self._sent(client, FAULT_FLUSH)
        close_now(client.conn, CLOSE_LEGACY, _close_reason(reason))

    async def _answer(self, client: Client, batch: list[bytes]) -> bool:
        """Handle ``batch`` in chunks, each chunk's replies one queue item that waits for
        room; False when the client is gone or was closed for not reading."""
        for chunk in _chunks(batch):
            release = None
            if _may_be_big(chunk[-1]):
                release = await self._big_slot(client)
                if release is None:
                    return False
            queued = False
            try:
                if sum(map(len, chunk)) > BIG_MESSAGES:
                    replies = await self._in_big_lane(client, chunk)
                else:
                    replies = await self.proto.handle_batch(client.session, chunk, time.time())
                self.counters["messages_out"] += len(replies)
                self._resubscribe()
                frames = await self.proto.encode(replies, None if client.key is None else client.wrap)
                queued = await client.queue.put(frames, release, self.cfg.slow_client_timeout)
            finally:
                if release is not None and not queued:
                    release()
            if not queued:
                self._close_slow(client)
                return False
        return True

    async def _in_big_lane(self, client: Client, chunk: list[bytes]) -> list[dict]:
        """Handle a chunk of big messages (``BIG_MESSAGES`` bytes or more: a 1 MiB message
        costs ~5-8 ms to check and parse) in the one lane they share, which then rests as
        long as the work took: big messages get at most half of the event loop, and a small
        request waits behind one of them, not one per connection (15 connections sending
        1 MiB messages took the witness's p99 from 22 to 262 ms)."""
        async with self.big_lane:
            start = time.monotonic()
            replies = await self.proto.handle_batch(client.session, chunk, time.time())
            await asyncio.sleep(min(time.monotonic() - start, BIG_REST))
        return replies

    async def _big_slot(self, client: Client) -> Callable[[], None] | None:
        """Wait until the client's earlier replies are written out (one big reply per
        client: one that does not read holds no more) and a slot of ``max_big_replies`` is
        free (a few in the whole server); the slot's release, or None when the client is gone
        or was closed for not reading."""
        try:
            await asyncio.wait_for(client.queue.drained(), self.cfg.slow_client_timeout)
        except TimeoutError:
            self._close_slow(client)
            return None
        address = client.session.address
        while not client.queue.closed:
            if self.big_held[address] >= self.big_per_address:
                await asyncio.sleep(BIG_POLL)  # this host holds its share of the slots
                if _peer_gone(client.conn):  # (its reading is paused: a reset goes unseen)
                    client.conn.transport.abort()
                    return None
                continue
            try:
                await asyncio.wait_for(self.big.acquire(), BIG_WAIT)
            except TimeoutError:
                continue
            if client.queue.closed or _peer_gone(client.conn):
                self.big.release()
                client.conn.transport.abort()  # (cleanup follows connection_lost)
                return None
            if self.big_held[address] >= self.big_per_address:  # taken while we waited
                self.big.release()
                continue
            self.big_held[address] += 1

            def release() -> None:
                self.big_held[address] -= 1
                if not self.big_held[address]:
                    del self.big_held[address]
                self.big.release()
            return release
        return None

    def _forget(self, client: Client) -> None:
        """Drop a client's state (idempotent): its queue, its sender, its subscriptions."""
        client.queue.close()
        if self.clients.get(client.session) is client:
            del self.clients[client.session]
            self._resubscribe()
        if client.sender is not None:
            client.sender.cancel()

    def _close_slow(self, client: Client, code: int = CLOSE_SLOW, reason: str = "") -> None:
        """Close a client whose send queue stayed full (it does not read): counted, its
        memory freed at once; the close frame (1008 with the reason) follows what it did not
        read, and the connection is cut if it does not read that either."""
        if client.queue.closed:
            return
        self.counters["slow_closed"] += 1
        reason = reason or slow_reason(client.queue.max_bytes, self.cfg.slow_client_timeout)
        log.info("client %s closed: %s", client.session.address, reason)
        self._forget(client)
        close_now(client.conn, code, reason)

    def _close_stuck(self) -> None:
        """PROTOCOL.md's promise: a client that does not answer pings within ping_timeout
        is closed with 1011. One that stopped reading cannot even see the ping (it waits
        behind the unread data), and websockets' keepalive did not close it (seen connected
        after 140 s); its send queue staying full for ping_timeout is the sign, checked
        here every REFRESH s whether or not pushes flow (both roads; counted in
        rtoc_ws_slow_closed_total)."""
        timeout = self.cfg.ping_timeout
        reason = (f"did not read for {timeout:g} s (its send queue stayed full: pings and "
                  "pongs wait behind the unread data)")
        for client in list(self.clients.values()):
            if client.queue.stays_full(timeout):
                self._close_slow(client, CLOSE_STUCK, reason)
        for bclient in list(self.binary.clients.values()):
            if bclient.queue.stays_full(timeout):
                self.binary.close_slow(bclient, CLOSE_STUCK, reason)

    async def _send_loop(self, client: Client) -> None:
        """Everything queued goes out in one write: replies come as encoded frames (bytes),
        pushes as text."""
        queue = client.queue
        try:
            while True:
                items = [await queue.get(), *queue.take_all()]
                try:
                    pushes = sum(type(i) is str for i, _ in items)
                    self.counters["messages_out"] += pushes
                    if client.key is None:
                        data = b"".join(encode(i.encode()) if type(i) is str else i for i, _ in items)
                    else:  # RTOC 3.0's encryption: the pushes too (replies came encrypted)
                        data = b"".join(encode(client.wrap(i.encode())) if type(i) is str else i
                                        for i, _ in items)
                    await client.conn.send_frames(data)
                finally:
                    queue.done(len(items))
                    for _, release in items:  # a big reply's slot (written out or given up)
                        if release is not None:
                            release()
                    items = data = None
        except (ConnectionClosed, OSError):
            # A reset while a write waits surfaces as ConnectionResetError from drain().
            # Ending with it stored on the task kept the traceback, so the frame, its
            # replies (megabytes each) and the connection stayed alive in a reference cycle
            # until a full GC pass: +650 MiB after 100 clients left.
            pass

    @staticmethod
    async def _sent(client: Client, timeout: float) -> None:
        """Until the client's queue is written out (or ``timeout`` s, for one that does not
        read)."""
        end = time.monotonic() + timeout
        while client.queue.unfinished and not client.sender.done() and time.monotonic() < end:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)  # the sender writes what it took before it awaits

    def _announce(self, newcomer: Client | None) -> None:
        """RTOC's ``{"client": "newconnected"}`` to every other JSON client that may read,
        at most once per ``ANNOUNCE_EVERY`` s: a crowd connecting at once (an attack, a
        reconnect storm) would otherwise cost one push per client per connection."""
        now = time.monotonic()
        if now - self.announced_at < ANNOUNCE_EVERY:
            self.announce_owed = True  # sent by refresh_loop once the second is over
            return
        self.announced_at = now
        for client in list(self.clients.values()):
            if client is not newcomer and client.session.may("read"):
                self._offer(client, NEWCONNECTED)

    def _offer(self, client: Client, text: str) -> None:
        """A push: queued when there is room, else dropped and counted. With
        legacy_rtoc_encryption a client gets none before its first message (which tells
        whether it reads plain JSON or encrypted text)."""
        if client.first and self.legacy_key is not None:
            return
        if not client.queue.offer(text, None):
            client.session.dropped += 1
            self.counters["pushes_dropped"] += 1

    @staticmethod
    def throttle_for(cfg: WebsocketConfig) -> Throttle:
        """The login throttle of ``[websocket] login_*``."""
        return Throttle(max_failures=cfg.login_max_failures, window=cfg.login_window,
                        lockout=cfg.login_lockout, max_lockout=cfg.login_max_lockout)

    # -- the bus ---------------------------------------------------------------------------
    def _resubscribe(self) -> None:
        """Subscribe the SUB to what some client wants (data of signals and devices, views):
        ``Session.topics`` checks every name again, so no client string reaches libzmq
        unchecked (an unbounded topic crashed it)."""
        sessions = [*self.clients, *self.binary.clients]
        seen = [(id(s), s.version) for s in sessions]
        if seen == self._subscribed:
            return  # nothing changed since the last batch (the common case)
        self._subscribed = seen
        self.subscriptions.live(sessions)
        want: set[bytes] = set()
        for s in sessions:
            want |= s.topics()
        for t in want - self.topics:
            self.sub.setsockopt(zmq.SUBSCRIBE, t)
        for t in self.topics - want:
            self.sub.setsockopt(zmq.UNSUBSCRIBE, t)
        self.topics = want

    async def bus_loop(self) -> None:
        """Drain everything the bus holds at each wake-up: one message per event-loop turn
        falls behind a 10 kHz signal (1000 engine messages/s) once 100 clients share the turns."""
        while True:
            self._bus_message(await self.sub.recv_multipart(copy=False))
            for _ in range(10_000):
                try:
                    self._bus_message(await self.sub.recv_multipart(zmq.NOBLOCK, copy=False))
                except zmq.Again:
                    break

    def _bus_message(self, frames: list) -> None:
        topic = bytes(frames[0].buffer)
        if topic.startswith(b"data/"):
            name, header, t, y = wire.parse_data([f.buffer for f in frames])
            self.fanout.data(name, t, y)
            self.binary.fanout.data(name, header["seq"], header.get("lost", 0), t, y,
                                    header.get("replace", False))
            self.waiting.set()
        elif topic.startswith(b"view/"):
            name, header, t, y = wire.parse_view([f.buffer for f in frames])
            self.fanout.view(name, t, y)
            self.binary.fanout.view(name, t, y, header.get("width", 0.0))
            self.waiting.set()
        elif topic == b"event":
            ev = wire.unpack(bytes(frames[1].buffer))
            self.events_seen += 1
            number = ev.get("seq", self.events_seen)  # the engine's list number (getEventList's evID)
            for client in self.clients.values():
                text = Fanout.event(client.session, ev, number)
                if text is not None:
                    self._offer(client, text)

    async def push_loop(self) -> None:
        """Push as soon as data waits, at most every ``push_interval``: low latency at low
        rates, batches at high ones."""
        while True:
            await self.waiting.wait()
            self.waiting.clear()
            self.binary.flush()
            pushes = self.fanout.take(list(self.clients))
            for client in list(self.clients.values()):
                for kind, name, text in pushes:
                    if Fanout.wants(client.session, kind, name):
                        self._offer(client, text)
                s = client.session
                if client.queue.stays_full(self.cfg.slow_client_timeout):
                    self._close_slow(client)
                    continue
                if s.dropped != s.reported_dropped and client.queue.bytes < client.queue.max_bytes // 2 \
                        and len(client.queue.items) < client.queue.max_items // 2:
                    s.reported_dropped = s.dropped
                    self._offer(client, dumps({"dropped": s.dropped}))
            await asyncio.sleep(self.cfg.push_interval)

    async def refresh_loop(self) -> None:
        while True:
            try:
                signals = (await self.hub.request("signals"))["signals"]
                self.fanout.units = {s["name"]: s.get("unit", "") for s in signals}
                self.fanout.ids = {s["name"]: s["id"] for s in signals}
            except Exception as exc:  # the supervisor restarting: try again next time
                log.debug("signal refresh failed: %s", exc)
            self._close_stuck()
            if self.announce_owed and time.monotonic() - self.announced_at >= ANNOUNCE_EVERY:
                self.announce_owed = False
                self._announce(None)  # the connections of the last second, in one push
            await asyncio.sleep(REFRESH)

    # -- metrics ---------------------------------------------------------------------------
    async def metrics(self) -> str:
        samples: list[tuple[str, str, dict[str, str], float]] = [
            ("rtoc_ws_clients", "Connected websocket clients", {}, len(self.clients)),
            ("rtoc_ws_messages_in_total", "Messages received from clients", {}, self.counters["messages_in"]),
            ("rtoc_ws_messages_out_total", "Messages sent to clients", {}, self.counters["messages_out"]),
            ("rtoc_ws_pushes_dropped_total", "Pushes dropped at full client queues", {}, self.counters["pushes_dropped"]),
            ("rtoc_ws_refused_total", "Connections refused (origin, client limits)", {}, self.counters["refused"]),
            ("rtoc_ws_refused_address_total", "Connections refused by max_clients_per_address", {},
             self.counters["refused_address"]),
            ("rtoc_ws_slow_closed_total", "Clients closed for not reading (send queue full slow_client_timeout s)",
             {}, self.counters["slow_closed"] + self.binary.counters["slow_closed"]),
            ("rtoc_ws_connections_open", "TCP connections holding a client slot", {}, self.open.total()),
            ("rtoc_ws_samples_pushed_total", "Samples written by websocket clients", {}, self.hub.pushed),
            ("rtoc_ws_logins_throttled_total", "Login attempts refused by the throttle", {},
             self.hub.throttle.refused),
            ("rtoc_ws_binary_clients", "Connected rtoc.bin.v1 clients", {}, len(self.binary.clients)),
            ("rtoc_ws_legacy_connections_total", "Connections that encrypted as RTOC 3.0 (legacy_rtoc_encryption)",
             {}, self.counters["legacy_connections"]),
            ("rtoc_ws_legacy_failed_total", "Messages that did not decrypt with the legacy RTOC password (closed)",
             {}, self.counters["legacy_failed"]),
            ("rtoc_ws_legacy_refused_total", "RTOC 3.0 encrypted connections refused (legacy_rtoc_encryption off)",
             {}, self.counters["legacy_refused"]),
            ("rtoc_ws_subscriptions", "Names subscribed by all clients", {}, self.subscriptions.used()),
            ("rtoc_ws_subscriptions_refused_total", "Subscriptions refused (max_subscriptions)",
             {}, self.subscriptions.refused),
            ("rtoc_ws_replies_refused_total", "getSignal requests refused (max_reply_points)",
             {}, self.proto.replies_refused),
            ("rtoc_ws_binary_frames_dropped_total", "Data frames dropped at full rtoc.bin.v1 send queues",
             {}, self.binary.counters["frames_dropped"]),
            *self.lag.samples(),
        ]
        samples += [("rtoc_ws_send_queue", "Messages waiting for a client", {"client": c.session.address},
                     len(c.queue.items)) for c in self.clients.values()]
        samples += [("rtoc_ws_send_queue_bytes", "Bytes waiting for a client", {"client": c.session.address},
                     c.queue.bytes) for c in [*self.clients.values(), *self.binary.clients.values()]]
        try:
            status = await self.hub.request("status")
        except Exception:
            return routes.prometheus(samples)
        for s in status["signals"]:
            lab = {"signal": s["name"]}
            samples += [("rtoc_signal_rate", "Samples per second (engine, last second)", lab, s.get("rate", 0.0)),
                        ("rtoc_signal_written_total", "Samples written to the ring", lab, s.get("written", 0)),
                        ("rtoc_signal_lost_total", "Samples overwritten before the engine read them", lab, s.get("lost", 0))]
        for p in status["processes"]:
            lab = {"process": p["name"], "kind": p["kind"]}
            samples += [("rtoc_process_restarts_total", "Restarts of a child process", lab, p.get("restarts", 0)),
                        ("rtoc_process_up", "1 while the process runs", lab, 1.0 if p["state"] == "running" else 0.0)]
            samples += [("rtoc_frontend_stat", "A frontend's counter (the Telegram bot's notifications ...)",
                         {"process": p["name"], "stat": k}, v) for k, v in sorted(p.get("stats", {}).items())]
        samples.append(("rtoc_uptime_seconds", "Seconds since the supervisor started", {}, status.get("uptime", 0.0)))
        return routes.prometheus(samples)

    # -- running ---------------------------------------------------------------------------
    async def run(self, stop: Callable[[], bool]) -> None:
        tls = None
        if self.cfg.tls_cert:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(self.cfg.tls_cert, self.cfg.tls_key)
        tasks = [asyncio.create_task(c()) for c in (self.hub.replies, self.bus_loop,
                                                     self.push_loop, self.refresh_loop, self.lag.watch)]
        async with serve(self.handler, self.cfg.host, self.cfg.port,
                         process_request=self.process_request, max_size=self.cfg.max_message,
                         select_subprotocol=select_subprotocol,
                         ping_interval=self.cfg.ping_interval, ping_timeout=self.cfg.ping_timeout,
                         compression=None, ssl=tls, server_header="rtoc",
                         create_connection=BatchConnection) as server:
            port = server.sockets[0].getsockname()[1] if server.sockets else self.cfg.port
            url = f"{'https' if tls else 'http'}://{_host(self.cfg.host)}:{port}/"
            log.info("websocket server on %s", url)
            # not awaited here: a stop ordered while the supervisor is busy stopping (and
            # not answering) must not wait for the hello's time-out
            tasks.append(asyncio.create_task(self.hub.request("hello", role="websocket", url=url)))
            while not stop():
                await asyncio.sleep(0.1)
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()
            server.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        self.sub.close(0)
        self.hub.close()


def _close_reason(text: str) -> str:
    """``text`` as a close frame's reason (at most 123 bytes): its first clause if longer."""
    if len(text.encode()) <= 123:
        return text
    return text.split(";")[0].encode()[:123].decode(errors="ignore")


def _may_be_big(raw: bytes) -> bool:
    """A message that may ask for a big reply: ``getSignal`` (megabytes), or one whose keys
    could hide it behind a ``\\u`` escape. The other ``get...`` replies are small enough for
    the send queue's own bound; making them wait for a big-reply slot let 8 clients that
    never read stall every client's ``getLatest`` for ``slow_client_timeout``."""
    return b'"getSignal"' in raw or b"\\u" in raw


def _chunks(batch: list[bytes]) -> Iterator[list[bytes]]:
    """``batch`` cut after every message that may ask for a big reply (:func:`_may_be_big`)
    and every ``CHUNK`` messages, so that at most one big reply is owed beyond what the send
    queue holds; runs of pushes stay together (the fast road writes each run's samples at
    once)."""
    start = 0
    for i, raw in enumerate(batch):
        if i + 1 - start >= CHUNK or _may_be_big(raw):
            yield batch[start:i + 1]
            start = i + 1
    if start < len(batch):
        yield batch[start:]


def _peer_gone(conn: ServerConnection) -> bool:
    """The peer closed or reset the TCP connection, though the loop may not know yet (its
    reading is paused while it waits for its replies, and the bytes it sent are still
    readable): the kernel's TCP state (Linux; elsewhere: False)."""
    sock = conn.transport.get_extra_info("socket")
    if sock is None or not hasattr(socket, "TCP_INFO") or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    except OSError:
        return True
    return state != TCP_ESTABLISHED


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _address(conn: ServerConnection) -> str:
    addr = conn.remote_address
    return str(addr[0]) if isinstance(addr, tuple) and addr else "unknown"


def _serve(spec: ChildSpec, stop: threading.Event, ctx: zmq.asyncio.Context) -> int:
    """The websocket process's life (see :func:`run_child`)."""
    cfg = spec.config.websocket
    warm_up()
    server = Server(cfg, spec.endpoints, ctx)
    try:
        asyncio.run(server.run(stop.is_set))
        return 0
    except OSError as exc:
        log.error("websocket server cannot listen on %s:%s: %s", cfg.host, cfg.port, exc)
        return 1
    finally:
        server.close()


def main(spec: ChildSpec) -> None:
    """Entry point of the websocket process (spawned by the supervisor)."""
    run_child(spec, _serve, zmq.asyncio.Context)
