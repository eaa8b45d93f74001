"""Unit tests of the built-in system driver (host statistics through psutil)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import psutil
import pytest
from rtoc.drivers.system import System

from rtoc.driver import DriverContext, construct
from rtoc.errors import DriverError, ParameterError
from rtoc.testing import DriverRun, FakeClock, MemorySink, advance, make_driver

T0 = 1_700_000_000.0
FIRST = {"CPU": "%", "Memory": "%", "Load": ""}
RATES = {"NetRx": "B/s", "NetTx": "B/s", "DiskRead": "B/s", "DiskWrite": "B/s"}


def system() -> DriverRun:
    return make_driver(System, clock=FakeClock(T0))


def test_first_tick_gives_cpu_memory_and_load_with_units() -> None:
    run = system()
    advance(run, 1)
    assert set(run.signals) == {f"System.{n}" for n in FIRST}
    for name, unit in FIRST.items():
        sig = run.sink.signals[f"System.{name}"]
        assert sig.unit == unit
        t, y = run.signals[f"System.{name}"]
        assert t.tolist() == [T0] and len(y) == 1 and math.isfinite(y[0])
    assert 0.0 <= run.signals["System.CPU"][1][0] <= 100.0
    assert 0.0 < run.signals["System.Memory"][1][0] <= 100.0
    assert run.signals["System.Load"][1][0] >= 0.0


def test_rates_start_on_the_second_tick() -> None:
    run = system()
    advance(run, 3)
    assert set(run.signals) == {f"System.{n}" for n in [*FIRST, *RATES]}
    for name, unit in RATES.items():
        assert run.sink.signals[f"System.{name}"].unit == unit
        t, y = run.signals[f"System.{name}"]
        assert t.tolist() == [T0 + 1.0, T0 + 2.0]
        assert np.all(np.isfinite(y)) and np.all(y >= 0)
    assert run.signals["System.CPU"][0].tolist() == [T0, T0 + 1.0, T0 + 2.0]


def test_rates_are_counter_differences_over_time(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = iter([(1000, 2000, 0, 50), (1500, 2000, 4096, 50), (1500, 3000, 4096, 150)])

    def fake_counters(self: System) -> tuple[int, int, int, int]:
        return next(counters)

    monkeypatch.setattr(System, "_counters", fake_counters)
    run = system()
    advance(run, 1)
    run.clock.now = T0 + 2.0
    run.driver.poll()
    run.clock.now = T0 + 2.5
    run.driver.poll()
    advance(run, 0)
    assert run.signals["System.NetRx"][1].tolist() == [250.0, 0.0]
    assert run.signals["System.NetTx"][1].tolist() == [0.0, 2000.0]
    assert run.signals["System.DiskRead"][1].tolist() == [2048.0, 0.0]
    assert run.signals["System.DiskWrite"][1].tolist() == [0.0, 200.0]


def test_no_rates_when_the_clock_has_not_moved() -> None:
    run = system()
    run.driver.poll()
    run.driver.poll()  # same time: no division by zero, no rate
    advance(run, 0)
    assert set(run.signals) == {f"System.{n}" for n in FIRST}
    assert run.signals["System.CPU"][0].tolist() == [T0, T0]


def test_missing_counters_count_as_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "net_io_counters", lambda: None)
    monkeypatch.setattr(psutil, "disk_io_counters", lambda: None)
    assert System._counters(system().driver) == (0, 0, 0, 0)
    monkeypatch.setattr(psutil, "net_io_counters",
                        lambda: SimpleNamespace(bytes_recv=7, bytes_sent=8))
    assert System._counters(system().driver) == (7, 8, 0, 0)


def test_samplerate_bounds() -> None:
    assert system().driver.samplerate == 1.0
    with pytest.raises(ParameterError):
        make_driver(System, options={"samplerate": 1000.0})


def unset_system() -> DriverRun:
    """A System built as hosts build it, neither set up nor started."""
    sink, clock = MemorySink("System"), FakeClock(T0)
    return DriverRun(construct(System, DriverContext(name="System", sink=sink, clock=clock)),
                     sink, clock)


def test_the_first_tick_sets_up_without_a_guard_in_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    primed: list[None] = []
    cpu_percent = psutil.cpu_percent
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: primed.append(None) or cpu_percent(interval))
    run = unset_system()
    run.driver.set_parameter("samplerate", 2.0)  # before setup: stored, read by setup
    run.driver.start()
    advance(run, 3)
    assert len(primed) == 1 + 3  # one priming call in setup(), then one per tick
    assert run.signals["System.CPU"][0].tolist() == [T0, T0 + 0.5, T0 + 1.0]
    assert run.signals["System.NetRx"][0].tolist() == [T0 + 0.5, T0 + 1.0]


def test_a_failing_setup_means_no_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(interval: float | None = None) -> float:
        raise PermissionError("no /proc/stat")

    monkeypatch.setattr(psutil, "cpu_percent", fail)
    run = unset_system()
    run.driver.start()
    with pytest.raises(PermissionError):
        advance(run, 1)
    with pytest.raises(DriverError, match="setup\\(\\) failed"):  # not retried each tick
        advance(run, 1)
    assert run.sink.signals == {}


def test_close_and_start_prime_the_counters_again() -> None:
    run = system()
    advance(run, 2)
    run.driver.stop()
    run.driver.close()
    run.clock.now = T0 + 60.0
    run.driver.start()
    advance(run, 1)
    # no rate averaged over the closed minute: the restart's first tick only primes
    assert run.signals["System.NetRx"][0].tolist() == [T0 + 1.0]
    assert run.signals["System.CPU"][0].tolist() == [T0, T0 + 1.0, T0 + 60.0]
