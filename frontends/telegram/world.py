"""The instance as the bot's core sees it: control-plane requests, answers as plain data.

Each method is one request (``signals``, ``drivers``, ``start`` …); an error reply raises
the RtocError it names, which the core shows to the user. History comes back as float64
arrays, already min/max decimated by the archiver to ``max_points``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rtoc.pipeline.control import ControlClient

HISTORY_TIMEOUT = 30.0  # s: a week of a 1 kHz signal is counted and decimated in the database


class ControlWorld:
    def __init__(self, control: ControlClient):
        self.c = control

    def signals(self) -> list[dict]:
        return self.c.request("signals")["signals"]

    def drivers(self) -> list[dict]:
        return self.c.request("drivers")["drivers"]

    def start(self, driver: str) -> str:
        return self.c.request("start", driver=driver)["state"]

    def stop(self, driver: str) -> str:
        return self.c.request("stop", driver=driver)["state"]

    def set(self, driver: str, param: str, value: Any) -> Any:
        return self.c.request("set", driver=driver, param=param, value=value).get("value", value)

    def call(self, driver: str, function: str, args: list) -> Any:
        return self.c.request("call", driver=driver, function=function, args=args).get("result")

    def rules(self) -> dict:
        return self.c.request("rules")

    def rule_enable(self, kind: str, name: str, active: bool) -> None:
        self.c.request("rule_enable", kind=kind, name=name, active=active)

    def rule_put(self, kind: str, rule: dict) -> None:
        self.c.request("rule_put", kind=kind, rule=rule)

    def events(self, min_priority: int, limit: int) -> list[dict]:
        events = self.c.request("events", min_priority=min_priority, limit=limit)["events"]
        return sorted(events, key=lambda e: e["time"], reverse=True)

    def archive_events(self, t0: float, t1: float) -> list[dict]:
        return self.c.request("archive_events", limit=5000, **{"from": t0, "to": t1})["events"]

    def history(self, signal: str, t0: float, t1: float, max_points: int) -> tuple[np.ndarray, np.ndarray]:
        r = self.c.request("history", signal=signal, max_points=max_points, timeout=HISTORY_TIMEOUT,
                           **{"from": t0, "to": t1})
        return np.frombuffer(r["t"], np.float64), np.frombuffer(r["y"], np.float64)
