"""Drivers that misbehave on purpose, loaded by the tests as ``test_drivers:Name``.

(Not a test module itself: it defines no tests.)
"""

from __future__ import annotations

import os

from rtoc import Driver, Parameter, function


class Crashy(Driver):
    """Streams a few samples, then raises: it must be restarted, then given up on."""

    samplerate = Parameter(20.0, "Hz")

    def setup(self) -> None:
        self.ticks = 0

    def poll(self) -> None:
        self.ticks += 1
        self.stream(float(self.ticks), "Ticks")
        if self.ticks >= 3:
            raise RuntimeError("Crashy broke on purpose")


class Counter(Driver):
    """Streams y == a running count, so gaps and restarts are easy to see."""

    samplerate = Parameter(200.0, "Hz")
    step = Parameter(1.0, "added each tick")

    def setup(self) -> None:
        self.value = 0.0

    def poll(self) -> None:
        self.value += self.step
        self.stream(self.value, "Count", unit="n")

    @function
    def pid(self) -> int:
        """The driver process's pid."""
        return os.getpid()

    @function
    def steal(self, device: str, signal: str) -> str:
        """Try to write another driver's signal (it must be refused)."""
        self.stream(1.0, signal, dname=device)
        return "written"

    @function
    def put(self, value) -> str:
        """Stream one value given over the control plane into C.Put."""
        self.stream(value, "Put")
        return "ok"

    @function
    def boom(self) -> None:
        """A function that fails: the caller gets the error, the driver runs on."""
        raise ValueError("boom on purpose")


class Awkward(Driver):
    """Functions that return what msgpack cannot carry, or block."""

    samplerate = Parameter(10.0, "Hz")

    def poll(self) -> None:
        self.stream(1.0, "Alive")

    @function
    def huge(self) -> list:
        """Values msgpack cannot encode directly."""
        return [2**70, object(), {"k": (1, 2)}]

    @function
    def block(self, seconds: float, started: str = "") -> str:
        """Block the driver (like slow instrument I/O); first create the file ``started``
        (if given), so a test knows the driver is blocked."""
        import time
        from pathlib import Path

        if started:
            Path(started).touch()
        time.sleep(seconds)  # the blocking under test
        return "done"


class Alarmer(Driver):
    """Raises events on request (as a real device reports faults)."""

    samplerate = Parameter(10.0, "Hz")
    level = Parameter(0.0, "the last value set by an action")

    def poll(self) -> None:
        self.stream(self.level, "Level")

    @function
    def alarm(self, text: str, priority: int = 0, id: str = "", sname: str = "", dname: str = "") -> str:
        """Raise one event (empty sname/dname: an event of no signal)."""
        ev = self.event(text, sname=sname, dname=dname, priority=priority, id=id or None, value=1.5)
        return ev.id
