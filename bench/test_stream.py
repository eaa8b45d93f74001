"""1a. ``Driver.stream()`` of single samples in one process (target >= 1,000,000 samples/s).

Each round streams ``N`` samples with ``driver.stream(value, "S")`` and then ``flush()``es,
so the hand-over of the buffered samples (every 4096, ``FLUSH_SAMPLES``) is timed too:

* ``memory_fakeclock``: the driver ``rtoc.testing.make_driver`` builds (memory sink, fake
  clock); the sink's list of chunks is emptied between rounds (untimed).
* ``memory_time``: the same with ``time.time`` as the clock, as in a driver process.
* ``ring``: ``time.time`` and a sink whose ``claim`` returns a ``RingWriter`` on a real
  ring in /dev/shm, so the copy into shared memory is included.
* ``ring_explicit_x``: as ``ring`` but passing ``x=`` (no clock call per sample).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rtoc.pipeline.ring import Ring, RingWriter, warm_up

from rtoc import Driver
from rtoc.driver import DriverContext
from rtoc.model import Event
from rtoc.testing import MemorySink, make_driver

N = 100_000  # stream() calls per round
ROUNDS = 15


class RingSink:
    """A sink with one real ring for every signal it is asked for."""

    def __init__(self, folder: Path, capacity: int = 1 << 16):
        self.folder, self.capacity = folder, capacity
        self.rings: list[Ring] = []

    def claim(self, device: str, signal: str, unit: str, rate: float) -> RingWriter:
        ring = Ring.create(self.folder / f"{len(self.rings) + 1}.ring", self.capacity, len(self.rings) + 1)
        self.rings.append(ring)
        return RingWriter(ring)

    def event(self, event: Event) -> None:
        pass

    def close(self) -> None:
        for ring in self.rings:
            ring.close()


def _loop(driver: Driver, explicit_x: bool = False) -> Callable[[], None]:
    stream = driver.stream
    flush = driver.flush
    value = 1.5
    if explicit_x:
        x = time.time()

        def run_x() -> None:
            for _ in range(N):
                stream(value, "S", x=x)
            flush()

        return run_x

    def run() -> None:
        for _ in range(N):
            stream(value, "S")
        flush()

    return run


def _bench(benchmark: Any, rate: Callable[..., None], fn: Callable[[], None],
           setup: Callable[[], None] | None = None, note: str = "") -> None:
    benchmark.pedantic(fn, setup=setup, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    rate(benchmark, N, note)


@pytest.mark.benchmark(group="1a stream() single samples")
def test_stream_memory_fakeclock(benchmark: Any, rate: Callable[..., None]) -> None:
    run = make_driver(Driver, name="Bench")
    run.driver.stream(0.0, "S")  # claims the signal: the hot path is taken from now on
    chunks = run.sink.signals["Bench.S"].chunks
    _bench(benchmark, rate, _loop(run.driver), setup=chunks.clear, note="make_driver, memory sink")


@pytest.mark.benchmark(group="1a stream() single samples")
def test_stream_memory_time(benchmark: Any, rate: Callable[..., None]) -> None:
    sink = MemorySink("Bench")
    driver = Driver(context=DriverContext(name="Bench", sink=sink, clock=time.time))
    driver.stream(0.0, "S")
    chunks = sink.signals["Bench.S"].chunks
    _bench(benchmark, rate, _loop(driver), setup=chunks.clear, note="memory sink, time.time clock")


@pytest.mark.benchmark(group="1a stream() single samples")
def test_stream_ring(benchmark: Any, rate: Callable[..., None], shm_dir: Path) -> None:
    warm_up()
    sink = RingSink(shm_dir)
    try:
        driver = Driver(context=DriverContext(name="Bench", sink=sink, clock=time.time))
        driver.stream(0.0, "S")
        _bench(benchmark, rate, _loop(driver), note="RingWriter in /dev/shm, time.time clock")
        assert sink.rings[0].committed >= N
    finally:
        sink.close()


@pytest.mark.benchmark(group="1a stream() single samples")
def test_stream_ring_explicit_x(benchmark: Any, rate: Callable[..., None], shm_dir: Path) -> None:
    warm_up()
    sink = RingSink(shm_dir)
    try:
        driver = Driver(context=DriverContext(name="Bench", sink=sink, clock=time.time))
        driver.stream(0.0, "S")
        _bench(benchmark, rate, _loop(driver, explicit_x=True), note="RingWriter, stream(v, 'S', x=t)")
    finally:
        sink.close()
