"""Conditions (issue 3): samples per second through the engine's event path, on one core.

* ``threshold_rising``: ``Generator.Sine > 0.9`` with trigger ``rising`` — the fused
  compare kernel plus the trigger kernel, through ``RuleState.feed`` as the engine calls it,
  over 64 k-sample batches (the engine's batch size) and one 10 M batch. Target >= 500 M/s.
* ``numpy_rising_edges``: the baseline, the same edges with numpy
  (``flatnonzero(diff(y > c) ...)``), no state across batches.
* ``generic_program``: a condition that needs the program interpreter
  (``abs(S.x - 0.5) * 2 > 1.5 and S.x < 0.99``).
* ``two_signals``: ``A.x > 0.9 and B.y < 0`` fed as interleaved 64 k batches of two
  signals (the time-ordered merge with zero-order hold, then the interpreter).

The input is a 1 kHz-period sine sampled at 1 MS/s (10 M samples, 10 000 rising edges).
"""

from __future__ import annotations

import numpy as np
import pytest
from rtoc.pipeline.evaluator import Conditions, RuleState, warm_up

from rtoc.events.rules import EventRule

N = 10_000_000
GROUP = "3 conditions"


@pytest.fixture(scope="module")
def stream():
    warm_up()
    t = np.arange(N) / 1e6
    y = np.sin(2 * np.pi * 1000.0 * t)
    return t, y


def _fired(rule: EventRule, batches) -> int:
    """Feed the batches through one rule as the engine does; the number of firings."""
    st = RuleState(rule)
    fired = 0
    for t, y in batches:
        firing = st.feed(0, t, y, 0.0)
        fired += 0 if firing is None else len(firing.t)
    return fired


def _batches(t, y, size):
    return [(t[i:i + size], y[i:i + size]) for i in range(0, len(t), size)]


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("batch", [65536, N])
def test_threshold_rising(benchmark, rate, stream, batch) -> None:
    batches = _batches(*stream, batch)
    rule = EventRule("high", "Generator.Sine > 0.9")

    def run():
        return _fired(rule, batches)

    assert benchmark(run) == 10_000
    rate(benchmark, N, f"batch {batch}")


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("batch", [65536, N])
def test_numpy_rising_edges(benchmark, rate, stream, batch) -> None:
    batches = _batches(*stream, batch)

    def run():
        fired = 0
        prev = False
        for _, y in batches:
            c = y > 0.9
            fired += int(c[0] and not prev) + int(np.count_nonzero(c[1:] & ~c[:-1]))
            prev = bool(c[-1])
        return fired

    assert benchmark(run) == 10_000
    rate(benchmark, N, f"baseline, batch {batch}")


@pytest.mark.benchmark(group=GROUP)
def test_generic_program(benchmark, rate, stream) -> None:
    batches = _batches(*stream, 65536)
    rule = EventRule("g", "abs(S.x - 0.5) * 2 > 1.5 and S.x < 0.99")

    def run():
        return _fired(rule, batches)

    assert benchmark(run) > 0
    rate(benchmark, N, "interpreter, batch 65536")


@pytest.mark.benchmark(group=GROUP)
def test_two_signals(benchmark, rate, stream) -> None:
    t, y = stream
    half = N // 2
    a = _batches(t[:half], y[:half], 65536)
    b = _batches(t[:half] + 0.5e-6, -y[:half], 65536)

    def run():
        c = Conditions(max_rate=float("inf"))
        c.set_rules([EventRule("two", "A.x > 0.9 and B.y < 0")])
        n = 0
        for (ta, ya), (tb, yb) in zip(a, b, strict=True):
            n += len(c.feed("A.x", ta, ya, 0.0)) + len(c.feed("B.y", tb, yb, 0.0))
        return n + len(c.flush(0.0))

    assert benchmark(run) == 5_000
    rate(benchmark, N, "2 x 5 M samples, merged")
