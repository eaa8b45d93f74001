"""Drivers used only by the benchmarks, loaded as ``rtoc_bench_drivers:Name``.

The spawned driver processes import this module by name, so ``bench/`` must be on their
``PYTHONPATH`` (``run_e2e.py`` passes it through the harness's ``env=``).

* :class:`StreamFlood` -- single samples through ``stream()`` in a tight loop.
* :class:`BlockWriter` -- ``write()`` of large numpy blocks at a set sample rate.
* :class:`SlowSignals` -- a few signals at 1 Hz (the engine's idle load).
"""

from __future__ import annotations

import time

import numpy as np

from rtoc import Driver, Parameter, function


class StreamFlood(Driver):
    """Each tick, ``stream(value, "S")`` single samples for ``burst`` seconds.

    With ``burst`` equal to the tick period (the default) the driver streams all the time,
    and the host still flushes and answers control requests between ticks.
    """

    samplerate = Parameter(100.0, "Ticks per second", min=1.0, max=1000.0, persist=False)
    burst = Parameter(0.01, "Seconds of streaming per tick", min=0.0, max=1.0, persist=False)

    def setup(self) -> None:
        self.produced = 0
        self.busy = 0.0

    def poll(self) -> None:
        stream = self.stream
        clock = time.perf_counter
        t0 = clock()
        end = t0 + self.burst
        n = 0
        v = float(self.produced & 0xFFFF)
        while True:
            for _ in range(500):
                stream(v, "S")
                v += 1.0
            n += 500
            if clock() >= end:
                break
        self.busy += clock() - t0
        self.produced += n

    @function
    def stats(self) -> dict:
        """Samples streamed so far and the seconds spent streaming them."""
        return {"produced": self.produced, "busy": self.busy}


class BlockWriter(Driver):
    """``write()`` of the samples that came due, in blocks of at most ``block`` samples.

    Timestamps are ``t0 + k / samplerate`` (exact, no drift); the values are a precomputed
    sine. ``samplerate`` may be changed while running (the clock restarts at the change).
    At most ``max_catch_up`` seconds of samples are produced after a stall; the rest are
    counted in ``skipped`` (never written, so nobody counts them as lost).
    """

    samplerate = Parameter(1e6, "Samples per second", min=1.0, max=1e9, persist=False)
    block_rate = Parameter(500.0, "Timer ticks per second", min=1.0, max=5000.0, persist=False)
    block = Parameter(65536, "Most samples per write()", min=1, max=1 << 22, persist=False)
    max_catch_up = Parameter(0.2, "Seconds of samples produced at most after a stall",
                             min=0.001, persist=False)

    def setup(self) -> None:
        self._alloc()
        self.written = 0
        self.skipped = 0
        self._restart(time.time())

    def _alloc(self) -> None:
        n = self.block
        self._y = np.sin(np.arange(n, dtype=np.float64) * (2 * np.pi / 1000.0))
        self._tbuf = np.empty(n, np.float64)

    def _restart(self, t0: float) -> None:
        self._t0, self._k = t0, 0
        self._step = np.arange(self.block, dtype=np.float64) / self.samplerate

    def tick_rate(self) -> float:
        return self.block_rate

    def parameter_changed(self, name: str, value) -> None:
        if not hasattr(self, "_t0"):
            return
        if name == "block":
            self._alloc()
        if name in ("samplerate", "block"):
            self._restart(time.time())
        if name == "block_rate" and self._timer is not None:
            self._timer.period = 1.0 / self.tick_rate()

    def poll(self) -> None:
        rate = self.samplerate
        due = int((time.time() - self._t0) * rate)
        limit = int(self.max_catch_up * rate)
        if due - self._k > limit:
            self.skipped += due - self._k - limit
            self._k = due - limit
        block, write = self.block, self.write
        while self._k < due:
            n = min(block, due - self._k)
            t = np.add(self._step[:n], self._t0 + self._k / rate, out=self._tbuf[:n])
            write("Block", t, self._y[:n])
            self._k += n
            self.written += n

    @function
    def stats(self) -> dict:
        """Samples written and skipped (after stalls) so far."""
        return {"written": self.written, "skipped": self.skipped}


class SlowSignals(Driver):
    """``count`` signals (``S0`` ..), one sample each per tick at ``samplerate`` Hz."""

    samplerate = Parameter(1.0, "Hz", min=0.01, max=1000.0, persist=False)
    count = Parameter(10, "Number of signals", min=1, max=1000, persist=False)

    def setup(self) -> None:
        self._names = [f"S{i}" for i in range(self.count)]
        self._v = 0.0

    def poll(self) -> None:
        self._v += 1.0
        for name in self._names:
            self.stream(self._v, name)
