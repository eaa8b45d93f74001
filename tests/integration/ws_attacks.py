"""The websocket attack suite (issue 12): every attack of the attack tests against ONE
instance, configured as an exposed server would be, while a witness client measures what a
well-behaved client feels.

Used by tests/integration/test_ws_attack_suite.py (one round, asserted) and
bench/run_ws_attack_suite.py (rounds for ``--seconds``, figures only).

* :func:`config`: users with roles (scrypt at its default cost), anonymous ``read``, an
  Origin allow-list, a per-address cap, a short ``slow_client_timeout``, ring and rule
  budgets small enough to be reached, a Generator at 20 kHz (a ``getSignal`` reply is
  megabytes of JSON) and a slow second generator (``Aux``) to set parameters on.
* :func:`witness_main` (a process of its own, so that the attackers' parsing stalls nobody
  but them): anonymous, subscribed to ``Generator.Sine``, sends ``getLatest`` every 50 ms
  whether or not earlier replies came (open loop: a stall counts for every request it
  delays), and records each round trip and each push's arrival (``time.monotonic``: one
  clock for every process of the machine).
* The attacks (``attack_*`` coroutines, the shapes of test_ws_attacks_messages.py,
  test_ws_attacks_memory.py, test_ring_budget.py, test_rule_budget.py,
  test_rejected_params.py and tests/unit/test_ws_origin.py): each connects from a loopback
  address of its own (127.0.0.x), so per-address limits and the login throttle hit the
  attacker and not the witness, and returns what came back and whether that is the
  expected refusal.
* :func:`run_suite`: the witness's baseline, then every attack at once (asyncio tasks in
  this process), the websocket process's RSS and every process's CPU meanwhile, /metrics
  before and after, and :func:`summary` of it all.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import multiprocessing as mp
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import websockets
from rtoc.frontends.websocket.auth import hash_password
from rtoc.frontends.websocket.json_protocol.framing import encode_masked
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rtoc.app.harness import Instance
from rtoc.client import frames

WRITE_USER, WRITE_PW = "wes", "wes-pw"       # pushes, parameters, rules
READ_USER, READ_PW = "ann", "ann-pw"         # the login throttle's target
ALLOWED_ORIGIN = "https://dashboard.example"
MAX_PER_ADDRESS = 16
MAX_SUBSCRIPTIONS = 50
SLOW_TIMEOUT = 3.0          # s a send queue may stay full ([websocket] slow_client_timeout)
MAX_FAILURES = 5            # failed logins per address or user name before a lockout
SAMPLERATE = 20_000.0
WITNESS_INTERVAL = 0.05     # s between the witness's requests
WITNESS_TIMEOUT = 5.0       # s: a round trip longer than this counts as unanswered

# one loopback address per attack (the witness and the harness use 127.0.0.1)
ADDRESS = {name: f"127.0.0.{10 + i}" for i, name in enumerate((
    "huge_names", "heavy_get_signal", "never_read", "abort_full_queue", "inbox", "per_address",
    "binary_before_login", "dns_rebinding", "login_throttle", "ring_budget", "nan_params",
    "rule_budget"))}


def config() -> str:
    """The instance's TOML (the harness adds ``instance`` and ``data_dir``)."""
    users = "".join(
        f'[[websocket.users]]\nname = "{name}"\nrole = "{role}"\n'
        f'password_hash = "{hash_password(pw)}"\n'
        for name, role, pw in ((WRITE_USER, "write", WRITE_PW), (READ_USER, "read", READ_PW)))
    return f'''
[supervisor]
shm_budget = 536870912         # 512 MiB for all rings
shm_clients_share = 0.5
shm_per_client = 41943040      # 40 MiB of rings for the websocket's clients together
max_client_rate = 100000.0
max_client_seconds = 10.0      # a client's ring of 1 Mi samples (16 MiB) at most

[engine]
max_event_rate = 100.0
max_event_total_rate = 300.0
max_rule_load = 0.005          # rules may take 0.5 % of the engine's time

[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = {SAMPLERATE}
frequency = 1.0

[[drivers]]
name = "Aux"
driver = "generator"
[drivers.params]
samplerate = 10.0

[websocket]
port = 0
anonymous = "read"
allowed_origins = ["{ALLOWED_ORIGIN}"]
max_clients = 128
max_clients_per_address = {MAX_PER_ADDRESS}
max_subscriptions = {MAX_SUBSCRIPTIONS}
slow_client_timeout = {SLOW_TIMEOUT}
login_max_failures = {MAX_FAILURES}
{users}'''


# -- small helpers ------------------------------------------------------------------------------
def ws_url(inst: Instance) -> str:
    return inst.ws_url().replace("http://", "ws://")


def host_port(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    return host, int(port)


def connect(url: str, addr: str, **kw: Any) -> websockets.connect:
    """A ``websockets`` client from the loopback address ``addr`` (it reads whatever comes:
    a library client that stops reading after ``max_queue`` pushes would wait for the
    server to close it slow, and its close handshake with it)."""
    return websockets.connect(url, local_addr=(addr, 0), proxy=None, compression=None,
                              open_timeout=20, max_queue=None, **kw)


async def ask(ws, msg: dict | str, timeout: float = 30.0) -> dict:
    """Send one message; return its reply (pushes arriving meanwhile are skipped)."""
    await ws.send(msg if isinstance(msg, str) else json.dumps(msg))
    while True:
        r = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if "error" in r:
            return r


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def written(inst: Instance, n: int, name: str = "Generator.Sine") -> None:
    """Wait until ``n`` samples of ``name`` are in its ring (the replies' size depends on it)."""
    inst.wait_for(lambda: next(s["written"] for s in inst.client.request("signals")["signals"]
                               if s["name"] == name) >= n, timeout=30)


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client frame (mask key 0: the payload goes as it is)."""
    return encode_masked(payload, b"\0\0\0\0", opcode)


class Raw:
    """A websocket client that never reads after the handshake (asyncio streams, a 4 KiB
    receive buffer: no library reads on its behalf)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, url: str, addr: str) -> Raw:
        host, port = host_port(url)
        reader, writer = await asyncio.open_connection(host, port, local_addr=(addr, 0))
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        except BaseException:
            writer.transport.abort()
            raise
        if not head.startswith(b"HTTP/1.1 101"):
            writer.transport.abort()
            raise ConnectionError(head.decode(errors="replace"))
        return cls(reader, writer)

    async def send_for(self, payload: bytes, seconds: float, burst: int = 16) -> int:
        """Send ``payload`` again and again for ``seconds`` (while the server reads);
        returns how many went."""
        data, sent, end = frame(payload) * burst, 0, time.monotonic() + seconds
        while time.monotonic() < end:
            self.writer.write(data)
            try:
                await asyncio.wait_for(self.writer.drain(), max(0.01, end - time.monotonic()))
            except (TimeoutError, ConnectionError):
                break
            sent += burst
        return sent

    def abort(self) -> None:
        self.writer.transport.abort()


async def http_handshake(url: str, addr: str, host: str, origin: str | None) -> tuple[int, bytes]:
    """A websocket upgrade with these ``Host`` and ``Origin`` headers: (status, body)."""
    h, port = host_port(url)
    reader, writer = await asyncio.open_connection(h, port, local_addr=(addr, 0))
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        extra = f"Origin: {origin}\r\n" if origin else ""
        writer.write((f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        status = int(head.split(b" ", 2)[1])
        body = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                body = await asyncio.wait_for(reader.readexactly(int(line.split(b":")[1])), 20)
        return status, body
    finally:
        writer.transport.abort()


# -- the witness --------------------------------------------------------------------------------
def witness_main(url: str, stop, ready, out) -> None:
    """(a process of its own) Subscribe to Generator.Sine, then send ``getLatest`` every
    ``WITNESS_INTERVAL`` s until ``stop`` is set, whether or not earlier replies came (open
    loop: a stall delays every request sent meanwhile, as a user would feel it); put
    ``{"rtts": [(sent, s or None)], "pushes": [arrival], "errors": [...]}`` on ``out``
    (monotonic times; None: no reply within ``WITNESS_TIMEOUT`` s)."""
    rtts: list[tuple[float, float | None]] = []
    pushes: list[float] = []
    errors: list[str] = []

    async def go() -> None:
        async with websockets.connect(url, proxy=None, compression=None, max_size=None,
                                      max_queue=None) as ws:
            sent: list[float] = []      # send times of the requests, in order
            replies: list[tuple[float, str]] = []  # (arrival, text), in order

            async def reader() -> None:
                async for msg in ws:
                    now = time.monotonic()
                    if msg.startswith('{"signal"'):
                        pushes.append(now)
                    elif msg.startswith('{"error"'):
                        replies.append((now, msg))

            task = asyncio.create_task(reader())
            try:
                sent.append(time.monotonic())
                await ws.send('{"subscribe": ["signal", "Generator.Sine"]}')
                while not pushes or not replies:
                    await asyncio.sleep(0.01)
                    if time.monotonic() - sent[0] > 20:
                        raise TimeoutError("no subscription reply or push within 20 s")
                if not replies[0][1].startswith('{"error":false'):
                    errors.append(f"subscribe: {replies[0][1][:200]}")
                sent.clear()
                replies.clear()
                ready.set()
                probe = '{"getLatest": ["Generator.Sine"]}'
                nxt = time.monotonic()
                while not stop.is_set():
                    sent.append(time.monotonic())
                    await ws.send(probe)
                    nxt = max(nxt + WITNESS_INTERVAL, time.monotonic())
                    await asyncio.sleep(nxt - time.monotonic())
                end = time.monotonic() + WITNESS_TIMEOUT  # the last replies may come
                while len(replies) < len(sent) and time.monotonic() < end:
                    await asyncio.sleep(0.01)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            for i, t0 in enumerate(sent):
                if i < len(replies) and replies[i][0] - t0 <= WITNESS_TIMEOUT:
                    rtts.append((t0, replies[i][0] - t0))
                    if not replies[i][1].startswith('{"error":false'):
                        errors.append(replies[i][1][:200])
                else:
                    rtts.append((t0, None))
            if any(r is None for _, r in rtts):
                errors.append(f"{sum(r is None for _, r in rtts)} requests without a reply "
                              f"within {WITNESS_TIMEOUT} s")

    try:
        asyncio.run(go())
    except Exception as exc:  # reported, not raised: the parent asserts
        errors.append(f"witness failed: {exc!r}")
    finally:
        ready.set()
        out.put({"rtts": rtts, "pushes": pushes, "errors": errors})


# -- the attacks --------------------------------------------------------------------------------
def result(expected: str, got: Any, ok: bool) -> dict:
    return {"expected": expected, "got": got, "ok": bool(ok)}


async def attack_huge_names(url: str, addr: str) -> dict:
    """test_ws_attacks_messages: huge names in subscriptions (libzmq crashed unsubscribing
    them), then more subscriptions than ``max_subscriptions``."""
    got: dict[str, Any] = {}
    async with connect(url, addr, max_size=None) as ws:
        huge = []
        for msg in ({"subscribe": ["device", "D" * 1_000_000]},
                    {"subscribe": ["signal", "A." + "s" * 300_000]},
                    {"subscribeView": ["A." + "s" * 300_000]},
                    {"subscribeView": ["A." + "s" * 1000 + str(i) for i in range(100)]}):
            r = await ask(ws, msg)
            huge.append(r["error"])
        got["huge_refused"] = f"{sum(huge)}/{len(huge)}"
        refused = 0
        for i in range(100):  # the memory case: 100 names of 100 kB
            r = await ask(ws, {"subscribe": ["device", f"{i}" + "D" * 100_000]})
            refused += r["error"] is True
        got["100kB_refused"] = f"{refused}/100"
        ok_subs, limit = 0, []
        for i in range(MAX_SUBSCRIPTIONS + 10):
            r = await ask(ws, {"subscribe": ["device", f"Dev{i}"]})
            if r["error"]:
                limit.append(r.get("message", ""))
            else:
                ok_subs += 1
        got["subscriptions"] = f"{ok_subs} taken, {len(limit)} refused"
        got["limit_message"] = limit[0][:120] if limit else None
        r = await ask(ws, {"unsubscribeAll": True})
        r2 = await ask(ws, {"subscribe": ["device", "Generator"]})
        got["still_subscribes"] = r2["error"] is False
        await ask(ws, {"unsubscribeAll": True})
    ok = (all(huge) and refused == 100 and ok_subs == MAX_SUBSCRIPTIONS and len(limit) == 10
          and "max_subscriptions" in (limit[0] if limit else "") and got["still_subscribes"])
    return result("every huge name refused; 50 subscriptions, then max_subscriptions", got, ok)


async def attack_heavy_get_signal(url: str, addr: str, rounds: int = 3) -> dict:
    """test_ws_attacks_messages: 10,000 names in one getSignal, maxN 2,000,000, maxN 200,000."""
    heavy = ({"getSignal": ["Generator.Sine"] * 10_000},
             {"getSignal": {"dname": "Generator", "sname": "Sine", "maxN": 2_000_000}},
             {"getSignal": {"dname": "Generator", "sname": "Sine", "maxN": 200_000}})
    errors, sizes, first = [], [], {}
    async with connect(url, addr, max_size=None) as ws:
        for i in range(rounds):
            for k, msg in enumerate(heavy):
                await ws.send(json.dumps(msg))
                raw = b""
                while not raw.startswith(b'{"error"'):  # (event pushes skipped)
                    raw = await asyncio.wait_for(ws.recv(decode=False), 60)
                errors.append(not raw.startswith(b'{"error":false'))
                sizes.append(len(raw))
                if errors[-1] and k != 1:
                    first.setdefault("unexpected", raw[:300].decode(errors="replace"))
                if i == 0 and k < 2:  # parsed once (megabytes: spare the attacker's CPU)
                    r = json.loads(raw)
                    first[k] = {"signals": {n: len(v[0]) for n, v in r.get("signals", {}).items()},
                                "errors": r.get("errors", {})}
    ok = (errors == [False, True, False] * rounds and 0 in first
          and list(first[0]["signals"]) == ["Generator.Sine"]
          and "max_reply_points" in first[1]["errors"].get("getSignal", ""))
    got = {"errors": errors[:3], "reply_bytes": sizes[:3],
           "dedup_points": first[0]["signals"].get("Generator.Sine"),
           "maxN_2M": first[1]["errors"].get("getSignal", "")[:100],
           "unexpected": first.get("unexpected")}
    return result("dedup answered once; maxN 2,000,000 refused (max_reply_points); 200,000 answered",
                  got, ok)


async def attack_never_read(url: str, addr: str, n: int = 4, seconds: float = 6.0) -> dict:
    """test_ws_attacks_memory: clients that send getSignal and never read (closed after
    ``slow_client_timeout``; /metrics counts them, checked by :func:`check_metrics`)."""
    clients = [await Raw.connect(url, addr) for _ in range(n)]
    try:
        sent = await asyncio.gather(*(c.send_for(b'{"getSignal": ["Generator.Sine"]}', seconds)
                                      for c in clients))
        await asyncio.sleep(1.0)
    finally:
        for c in clients:
            c.abort()
    return result(f"{n} clients closed for not reading (rtoc_ws_slow_closed_total)",
                  {"clients": n, "requests_sent": sum(sent)}, True)


async def attack_abort_full_queue(url: str, addr: str, n: int = 6) -> dict:
    """test_ws_attacks_memory: clients that leave while the server owes them replies (their
    state must go: checked by :func:`check_metrics`)."""
    clients = [await Raw.connect(url, addr) for _ in range(n)]
    try:
        await asyncio.gather(*(c.send_for(b'{"subscribeAll": "signal"}', 0.05, burst=1)
                               for c in clients))
        sent = await asyncio.gather(*(c.send_for(b'{"getSignal": ["Generator.Sine"]}', 3.0)
                                      for c in clients))
    finally:
        for c in clients:  # they leave while the server still owes them replies
            c.abort()
    return result("their queues and slots freed (no rtoc_ws_send_queue for them afterwards)",
                  {"clients": n, "requests_sent": sum(sent)}, True)


async def attack_inbox(url: str, addr: str, n: int = 4, seconds: float = 4.0) -> dict:
    """test_ws_attacks_memory: 1 MiB messages sent faster than they are answered (the inbox
    is bounded in bytes); then one message past ``max_message``: closed with 1009."""
    msg = b'{"getSession": true, "pad": "' + b"x" * ((1 << 20) - 64) + b'"}'
    clients = [await Raw.connect(url, addr) for _ in range(n)]
    try:
        sent = await asyncio.gather(*(c.send_for(msg, seconds, burst=4) for c in clients))
    finally:
        for c in clients:
            c.abort()
    async with connect(url, addr) as ws:
        await ws.send('{"getSession": true, "pad": "' + "x" * (1 << 20) + '"}')
        try:
            await asyncio.wait_for(ws.recv(), 20)
            code = None
        except ConnectionClosed:
            code = ws.close_code
    return result("flood read at the inbox's pace; a message past max_message closed 1009",
                  {"messages_sent": sum(sent), "oversize_close_code": code}, code == 1009)


async def attack_per_address(url: str, addr: str) -> dict:
    """test_ws_attacks_memory: one address cannot take every slot (503 past the cap)."""
    conns = []
    status = None
    try:
        for _ in range(MAX_PER_ADDRESS):
            conns.append(await connect(url, addr))
        try:
            extra = await connect(url, addr)
            await extra.close()
        except InvalidStatus as exc:
            status = exc.response.status_code
    finally:
        t0 = time.monotonic()
        await asyncio.gather(*(c.close() for c in conns))
        closing = time.monotonic() - t0
    return result(f"{MAX_PER_ADDRESS} connections, the next refused with 503",
                  {"opened": len(conns), "next_status": status, "closing_s": round(closing, 2)},
                  len(conns) == MAX_PER_ADDRESS and status == 503)


async def attack_binary_before_login(url: str, addr: str) -> dict:
    """test_ws_attacks_memory: a big rtoc.bin.v1 frame from a client that may not push."""
    async with connect(url, addr, subprotocols=["rtoc.bin.v1"]) as ws:
        await ws.send(frames.encode_control({"op": "ping", "rid": 1, "pad": b"x" * 100_000}))
        try:
            await asyncio.wait_for(ws.recv(), 20)
            code = None
        except ConnectionClosed:
            code = ws.close_code
    return result("closed 1009 (max_frame_anonymous)", {"close_code": code}, code == 1009)


async def attack_dns_rebinding(url: str, addr: str) -> dict:
    """tests/unit/test_ws_origin.py against the instance: a rebound Host (with its matching
    Origin) and a foreign Origin are refused (403); the allow-listed Origin gets in."""
    _, port = host_port(url)
    rebound = await http_handshake(url, addr, f"evil.example:{port}", f"http://evil.example:{port}")
    foreign = await http_handshake(url, addr, f"127.0.0.1:{port}", "http://evil.example")
    allowed = await http_handshake(url, addr, f"127.0.0.1:{port}", ALLOWED_ORIGIN)
    got = {"rebound_host": [rebound[0], rebound[1][:60].decode(errors="replace")],
           "foreign_origin": [foreign[0], foreign[1][:60].decode(errors="replace")],
           "allowed_origin": allowed[0]}
    ok = (rebound[0] == 403 and b"Host" in rebound[1] and foreign[0] == 403
          and b"Origin" in foreign[1] and allowed[0] == 101)
    return result("403 for the rebound Host and the foreign Origin, 101 for the allowed one",
                  got, ok)


async def attack_login_throttle(url: str, addr: str, n: int = 12) -> dict:
    """Many wrong passwords for one user at once: at most MAX_FAILURES reach scrypt, the
    rest are refused by the throttle, and then even the right password is (locked)."""
    conns = [await connect(url, addr) for _ in range(n)]
    try:
        replies = await asyncio.gather(*(ask(c, {"login": {"user": READ_USER, "password": f"wrong-{i}"}})
                                         for i, c in enumerate(conns)))
        right = await ask(conns[0], {"login": {"user": READ_USER, "password": READ_PW}})
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    failed = sum(r["error"] is False and r["login"]["authorized"] is False for r in replies)
    throttled = sum(r["error"] is True and "too many failed logins" in r.get("message", "")
                    for r in replies)
    got = {"wrong_checked": failed, "throttled": throttled,
           "right_password_after": right.get("message", right.get("login"))}
    ok = (failed <= MAX_FAILURES and failed + throttled == n and right["error"] is True
          and "too many failed logins" in right.get("message", ""))
    return result(f"<= {MAX_FAILURES} checked, the rest throttled; then the right password refused",
                  got, ok)


async def attack_ring_budget(url: str, addr: str, most: int = 12) -> dict:
    """test_ring_budget over the websocket (write role): rtoc.bin.v1 pushes of new signals
    with a huge ``rate`` hint until the first refusal, then new signals pushed over JSON.
    Expected: the hints capped (``max_client_rate`` x ``max_client_seconds``: 16 MiB rings),
    refused past ``shm_per_client`` (40 MiB), and a driver still gets a new ring."""
    hint_refusals: list[dict] = []
    taken = 0
    async with connect(url, addr, subprotocols=["rtoc.bin.v1"], max_size=None) as ws:
        await ws.send(frames.encode_control({"op": "login", "rid": 1, "user": WRITE_USER,
                                             "password": WRITE_PW}))
        login = frames.decode(await asyncio.wait_for(ws.recv(), 20)).msg
        for i in range(most):
            await ws.send(frames.encode_data({"sig": f"Flood.Hint{i}", "rate": 1e11},
                                             [time.time()], [1.0]))
            await ws.send(frames.encode_control({"op": "sync", "rid": 2 + i}))
            while True:
                f = frames.decode(await asyncio.wait_for(ws.recv(), 30))
                if not isinstance(f, frames.Control):
                    continue
                m = f.msg
                if m.get("op") == "push" and m.get("ok") is False:
                    hint_refusals.append(m["error"])
                if m.get("re") == 2 + i:
                    break
            if hint_refusals:
                break
            taken += 1
    json_ok, json_refused = 0, []
    async with connect(url, addr) as ws:
        r = await ask(ws, {"login": {"user": WRITE_USER, "password": WRITE_PW}})
        logged = r["error"] is False and r["login"]["authorized"]
        for i in range(10):  # a ring each (1 MiB)
            r = await ask(ws, {"y": [1.0], "sname": [f"S{i}"], "dname": "Many"})
            if r["error"]:
                json_refused.append(r.get("message", ""))
            else:
                json_ok += 1
        # a driver still gets a new ring (its signal renamed)
        r = await ask(ws, {"plugin": {"Aux": {"signal": "Fresh"}}})
        fresh = r.get("plugin", {}).get("Aux", {}).get("signal")
    msg = hint_refusals[0]["message"] if hint_refusals else ""
    got = {"login": login.get("ok"), "hint_rings_taken": taken,
           "hint_refusal": f"{hint_refusals[0]['code']}: {msg[:150]}" if hint_refusals else None,
           "json_taken": json_ok, "json_refused": len(json_refused),
           "json_message": json_refused[0][:150] if json_refused else None, "driver_rename": fresh}
    ok = (login.get("ok") and logged and taken == 2 and "shm_per_client" in msg
          and json_refused and all("budget" in m for m in json_refused) and fresh == "Fresh")
    return result("huge rate hints capped to 16 MiB rings, the third refused (shm_per_client); "
                  "new JSON signals refused too; a driver still renames its signal", got, ok)


async def attack_nan_params(url: str, addr: str) -> dict:
    """test_rejected_params over the websocket (write role): NaN, infinities and bad names
    are refused and nothing changes."""
    async with connect(url, addr) as ws:
        r = await ask(ws, {"login": {"user": WRITE_USER, "password": WRITE_PW}})
        logged = r["error"] is False and r["login"]["authorized"]
        answers = {}
        for driver, param, value in (("Generator", "samplerate", math.nan),
                                     ("Generator", "frequency", -math.inf),
                                     ("Aux", "samplerate", math.inf), ("Aux", "signal", "a/b"),
                                     ("Aux", "signal", " ")):
            r = await ask(ws, json.dumps({"plugin": {driver: {param: value}}}))  # NaN as a token
            answers[f"{driver}.{param}={value!r}"] = r.get("plugin", {}).get(driver, {}).get(param)
        r = await ask(ws, {"plugin": {"Generator": {"get": ["samplerate", "frequency"]}}})
        kept = r.get("plugin", {}).get("Generator", {}).get("get")
    refused = all(isinstance(a, dict) and "error" in a for a in answers.values())
    got = {"logged_in": logged, "kept": kept,
           **{k: (v["error"][:70] if isinstance(v, dict) and "error" in v else v) for k, v in answers.items()}}
    return result("every bad value refused; Generator keeps 20000 Hz, 1 Hz", got,
                  logged and refused and kept == [SAMPLERATE, 1.0])


async def attack_rule_budget(url: str, addr: str, most: int = 150) -> dict:
    """test_rule_budget over the websocket (write role): rules that fire on every sample,
    added until the engine refuses them by their measured cost; then all removed."""
    refused, added = None, []
    async with connect(url, addr, max_size=None) as ws:
        r = await ask(ws, {"login": {"user": WRITE_USER, "password": WRITE_PW},
                           "eventLevel": False})
        logged = r["error"] is False and r["login"]["authorized"]
        for i in range(most):
            name = f"flood{i}"
            r = await ask(ws, {"automation": {"setEvent": {"name": name, "cond": "Generator.Sine > -2",
                                                           "trigger": "true"}}})
            if r["error"]:
                refused = r.get("message", "")
                break
            added.append(name)
            await asyncio.sleep(0.05)
        removed = await ask(ws, {"automation": {"removeEvent": added}}) if added else {"error": False}
    got = {"logged_in": logged, "rules_taken": len(added),
           "refusal": refused[:140] if refused else None, "removed": removed["error"] is False}
    return result("refused by max_rule_load after a few rules; removal answered", got,
                  logged and refused is not None and "max_rule_load" in refused
                  and removed["error"] is False)


ATTACKS: dict[str, Callable[[str, str], Awaitable[dict]]] = {
    "huge_names": attack_huge_names,
    "heavy_get_signal": attack_heavy_get_signal,
    "never_read": attack_never_read,
    "abort_full_queue": attack_abort_full_queue,
    "inbox": attack_inbox,
    "per_address": attack_per_address,
    "binary_before_login": attack_binary_before_login,
    "dns_rebinding": attack_dns_rebinding,
    "login_throttle": attack_login_throttle,
    "ring_budget": attack_ring_budget,
    "nan_params": attack_nan_params,
    "rule_budget": attack_rule_budget,
}
SKIPPED = {"metrics_without_login": "anonymous has the read role here, so /metrics is public "
                                    "by design (test_ws_attacks_memory checks the refusal)"}


async def _one(name: str, url: str, timeout: float) -> dict:
    t0 = time.monotonic()
    try:
        out = await asyncio.wait_for(ATTACKS[name](url, ADDRESS[name]), timeout)
    except Exception as exc:
        out = result("(see the attack)", f"raised {exc!r}"[:300], False)
    out["seconds"] = round(time.monotonic() - t0, 2)
    return out


async def attack_rounds(url: str, seconds: float, pid: int, only: list[str] | None = None,
                        timeout: float = 60.0) -> dict:
    """Every attack at once, again and again until ``seconds`` passed (one round at least);
    the websocket process's RSS sampled every 50 ms meanwhile."""
    rss = {"base": rss_mib(pid), "peak": 0.0}

    async def watch() -> None:
        while True:
            rss["peak"] = max(rss["peak"], rss_mib(pid))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    rounds: list[dict] = []
    end = time.monotonic() + seconds
    try:
        while True:
            names = only or list(ATTACKS)
            outs = await asyncio.gather(*(_one(n, url, timeout) for n in names))
            rounds.append(dict(zip(names, outs, strict=True)))
            if time.monotonic() >= end:
                break
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return {"rounds": rounds, "rss_base_mib": round(rss["base"], 1), "rss_peak_mib": round(rss["peak"], 1)}


# -- the suite ----------------------------------------------------------------------------------
def _counter(m: dict[str, float], name: str) -> float:
    return m.get(name, 0.0)


def _restarts(m: dict[str, float], process: str = "websocket") -> float:
    return sum(v for k, v in m.items()
               if k.startswith("rtoc_process_restarts_total{") and f'process="{process}"' in k)


def _attackers_gone(m: dict[str, float]) -> bool:
    return not any(k.startswith(("rtoc_ws_send_queue{", "rtoc_ws_send_queue_bytes{"))
                   and any(f'client="{a}"' in k for a in ADDRESS.values()) for k in m)


def check_metrics(before: dict[str, float], after: dict[str, float], rounds: int,
                  ran: list[str]) -> dict[str, dict]:
    """What /metrics must show after the attacks ``ran`` (counters as deltas)."""
    def delta(name: str) -> float:
        return _counter(after, name) - _counter(before, name)

    checks = {  # attack: (what, its counter's growth, at least)
        "never_read": ("slow_closed", delta("rtoc_ws_slow_closed_total"), 4 * rounds),
        "per_address": ("refused_address", delta("rtoc_ws_refused_address_total"), rounds),
        "huge_names": ("subscriptions_refused", delta("rtoc_ws_subscriptions_refused_total"),
                       11 * rounds),
        "heavy_get_signal": ("replies_refused", delta("rtoc_ws_replies_refused_total"), 3 * rounds),
        "login_throttle": ("logins_throttled", delta("rtoc_ws_logins_throttled_total"),
                           12 - MAX_FAILURES),
    }
    out = {what: {"got": v, "at_least": least, "ok": v >= least}
           for attack, (what, v, least) in checks.items() if attack in ran}
    out["attackers_gone"] = {"got": _attackers_gone(after), "ok": _attackers_gone(after)}
    out["clients_left"] = {"got": after.get("rtoc_ws_clients"), "ok": after.get("rtoc_ws_clients") == 0}
    return out


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(values) * 1000
    return {"n": len(values), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


def _lag(m: dict[str, float]) -> dict[str, float | None]:
    return {q: (round(m[f'rtoc_ws_loop_lag_seconds{{quantile="{q}"}}'] * 1000, 2)
                if f'rtoc_ws_loop_lag_seconds{{quantile="{q}"}}' in m else None)
            for q in ("0.5", "0.99", "1.0")} | {
        "max_since_start": round(m.get("rtoc_ws_loop_lag_max_seconds", math.nan) * 1000, 2)}


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system, s) each process used so far (0 for one that is gone)."""
    out = {}
    for name, pid in pids.items():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            out[name] = 0.0
    return out


def longest_gap(pushes: list[float], start: float, end: float) -> float:
    """The longest time without a push within ``start..end`` (s)."""
    before = [t for t in pushes if t < start]
    times = ([before[-1]] if before else [start]) + [t for t in pushes if start <= t <= end] + [end]
    return float(np.max(np.diff(times))) if len(times) > 1 else end - start


def run_suite(inst: Instance, seconds: float = 0.0, baseline: float = 3.0,
              only: list[str] | None = None) -> dict:
    """The witness's ``baseline`` s, then the attacks (rounds for ``seconds``, one at least),
    then the figures: see :func:`summary`."""
    url = ws_url(inst)
    written(inst, 60_000)  # 3 s of samples: a getSignal reply is megabytes of JSON
    before_all = inst.metrics()
    pid = inst.pid_of("websocket")
    ctx = mp.get_context("spawn")
    stop, ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
    witness = ctx.Process(target=witness_main, args=(url, stop, ready, out), daemon=True)
    witness.start()
    data = None
    try:
        if not ready.wait(30):
            raise TimeoutError("the witness got no push within 30 s")
        time.sleep(baseline)
        before = inst.metrics()
        pids = {"supervisor": inst.proc.pid, **{p["name"]: p["pid"] for p in inst.client.request(
            "status")["processes"] if p.get("pid")}, "witness": witness.pid, "attackers": os.getpid()}
        cpu0 = cpu_seconds(pids)
        t_start = time.monotonic()
        attacks = asyncio.run(attack_rounds(url, seconds, pid, only))
        t_end = time.monotonic()
        cpu1 = cpu_seconds(pids)
        after_attacks = inst.metrics()
        time.sleep(0.5)
        stop.set()
        data = out.get(timeout=30 + WITNESS_TIMEOUT)
    finally:
        stop.set()
        witness.join(10)
        if witness.is_alive():
            witness.kill()
            witness.join()
        out.close()
        out.join_thread()
    # the attackers' state goes once their TCP connections are lost (give it a moment)
    try:
        after = inst.wait_for(lambda: (m := inst.metrics()).get("rtoc_ws_clients") == 0
                              and _attackers_gone(m) and m, timeout=15)
    except TimeoutError:
        after = inst.metrics()
    rtts = data["rtts"]
    base_rtts = [r for t, r in rtts if r is not None and t_start - baseline <= t < t_start]
    during = [r for t, r in rtts if t_start <= t <= t_end]
    return {
        "attack_seconds": round(t_end - t_start, 2),
        "cpu_share_during": {k: round((cpu1[k] - cpu0[k]) / (t_end - t_start), 2) for k in pids},
        "rounds": len(attacks["rounds"]),
        "witness": {
            "before": _quantiles(base_rtts),
            "during": _quantiles([r for r in during if r is not None]),
            "unanswered": sum(r is None for _, r in rtts),
            "errors": data["errors"][:10],
            "worst_during": [[round(t - t_start, 2), round(r * 1000, 1)] for t, r in sorted(
                ((t, r) for t, r in rtts if r is not None and t_start <= t <= t_end),
                key=lambda x: -x[1])[:8]],
            "pushes_during": sum(t_start <= t <= t_end for t in data["pushes"]),
            "longest_push_gap_s": round(longest_gap(data["pushes"], t_start, t_end), 3),
            "longest_push_gap_before_s": round(longest_gap(data["pushes"], t_start - baseline, t_start), 3),
        },
        "loop_lag_ms": {"start": _lag(before_all), "before": _lag(before), "after": _lag(after_attacks)},
        "loop_lag_s": {"before_p99": before.get('rtoc_ws_loop_lag_seconds{quantile="0.99"}'),
                       "after_p99": after_attacks.get('rtoc_ws_loop_lag_seconds{quantile="0.99"}')},
        "websocket": {"pid_before": pid, "pid_after": inst.pid_of("websocket"),
                      "restarts": _restarts(after), "up": after.get(
                          next((k for k in after if k.startswith("rtoc_process_up{")
                                and 'process="websocket"' in k), ""), None),
                      "rss_base_mib": attacks["rss_base_mib"], "rss_peak_mib": attacks["rss_peak_mib"],
                      "rss_after_mib": round(rss_mib(pid), 1)},
        "metrics_checks": check_metrics(before, after, len(attacks["rounds"]), only or list(ATTACKS)),
        "attacks": attacks["rounds"][0],
        "attacks_last_round": attacks["rounds"][-1] if len(attacks["rounds"]) > 1 else None,
        "rounds_ok": [{n: a["ok"] for n, a in r.items()} for r in attacks["rounds"]],
        "skipped": SKIPPED,
    }


def summary(s: dict) -> str:
    """The figures as text (printed by the test and the runner)."""
    w = s["witness"]
    lines = [
        f"attack phase {s['attack_seconds']} s, {s['rounds']} round(s)",
        f"witness round trip before: p50 {w['before']['p50_ms']} ms, p99 {w['before']['p99_ms']} ms, "
        f"max {w['before']['max_ms']} ms ({w['before']['n']} requests)",
        f"witness round trip during: p50 {w['during']['p50_ms']} ms, p99 {w['during']['p99_ms']} ms, "
        f"max {w['during']['max_ms']} ms ({w['during']['n']} requests), unanswered {w['unanswered']}, "
        f"errors {w['errors']}",
        f"CPU (cores) during the attacks: {s['cpu_share_during']}",
        f"witness worst round trips during (s into the attacks, ms): {w['worst_during']}",
        f"witness pushes during: {w['pushes_during']}, longest gap {w['longest_push_gap_s'] * 1000:.0f} ms "
        f"(before: {w['longest_push_gap_before_s'] * 1000:.0f} ms)",
        f"loop lag (ms) before attacks: {s['loop_lag_ms']['before']}",
        f"loop lag (ms) after attacks:  {s['loop_lag_ms']['after']}",
        f"websocket process: pid {s['websocket']['pid_before']} -> {s['websocket']['pid_after']}, "
        f"restarts {s['websocket']['restarts']}, RSS {s['websocket']['rss_base_mib']} -> peak "
        f"{s['websocket']['rss_peak_mib']} MiB, {s['websocket']['rss_after_mib']} MiB after",
        "metrics: " + ", ".join(f"{k}={v['got']}{'' if v['ok'] else ' (NOT OK)'}"
                                for k, v in s["metrics_checks"].items()),
    ]
    for name, a in s["attacks"].items():
        lines.append(f"  {'ok ' if a['ok'] else 'BAD'} {name} ({a['seconds']} s): {a['got']}")
    for name, why in s["skipped"].items():
        lines.append(f"  --- {name}: skipped ({why})")
    return "\n".join(lines)
