"""Unit tests of the built-in generator driver, on a fake clock."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtoc.drivers.generator import MAX_CATCH_UP, WAVEFORMS, Generator, waveform

from rtoc.driver import DriverContext, construct
from rtoc.errors import ParameterError
from rtoc.testing import DriverRun, FakeClock, MemorySink, advance, make_driver, run_driver

T0 = 1_700_000_000.0  # multiples of 1/8 s are exact at this magnitude


def gen(start: float = T0, **options: Any) -> DriverRun:
    return make_driver(Generator, options=options, clock=FakeClock(start))


def signal(run: DriverRun, name: str) -> tuple[np.ndarray, np.ndarray]:
    run.driver.flush()
    return run.sink.signals[f"Generator.{name}"].data()


def poll_at(run: DriverRun, now: float) -> None:
    run.clock.now = now
    run.driver.poll()


EIGHTHS = np.arange(8) / 8  # one period of a 1 Hz wave sampled at 8 Hz


@pytest.mark.parametrize(("kind", "expected"), [
    ("sine", 2.0 * np.sin(2 * np.pi * EIGHTHS) + 0.5),
    ("square", np.array([2.5] * 4 + [0.5] * 4)),
    ("sawtooth", 2.0 * (2 * EIGHTHS - 1) + 0.5),
    ("triangle", 2.0 * (1 - 4 * np.abs(EIGHTHS - 0.5)) + 0.5),
    ("ac", np.array([2.0] * 4 + [-2.0] * 4)),
    ("dc", np.full(8, 2.5)),
])
def test_waveforms_at_known_times(kind: str, expected: np.ndarray) -> None:
    run = gen(samplerate=8.0, frequency=1.0, amplitude=2.0, offset=0.5, waveform=kind)
    advance(run, 16)
    t, y = signal(run, WAVEFORMS[kind])
    np.testing.assert_array_equal(t, T0 + np.arange(16) / 8)
    np.testing.assert_allclose(y, np.tile(expected, 2), rtol=0, atol=1e-12)


def test_known_values_of_each_waveform() -> None:
    # spot values, independent of the formulas above
    run = gen(samplerate=8.0, frequency=1.0, amplitude=2.0, offset=0.5)
    advance(run, 3)
    np.testing.assert_allclose(signal(run, "Sine")[1], [0.5, 0.5 + math.sqrt(2), 2.5], atol=1e-12)
    tri = gen(samplerate=8.0, frequency=1.0, amplitude=1.0, waveform="triangle")
    advance(tri, 5)
    assert signal(tri, "Triangle")[1].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    saw = gen(samplerate=4.0, frequency=1.0, amplitude=1.0, waveform="sawtooth")
    advance(saw, 5)
    assert signal(saw, "Sawtooth")[1].tolist() == [-1.0, -0.5, 0.0, 0.5, -1.0]


def test_phase_shifts_the_waveform() -> None:
    run = gen(samplerate=8.0, frequency=1.0, amplitude=2.0, offset=0.5, phase=math.pi / 2)
    advance(run, 8)
    np.testing.assert_allclose(signal(run, "Sine")[1], 2 * np.cos(2 * np.pi * EIGHTHS) + 0.5,
                               atol=1e-12)
    sq = gen(samplerate=8.0, frequency=1.0, amplitude=2.0, offset=0.5, phase=math.pi,
             waveform="square")
    advance(sq, 8)
    assert signal(sq, "Square")[1].tolist() == [0.5] * 4 + [2.5] * 4


def test_the_origin_is_the_clock_at_setup() -> None:
    run = gen(start=T0 + 0.25, samplerate=8.0, frequency=1.0, waveform="sawtooth")
    advance(run, 1)
    assert signal(run, "Sawtooth")[1].tolist() == [-1.0]  # phase 0 at the origin


def test_noise_has_the_requested_mean_and_spread() -> None:
    run = gen(samplerate=20_000.0, amplitude=2.0, offset=0.5, waveform="noise")
    advance(run, 101)  # about 1 s at block_rate 100
    y = signal(run, "Noise")[1]
    assert len(y) > 19_000
    assert abs(y.mean() - 0.5) < 5 * 2.0 / math.sqrt(len(y))
    assert abs(y.std() - 2.0) < 0.05
    flat = gen(samplerate=8.0, amplitude=0.0, offset=3.0, waveform="noise")
    advance(flat, 5)
    assert signal(flat, "Noise")[1].tolist() == [3.0] * 5


def test_waveform_function_refuses_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown waveform"):
        waveform("sinc", np.zeros(1), 1.0, 1.0, 0.0, 0.0, np.random.default_rng(0))


def test_one_sample_per_tick_below_the_block_rate() -> None:
    run = gen(samplerate=64.0)
    assert run.driver.tick_rate() == 64.0
    advance(run, 10)
    t, _ = signal(run, "Sine")
    np.testing.assert_array_equal(t, T0 + np.arange(10) / 64)
    assert [len(c[0]) for c in run.sink.signals["Generator.Sine"].chunks] == [1] * 10


@pytest.mark.parametrize("rate", [3.0, 10.0, 50.0])
def test_run_driver_gives_one_sample_per_tick(rate: float) -> None:
    run = run_driver(Generator, ticks=20, options={"samplerate": rate})
    t, _ = run.signals["Generator.Sine"]
    assert len(t) == 20
    assert t[-1] == pytest.approx(run.clock.now, abs=1e-6)


RATE = 1_000_000.0


def test_a_million_samples_per_second_in_blocks_without_drift() -> None:
    run = gen(samplerate=RATE, block_rate=100.0)
    d = run.driver
    assert d.tick_rate() == 100.0
    ticks = 150
    advance(run, ticks)
    sig = run.sink.signals["Generator.Sine"]
    sizes = [len(c[0]) for c in sig.chunks]
    assert len(sizes) == ticks
    assert all(9_999 <= n <= 10_001 for n in sizes[1:])
    t, y = sig.data()
    n = len(t)
    # timestamps are t0 + k / rate for consecutive k: exact, no gap, no repeat, no drift
    np.testing.assert_array_equal(t, T0 + np.arange(n, dtype=np.float64) / RATE)
    ulp = np.spacing(T0)
    assert np.all(np.abs(np.diff(t) - 1 / RATE) <= ulp)
    # every due sample was produced, and none from the future
    now = run.clock.now
    assert t[-1] <= now and now - t[-1] < 2 / RATE
    assert abs(n - ((now - T0) * RATE + 1)) <= 1
    np.testing.assert_allclose(y, np.sin(2 * np.pi * 0.5 * (t - T0)), atol=1e-6)


def test_a_million_samples_per_second_gives_exactly_rate_times_elapsed_per_tick() -> None:
    run = gen(samplerate=RATE, block_rate=100.0)
    sig = run.sink.signals
    produced = []
    for j in range(50):
        now = T0 + j * 0.01
        poll_at(run, now)
        total = sig["Generator.Sine"].seq
        produced.append(total)
        # the newest sample is the one at now: every t <= now is out
        last_t = sig["Generator.Sine"].chunks[-1][0][-1]
        assert last_t == T0 + (total - 1) / RATE
        assert T0 + total / RATE > now
    assert np.diff(produced).tolist() == [10_000] * 49


def test_block_counts_are_exact_where_the_clock_resolves_them() -> None:
    run = gen(start=1000.0, samplerate=RATE, block_rate=100.0)
    for j in range(30):
        poll_at(run, 1000.0 + j * 0.01)
    sizes = [len(c[0]) for c in run.sink.signals["Generator.Sine"].chunks]
    assert sizes == [1] + [10_000] * 29


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 3.0), max_size=12),
       st.sampled_from(["sine", "square", "sawtooth", "triangle", "ac", "dc"]))
def test_the_samples_do_not_depend_on_the_tick_times(offsets: list[float], kind: str) -> None:
    end = 3.0
    options = {"samplerate": 1000.0, "frequency": 3.0, "waveform": kind}
    ref = gen(**options)
    poll_at(ref, T0 + end)
    t_ref, y_ref = signal(ref, WAVEFORMS[kind])
    run = gen(**options)
    for off in sorted(offsets):
        poll_at(run, T0 + off)
    poll_at(run, T0 + end)
    t, y = signal(run, WAVEFORMS[kind])
    np.testing.assert_array_equal(t, t_ref)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)  # SIMD tails may differ by an ulp
    assert len(t) == 3001


def test_after_a_stall_only_max_catch_up_seconds_are_produced() -> None:
    run = gen(samplerate=10.0)
    poll_at(run, T0)
    poll_at(run, T0 + 100.0)
    t, _ = signal(run, "Sine")
    assert len(t) == 1 + int(MAX_CATCH_UP * 10)
    np.testing.assert_allclose(t[1:], T0 + np.arange(901, 1001) / 10.0, rtol=0, atol=1e-6)


def test_no_samples_when_the_clock_has_not_moved() -> None:
    run = gen(samplerate=10.0)
    poll_at(run, T0)
    poll_at(run, T0)
    poll_at(run, T0 + 0.05)
    assert run.sink.signals["Generator.Sine"].seq == 1


def test_changing_the_samplerate_at_runtime_continues_the_time_axis() -> None:
    run = gen(samplerate=8.0)
    d = run.driver
    advance(run, 4)  # t0 .. t0 + 3/8
    d.set_parameter("samplerate", 16.0)
    assert d._timer.period == 1 / 16
    advance(run, 4)
    t, _ = signal(run, "Sine")
    expected = [T0 + k / 8 for k in range(4)] + [T0 + 0.5 + k / 16 for k in range(4)]
    assert t.tolist() == expected
    d.set_parameter("samplerate", 4.0)  # slower again
    advance(run, 2)
    t, _ = signal(run, "Sine")
    assert t[-2:].tolist() == [T0 + 0.5 + 4 / 16, T0 + 0.75 + 1 / 4]


def test_changing_the_samplerate_above_the_block_rate_ticks_in_blocks() -> None:
    run = gen(samplerate=8.0, block_rate=4.0)
    assert run.driver.tick_rate() == 4.0
    run.driver.set_parameter("block_rate", 2.0)
    assert run.driver._timer.period == 0.5
    run.driver.set_parameter("samplerate", 1.0)
    assert run.driver._timer.period == 1.0


def test_changing_the_waveform_at_runtime_switches_the_signal() -> None:
    run = gen(samplerate=8.0, frequency=1.0)
    d = run.driver
    advance(run, 2)
    assert d.set_waveform("SQUARE") == "Square"
    assert d.waveform == "square"
    advance(run, 2)
    t_sine, _ = signal(run, "Sine")
    t_sq, y_sq = signal(run, "Square")
    assert t_sine.tolist() == [T0, T0 + 0.125]
    assert t_sq.tolist() == [T0 + 0.25, T0 + 0.375]  # the time axis goes on
    assert y_sq.tolist() == [1.0, 1.0]


def test_set_waveform_refuses_unknown_kinds() -> None:
    run = gen()
    with pytest.raises(ParameterError):
        run.driver.set_waveform("sinc")
    assert run.driver.waveform == "sine"


@pytest.mark.parametrize(("stype", "kind", "name"), [
    ("Sinus", "sine", "Sine"), ("Random", "noise", "Noise"), ("Square", "square", "Square"),
    ("AC", "ac", "AC"), ("dc", "dc", "DC"), ("Sawtooth", "sawtooth", "Sawtooth"),
])
def test_change_type_understands_rtoc_names(stype: str, kind: str, name: str) -> None:
    d = gen().driver
    assert d.changeType(stype) == name
    assert d.waveform == kind


def test_set_frequency_and_its_rtoc_form() -> None:
    d = gen().driver
    assert d.set_frequency(2) == 2.0
    assert d.setFrequency(4.0) == 4.0
    assert d.setFrequency(4.0, inverse=True) == 0.25
    assert d.frequency == 0.25
    with pytest.raises(ParameterError):
        d.set_frequency(-1.0)
    assert d.frequency == 0.25


def test_functions_are_callable_remotely() -> None:
    d = gen().driver
    assert set(d.function_table()) == {"set_waveform", "set_frequency", "changeType", "setFrequency"}
    assert d.call_function("changeType", ["Random"]) == "Noise"
    assert d.call_function("setFrequency", [2.0], {"inverse": True}) == 0.5


def test_the_signal_parameter_names_the_signal() -> None:
    run = gen(samplerate=8.0, signal="Out")
    advance(run, 2)
    assert list(run.sink.signals) == ["Generator.Out"]
    run.driver.set_waveform("dc")
    advance(run, 1)
    assert list(run.sink.signals) == ["Generator.Out"]


def test_parameter_bounds() -> None:
    with pytest.raises(ParameterError):
        gen(samplerate=2e7)
    with pytest.raises(ParameterError):
        gen(block_rate=5000.0)
    with pytest.raises(ParameterError):
        gen(waveform="sinc")


def unset_generator(start: float = T0) -> DriverRun:
    """A Generator built as hosts build it, neither set up nor started."""
    sink, clock = MemorySink("Generator"), FakeClock(start)
    return DriverRun(construct(Generator, DriverContext(name="Generator", sink=sink, clock=clock)),
                     sink, clock)


def test_parameters_and_functions_before_start_need_no_guards() -> None:
    run = unset_generator()
    d = run.driver
    d.set_parameter("samplerate", 8.0)  # stored; setup() reads it
    assert d.call_function("set_frequency", [1.0]) == 1.0  # sets up first
    d.start()
    advance(run, 3)
    t, y = signal(run, "Sine")
    assert t.tolist() == [T0, T0 + 0.125, T0 + 0.25]
    assert y == pytest.approx(np.sin(2 * np.pi * (t - T0)))


def test_a_generator_closed_and_started_again_begins_a_new_time_axis() -> None:
    run = gen(samplerate=8.0)
    d = run.driver
    advance(run, 2)       # T0, T0 + 1/8
    d.stop()
    d.close()
    run.clock.now = T0 + 5.0
    d.start()
    advance(run, 1)
    t, _ = signal(run, "Sine")
    # a new origin at the restart, not five seconds of samples made up for the closed time
    assert t.tolist() == [T0, T0 + 0.125, T0 + 5.0]
