"""The supervisor's table of children and its decisions. Pure: no processes, time is an
argument.

Which child to start now (the engine first; drivers and frontends once it runs), what an
exit means (stopped on purpose, restart after a back-off, failed for good, or, for the
engine, the end of the instance), and what ``rtoc status`` shows of each. The supervisor's
shell owns the processes and tells the table what happened to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from rtoc.app.restart import RestartPolicy
from rtoc.pipeline.child import ChildSpec


@dataclass
class Child:
    """One child process and what the supervisor knows of it."""

    name: str
    kind: str                     # "engine", "driver" or "frontend"
    target: Any                   # the module-level main(spec) the process runs
    spec: ChildSpec
    policy: RestartPolicy
    pid: int | None = None        # while a process runs
    state: str = "stopped"        # starting, running, backoff, failed, stopped
    wanted: bool = True
    started_at: float = 0.0
    next_start: float | None = 0.0
    restarts: int = 0
    last_exit: int | None = None
    description: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)  # a frontend's counters (frontend_stats)
    alive_at: float = 0.0         # a driver's last sign of a turning loop (driver_alive)
    stalls: int = 0               # times it was killed for a hung loop

    @property
    def identity(self) -> bytes:
        """Its ZeroMQ identity on the control socket."""
        if self.kind == "driver":
            return f"driver:{self.name}".encode()
        return self.name.encode()  # the engine, the archiver: b"engine", b"archiver"

    def info(self, now: float) -> dict:
        alive = self.pid is not None
        url = self.description.get("url") if self.kind == "frontend" else None
        # persisted parameter values a driver set aside at its start (params/NAME.rejected.json)
        rejected = {p["name"]: p["rejected"] for p in self.description.get("parameters", ())
                    if isinstance(p, dict) and "rejected" in p} if self.kind == "driver" else {}
        return {"name": self.name, "kind": self.kind, "state": self.state,
                "pid": self.pid, "uptime": now - self.started_at if alive else 0.0,
                "restarts": self.restarts, "last_exit": self.last_exit,
                **({"url": url} if url is not None else {}),
                **({"rejected": rejected} if rejected else {}),
                **({"stats": stats} if (stats := {**(self.stats or _numbers(self.description.get("stats"))),
                                                   **({"stalls": self.stalls} if self.stalls else {})}) else {})}


def _numbers(stats: object) -> dict:
    """A child's counters as it reported them (a driver: tick errors), numbers only."""
    return {k: v for k, v in stats.items() if isinstance(k, str) and isinstance(v, (int, float))} \
        if isinstance(stats, dict) else {}


@dataclass(frozen=True)
class Exit:
    """What a child's exit means (the table has set the child's new state): the log level
    and line to write, and whether the whole instance must stop (the engine failed)."""

    level: int
    message: str
    stop_instance: bool = False


ANNOUNCED = ("archiver", "websocket", "telegram")  # frontends that say hello once ready


class ChildTable:
    def __init__(self, burst_seconds: float) -> None:
        self.burst_seconds = burst_seconds
        self.children: dict[str, Child] = {}

    def add(self, child: Child) -> None:
        self.children[child.name] = child

    def get(self, name: str) -> Child | None:
        return self.children.get(name)

    def of_kind(self, kind: str) -> list[Child]:
        return [c for c in self.children.values() if c.kind == kind]

    def by_identity(self, identity: bytes) -> Child | None:
        """The child that sent from ``identity``, or None for a client."""
        if identity in (b"engine", b"archiver", b"websocket", b"telegram"):
            return self.children.get(identity.decode())
        if identity.startswith(b"driver:"):
            child = self.children.get(identity[7:].decode(errors="replace"))
            return child if child is not None and child.kind == "driver" else None
        return None

    def due(self, now: float) -> list[Child]:
        """Children to start now: wanted, not running, their time has come; everyone but
        the engine waits until the engine runs (it must see every ring's first samples)."""
        engine = self.children.get("engine")
        engine_up = engine is not None and engine.state == "running"
        return [c for c in self.children.values()
                if c.wanted and c.pid is None and c.next_start is not None and now >= c.next_start
                and (c.kind == "engine" or engine_up)]

    def started(self, child: Child, pid: int, now: float) -> None:
        """``starting`` until the child says it is ready (the engine's and the archiver's
        hello, the websocket's once it listens, a driver's first state); a frontend that
        says nothing (automation) runs once started."""
        child.pid, child.started_at, child.next_start, child.alive_at = pid, now, None, now
        announces = child.kind != "frontend" or child.name in ANNOUNCED
        child.state = "starting" if announces else "running"
        child.policy.started(now)

    def exited(self, child: Child, code: int | None, now: float) -> Exit:
        """The process of ``child`` ended with ``code`` (negative: killed by that signal)."""
        uptime = now - child.started_at
        child.pid, child.last_exit = None, code
        if not child.wanted:
            child.state = "stopped"
            return Exit(logging.INFO, f"{child.kind} {child.name} stopped")
        how = f"exit status {code}" if code is not None and code >= 0 else f"signal {-(code or 0)}"
        at = child.policy.exited(now, uptime)
        if at is None:
            child.state, child.wanted = "failed", False
            runs = (f"exited {child.policy.failures} times in a row, each within "
                    f"{self.burst_seconds:g} s of its start, last exit {how}")
            if child.kind == "engine":
                return Exit(logging.ERROR, f"engine failed: {runs}; without it no data flows, "
                            "so the instance stops (exit status 1)", stop_instance=True)
            return Exit(logging.ERROR, f"{child.kind} {child.name} failed: {runs}; giving up "
                        f"('rtoc start {child.name}' tries again)")
        child.state, child.next_start = "backoff", at
        child.restarts += 1
        return Exit(logging.WARNING, f"{child.kind} {child.name} exited ({how}) after "
                    f"{uptime:.1f} s; restarting in {at - now:.1f} s")

    def start_wanted(self, child: Child, now: float) -> None:
        """``rtoc start``: wanted again, with a fresh restart budget."""
        if child.pid is None:
            child.wanted, child.next_start = True, now
            child.policy.reset()

    def unwant(self, child: Child) -> None:
        child.wanted, child.next_start = False, None

    def stalled(self, now: float) -> list[Child]:
        """Running drivers whose process has not turned its loop for ``stall_timeout`` s
        (a tick that hangs: the process lives, nothing flows, nothing answers)."""
        return [c for c in self.children.values()
                if c.kind == "driver" and c.state == "running" and c.pid is not None
                and c.spec.driver is not None and c.spec.driver.stall_timeout > 0
                and now - c.alive_at > c.spec.driver.stall_timeout]

    def info(self, now: float) -> list[dict]:
        return [c.info(now) for c in self.children.values()]
