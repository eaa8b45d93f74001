"""2. Batch writes into a ring (target >= 100 M samples/s with 1000-sample batches).

For batches of 1000 and 65536 float64 samples (preallocated ``t`` and ``y``):

* ``ring_writer``: ``RingWriter.write(t, y)``, the public path a driver's ``write()`` ends in
  (``as_batch`` checks plus the numba kernel).
* ``driver_write``: ``Driver.write("S", t, y)`` on a sink handing out a ``RingWriter``.
* ``ring_kernel``: the numba kernel ``ring_kernels.write`` alone (what the wrapper costs).
* ``numpy_copy_cycling``: the baseline: both columns copied with numpy into preallocated
  arrays as large as the ring, at an offset that walks through them as a ring's does.
* ``numpy_copy_hot``: both columns copied to the same place every time (cache-hot).
* ``ring_reader``: ``RingReader.read()`` of the same batch size (the engine's side), with
  each result dropped at once, or the last 8 kept alive (as zmq does in the engine).

The ring holds 2**20 samples (16 MiB), larger than the caches, like a real one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtoc.pipeline import ring_kernels as k
from rtoc.pipeline.ring import Ring, RingReader, RingWriter, warm_up

from rtoc import Driver
from rtoc.driver import DriverContext
from rtoc.model import Event

CAPACITY = 1 << 20
SIZES = [1000, 65536]
GROUP = "2 ring batch write"


class OneRingSink:
    """A sink whose every signal is the one ring given."""

    def __init__(self, ring: Ring):
        self.ring = ring

    def claim(self, device: str, signal: str, unit: str, rate: float) -> RingWriter:
        return RingWriter(self.ring)

    def event(self, event: Event) -> None:
        pass


def _batch(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = 1.7e9 + np.arange(n, dtype=np.float64) * 1e-6
    y = np.sin(np.arange(n, dtype=np.float64))
    return t, y


@pytest.fixture
def ring(shm_dir: Path) -> Any:
    warm_up()
    r = Ring.create(shm_dir / "bench.ring", CAPACITY, 1)
    yield r
    r.close()


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("n", SIZES)
def test_ring_writer(benchmark: Any, rate: Callable[..., None], ring: Ring, n: int) -> None:
    t, y = _batch(n)
    w = RingWriter(ring)
    benchmark(w.write, t, y)
    rate(benchmark, n, "RingWriter.write(t, y)")
    assert ring.committed > 0


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("n", SIZES)
def test_driver_write(benchmark: Any, rate: Callable[..., None], ring: Ring, n: int) -> None:
    t, y = _batch(n)
    sink = OneRingSink(ring)
    driver = Driver(context=DriverContext(name="Bench", sink=sink))
    driver.write("S", t, y)  # claims the signal
    benchmark(driver.write, "S", t, y)
    rate(benchmark, n, "Driver.write('S', t, y) on a ring sink (the driver API path)")


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("n", SIZES)
def test_ring_kernel(benchmark: Any, rate: Callable[..., None], ring: Ring, n: int) -> None:
    t, y = _batch(n)
    benchmark(k.write, ring.hdr, ring.t, ring.y, t, y)
    rate(benchmark, n, "ring_kernels.write (no wrapper)")


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("n", SIZES)
def test_numpy_copy_cycling(benchmark: Any, rate: Callable[..., None], n: int) -> None:
    t, y = _batch(n)
    dst_t = np.zeros(CAPACITY)
    dst_y = np.zeros(CAPACITY)
    pos = [0]

    def copy() -> None:
        off = pos[0]
        if off + n > CAPACITY:
            off = 0
        dst_t[off:off + n] = t
        dst_y[off:off + n] = y
        pos[0] = off + n

    benchmark(copy)
    rate(benchmark, n, "baseline: numpy copy of t and y, walking a 16 MiB buffer")


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("n", SIZES)
def test_numpy_copy_hot(benchmark: Any, rate: Callable[..., None], n: int) -> None:
    t, y = _batch(n)
    dst_t = np.empty(n)
    dst_y = np.empty(n)

    def copy() -> None:
        np.copyto(dst_t, t)
        np.copyto(dst_y, y)

    benchmark(copy)
    rate(benchmark, n, "baseline: numpy copy of t and y, same place (cache-hot)")


@pytest.mark.benchmark(group="2 ring batch read")
@pytest.mark.parametrize("keep", [0, 8], ids=["dropped", "kept8"])
@pytest.mark.parametrize("n", SIZES)
def test_ring_reader(benchmark: Any, rate: Callable[..., None], ring: Ring, n: int, keep: int) -> None:
    """``keep=8``: the last 8 results stay referenced, as in the engine, where zmq holds
    the arrays of messages it has not sent yet (so freed memory is not reused at once)."""
    t, y = _batch(n)
    w = RingWriter(ring)
    for _ in range(CAPACITY // n):
        w.write(t, y)
    end = ring.committed
    lo = max(0, end - CAPACITY)
    reader = RingReader(ring, cursor=lo, max_batch=n)
    held: deque[Any] = deque(maxlen=keep or None)

    def read() -> None:
        if reader.cursor + n > end:
            reader.cursor = lo  # start over: nothing is written meanwhile, nothing is lost
        res = reader.read()
        if keep:
            held.append(res)

    benchmark(read)
    rate(benchmark, n, f"RingReader.read() (fresh arrays per batch), last {keep} results kept")
    assert reader.lost == 0
