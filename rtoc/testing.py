"""Test a driver without hardware or processes: an in-memory sink and a fake clock.

    from rtoc.testing import run_driver
    result = run_driver(MyDriver, ticks=100, options={"frequency": 2.0})
    result.signals["MyDriver.Sine"]   # (t, y) float64 arrays
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtoc.driver import Driver, DriverContext, construct
from rtoc.errors import SignalOwned
from rtoc.model import Event, Notification


class MemorySignal:
    """A signal kept in memory: what a ring would hold, without capacity limits."""

    def __init__(self, unit: str = ""):
        self.unit = unit
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self.seq = 0

    def write(self, t: np.ndarray, y: np.ndarray) -> int:
        self.chunks.append((np.array(t, np.float64), np.array(y, np.float64)))
        self.seq += len(t)
        return self.seq

    def plot(self, t: np.ndarray, y: np.ndarray) -> int:
        self.chunks = []
        return self.write(t, y)

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.chunks:
            return np.empty(0), np.empty(0)
        return (np.concatenate([c[0] for c in self.chunks]),
                np.concatenate([c[1] for c in self.chunks]))


class MemorySink:
    """A sink that records signals, events and notifications (``notes``: what a plugin's
    ``telegram_send_*`` sent); ``owner`` names the claiming driver."""

    def __init__(self, owner: str = ""):
        self.owner = owner
        self.signals: dict[str, MemorySignal] = {}
        self.owners: dict[str, str] = {}
        self.events: list[Event] = []
        self.notes: list[Notification] = []

    def claim(self, device: str, signal: str, unit: str, rate: float, content: str = "samples") -> MemorySignal:
        name = f"{device}.{signal}"
        if self.owners.setdefault(name, self.owner) != self.owner:
            raise SignalOwned(f"signal {name} belongs to {self.owners[name]}", name)
        return self.signals.setdefault(name, MemorySignal(unit))

    def event(self, event: Event) -> None:
        self.events.append(event)

    def notify(self, text: str, priority: int, permission: str = "", **attachment: Any) -> None:
        self.notes.append(Notification(0.0, text, priority, self.owner, permission, **attachment))


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class DriverRun:
    driver: Driver
    sink: MemorySink
    clock: FakeClock
    signals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def events(self) -> list[Event]:
        return self.sink.events


def make_driver(cls: type[Driver], name: str | None = None, options: Mapping[str, Any] | None = None,
                clock: FakeClock | None = None, sink: MemorySink | None = None) -> DriverRun:
    """Construct ``cls`` on a memory sink and a fake clock, set it up and ``start`` it, as
    the driver process does (``setup`` runs once, even if the driver's own code ran it)."""
    clock = clock or FakeClock()
    sink = sink or MemorySink(name or cls.__name__)
    ctx = DriverContext(name=name or cls.__name__, sink=sink, options=dict(options or {}), clock=clock)
    driver = construct(cls, ctx)
    driver.ensure_setup()
    driver.start()
    return DriverRun(driver, sink, clock)


def run_driver(cls: type[Driver], ticks: int = 10, name: str | None = None,
               options: Mapping[str, Any] | None = None) -> DriverRun:
    """Run ``ticks`` timer ticks of a driver against a fake clock; collect its output."""
    run = make_driver(cls, name, options)
    advance(run, ticks)
    return run


def advance(run: DriverRun, ticks: int) -> DriverRun:
    """Run the next ``ticks`` timer ticks, moving the fake clock to each deadline (a driver
    not set up yet is set up before its first tick, by the base class)."""
    d = run.driver
    for _ in range(ticks):
        deadline = d.next_deadline()
        if deadline is not None:
            run.clock.now = max(run.clock.now, deadline)
        d.on_timer(run.clock.now)
    d.flush()
    run.signals = {name: s.data() for name, s in run.sink.signals.items()}
    return run
