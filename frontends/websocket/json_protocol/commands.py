"""The RTOC JSON commands: what each key of a client message does, and who may use it.

Each handler checks its value's shape completely before it changes anything (with the
rules both roads share, :mod:`validate`), so a bad command stores nothing; it returns what
goes under its reply key. Reading needs ``read``,
everything that writes (data, events, driver control, automation, removals) ``write``,
and instance settings ``admin``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from rtoc.frontends.websocket.ring_window import from_ring
from rtoc.frontends.websocket.validate import (
    MAX_NAMES,
    MAX_PASSWORD,
    MAX_POINTS,
    BadRequest,
    device_name,
    integer,
    names,
    need,
    number,
    push_name,
    signal_name,
)

from rtoc.errors import ArchiveOff, EngineUnavailable, Forbidden, RtocError, SignalNotFound

if TYPE_CHECKING:
    from rtoc.frontends.websocket.json_protocol.protocol import JsonProtocol
    from rtoc.frontends.websocket.session import Session

DEFAULT_POINTS = 200_000   # samples per signal in a getSignal reply unless maxN says otherwise
REPLY_POINTS = 200_000     # points of one getSignal reply in all ([websocket] max_reply_points)
ENCODE_AFTER = 20_000      # points past which a getSignal reply is encoded off the loop
CHUNK = 16_384             # values encoded by one orjson call (the GIL is held that long)
EVENT_LIST = 1000          # events in a getEventList reply
NO_DEVICE = "noDevice"     # RTOC's device name of a push without dname


@dataclass(frozen=True)
class Command:
    run: Callable[[JsonProtocol, Session, Any, dict, float], Awaitable[Any]]
    role: str
    reply: str | None      # the reply key (None: nothing in the main reply)


_NUMBER = (float, int)


def _floats(v: Any, what: str) -> np.ndarray:
    """A list of JSON numbers (NaN, Infinity allowed) as float64; anything else refused."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        v = [v]
    need(isinstance(v, list), f"{what} must be a list of numbers")
    if not all(type(x) in _NUMBER for x in v):
        bad = next(i for i, x in enumerate(v) if type(x) not in _NUMBER)
        raise BadRequest(f"{what}[{bad}] must be a number, got {type(v[bad]).__name__}")
    try:
        return np.array(v, dtype=np.float64)
    except OverflowError:
        raise BadRequest(f"{what}: a number is too large for a float64") from None


# -- authorization ---------------------------------------------------------------------------
async def authorize(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> bool:
    """RTOC's ``authorize``: base64(SHA-256(password)) as text, or ``true`` with no password."""
    if value is True:
        return s.anonymous_role != "none" or s.user is not None
    need(isinstance(value, str) and 0 < len(value) <= MAX_PASSWORD,
          "authorize must be base64(sha256(password)) as text, or true")
    return await _login(p, s, None, value, True, now)


async def login(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    """``{"user": name, "password": text}``: log in as a configured user."""
    need(isinstance(value, dict) and isinstance(value.get("user"), str)
         and isinstance(value.get("password"), str) and len(value["password"]) <= MAX_PASSWORD,
         'login must be {"user": name, "password": text}')
    ok = await _login(p, s, value["user"], value["password"], False, now)
    return {"authorized": ok, "user": s.user, "role": s.role}


async def _login(p: JsonProtocol, s: Session, user: str | None, secret: str, is_token: bool,
                 now: float) -> bool:
    result = await p.world.login(user, secret, is_token, s.address, now)
    if isinstance(result, float):
        raise BadRequest(f"too many failed logins from {s.address}; wait {math.ceil(result)} s")
    if result is None:
        return False
    s.log_in(*result)
    return True


async def logout(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    s.log_out()
    return {"role": s.role}


# -- data in -----------------------------------------------------------------------------------
async def push(p: JsonProtocol, s: Session, value: dict, msg: dict, now: float) -> bool:
    """RTOC's data push: ``y``, ``sname``, ``dname``, optional ``x``, ``unit``, ``plot``."""
    need("y" in value and "sname" in value, "a data push needs y and sname")
    value = {"dname": NO_DEVICE, **value}  # RTOC's device of a push without one
    y = _floats(value["y"], "y")
    sname = value["sname"]
    if isinstance(sname, str):
        sname = [sname]
    need(isinstance(sname, list) and all(isinstance(n, str) for n in sname) and sname,
          "sname must be a list of signal names")
    dname = value["dname"]
    need(isinstance(dname, str), "dname must be a device name (text)")
    for n in dict.fromkeys(sname):  # each name once: RTOC clients repeat it per sample
        push_name(dname, n)
    plot = value.get("plot", False)
    need(isinstance(plot, bool), "plot must be true or false")
    x = value.get("x")
    xs = _floats(x, "x") if x is not None else None
    unit = value.get("unit", "")
    if plot:
        need(isinstance(unit, str) or (isinstance(unit, list) and unit and isinstance(unit[0], str)),
              "unit must be text (or a list of text)")
        u = unit if isinstance(unit, str) else unit[0]
        t = xs if xs is not None and len(xs) == len(y) else np.arange(len(y), dtype=np.float64)
        await p.world.push(dname, sname[0], u, t, y, True, client=s.budget_key)
        return True
    need(len(sname) == len(y), f"sname has {len(sname)} names for {len(y)} values in y")
    if isinstance(unit, str):
        units = None
    else:
        need(isinstance(unit, list) and len(unit) == len(y) and all(isinstance(u, str) for u in unit),
              "unit must be text or a list of text as long as y")
        units = unit
    t = xs if xs is not None and len(xs) == len(y) else np.full(len(y), now)
    if len(set(sname)) == 1:  # the common case: samples of one signal, no regrouping
        await p.world.push(dname, sname[0], unit if units is None else units[0], t, y, False, client=s.budget_key)
        return True
    order: dict[str, list[int]] = {}
    for i, n in enumerate(sname):
        order.setdefault(n, []).append(i)
    for n, idx in order.items():
        ix = np.array(idx)
        await p.world.push(dname, n, unit if units is None else units[idx[0]], t[ix], y[ix], False,
                           client=s.budget_key)
    return True


async def event(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> bool:
    """``[text, sname, dname, x, priority, id, value]`` (trailing ones optional) or a map."""
    if isinstance(value, list):
        need(1 <= len(value) <= 7, "event must be [text, sname, dname, x, priority, id, value]")
        keys = ("text", "sname", "dname", "x", "priority", "id", "value")
        value = dict(zip(keys, value, strict=False))
    need(isinstance(value, dict), "event must be a list or a map")
    unknown = set(value) - {"text", "sname", "dname", "x", "priority", "id", "value", "signal",
                            "device", "time"}
    need(not unknown, f"unknown event field(s) {sorted(unknown)}")
    text = value.get("text", "")
    sig = value.get("sname", value.get("signal", "")) or ""
    dev = value.get("dname", value.get("device", "")) or ""
    ev_id = value.get("id", "") or ""
    for what, v in (("text", text), ("sname", sig), ("dname", dev), ("id", ev_id)):
        need(isinstance(v, str) and len(v) <= 10_000, f"event {what} must be text")
    x = value.get("x", value.get("time"))
    t = now if x is None else number(x, "event x")
    prio = value.get("priority", 0)
    need(prio in (0, 1, 2) and not isinstance(prio, bool), "event priority must be 0, 1 or 2")
    val = value.get("value")
    need(val is None or isinstance(val, str | int | float | bool), "event value must be a plain value")
    p.world.emit_event({"time": t, "text": text, "device": dev, "signal": sig,
                        "priority": int(prio), "id": ev_id, "value": val,
                        "extra": {"source": f"websocket:{s.user or s.address}"}})
    return True


# -- reading -----------------------------------------------------------------------------------
async def _signals(p: JsonProtocol) -> list[dict]:
    return (await p.world.request("signals"))["signals"]


async def get_latest(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    want = None if value is True or value == "all" else set(names(value, "getLatest"))
    out = {}
    for sig in await _signals(p):
        if (want is None or sig["name"] in want) and sig.get("latest"):
            out[sig["name"]] = [sig["latest"]["t"], sig["latest"]["y"], sig.get("unit", "")]
    if want and not out:  # names none of which has a sample: say so (some: those are answered)
        raise BadRequest(f"no samples of {', '.join(sorted(want)[:10])}")
    return out


async def get_signal_list(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> list:
    return [[sig["device"], sig["signal"]] for sig in await _signals(p)]


async def get_signal_info(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    """(RTOC extension for the dashboard) everything the signal table shows."""
    return {sig["name"]: {"device": sig["device"], "signal": sig["signal"], "unit": sig.get("unit", ""),
                          "id": sig["id"], "rate": sig.get("rate", 0.0), "lost": sig.get("lost", 0),
                          "written": sig.get("written", 0), "owner": sig.get("owner", ""),
                          "latest": [sig["latest"]["t"], sig["latest"]["y"]] if sig.get("latest") else None}
            for sig in await _signals(p)}


async def _events(p: JsonProtocol) -> list[list]:
    reply = await p.world.request("events", limit=EVENT_LIST)
    events, total = reply["events"], reply.get("total", len(reply["events"]))
    first = total - len(events)  # (an engine without "seq" numbers its newest events last)
    return [[e.get("device", ""), e.get("signal", ""), e.get("seq", first + i), e.get("text", ""),
             e.get("time"), e.get("value"), e.get("priority", 0), e.get("id", "")]
            for i, e in enumerate(events)]


async def get_event_list(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    return {str(e[2]): e for e in await _events(p)}


async def get_event(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    want = set(names(value if isinstance(value, list) else [value], "getEvent"))
    return {str(e[2]): e for e in await _events(p) if f"{e[0]}.{e[1]}" in want}


class Heavy(dict):
    """A ``getSignal`` answer of more than :data:`ENCODE_AFTER` points, its samples still
    numpy arrays: its reply is encoded on a worker thread (:meth:`JsonProtocol.encode`),
    in chunks, so that thread never holds the GIL for long."""

    def fragments(self) -> dict:
        """The answer with each array as pre-encoded JSON (``orjson.Fragment``)."""
        return {n: [orjson.Fragment(json_array(e[0])), orjson.Fragment(json_array(e[1])), *e[2:]]
                for n, e in self.items()}

    def lists(self) -> dict:
        return {n: [e[0].tolist(), e[1].tolist(), *e[2:]] for n, e in self.items()}


def json_array(a: np.ndarray) -> bytes:
    """float64[n] as a JSON list (NaN, infinities: null), :data:`CHUNK` values per call."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    if len(a) <= CHUNK:
        return orjson.dumps(a, option=orjson.OPT_SERIALIZE_NUMPY)
    parts = []
    for i in range(0, len(a), CHUNK):
        parts.append(orjson.dumps(a[i:i + CHUNK], option=orjson.OPT_SERIALIZE_NUMPY)[1:-1])
        time.sleep(0)  # hand the GIL to the event loop now, not at the next switch interval
    return b"[" + b",".join(parts) + b"]"


async def get_signal(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    """``["D.S", ...]``, ``"all"``, or ``{dname, sname, xmin, xmax, database, maxN}`` (or a
    list of such maps): ``{"D.S": [x, y, unit, sigID, xmin, xmax]}`` (x, y lists).

    A name asked twice is answered once (its last asking counts: the reply has one entry per
    name). All entries together hold at most ``p.reply_points`` points: an entry without
    ``maxN`` gets :data:`DEFAULT_POINTS` or its share of what the explicit ones leave; past
    that the request is refused before anything is read. Ring copies and decimation run on
    a worker thread (at most ``HEAVY_THREADS`` at once), so one client's big reply does not
    stall the others.
    """
    out = await get_signal_arrays(p, s, value, msg, now)
    if isinstance(out, Heavy):
        return await asyncio.to_thread(out.lists)
    return out


async def get_signal_arrays(p: JsonProtocol, s: Session, value: Any, msg: dict,
                            now: float) -> dict:
    """:func:`get_signal` as the websocket command answers it: a big answer stays arrays
    (:class:`Heavy`), encoded off the event loop with the reply."""
    signals = {sig["name"]: sig for sig in await _signals(p)}
    try:
        wanted = _wanted(value, signals, p.reply_points)
    except BadRequest as exc:
        if "max_reply_points" in str(exc):
            p.replies_refused += 1
        raise
    out: dict[str, list] = {}
    points = 0
    for name, (xmin, xmax, database, max_n) in wanted.items():
        t, y = await _history(p, name, xmin, xmax, database, max_n)
        if name not in signals and not len(t):
            raise SignalNotFound(f"no signal {name!r}", name)
        sig = signals.get(name, {})
        out[name] = [t, y, sig.get("unit", ""), sig.get("id"),
                     float(t[0]) if len(t) else None, float(t[-1]) if len(t) else None]
        points += len(t)
    if points > ENCODE_AFTER:
        return Heavy(out)
    return {n: [e[0].tolist(), e[1].tolist(), *e[2:]] for n, e in out.items()}


def _wanted(value: Any, signals: dict, budget: int) -> dict[str, tuple[float, float, bool, int]]:
    """name -> (xmin, xmax, database, maxN) of a getSignal value, each name once, maxN
    filled in so that they sum to at most ``budget`` (else BadRequest)."""
    if value == "all" or value is True:
        value = sorted(signals)
    requests = value if isinstance(value, list) else [value]
    need(len(requests) <= MAX_NAMES, f"getSignal: at most {MAX_NAMES} signals")
    asked: dict[str, tuple[float, float, bool, int | None]] = {}
    seen: set[str] = set()  # names given as text: checked once however often repeated
    for r in requests:
        if isinstance(r, str):
            if r in seen:
                asked[r] = asked.pop(r)  # the last asking counts
                continue
            seen.add(r)
            r = dict(zip(("dname", "sname"), signal_name(r), strict=True))
        need(isinstance(r, dict) and isinstance(r.get("dname"), str) and isinstance(r.get("sname"), str),
             'getSignal entries must be "Device.Signal" or {dname, sname, xmin, xmax, maxN}')
        name = push_name(r["dname"], r["sname"])
        xmin = -math.inf if r.get("xmin") is None else number(r["xmin"], "xmin")
        xmax = math.inf if r.get("xmax") is None else number(r["xmax"], "xmax")
        max_n = None if r.get("maxN") is None else integer(r["maxN"], "maxN", 4, MAX_POINTS)
        asked.pop(name, None)  # the last asking counts
        asked[name] = (xmin, xmax, bool(r.get("database", False)), max_n)
    explicit = sum(m for *_, m in asked.values() if m is not None)
    n_default = sum(m is None for *_, m in asked.values())
    share = min(DEFAULT_POINTS, (budget - explicit) // n_default) if n_default else 0
    if explicit > budget or (n_default and share < 4):
        raise BadRequest(f"getSignal asks for {explicit + 4 * n_default} points or more "
                         f"({len(asked)} signals); at most {budget} in one message "
                         "([websocket] max_reply_points): ask for fewer signals or a smaller maxN")
    return {n: (lo, hi, db, share if m is None else m) for n, (lo, hi, db, m) in asked.items()}


async def _history(p: JsonProtocol, name: str, xmin: float, xmax: float, database: bool,
                   max_n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ring when it covers the range, else the archive's history (ring + archive).
    Ring copies and decimation run on a worker thread."""
    unbounded = xmin == -math.inf and xmax == math.inf
    if not database:
        async with p.heavy:
            got = await asyncio.to_thread(from_ring, p.world, name, xmin, xmax, max_n,
                                          unbounded)
        if got is not None:
            return got
    try:
        reply = await p.world.request("history", signal=name,
                                      **{"from": None if xmin == -math.inf else xmin,
                                         "to": None if xmax == math.inf else xmax},
                                      max_points=max_n)
    except (ArchiveOff, EngineUnavailable):
        async with p.heavy:
            got = await asyncio.to_thread(from_ring, p.world, name, xmin, xmax, max_n, True)
        if got is None:
            raise
        return got
    return np.frombuffer(reply["t"], "<f8"), np.frombuffer(reply["y"], "<f8")


# -- subscriptions -----------------------------------------------------------------------------
def _target(value: Any, what: str) -> tuple[str, str]:
    """``["signal", "D.S"]`` or ``["device", "D"]``, each name by the rule of both roads
    (it becomes a bus topic)."""
    need(isinstance(value, list) and len(value) == 2 and value[0] in ("signal", "device")
         and isinstance(value[1], str), f"{what} must be ['signal', 'D.S'] or ['device', name]")
    if value[0] == "signal":
        signal_name(value[1])
    else:
        device_name(value[1])
    return value[0], value[1]


async def subscribe(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    kind, name = _target(value, "subscribe")
    if name not in (s.signals if kind == "signal" else s.devices):
        p.subscriptions.admit(s, s.subscription_count() + 1)
    s.subscribe(kind, name)
    return s.subscription()


async def unsubscribe(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    s.unsubscribe(*_target(value, "unsubscribe"))
    return s.subscription()


async def subscribe_all(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    need(value in (True, "signal", "device"), "subscribeAll must be 'signal', 'device' or true")
    s.subscribe_all()
    return s.subscription()


async def unsubscribe_all(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    need(value in (True, "signal", "device"), "unsubscribeAll must be 'signal', 'device' or true")
    s.unsubscribe_all()
    return s.subscription()


async def subscribe_view(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    """(extension) resampled view pushes ``{"view": {...}}`` of these signals (replaces)."""
    views = set(names(value, "subscribeView"))
    p.subscriptions.admit(s, s.subscription_count() - len(s.views) + len(views))
    s.views = views
    s.changed()
    return s.subscription()


async def event_level(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    """(extension; RTOC could not set it) push events with priority >= this; false: none."""
    need(value in (0, 1, 2, False, True) , "eventLevel must be 0, 1, 2 or false")
    s.events = value is not False
    if value is not False and value is not True:
        s.event_level = int(value)
    return s.subscription()


# -- drivers -----------------------------------------------------------------------------------
async def get_plugin_list(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    out = {}
    for d in (await p.world.request("drivers"))["drivers"]:
        out[d["name"]] = {
            "functions": [[f["name"], f["args"], len(f["args"]), f["args"], [], f["doc"], f["signature"]]
                          for f in d.get("functions", [])],
            "parameters": [[q["name"], q["value"], q["doc"]] for q in d.get("parameters", [])],
            "status": d["state"] == "running", "state": d["state"], "autorun": d.get("autostart", True),
            "info": d.get("driver", ""), "log": [],
        }
    return out


async def plugin(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    """``{Driver: {start: bool, "f()": [args], get: "p" | [...], param: value}}``."""
    need(isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()),
          'plugin must be {"Driver": {"start": true, "f()": [args], "get": "p", "p": value}}')
    writes = sorted({k for ops in value.values() for k in ops if k != "get"})
    if writes and not s.may("write"):
        raise Forbidden(f"plugin {', '.join(writes[:5])} needs the write role (you have {s.role}); "
                        "get needs read")
    drivers = {d["name"]: d for d in (await p.world.request("drivers"))["drivers"]}
    for name in value:
        need(name in drivers, f"no driver named {name!r} (drivers: {', '.join(sorted(drivers))})")
    out: dict[str, dict] = {}
    for name, ops in value.items():
        res: dict[str, Any] = {}
        for key, arg in ops.items():
            try:
                res[key] = await _plugin_op(p, s, drivers[name], key, arg)
            except RtocError as exc:
                res[key] = {"error": str(exc)}
        out[name] = res
    return out


async def _plugin_op(p: JsonProtocol, s: Session, d: dict, key: str, arg: Any) -> Any:
    name = d["name"]
    if key in ("start", "autostart"):
        need(isinstance(arg, bool), f"{key} must be true or false")
        if key == "autostart":
            raise BadRequest("autostart is set in rtoc.toml ([[drivers]] autostart)")
        state = (await p.world.request("start" if arg else "stop", driver=name))["state"]
        return "starting" if arg and state in ("stopped", "failed", "backoff") else state
    if key == "get":  # fresh: a set earlier in the same command may have changed a value
        d = next((x for x in (await p.world.request("drivers"))["drivers"] if x["name"] == name), d)
        params = {q["name"]: q["value"] for q in d.get("parameters", [])}
        keys = [arg] if isinstance(arg, str) else arg
        need(isinstance(keys, list) and all(isinstance(k, str) for k in keys), "get must be a name or a list")
        missing = [k for k in keys if k not in params]
        need(not missing, f"{name} has no parameter {', '.join(missing)}")
        return params[arg] if isinstance(arg, str) else [params[k] for k in keys]
    if key.endswith("()"):
        args = arg if isinstance(arg, list) else [] if arg is None else [arg]
        return (await p.world.request("call", driver=name, function=key[:-2], args=args, kwargs={}))["result"]
    return (await p.world.request("set", driver=name, param=key, value=arg))["value"]


async def get_session(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    """RTOC's session (it always failed there): signals, drivers, events and this client."""
    return {"signalList": await get_signal_list(p, s, True, msg, now),
            "pluginList": await get_plugin_list(p, s, True, msg, now),
            "events": await get_event_list(p, s, True, msg, now),
            "user": s.user, "role": s.role, "subscription": s.subscription()}


ORDER = ("authorize", "login", "logout", "y", "event", "plugin", "subscribe", "unsubscribe",
         "subscribeAll", "unsubscribeAll", "subscribeView", "eventLevel", "getLatest",
         "getSignalList", "getSignalInfo", "getEventList", "getEvent", "getSignal",
         "getPluginList", "getSession", "remove", "logger", "automation", "userAction")

TABLE: dict[str, Command] = {
    "authorize": Command(authorize, "none", None),
    "login": Command(login, "none", "login"),
    "logout": Command(logout, "none", "logout"),
    "y": Command(push, "write", "sent"),
    # no reply key, as RTOC: an "event" key in a reply reaches RTOC 3.0's client's
    # handle_event as if it were an event push (it dispatches on keys, replies or not)
    "event": Command(event, "write", None),
    "plugin": Command(plugin, "read", "plugin"),  # get needs read; the rest write (per key)
    "subscribe": Command(subscribe, "read", "subscription"),
    "unsubscribe": Command(unsubscribe, "read", "subscription"),
    "subscribeAll": Command(subscribe_all, "read", "subscription"),
    "unsubscribeAll": Command(unsubscribe_all, "read", "subscription"),
    "subscribeView": Command(subscribe_view, "read", "subscription"),
    "eventLevel": Command(event_level, "read", "subscription"),
    "getLatest": Command(get_latest, "read", "latest"),
    "getSignalList": Command(get_signal_list, "read", "signalList"),
    "getSignalInfo": Command(get_signal_info, "read", "signalInfo"),
    "getEventList": Command(get_event_list, "read", "events"),
    "getEvent": Command(get_event, "read", "events"),
    "getSignal": Command(get_signal_arrays, "read", "signals"),
    "getPluginList": Command(get_plugin_list, "read", "pluginList"),
    "getSession": Command(get_session, "read", "session"),
}

