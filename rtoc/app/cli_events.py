"""``rtoc events`` (watch and query events) and ``rtoc rules`` (event rules and actions)."""

from __future__ import annotations

import json
import re
import time

from rtoc.errors import RtocError
from rtoc.model import Event, Notification

PRIORITY = {0: "info", 1: "WARN", 2: "ERROR"}
_AGO = re.compile(r"^-?(\d+(?:\.\d+)?)([smhd]?)$")


def since_arg(text: str) -> float:
    """``-1h``, ``30m``, ``90`` (seconds ago) or an absolute unix time."""
    m = _AGO.match(text.strip())
    if not m:
        raise SystemExit(f"rtoc: --since expects e.g. -1h, 30m, 90s or unix seconds, got {text!r}")
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return value if value > 1e9 and not m.group(2) else time.time() - value


def format_event(ev: Event) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(ev.time)) + f"{ev.time % 1:.3f}"[1:]
    where = f"{ev.device}.{ev.signal}" if ev.signal else (ev.device or "-")
    value = "" if ev.value is None else f"  = {ev.value:.6g}" if isinstance(ev.value, float) \
        else f"  = {ev.value!r}"
    return f"{stamp}  {PRIORITY.get(ev.priority, ev.priority):5}  {ev.id}  {where}  {ev.text}{value}"


def _filters(args) -> dict:
    f = {"since": since_arg(args.since) if args.since else None, "device": args.device,
         "signal": args.signal, "text": args.text, "id": args.id, "min_priority": args.min_priority}
    return {k: v for k, v in f.items() if v is not None}


def _matches(ev: Event, f: dict) -> bool:
    return (ev.time >= f.get("since", -1e300) and ev.priority >= f.get("min_priority", 0)
            and all(getattr(ev, k) == f[k] for k in ("device", "signal", "id") if k in f)
            and ("text" not in f or f["text"].casefold() in ev.text.casefold()))


def cmd_events(args, client, endpoints: dict) -> int:
    """Recent events from the engine's list, then (unless --no-follow) new ones as they
    happen, until --count/--duration or Ctrl-C."""
    from rtoc.pipeline.bus import Subscriber

    f = _filters(args)
    show = (lambda ev: print(json.dumps(ev.to_dict()), flush=True)) if args.json else \
        (lambda ev: print(format_event(ev), flush=True))
    # subscribe first, so nothing falls between the history and the live part
    sub = Subscriber(endpoints["data"], signals=[], events=True, notify=args.notify,
                     curve=getattr(client, "curve", None)) if args.follow else None
    try:
        shown_before: set = set()
        if args.history:
            with client as c:
                found = c.request("events", limit=args.history, **f)["events"]
            for d in found:
                ev = Event.from_dict(d)
                show(ev)
                shown_before.add((ev.time, ev.id, ev.text))
        if sub is None:
            return 0
        shown, deadline = 0, time.monotonic() + args.duration if args.duration else None
        while args.count is None or shown < args.count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            msg = sub.recv(timeout=min(left, 1.0) if left is not None else 1.0)
            if isinstance(msg, Notification):
                print(f"{time.strftime('%H:%M:%S', time.localtime(msg.time))}  NOTE{msg.priority}  "
                      f"{msg.source}  {msg.text}", flush=True)
            if not isinstance(msg, Event) or not _matches(msg, f):
                continue
            if (msg.time, msg.id, msg.text) in shown_before:
                continue  # already shown from the history
            show(msg)
            shown += 1
        return 0
    finally:
        if sub is not None:
            sub.close()


def cmd_rules(args, client) -> int:
    with client as c:
        if args.action == "list":
            reply = c.request("rules")
            if args.json:
                print(json.dumps({k: reply[k] for k in ("events", "actions", "stats")}, indent=1))
                return 0
            stats = reply.get("stats", {})
            for r in reply["events"]:
                st = stats.get(r["name"], {})
                flag = "on " if r.get("active", True) else "off"
                extra = "".join(f" {k}={r[k]:g}" for k in ("hold", "cooldown") if r.get(k))
                print(f"event  {flag} {r['name']!r}: {r['cond']}  [{r['trigger']}{extra}] "
                      f"-> id {r.get('id') or r['name']!r}, priority {r.get('priority', 0)}"
                      + (f"  (fired {st['fired']})" if st else ""))
            for a in reply["actions"]:
                flag = "on " if a.get("active", True) else "off"
                steps = "; ".join(f"{k} {v}" for s in a["steps"] for k, v in s.items()
                                  if k in ("call", "set", "write", "notify"))
                print(f"action {flag} {a['name']!r}: on {', '.join(a['listen'])} -> {steps}")
            return 0
        if args.action in ("enable", "disable"):
            c.request("rule_enable", kind=args.kind, name=args.name, active=args.action == "enable")
        elif args.action == "remove":
            c.request("rule_remove", kind=args.kind, name=args.name)
        elif args.action == "put":
            try:
                rule = json.loads(args.json_rule)
            except ValueError as exc:
                raise RtocError(f"the rule is not valid JSON: {exc}") from None
            c.request("rule_put", kind=args.kind, rule=rule)
        print(f"{args.kind} {args.name if args.action != 'put' else rule.get('name')!r}: {args.action} done")
    return 0


def add_parsers(sub, client_of, endpoints_of) -> None:
    e = sub.add_parser("events", help="show events as they happen (and recent ones)")
    e.add_argument("--history", type=int, default=20, metavar="N", help="recent events to show first (0: none)")
    e.add_argument("--no-follow", dest="follow", action="store_false", help="only the recent events")
    e.add_argument("--since", help="only events after: -1h, 30m, 90s or unix seconds")
    e.add_argument("--min-priority", type=int, choices=(0, 1, 2))
    e.add_argument("--device")
    e.add_argument("--signal")
    e.add_argument("--id")
    e.add_argument("--text", help="substring of the text (case-insensitive)")
    e.add_argument("-n", "--count", type=int, help="stop after this many new events")
    e.add_argument("--duration", type=float, help="stop after this many seconds")
    e.add_argument("--notify", action="store_true", help="also show notifications")
    e.add_argument("--json", action="store_true", help="one JSON object per line")
    e.set_defaults(fn=lambda a: cmd_events(a, client_of(a), endpoints_of(a)))

    r = sub.add_parser("rules", help="list, enable, disable, remove or put event rules and actions")
    rs = r.add_subparsers(dest="action")
    lst = rs.add_parser("list", help="the rules in force (default)")
    lst.add_argument("--json", action="store_true")
    for name in ("enable", "disable", "remove"):
        x = rs.add_parser(name, help=f"{name} an event rule or an action")
        x.add_argument("kind", choices=("event", "action"))
        x.add_argument("name")
    put = rs.add_parser("put", help="add or replace a rule: rtoc rules put event '{\"name\": ...}'")
    put.add_argument("kind", choices=("event", "action"))
    put.add_argument("json_rule", metavar="JSON")
    r.set_defaults(fn=lambda a: cmd_rules(a, client_of(a)), action="list", json=False)
