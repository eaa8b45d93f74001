"""Unit tests of rtoc.testing: the memory sink, the fake clock and the driver runners."""

from __future__ import annotations

import numpy as np
import pytest

from rtoc import Driver, Event, Parameter
from rtoc.driver import DriverContext, construct
from rtoc.errors import SignalOwned
from rtoc.testing import (
    DriverRun,
    FakeClock,
    MemorySignal,
    MemorySink,
    advance,
    make_driver,
    run_driver,
)


class Counter(Driver):
    samplerate = Parameter(10.0, "Hz", min=0.1, max=1000.0)

    def setup(self) -> None:
        self.setup_calls = getattr(self, "setup_calls", 0) + 1
        self.n = 0

    def poll(self) -> None:
        self.n += 1
        self.stream(float(self.n), "N", unit="count")


class Quiet(Driver):
    pass


def test_memory_signal_write_and_plot() -> None:
    s = MemorySignal("V")
    assert s.unit == "V"
    t, y = s.data()
    assert t.shape == (0,) and y.shape == (0,)
    assert s.write(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 2
    assert s.write(np.array([5.0]), np.array([6.0])) == 3
    assert [a.tolist() for a in s.data()] == [[1.0, 2.0, 5.0], [3.0, 4.0, 6.0]]
    assert s.plot(np.array([9.0]), np.array([10.0])) == 4  # seq keeps counting
    assert [a.tolist() for a in s.data()] == [[9.0], [10.0]]


def test_memory_signal_copies_what_it_is_given() -> None:
    s = MemorySignal()
    t = np.array([1.0])
    y = np.array([2.0])
    s.write(t, y)
    t[0] = y[0] = 99.0
    assert [a.tolist() for a in s.data()] == [[1.0], [2.0]]


def test_memory_sink_claims_and_ownership() -> None:
    sink = MemorySink("A")
    sig = sink.claim("Dev", "S", "V", 1.0)
    assert sink.claim("Dev", "S", "ignored", 1.0) is sig  # the owner may claim again
    assert sig.unit == "V"
    sink.owner = "B"
    with pytest.raises(SignalOwned) as info:
        sink.claim("Dev", "S", "V", 1.0)
    assert info.value.signal == "Dev.S"
    assert sink.owners == {"Dev.S": "A"}


def test_memory_sink_records_events() -> None:
    sink = MemorySink()
    ev = Event(time=1.0, text="x")
    sink.event(ev)
    assert sink.events == [ev]


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(5.0)
    assert clock() == 5.0 and clock() == 5.0
    clock.now = 7.5
    assert clock() == 7.5
    assert FakeClock()() == 1_700_000_000.0


def test_make_driver_sets_up_and_starts() -> None:
    run = make_driver(Counter, name="C1", options={"samplerate": 4.0})
    d = run.driver
    assert d.setup_calls == 1 and d.run is True
    assert d.devicename == "C1" and d.samplerate == 4.0
    assert run.sink.owner == "C1"
    assert run.signals == {} and run.events == []


def test_run_driver_runs_ticks_at_the_deadlines() -> None:
    run = run_driver(Counter, ticks=5, options={"samplerate": 4.0})
    t, y = run.signals["Counter.N"]
    assert y.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert (t - t[0]).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert run.clock.now == t[-1]
    assert run.sink.signals["Counter.N"].unit == "count"


def test_advance_continues_and_refreshes_signals() -> None:
    run = run_driver(Counter, ticks=2)
    advance(run, 3)
    assert run.signals["Counter.N"][1].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert run.driver.n == 5


def test_advance_never_moves_the_clock_back() -> None:
    run = make_driver(Counter, clock=FakeClock(100.0))
    advance(run, 1)
    run.clock.now = 150.0  # far past the next deadline
    advance(run, 1)
    assert run.clock.now == 150.0
    assert run.signals["Counter.N"][0].tolist() == [100.0, 150.0]


def test_advance_without_a_timer_only_flushes() -> None:
    run = make_driver(Quiet, clock=FakeClock(3.0))
    run.driver.stream(1.0, "T")
    advance(run, 4)
    assert run.clock.now == 3.0
    assert run.signals["Quiet.T"][1].tolist() == [1.0]


def test_events_of_a_run() -> None:
    run = make_driver(Quiet)
    run.driver.event("hello")
    assert [e.text for e in run.events] == ["hello"]


class Unguarded(Driver):
    """State made only in setup(), no guards in poll()."""

    samplerate = Parameter(10.0, "Hz", min=0.1, max=1000.0)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def setup(self) -> None:
        self.calls.append("setup")
        self.n = 0

    def poll(self) -> None:
        self.calls.append("poll")
        self.n += 1
        self.stream(float(self.n), "N")


class SetsUpItself(Unguarded):
    """A port whose __init__ already ran setup(), as hand-guarded plugins did."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setup()


def test_advance_sets_up_a_driver_before_its_first_tick() -> None:
    sink, clock = MemorySink("Unguarded"), FakeClock(5.0)
    driver = construct(Unguarded, DriverContext(name="Unguarded", sink=sink, clock=clock))
    driver.start()
    run = advance(DriverRun(driver, sink, clock), 2)
    assert driver.calls == ["setup", "poll", "poll"]
    assert run.signals["Unguarded.N"][1].tolist() == [1.0, 2.0]


def test_make_driver_sets_up_exactly_once() -> None:
    run = run_driver(SetsUpItself, ticks=2)
    assert run.driver.calls == ["setup", "poll", "poll"]
    run = run_driver(Unguarded, ticks=2)
    assert run.driver.calls == ["setup", "poll", "poll"]
