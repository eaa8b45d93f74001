"""RTOC's management keys: ``automation``, ``logger``, ``remove``, ``userAction``.

The original ran Python sent by the client for ``automation.setAction`` scripts and
``userAction``; here automation is the engine's validated rules (docs/EVENTS.md): events
with a condition, actions with steps (call, set, write, notify). A ``script`` is refused
with a message saying what to send instead. Instance settings that RTOC changed over the
network (backup, ports, Telegram, reboot) are set in rtoc.toml and are refused here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from rtoc.frontends.websocket.json_protocol.commands import Command
from rtoc.frontends.websocket.validate import need

from rtoc.model import split_name

if TYPE_CHECKING:
    from rtoc.frontends.websocket.json_protocol.protocol import JsonProtocol
    from rtoc.frontends.websocket.session import Session

# RTOC's setEvent keys -> the rule's (retur was RTOC's "fire again while true")
_EVENT_KEYS = {"name": "name", "cond": "cond", "text": "text", "priority": "priority", "id": "id",
               "trigger": "trigger", "sname": "signal", "dname": "device", "active": "active",
               "hold": "hold", "cooldown": "cooldown"}
_ACTION_KEYS = {"name": "name", "listenID": "listen", "listen": "listen", "steps": "steps",
                "active": "active", "cooldown": "cooldown"}


async def _rules(p: JsonProtocol) -> dict:
    reply = await p.world.request("rules")
    return {"events": {r["name"]: r for r in reply["events"]},
            "actions": {r["name"]: r for r in reply["actions"]},
            "stats": reply.get("stats", {})}


def _event_rule(raw: Any) -> dict:
    need(isinstance(raw, dict), "setEvent must be a map {name, cond, text, priority, id, trigger, ...}")
    unknown = sorted(set(raw) - set(_EVENT_KEYS) - {"retur"})
    need(not unknown, f"setEvent: unknown key(s) {unknown} (known: {sorted(_EVENT_KEYS)})")
    rule = {_EVENT_KEYS[k]: v for k, v in raw.items() if k in _EVENT_KEYS}
    if rule.get("device") == "" and rule.get("signal") == "":
        rule["device"] = rule["signal"] = ""
    return rule


def _action_rule(raw: Any) -> dict:
    need(isinstance(raw, dict), "setAction must be a map {name, listenID, steps, active}")
    need("script" not in raw, "setAction: scripts (Python code) are never run; send 'steps' "
          "instead, e.g. [{\"call\": \"Generator.setFrequency\", \"args\": [2]}] (docs/EVENTS.md)")
    unknown = sorted(set(raw) - set(_ACTION_KEYS) - {"parameters"})
    need(not unknown, f"setAction: unknown key(s) {unknown} (known: {sorted(_ACTION_KEYS)})")
    rule = {_ACTION_KEYS[k]: v for k, v in raw.items() if k in _ACTION_KEYS}
    if isinstance(rule.get("listen"), str):
        rule["listen"] = [rule["listen"]]
    return rule


async def automation(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    """Sub-keys ``setEvent``, ``setAction``, ``removeEvent``, ``removeAction``,
    ``active {events?: bool, actions?: bool}`` or per rule ``enable {kind, name, active}``,
    ``list``; the reply lists the rules after the changes."""
    need(isinstance(value, dict), "automation must be a map of sub-commands")
    known = {"setEvent", "setAction", "removeEvent", "removeAction", "active", "enable", "list",
             "testEvent", "testAction", "reset"}
    unknown = sorted(set(value) - known)
    need(not unknown, f"automation: unknown sub-command(s) {unknown} (known: {sorted(known)})")
    for gone in ("testEvent", "testAction", "reset"):
        need(gone not in value, f"automation.{gone} is not available (rules are tested when set)")
    if "setEvent" in value:
        await p.world.request("rule_put", kind="event", rule=_event_rule(value["setEvent"]))
    if "setAction" in value:
        await p.world.request("rule_put", kind="action", rule=_action_rule(value["setAction"]))
    for key, kind in (("removeEvent", "event"), ("removeAction", "action")):
        if key in value:
            names = value[key] if isinstance(value[key], list) else [value[key]]
            need(all(isinstance(n, str) for n in names), f"{key} must be a rule name or a list of names")
            for n in names:
                await p.world.request("rule_remove", kind=kind, name=n)
    if "enable" in value:
        e = value["enable"]
        need(isinstance(e, dict) and e.get("kind") in ("event", "action") and isinstance(e.get("name"), str)
              and isinstance(e.get("active"), bool), "enable must be {kind: event|action, name, active}")
        await p.world.request("rule_enable", kind=e["kind"], name=e["name"], active=e["active"])
    if "active" in value:
        a = value["active"]
        need(isinstance(a, dict) and set(a) <= {"events", "actions"}
              and all(isinstance(v, bool) for v in a.values()), "active must be {events?: bool, actions?: bool}")
        rules = await _rules(p)
        for key, kind in (("events", "event"), ("actions", "action")):
            if key in a:
                for name in rules[key]:
                    await p.world.request("rule_enable", kind=kind, name=name, active=a[key])
    rules = await _rules(p)
    return {"events": rules["events"], "actions": rules["actions"], "stats": rules["stats"],
            "active": {"events": any(r.get("active", True) for r in rules["events"].values()),
                       "actions": any(r.get("active", True) for r in rules["actions"].values())}}


async def logger(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    """``{"info": true}``: counts and processes (no secrets); ``{"clear": "all" | ["D.S"]}``
    (write role): empties signals that clients pushed (RTOC's ``clearData``; the archive
    keeps their history). RTOC's other sub-keys changed settings that live in rtoc.toml
    here, and are refused with that hint."""
    need(isinstance(value, dict), "logger must be a map, e.g. {\"info\": true}")
    refused = sorted(set(value) - {"info", "clear"})
    need(not refused, f"logger: {', '.join(refused)} not available over the network "
          "(set it in rtoc.toml; signals age out of their rings, the archive keeps history)")
    out: dict[str, Any] = {}
    if "clear" in value:
        need(s.may("write"), f"logger.clear needs the write role (you have {s.role})")
        out["clear"] = await _clear(p, value["clear"])
    if "info" in value:  # RTOC answered info whatever its value (clients send null)
        status = await p.world.request("status")
        events = await p.world.request("events", limit=1)
        out["info"] = {
            "version": status.get("version"), "instance": status.get("instance"),
            "uptime": status.get("uptime"), "signals": len(status.get("signals", [])),
            "samples": sum(sig.get("written", 0) for sig in status.get("signals", [])),
            "events": events.get("total", 0),
            "processes": [{k: proc.get(k) for k in ("name", "kind", "state", "restarts")}
                          for proc in status.get("processes", [])]}
    return out


async def _pushed(p: JsonProtocol, wanted: list) -> list[str]:
    """The names of these signals (IDs or "D.S"), or of all pushed ones for ``None``;
    refuses (before anything changes) unknown signals and signals a driver writes."""
    known = {sig["id"]: sig for sig in (await p.world.request("signals"))["signals"]}
    if wanted is None:
        return [sig["name"] for sig in known.values() if _client_pushed(sig)]
    by_name = {sig["name"]: sig for sig in known.values()}
    names = []
    for x in wanted:
        sig = by_name.get(x) if isinstance(x, str) else known.get(x)
        need(sig is not None, f"no signal {x!r}")
        need(_client_pushed(sig), f"{sig['name']} is written by {sig.get('owner')!r}: "
              "only pushed signals can be removed or cleared")
        names.append(sig["name"])
    return list(dict.fromkeys(names))


def _client_pushed(sig: dict) -> bool:
    return sig.get("owner") == "websocket" or str(sig.get("owner", "")).startswith("client:")


def _signal_ids(value: Any, what: str) -> list:
    need(isinstance(value, list)
          and all((isinstance(x, int) and not isinstance(x, bool)) or isinstance(x, str) for x in value),
          f"{what} must be a list of signal IDs (integers) or \"Device.Signal\" names")
    return value


async def _clear(p: JsonProtocol, value: Any) -> list[str]:
    need(value != "events", "events are not cleared: the event list is a log (the archive "
          "keeps events)")
    names = await _pushed(p, None if value == "all" else _signal_ids(value, "logger.clear"))
    empty = np.empty(0, np.float64)
    for name in names:
        device, signal = split_name(name)
        await p.world.push(device, signal, "", empty, empty, True)
    return names


async def remove(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> list[int]:
    """RTOC's ``[[sigIDs], [evIDs]]`` (IDs as ``getSignal`` gives them; names "D.S" are
    taken too): removes signals that clients pushed (drivers' signals are refused before
    anything is removed); the archive keeps their history. Events are a log here and are
    not removed (``[evIDs]`` must be empty). Returns ``[signals removed, 0]``."""
    need(isinstance(value, list) and len(value) in (1, 2) and all(isinstance(v, list) for v in value),
          "remove must be [[signal IDs], [event IDs]]")
    sigs, events = value[0], value[1] if len(value) == 2 else []
    need(not events, "events are not removed: the event list is a log (the archive keeps "
          "events); remove [[signal IDs], []]")
    targets = await _pushed(p, _signal_ids(sigs, "remove"))
    for name in targets:
        await p.world.remove_signal(name)
    return [len(targets), 0]


async def user_action(p: JsonProtocol, s: Session, value: Any, msg: dict, now: float) -> dict:
    """RTOC's user actions ran Python scripts; here a user action is a driver function:
    ``"Driver.function"`` (or ``{name, args}``) -> ``{name, success, type, data}``."""
    if isinstance(value, str):
        value = {"name": value}
    need(isinstance(value, dict) and isinstance(value.get("name"), str) and "." in value["name"],
          'userAction must be "Driver.function" or {"name": "Driver.function", "args": [...]}')
    args = value.get("args", [])
    need(isinstance(args, list), "userAction args must be a list")
    driver, _, function = value["name"].partition(".")
    reply = await p.world.request("call", driver=driver, function=function, args=args, kwargs={})
    return {"name": value["name"], "success": True, "type": "result", "data": reply["result"]}


TABLE: dict[str, Command] = {
    "remove": Command(remove, "write", "remove"),
    "logger": Command(logger, "read", "logger"),
    "automation": Command(automation, "write", "automation"),
    "userAction": Command(user_action, "write", "userAction"),
}
