"""An in-memory instance for the websocket protocol core's tests (the protocol's World).

It answers the control ops the protocol uses from plain dictionaries, keeps pushed samples
and events, and logs in through the real ``auth.Users`` and ``Throttle`` (scrypt with a
tiny cost factor, so a test logs in in microseconds). The integration tests use the real
server instead.
"""

from __future__ import annotations

import math

import numpy as np
from rtoc.frontends.websocket.auth import Throttle, User, Users, hash_password
from rtoc.frontends.websocket.json_protocol.guard import Limits
from rtoc.frontends.websocket.json_protocol.protocol import JsonProtocol
from rtoc.frontends.websocket.session import Session

from rtoc.errors import DriverNotFound, EventError, RuleNotFound, SignalOwned

PASSWORDS = {"reader": "r-pass", "writer": "w-pass", "boss": "a-pass"}
ROLES = {"reader": "read", "writer": "write", "boss": "admin"}


def users(anonymous: str = "read") -> Users:
    return Users([User(n, ROLES[n], hash_password(p, n=16, r=1, p=1)) for n, p in PASSWORDS.items()],
                 anonymous)


class MemoryWorld:
    def __init__(self, anonymous: str = "read"):
        self.users = users(anonymous)
        self.throttle = Throttle()
        self.samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.units: dict[str, str] = {}
        self.owners: dict[str, str] = {"Generator.Sine": "Generator"}
        t = np.arange(1000, dtype=np.float64) + 1000.0
        self.samples["Generator.Sine"] = (t, np.sin(t))
        self.units["Generator.Sine"] = "V"
        self.events: list[dict] = []
        self.drivers = {"Generator": {"state": "running", "params": {"samplerate": 10.0},
                                      "calls": []}}
        self.rules: dict[str, dict[str, dict]] = {"event": {}, "action": {}}
        self.requests: list[str] = []

    # -- the World port --------------------------------------------------------------------
    async def request(self, op: str, **f) -> dict:
        self.requests.append(op)
        if op == "signals" or op == "status":
            sigs = [self._signal(i, n) for i, n in enumerate(sorted(self.samples))]
            return {"ok": True, "signals": sigs, "processes": [], "version": "test", "uptime": 1.0}
        if op == "drivers":
            return {"ok": True, "drivers": [
                {"name": n, "state": d["state"], "driver": "generator", "wanted": True,
                 "parameters": [{"name": k, "value": v, "doc": ""} for k, v in d["params"].items()],
                 "functions": [{"name": "setFrequency", "args": ["freq"], "doc": "",
                                "signature": "setFrequency(freq)"}]}
                for n, d in self.drivers.items()]}
        if op in ("start", "stop"):
            d = self._driver(f["driver"])
            d["state"] = "running" if op == "start" else "stopped"
            return {"ok": True, "state": d["state"]}
        if op == "call":
            self._driver(f["driver"])["calls"].append((f["function"], f["args"]))
            return {"ok": True, "result": f["args"][0] if f["args"] else None}
        if op == "set":
            d = self._driver(f["driver"])
            if f["param"] not in d["params"] or not isinstance(f["value"], int | float):
                raise DriverNotFound(f"bad parameter {f['param']!r}")
            d["params"][f["param"]] = float(f["value"])
            return {"ok": True, "value": float(f["value"])}
        if op == "events":
            return {"ok": True, "events": self.events[-f.get("limit", 1000):], "total": len(self.events)}
        if op == "history":
            t, y = self.samples.get(f["signal"], (np.empty(0), np.empty(0)))
            lo = -math.inf if f.get("from") is None else f["from"]
            hi = math.inf if f.get("to") is None else f["to"]
            keep = (t >= lo) & (t <= hi)
            return {"ok": True, "t": t[keep].tobytes(), "y": y[keep].tobytes()}
        if op == "rules":
            return {"ok": True, "events": list(self.rules["event"].values()),
                    "actions": list(self.rules["action"].values()), "stats": {}}
        if op == "rule_put":
            self.rules[f["kind"]][f["rule"]["name"]] = dict(f["rule"])
            return {"ok": True, "rule": f["rule"]}
        if op == "rule_remove":
            if self.rules[f["kind"]].pop(f["name"], None) is None:
                raise RuleNotFound(f"no {f['kind']} rule {f['name']!r}")
            return {"ok": True, "rule": None}
        if op == "rule_enable":
            self.rules[f["kind"]][f["name"]]["active"] = f["active"]
            return {"ok": True}
        raise AssertionError(f"the protocol asked for an op the world does not know: {op}")

    async def push(self, device: str, signal: str, unit: str, t, y, replace: bool, client: str = "") -> None:
        name = f"{device}.{signal}"
        if self.owners.get(name, "websocket") != "websocket":
            raise SignalOwned(f"{name} is written by {self.owners[name]}", name)
        self.owners[name] = "websocket"
        self.units.setdefault(name, unit)
        old_t, old_y = self.samples.get(name, (np.empty(0), np.empty(0)))
        if replace:
            self.samples[name] = (t.copy(), y.copy())
        else:
            self.samples[name] = (np.concatenate([old_t, t]), np.concatenate([old_y, y]))

    def writes(self, name: str) -> bool:
        return self.owners.get(name) == "websocket"

    async def remove_signal(self, name: str) -> dict:
        self.samples.pop(name)
        self.owners.pop(name, None)
        return {"ok": True, "name": name}

    def emit_event(self, event: dict) -> None:
        if event["priority"] not in (0, 1, 2):
            raise EventError("bad priority")
        self.events.append(event)

    def ring(self, name: str):
        return self.samples.get(name)

    async def login(self, user, secret, is_token, address, now):
        wait = self.throttle.begin(address, now, user)  # as the Hub: counted before scrypt
        if wait > 0:
            return float(wait)
        found = self.users.login(user, secret, is_token=is_token)
        if found is None:
            self.throttle.failed(address, now, user)
            return None
        self.throttle.succeeded(address, now, found.name)
        return found.name, found.role

    # -- helpers -----------------------------------------------------------------------------
    def _signal(self, i: int, name: str) -> dict:
        t, y = self.samples[name]
        device, _, signal = name.partition(".")
        return {"id": i + 1, "name": name, "device": device, "signal": signal,
                "unit": self.units.get(name, ""), "owner": self.owners.get(name, ""),
                "written": len(t), "rate": 0.0, "lost": 0,
                "latest": {"t": float(t[-1]), "y": float(y[-1])} if len(t) else None}

    def _driver(self, name: str) -> dict:
        if name not in self.drivers:
            raise DriverNotFound(f"no driver named {name!r}", name)
        return self.drivers[name]


def protocol(anonymous: str = "read", **limits) -> tuple[JsonProtocol, MemoryWorld]:
    world = MemoryWorld(anonymous)
    return JsonProtocol(world, Limits(**limits)), world


def session(role: str = "read", address: str = "10.0.0.1") -> Session:
    return Session(address, role, role)
