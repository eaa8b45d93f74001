"""Unit tests of rtoc.driver.Driver through rtoc.testing (memory sink, fake clock)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtoc import Driver, DriverContext, LoggerPlugin, Parameter, function
from rtoc.driver import FLUSH_SAMPLES, construct, current_context
from rtoc.errors import (
    DriverError,
    EventError,
    FunctionNotFound,
    ParameterError,
    SampleError,
    SignalError,
    SignalOwned,
)
from rtoc.params import ParamStore
from rtoc.testing import DriverRun, FakeClock, MemorySink, advance, make_driver

T0 = 1_700_000_000.0


class Plain(Driver):
    """No timer: output only when called."""


class Ticker(Driver):
    """Records the clock at each poll."""

    def setup(self) -> None:
        self.ticks: list[float] = []

    def poll(self) -> None:
        self.ticks.append(self._clock())


class Tuned(Driver):
    gain = Parameter(1.0, "V/V", min=0.0)
    mode = Parameter("fast", "mode", choices=("fast", "slow"))
    scratch = Parameter(0, "not persisted", persist=False)

    def setup(self) -> None:
        self.changes: list[tuple[str, Any]] = []

    def parameter_changed(self, name: str, value: Any) -> None:
        self.changes.append((name, value))

    @function
    def scale(self, x: float, factor: float = 2.0) -> Any:
        """Scale x."""
        return np.float64(x * factor * self.gain)

    def helper(self) -> int:
        return 1


def run_of(cls: type[Driver] = Plain, **kw: Any) -> DriverRun:
    return make_driver(cls, clock=FakeClock(T0), **kw)


def data(run: DriverRun, name: str) -> tuple[list[float], list[float]]:
    run.driver.flush()
    t, y = run.sink.signals[name].data()
    return t.tolist(), y.tolist()


# -- stream ------------------------------------------------------------------------------

def test_stream_scalar_defaults_x_to_the_clock_and_takes_the_fast_path() -> None:
    run = run_of()
    d = run.driver
    d.stream(1.5, "T", unit="°C")
    run.clock.now += 1.0
    d.stream(2.5, "T")  # known signal, one float: the fast path
    run.clock.now += 1.0
    d.stream(3, "T")    # an int too
    assert data(run, "Plain.T") == ([T0, T0 + 1, T0 + 2], [1.5, 2.5, 3.0])
    assert run.sink.signals["Plain.T"].unit == "°C"


def test_stream_scalar_with_explicit_x() -> None:
    run = run_of()
    run.driver.stream(1.0, "T", x=10.0)
    run.driver.stream(2.0, "T", x=11.0)
    assert data(run, "Plain.T") == ([10.0, 11.0], [1.0, 2.0])


def test_stream_lists_with_units() -> None:
    run = run_of()
    run.driver.stream([1, 2.5], ["A", "B"], unit=["V", "A"])
    assert data(run, "Plain.A") == ([T0], [1.0])
    assert data(run, "Plain.B") == ([T0], [2.5])
    assert run.sink.signals["Plain.A"].unit == "V" and run.sink.signals["Plain.B"].unit == "A"


def test_stream_one_unit_applies_to_every_value() -> None:
    run = run_of()
    run.driver.stream((1.0, 2.0), ("A", "B"), unit="V")
    assert {s.unit for s in run.sink.signals.values()} == {"V"}


def test_stream_without_names_numbers_the_signals() -> None:
    run = run_of()
    run.driver.stream(np.array([1.0, 2.0, 3.0]))
    assert sorted(run.sink.signals) == ["Plain.Signal0", "Plain.Signal1", "Plain.Signal2"]
    assert data(run, "Plain.Signal2") == ([T0], [3.0])


def test_stream_to_another_device() -> None:
    run = run_of()
    run.driver.stream(1.0, "T", dname="Oven")
    run.driver.stream(2.0, "T", dname="Oven")
    assert list(run.sink.signals) == ["Oven.T"]
    assert data(run, "Oven.T") == ([T0, T0], [1.0, 2.0])


def test_stream_slist() -> None:
    run = run_of()
    run.driver.stream(slist=[[1.0, "A", "V"], [2.0, "B"]])
    assert data(run, "Plain.A") == ([T0], [1.0]) and data(run, "Plain.B") == ([T0], [2.0])
    assert run.sink.signals["Plain.A"].unit == "V" and run.sink.signals["Plain.B"].unit == ""


def test_stream_slist_with_dname_and_x() -> None:
    run = run_of()
    run.driver.stream(slist=[[1.0, "A", "V"]], dname="Other", x=5.0)
    assert data(run, "Other.A") == ([5.0], [1.0])


def test_stream_sdict() -> None:
    run = run_of()
    run.driver.stream(sdict={"Dev1": {"A": [1.0, "V"], "B": [2.0, "A"]}, "Dev2": {"C": [3.0, ""]}})
    assert sorted(run.sink.signals) == ["Dev1.A", "Dev1.B", "Dev2.C"]
    assert data(run, "Dev1.B") == ([T0], [2.0])
    assert run.sink.signals["Dev1.A"].unit == "V"


def test_stream_x_list_gives_each_value_its_time() -> None:
    run = run_of()
    run.driver.stream([1.0, 2.0], ["A", "B"], x=[100.0, 200.0])
    assert data(run, "Plain.A") == ([100.0], [1.0])
    assert data(run, "Plain.B") == ([200.0], [2.0])


def test_stream_x_list_of_the_wrong_length_becomes_now_like_rtoc() -> None:
    run = run_of()
    run.driver.stream([1.0, 2.0], ["A", "B"], x=[100.0])
    assert data(run, "Plain.A") == ([T0], [1.0])
    assert data(run, "Plain.B") == ([T0], [2.0])


def test_stream_numpy_scalars_and_bools_are_numbers() -> None:
    run = run_of()
    d = run.driver
    d.stream(np.float32(0.5), "T")
    d.stream(np.int64(2), "T")
    d.stream(True, "T")
    d.stream(1.0, "T", x=np.float64(7.0))
    assert data(run, "Plain.T") == ([T0, T0, T0, 7.0], [0.5, 2.0, 1.0, 1.0])


@pytest.mark.parametrize("bad", ["abc", None, b"1", [1.0, 2.0], object(), {"v": 1}])
def test_stream_non_numeric_value_raises_sample_error_and_keeps_earlier_samples(bad: Any) -> None:
    run = run_of()
    d = run.driver
    d.stream(1.0, "T")
    d.stream(2.0, "T")
    with pytest.raises(SampleError) as info:
        d.stream(bad, "T") if not isinstance(bad, list) else d.stream([bad], ["T"])
    assert info.value.signal == "Plain.T"
    assert "Plain.T" in str(info.value)
    assert data(run, "Plain.T") == ([T0, T0], [1.0, 2.0])
    d.stream(3.0, "T")  # the signal still works
    assert data(run, "Plain.T")[1] == [1.0, 2.0, 3.0]


def test_stream_non_numeric_in_a_list_names_the_bad_signal() -> None:
    run = run_of()
    with pytest.raises(SampleError) as info:
        run.driver.stream([1.0, "high"], ["A", "B"])
    assert info.value.signal == "Plain.B"


def test_stream_non_numeric_x_raises_sample_error() -> None:
    run = run_of()
    with pytest.raises(SampleError):
        run.driver.stream([1.0], ["T"], x=["noon"])


def test_stream_names_and_values_of_different_length() -> None:
    run = run_of()
    with pytest.raises(SampleError, match="2 values but 3 signal names"):
        run.driver.stream([1.0, 2.0], ["A", "B", "C"])
    with pytest.raises(SampleError):
        run.driver.stream([1.0, 2.0], "A")
    assert run.sink.signals == {}


def test_stream_shorter_unit_list_does_not_drop_values() -> None:
    run = run_of()
    try:
        run.driver.stream([1.0, 2.0], ["A", "B"], unit=["V"])
    except SampleError:
        return  # refusing the call would be fine too
    assert data(run, "Plain.B") == ([T0], [2.0])


def test_stream_fast_path_refuses_a_non_numeric_x() -> None:
    run = run_of()
    d = run.driver
    d.stream(1.0, "T")
    with pytest.raises(SampleError):
        d.stream(2.0, "T", x="bad")
    assert data(run, "Plain.T") == ([T0], [1.0])


def test_stream_fast_path_takes_a_list_x_like_the_first_call() -> None:
    run = run_of()
    d = run.driver
    d.stream(1.0, "T", x=[4.0])  # slow path: creates the signal
    d.stream(2.0, "T", x=[5.0])  # fast path
    assert data(run, "Plain.T") == ([4.0, 5.0], [1.0, 2.0])


samples = st.lists(st.tuples(st.floats(-1e9, 1e9), st.floats(-1e9, 1e9)), max_size=60)


@settings(max_examples=60, deadline=None)
@given(samples, st.lists(st.integers(0, 60), max_size=8), st.lists(st.sampled_from(
    ["stream", "write", "flush"]), min_size=9, max_size=9))
def test_stream_split_into_any_batches_stores_the_same_data(
        pts: list[tuple[float, float]], cuts: list[int], how: list[str]) -> None:
    run = run_of()
    d = run.driver
    bounds = sorted({0, len(pts), *(c for c in cuts if c <= len(pts))})
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        chunk = pts[a:b]
        if how[i] == "write":
            d.write("S", [p[0] for p in chunk], [p[1] for p in chunk])
        else:
            for t, y in chunk:
                d.stream(y, "S", x=t)
            if how[i] == "flush":
                d.flush()
    d.flush()
    sig = run.sink.signals.get("Plain.S")
    t, y = sig.data() if sig else (np.empty(0), np.empty(0))
    assert t.tolist() == [p[0] for p in pts]
    assert y.tolist() == [p[1] for p in pts]


# -- write -------------------------------------------------------------------------------

def test_write_after_buffered_single_samples_keeps_order() -> None:
    run = run_of()
    d = run.driver
    d.stream(1.0, "S", x=1.0)
    d.stream(2.0, "S", x=2.0)
    d.write("S", np.array([3.0, 4.0]), np.array([30.0, 40.0]))
    # the batch went straight to the sink, after the buffered samples
    assert [c[0].tolist() for c in run.sink.signals["Plain.S"].chunks] == [[1.0, 2.0], [3.0, 4.0]]
    d.stream(5.0, "S", x=5.0)
    assert data(run, "Plain.S") == ([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 30.0, 40.0, 5.0])


def test_write_with_unit_and_device() -> None:
    run = run_of()
    run.driver.write("I", [1.0], [0.5], unit="A", device="PSU")
    assert data(run, "PSU.I") == ([1.0], [0.5])
    assert run.sink.signals["PSU.I"].unit == "A"


def test_write_refuses_bad_batches() -> None:
    run = run_of()
    with pytest.raises(SampleError, match="differ in length"):
        run.driver.write("S", [1.0, 2.0], [1.0])
    with pytest.raises(SampleError) as info:
        run.driver.write("S", [1.0], ["x"])
    assert info.value.signal == "Plain.S"
    assert data(run, "Plain.S") == ([], [])


# -- plot --------------------------------------------------------------------------------

def test_plot_replaces_the_content() -> None:
    run = run_of()
    d = run.driver
    d.stream(9.0, "P", x=9.0)
    d.plot([1.0, 2.0], [10.0, 20.0], sname="P", unit="V")
    assert data(run, "Plain.P") == ([1.0, 2.0], [10.0, 20.0])
    d.plot([3.0], [30.0], sname="P")
    assert data(run, "Plain.P") == ([3.0], [30.0])


def test_plot_defaults_and_device() -> None:
    run = run_of()
    run.driver.plot([1.0], [2.0])
    run.driver.plot([1.0], [2.0], sname="W", dname="Scope")
    assert sorted(run.sink.signals) == ["Plain.noName", "Scope.W"]


def test_plot_with_empty_y_takes_x_as_y_over_an_index() -> None:
    run = run_of()
    run.driver.plot([5.0, 6.0, 7.0], sname="P")
    assert data(run, "Plain.P") == ([0.0, 1.0, 2.0], [5.0, 6.0, 7.0])


def test_plot_refuses_unknown_hold_and_bad_samples() -> None:
    run = run_of()
    with pytest.raises(SampleError, match="hold"):
        run.driver.plot([1.0], [1.0], sname="P", hold="maybe")
    with pytest.raises(SampleError):
        run.driver.plot([1.0, 2.0], ["a", "b"], sname="P")
    with pytest.raises(SampleError):
        run.driver.plot([1.0, 2.0], [1.0], sname="P")


def test_plot_hold_on_appends() -> None:
    run = run_of()
    d = run.driver
    d.plot([1.0, 2.0], [10.0, 20.0], sname="P")
    d.plot([2.0, 3.0], [21.0, 30.0], sname="P", hold="on")
    assert data(run, "Plain.P") == ([1.0, 2.0, 2.0, 3.0], [10.0, 20.0, 21.0, 30.0])


def test_plot_merge_x_adds_only_newer_samples() -> None:
    run = run_of()
    d = run.driver
    d.plot([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], sname="P", hold="mergeX")
    d.plot([2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 4.0, 5.0], sname="P", hold="mergeX")
    assert data(run, "Plain.P") == ([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0])


def test_plot_merge_x_after_a_replace() -> None:
    run = run_of()
    d = run.driver
    d.plot([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], sname="P")
    d.plot([2.0, 3.0, 4.0], [0.0, 0.0, 4.0], sname="P", hold="mergeX")
    assert data(run, "Plain.P") == ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])


# -- event -------------------------------------------------------------------------------

def test_event_defaults_and_creates_no_signal() -> None:
    run = run_of()
    ev = run.driver.event("door open")
    assert run.sink.events == [ev]
    assert (ev.time, ev.text, ev.device, ev.signal, ev.priority, ev.value) == (
        T0, "door open", "Plain", "", 0, None)
    assert ev.id == hashlib.sha1(b"Plaindoor open").hexdigest()
    assert run.sink.signals == {}


def test_event_with_every_argument() -> None:
    run = run_of()
    ev = run.driver.event("hot", sname="T", dname="Oven", priority=2, id="oven-hot",
                          value=np.float32(0.5), x=12)
    assert (ev.time, ev.device, ev.signal, ev.priority, ev.id) == (12.0, "Oven", "T", 2, "oven-hot")
    assert ev.value == 0.5 and type(ev.value) is float
    assert run.sink.signals == {}


def test_event_value_is_made_plain() -> None:
    run = run_of()
    assert run.driver.event("a", value=np.arange(3)).value == [0, 1, 2]
    assert run.driver.event("b", value=object).value == repr(object)


def test_event_refuses_bad_priority() -> None:
    run = run_of()
    with pytest.raises(EventError):
        run.driver.event("x", priority=3)
    assert run.sink.events == []


# -- timer -------------------------------------------------------------------------------

def ticker(rate: float = 2.0, start: float = 100.0) -> DriverRun:
    return make_driver(Ticker, options={"samplerate": rate}, clock=FakeClock(start))


def tick(run: DriverRun, now: float) -> None:
    run.clock.now = now
    run.driver.on_timer(now)


def test_timer_ticks_at_start_plus_k_periods() -> None:
    run = ticker()
    d = run.driver
    assert d.next_deadline() == 0.0  # never ticked: due now
    tick(run, 100.0)
    assert d.next_deadline() == 100.5
    tick(run, 100.4)   # early: no tick
    tick(run, 100.5)
    tick(run, 101.0)
    assert d.ticks == [100.0, 100.5, 101.0]
    assert d.next_deadline() == 101.5


def test_a_late_tick_does_not_shift_later_deadlines() -> None:
    run = ticker()
    d = run.driver
    tick(run, 100.0)
    tick(run, 100.875)  # 0.375 s late
    assert d.next_deadline() == 101.0
    tick(run, 101.0)
    assert d.ticks == [100.0, 100.875, 101.0]
    assert d._timer.missed == 0


def test_far_behind_the_timer_skips_ahead_and_counts_missed() -> None:
    run = ticker()
    d = run.driver
    tick(run, 100.0)
    tick(run, 105.25)  # deadlines 100.5 .. 105.0 came due together
    assert d.ticks == [100.0, 105.25]
    assert d._timer.missed == 8   # 101.0 .. 104.5 skipped
    assert d.next_deadline() == 105.0  # still on the grid of start + k * period
    tick(run, 105.25)
    tick(run, 105.25)
    assert d.ticks == [100.0, 105.25, 105.25]
    assert d.next_deadline() == 105.5


def test_advance_follows_the_deadlines() -> None:
    run = ticker(rate=4.0)
    advance(run, 5)
    assert run.driver.ticks == [100.0, 100.25, 100.5, 100.75, 101.0]


def test_timer_does_not_drift_at_unix_times() -> None:
    run = ticker(rate=100.0, start=T0)
    advance(run, 10_000)
    assert run.driver.next_deadline() == pytest.approx(T0 + 10_000 * 0.01, abs=1e-6)


def test_stop_and_start() -> None:
    run = ticker()
    d = run.driver
    assert d.run is True
    d.stop()
    assert d.run is False and d.next_deadline() is None
    tick(run, 100.0)
    assert d.ticks == []
    d.start()
    tick(run, 100.0)
    assert d.ticks == [100.0]
    d.cancel()
    assert d.run is False


def test_a_driver_without_poll_has_no_timer() -> None:
    run = run_of()
    assert run.driver.next_deadline() is None
    run.driver.on_timer(T0)  # harmless


def test_on_timer_flushes_buffered_samples() -> None:
    run = run_of()
    run.driver.stream(1.0, "T")
    assert run.sink.signals["Plain.T"].chunks == []
    run.driver.on_timer(T0)
    assert run.sink.signals["Plain.T"].seq == 1


def test_set_perpetual_timer_with_samplerate() -> None:
    run = make_driver(Plain, clock=FakeClock(100.0))
    d = run.driver
    calls: list[float] = []
    d.setPerpetualTimer(lambda: calls.append(run.clock.now), samplerate=4)
    assert d.samplerate == 4.0
    advance(run, 3)
    assert calls == [100.0, 100.25, 100.5]


def test_set_perpetual_timer_with_interval() -> None:
    run = make_driver(Plain, clock=FakeClock(100.0))
    calls: list[float] = []
    run.driver.setPerpetualTimer(lambda: calls.append(run.clock.now), interval=2.0)
    assert run.driver.samplerate == 0.5
    advance(run, 3)
    assert calls == [100.0, 102.0, 104.0]


def test_set_perpetual_timer_defaults_to_the_samplerate() -> None:
    run = make_driver(Plain, options={"samplerate": 8.0}, clock=FakeClock(100.0))
    calls: list[float] = []
    run.driver.setPerpetualTimer(lambda: calls.append(run.clock.now))
    advance(run, 2)
    assert calls == [100.0, 100.125]


def test_set_perpetual_timer_refuses_bad_rates() -> None:
    run = run_of()
    with pytest.raises(ParameterError):
        run.driver.setPerpetualTimer(lambda: None, samplerate=0)


def test_changing_samplerate_changes_the_timer_period() -> None:
    run = ticker(rate=2.0)
    d = run.driver
    tick(run, 100.0)
    d.set_parameter("samplerate", 4)
    assert d.samplerate == 4.0
    tick(run, 100.5)   # the deadline set under the old rate
    assert d.next_deadline() == 100.75
    tick(run, 100.75)
    assert d.ticks == [100.0, 100.5, 100.75]


# -- parameters --------------------------------------------------------------------------

def test_options_set_parameters() -> None:
    run = make_driver(Tuned, options={"gain": 2, "mode": "slow", "samplerate": 5})
    d = run.driver
    assert (d.gain, d.mode, d.samplerate) == (2.0, "slow", 5.0)
    assert d.changes == []  # options are applied before setup, without the hook


def test_unknown_option_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError, match="bogus") as info:
        make_driver(Tuned, options={"bogus": 1})
    assert "gain" in str(info.value)  # names the known ones
    assert info.value.driver == "Tuned"


@pytest.mark.parametrize("options", [{"gain": "high"}, {"gain": -1.0}, {"mode": "medium"},
                                     {"samplerate": 0.0}])
def test_invalid_option_values_are_parameter_errors(options: dict) -> None:
    with pytest.raises(ParameterError):
        make_driver(Tuned, options=options)


def test_set_parameter_validates_and_calls_the_hook() -> None:
    d = make_driver(Tuned).driver
    assert d.set_parameter("gain", 3) == 3.0
    assert d.gain == 3.0
    d.set_parameter("gain", 3.0)  # unchanged: no hook
    d.mode = "slow"               # plain assignment goes through the same path
    assert d.changes == [("gain", 3.0), ("mode", "slow")]
    with pytest.raises(ParameterError, match="must be float"):
        d.set_parameter("gain", "3")
    with pytest.raises(ParameterError, match="one of"):
        d.set_parameter("mode", "medium")
    with pytest.raises(ParameterError, match="no parameter 'nope'") as info:
        d.set_parameter("nope", 1)
    assert "gain" in str(info.value)
    assert d.gain == 3.0 and d.mode == "slow"
    assert d.changes == [("gain", 3.0), ("mode", "slow")]


def _tuned_with_store(path: Path, options: dict | None = None) -> Tuned:
    ctx = DriverContext(name="Tuned", sink=MemorySink("Tuned"), options=options or {},
                        clock=FakeClock(), store=ParamStore(path))
    d = Tuned(context=ctx)
    d.setup()
    return d


def test_parameters_persist_through_the_store(tmp_path: Path) -> None:
    path = tmp_path / "Tuned.json"
    d = _tuned_with_store(path, {"gain": 2.0})
    d.set_parameter("gain", 5.0)
    d.set_parameter("scratch", 7)  # persist=False
    saved = json.loads(path.read_text())
    assert saved == {"gain": {"value": 5.0, "config": 2.0}}
    assert _tuned_with_store(path, {"gain": 2.0}).gain == 5.0   # config unchanged: kept
    assert _tuned_with_store(path, {}).gain == 5.0              # no config value: kept
    assert _tuned_with_store(path, {"gain": 3.0}).gain == 3.0   # config edited: it wins
    assert _tuned_with_store(path, {"gain": 2.0}).scratch == 0


def test_a_stale_persisted_value_falls_back_to_the_default(tmp_path: Path) -> None:
    path = tmp_path / "Tuned.json"
    path.write_text(json.dumps({"mode": {"value": "turbo", "config": None},
                                "gain": {"value": -4.0, "config": None}}))
    d = _tuned_with_store(path)
    assert d.mode == "fast" and d.gain == 1.0


def test_a_persisted_value_that_fails_its_checks_is_set_aside_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "Tuned.json"
    path.write_text(json.dumps({"gain": {"value": float("nan"), "config": 2.0},
                                "mode": {"value": "slow", "config": None}}))
    d = _tuned_with_store(path, {"gain": 2.0})
    assert d.gain == 2.0 and d.mode == "slow"  # the config's value; a good value stays
    assert json.loads(path.read_text()) == {"mode": {"value": "slow", "config": None}}
    aside = json.loads(path.with_suffix(".rejected.json").read_text())
    assert math.isnan(aside["gain"]["value"]) and "finite" in aside["gain"]["reason"]
    params = {p["name"]: p for p in d.describe()["parameters"]}
    assert "finite" in params["gain"]["rejected"]["reason"] and "rejected" not in params["mode"]


def test_an_invalid_config_value_is_not_masked_by_the_store(tmp_path: Path) -> None:
    path = tmp_path / "Tuned.json"
    path.write_text(json.dumps({"mode": {"value": "slow", "config": "fast"}}))
    with pytest.raises(ParameterError):
        _tuned_with_store(path, {"mode": "turbo"})


# -- functions ---------------------------------------------------------------------------

def test_call_function() -> None:
    d = make_driver(Tuned, options={"gain": 2.0}).driver
    out = d.call_function("scale", [3.0])
    assert out == 12.0 and type(out) is float  # numpy result made plain
    assert d.call_function("scale", [3.0], {"factor": 1.0}) == 6.0
    assert d.call_function("scale", kwargs={"x": 1.0}) == 4.0


def test_call_function_missing_is_function_not_found() -> None:
    d = make_driver(Tuned).driver
    with pytest.raises(FunctionNotFound, match="'helper'") as info:
        d.call_function("helper")  # public, but not marked
    assert "scale" in str(info.value)
    with pytest.raises(FunctionNotFound):
        d.call_function("stream", [1.0, "T"])  # the base API is never remote
    with pytest.raises(LookupError):
        d.call_function("nope")


@pytest.mark.parametrize(("args", "kwargs"), [([], {}), ([1, 2, 3], {}), ([1.0], {"bogus": 1}),
                                              ([1.0], {"x": 2.0})])
def test_call_function_wrong_arguments_is_a_parameter_error(args: list, kwargs: dict) -> None:
    d = make_driver(Tuned).driver
    with pytest.raises(ParameterError, match="scale"):
        d.call_function("scale", args, kwargs)


class Ported(LoggerPlugin):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = 0

    def switch_on(self, level: int = 1) -> int:
        self.state = level
        return level

    def _private(self) -> None:
        pass

    @staticmethod
    def helper() -> str:
        return "h"


def test_logger_plugin_exposes_its_public_methods() -> None:
    d = make_driver(Ported).driver
    table = d.function_table()
    assert set(table) == {"switch_on", "helper"}
    assert d.call_function("switch_on", [3]) == 3 and d.state == 3
    with pytest.raises(FunctionNotFound):
        d.call_function("_private")
    with pytest.raises(FunctionNotFound):
        d.call_function("setPerpetualTimer", [print])


def test_a_plain_driver_exposes_only_marked_functions() -> None:
    assert set(Tuned.function_table()) == {"scale"}
    assert Plain.function_table() == {}


def test_describe() -> None:
    d = make_driver(Tuned, options={"gain": 2.0}).driver
    desc = d.describe()
    params = {p["name"]: p for p in desc["parameters"]}
    assert set(params) == {"samplerate", "gain", "mode", "scratch"}
    assert params["gain"]["value"] == 2.0 and params["gain"]["default"] == 1.0
    assert params["mode"]["choices"] == ["fast", "slow"]
    assert [f["name"] for f in desc["functions"]] == ["scale"]
    assert desc["functions"][0]["args"] == ["x", "factor"]
    assert desc["functions"][0]["doc"] == "Scale x."
    assert desc["running"] is True and desc["device"] == "Tuned"


# -- sink, device name, buffering --------------------------------------------------------

def test_a_second_owner_of_a_signal_is_refused() -> None:
    sink = MemorySink("First")
    first = make_driver(Plain, name="First", sink=sink)
    first.driver.stream(1.0, "T", dname="Shared")
    sink.owner = "Second"
    second = make_driver(Plain, name="Second", sink=sink)
    with pytest.raises(SignalOwned) as info:
        second.driver.stream(2.0, "T", dname="Shared")
    assert info.value.signal == "Shared.T"
    assert "First" in str(info.value)
    second.driver.stream(2.0, "U", dname="Shared")  # another signal is fine
    assert sink.owners == {"Shared.T": "First", "Shared.U": "Second"}


def test_set_device_name() -> None:
    run = run_of()
    d = run.driver
    assert d.devicename == "Plain"
    d.stream(1.0, "T")
    d.setDeviceName("Oven")
    assert run.sink.signals["Plain.T"].seq == 1  # flushed before the switch
    d.stream(2.0, "T")
    d.stream(3.0, "T")
    assert data(run, "Oven.T") == ([T0, T0], [2.0, 3.0])
    assert data(run, "Plain.T") == ([T0], [1.0])
    assert d.event("x").device == "Oven"
    assert d.describe()["device"] == "Oven"
    with pytest.raises(SignalError):
        d.setDeviceName("a/b")
    d.setDeviceName()
    assert d.devicename == "noDevice"


@pytest.mark.parametrize("form", ["fast", "list"])
def test_single_samples_are_handed_to_the_sink_at_flush_samples(form: str) -> None:
    run = run_of()
    d = run.driver

    def one(i: int) -> None:
        if form == "fast":
            d.stream(float(i), "T", x=float(i))
        else:
            d.stream([float(i)], ["T"], x=float(i))

    for i in range(FLUSH_SAMPLES - 1):
        one(i)
    sig = run.sink.signals["Plain.T"]
    assert sig.seq == 0
    one(FLUSH_SAMPLES - 1)
    assert sig.seq == FLUSH_SAMPLES and len(sig.chunks) == 1
    assert sig.data()[1].tolist() == [float(i) for i in range(FLUSH_SAMPLES)]


def test_a_driver_made_by_hand_records_in_memory() -> None:
    d = Plain()
    assert d.devicename == "Plain" and d.run is False
    d.stream(1.0, "T")
    d.flush()
    assert d._sink.signals["Plain.T"].seq == 1


def test_the_context_variable_is_used_when_no_context_is_given() -> None:
    sink = MemorySink("Ctx")
    token = current_context.set(DriverContext(name="Ctx", sink=sink, clock=FakeClock(5.0)))
    try:
        d = Plain()
    finally:
        current_context.reset(token)
    d.stream(1.0, "T")
    d.flush()
    assert sink.signals["Ctx.T"].data()[0].tolist() == [5.0]


def test_a_bad_driver_name_is_refused() -> None:
    with pytest.raises(SignalError):
        make_driver(Plain, name="a/b")


def test_bad_signal_names_are_refused() -> None:
    run = run_of()
    for bad in ("", "a/b"):
        with pytest.raises(SignalError):
            run.driver.stream(1.0, bad)
    with pytest.raises(SignalError):
        run.driver.write("S", [1.0], [1.0], device="x/y")


def test_the_plugin_log_keeps_the_last_100_messages() -> None:
    d = make_driver(Plain).driver
    d.info("hello")
    d.warning("careful")
    for i in range(120):
        d.debug(f"m{i}")
    log = list(d._log)
    assert len(log) == 100
    assert log[-1][1:] == ["DEBUG", "m119"]
    d.error("bad")
    assert list(d._log)[-1][1:] == ["ERROR", "bad"]


def test_a_plugin_whose_init_takes_no_context_is_built_by_hosts() -> None:
    """RTOC 2.x plugins had `__init__(self, stream=None, plot=None, event=None)`."""
    from rtoc import LoggerPlugin
    from rtoc.testing import run_driver

    class OldPlugin(LoggerPlugin):
        def __init__(self, stream=None, plot=None, event=None):
            super().__init__()
            self.setDeviceName("Old")
            self.setPerpetualTimer(self.tick, samplerate=5)

        def tick(self):
            self.stream(1.0, "V")

    run = run_driver(OldPlugin, ticks=3)
    assert len(run.signals["Old.V"][0]) == 3
    assert run.driver._ctx.clock is run.clock  # the host's context, not a stand-alone one


# -- setup() before everything else ------------------------------------------------------

class Unguarded(Driver):
    """No hasattr guards: poll, the hook, the function and close need what setup() makes."""

    gain = Parameter(1.0, "V/V")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def setup(self) -> None:
        self.calls.append("setup")
        self.state = {"gain": self.gain}

    def poll(self) -> None:
        self.calls.append("poll")
        self.stream(self.state["gain"], "G")

    def parameter_changed(self, name: str, value: Any) -> None:
        self.calls.append(f"changed {name}")
        self.state[name] = value

    @function
    def read(self) -> float:
        self.calls.append("read")
        return self.state["gain"]

    def close(self) -> None:
        self.calls.append("close")
        del self.state


class Broken(Driver):
    """A setup() that fails, as a missing device would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def setup(self) -> None:
        self.calls.append("setup")
        raise OSError("no such device")

    def poll(self) -> None:
        self.calls.append("poll")

    def parameter_changed(self, name: str, value: Any) -> None:
        self.calls.append(f"changed {name}")

    @function
    def read(self) -> int:
        self.calls.append("read")
        return 1


def unset(cls: type[Driver] = Unguarded) -> DriverRun:
    """A driver built as hosts build it, but neither set up nor started."""
    sink, clock = MemorySink(cls.__name__), FakeClock(T0)
    return DriverRun(construct(cls, DriverContext(name=cls.__name__, sink=sink, clock=clock)),
                     sink, clock)


def test_the_first_tick_runs_setup_once_before_poll() -> None:
    run = unset()
    d = run.driver
    d.start()
    tick(run, T0)
    tick(run, T0 + 1.0)
    assert d.calls == ["setup", "poll", "poll"]
    assert data(run, "Unguarded.G")[1] == [1.0, 1.0]


def test_a_host_that_set_up_the_driver_is_not_set_up_again() -> None:
    run = unset()
    d = run.driver
    d.setup()          # as pipeline.driver_host does today
    d.ensure_setup()   # as hosts should: a no-op now
    d.start()
    tick(run, T0)
    assert d.calls == ["setup", "poll"]


def test_a_perpetual_timer_function_runs_after_setup_too() -> None:
    class Port(LoggerPlugin):  # an RTOC plugin that starts itself in __init__
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.samplerate = 4.0  # before setup: stored, no hook
            self.setPerpetualTimer(self.update)
            self.start()

        def setup(self) -> None:
            self.port = ["open"]

        def parameter_changed(self, name: str, value: Any) -> None:
            self.port.append(f"{name}={value}")

        def update(self) -> None:
            self.stream(float(len(self.port)), "N")

    run = unset(Port)
    advance(run, 2)
    assert run.signals["Port.N"][0].tolist() == [T0, T0 + 0.25]
    run.driver.set_parameter("samplerate", 2.0)
    assert run.driver.port == ["open", "samplerate=2.0"]


def test_a_parameter_set_before_setup_is_stored_and_read_by_setup() -> None:
    run = unset()
    d = run.driver
    assert d.set_parameter("gain", 3) == 3.0
    d.gain = 4.0  # plain assignment: the same rule
    assert d.calls == []  # no setup, no hook: setup() will read the value
    d.start()
    tick(run, T0)
    assert d.calls == ["setup", "poll"]
    assert data(run, "Unguarded.G")[1] == [4.0]
    d.set_parameter("gain", 5.0)  # once set up, the hook runs
    tick(run, T0 + 1.0)
    assert d.calls == ["setup", "poll", "changed gain", "poll"]
    assert data(run, "Unguarded.G")[1] == [4.0, 5.0]


def test_a_function_called_before_setup_runs_setup_first() -> None:
    run = unset()
    d = run.driver
    assert d.call_function("read") == 1.0
    assert d.call_function("read") == 1.0
    d.start()
    tick(run, T0)
    assert d.calls == ["setup", "read", "read", "poll"]


def test_a_function_refused_by_its_arguments_does_not_set_up() -> None:
    run = unset()
    with pytest.raises(ParameterError):
        run.driver.call_function("read", [1])
    with pytest.raises(FunctionNotFound):
        run.driver.call_function("nope")
    assert run.driver.calls == []


def test_stop_and_start_do_not_set_up_again() -> None:
    run = unset()
    d = run.driver
    d.start()
    tick(run, T0)
    d.stop()
    tick(run, T0 + 1.0)
    d.start()
    tick(run, T0 + 2.0)
    assert d.calls == ["setup", "poll", "poll"]


def test_close_then_start_sets_up_again() -> None:
    run = unset()
    d = run.driver
    d.start()
    tick(run, T0)
    d.stop()
    d.close()
    d.set_parameter("gain", 2.0)  # closed: stored for the next setup, no hook
    d.start()
    tick(run, T0 + 1.0)
    assert d.calls == ["setup", "poll", "close", "setup", "poll"]
    assert data(run, "Unguarded.G")[1] == [1.0, 2.0]


def test_super_setup_in_a_subclass_is_one_setup() -> None:
    class More(Unguarded):
        def setup(self) -> None:
            super().setup()
            self.calls.append("more")

    run = unset(More)
    run.driver.start()
    tick(run, T0)
    run.driver.set_parameter("gain", 2.0)
    assert run.driver.calls == ["setup", "more", "poll", "changed gain"]


def test_a_failing_setup_on_the_first_tick_means_no_poll() -> None:
    run = unset(Broken)
    d = run.driver
    d.start()
    with pytest.raises(OSError, match="no such device"):
        tick(run, T0)
    with pytest.raises(DriverError, match="setup\\(\\) failed.*no such device") as info:
        tick(run, T0 + 1.0)  # not retried, and still no poll
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.driver == "Broken"
    with pytest.raises(DriverError):
        d.call_function("read")
    d.set_parameter("samplerate", 2.0)  # stored; no driver code runs
    assert d.calls == ["setup"]


def test_a_setup_failing_in_the_host_means_no_poll() -> None:
    run = unset(Broken)
    d = run.driver
    with pytest.raises(OSError):
        d.setup()  # the host calls it and reports the error (the process ends)
    d.start()
    with pytest.raises(DriverError):
        tick(run, T0)
    with pytest.raises(OSError):
        make_driver(Broken)  # rtoc.testing reports it as it did
    assert d.calls == ["setup"]


def test_after_a_failed_setup_close_lets_the_next_tick_try_again() -> None:
    run = unset(Broken)
    d = run.driver
    d.start()
    with pytest.raises(OSError):
        tick(run, T0)
    d.close()
    with pytest.raises(OSError):
        tick(run, T0 + 1.0)
    assert d.calls == ["setup", "setup"]
