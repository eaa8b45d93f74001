"""Process entry points for the multi-process ring stress test (importable by spawn).

The writer writes ``t == y == sequence number``; readers check every sample they get.
Each worker puts one result dict on its queue and never raises out of the process.
"""

from __future__ import annotations

import time
import traceback
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

MAX_FAILURES = 20


def writer_main(path: str, total: int, seconds: float, max_batch: int, seed: int,
                ready: Queue, go: Event, done: Event, written: Synchronized,
                results: Queue) -> None:
    """Write batches of 1..max_batch samples until ``total`` or ``seconds``; report the count."""
    out: dict[str, Any] = {"role": "writer", "written": 0, "batches": 0, "error": None}
    try:
        import numpy as np
        from rtoc.pipeline.ring import Ring, RingWriter, warm_up

        warm_up()
        ring = Ring.open(path)
        w = RingWriter(ring)
        rng = np.random.default_rng(seed)
        sizes = rng.integers(1, max_batch + 1, size=1 << 16)
        ramp = np.arange(max_batch, dtype=np.float64)
        ready.put("writer")
        if not go.wait(60):
            raise TimeoutError("no go signal")
        seq = w.seq
        batches = 0
        t0 = time.monotonic()
        deadline = t0 + seconds
        while seq < total:
            n = min(int(sizes[batches & 0xFFFF]), total - seq)
            batch = ramp[:n] + seq  # exact: all values stay far below 2**53
            seq = w.write(batch, batch.copy())
            batches += 1
            if batches & 0xFF == 0 and time.monotonic() > deadline:
                break
        out["written"], out["batches"] = seq, batches
        out["elapsed"] = time.monotonic() - t0
        ring.close()
    except BaseException:
        out["error"] = traceback.format_exc()
    finally:
        with written.get_lock():
            written.value = out["written"]
        done.set()
        results.put(out)


def reader_main(name: str, path: str, max_batch: int, ready: Queue, go: Event, done: Event,
                written: Synchronized, results: Queue, timeout: float = 60.0) -> None:
    """Read from sequence 0 until the writer is done and drained; check every sample."""
    out: dict[str, Any] = {"role": "reader", "name": name, "max_batch": max_batch,
                           "received": 0, "lost": 0, "loss_events": 0, "reads": 0,
                           "cursor": 0, "failures": [], "error": None}
    failures: list[str] = out["failures"]

    def fail(msg: str) -> None:
        if len(failures) < MAX_FAILURES:
            failures.append(msg)

    try:
        import numpy as np
        from rtoc.pipeline.ring import Ring, RingReader, warm_up

        warm_up()
        ring = Ring.open(path)
        reader = RingReader(ring, cursor=0, max_batch=max_batch)
        ready.put(name)
        if not go.wait(60):
            raise TimeoutError("no go signal")
        prev_stop = 0
        received = lost = loss_events = reads = 0
        deadline = time.monotonic() + timeout
        while True:
            res = reader.read()
            reads += 1
            n = len(res.t)
            if res.lost < 0:
                fail(f"negative lost {res.lost} at read {reads}")
            if res.first != prev_stop + res.lost:
                fail(f"first {res.first} != previous stop {prev_stop} + lost {res.lost}")
            if n > max_batch:
                fail(f"{n} samples > max_batch {max_batch}")
            if n:
                expect = np.arange(res.first, res.first + n, dtype=np.float64)
                if not (np.array_equal(res.t, expect) and np.array_equal(res.y, expect)):
                    bad = np.flatnonzero((res.t != expect) | (res.y != expect))
                    i = int(bad[0])
                    fail(f"torn/misplaced sample at seq {res.first + i}: t={res.t[i]!r} "
                         f"y={res.y[i]!r} ({bad.size} bad of {n}, read {reads})")
                if n > 1 and not bool(np.all(np.diff(res.t) == 1.0)):
                    fail(f"sequence not contiguous in batch at {res.first}")
            if res.stop != reader.cursor:
                fail(f"stop {res.stop} != cursor {reader.cursor}")
            received += n
            lost += res.lost
            loss_events += res.lost > 0
            prev_stop = res.stop
            if reads & 0x3FF == 0:
                latest = reader.latest()
                if latest is not None and not (latest[0] == latest[1] == latest[2]):
                    fail(f"latest() torn: {latest!r}")
            if n == 0:
                if done.is_set() and reader.cursor >= written.value:
                    break
                if time.monotonic() > deadline:
                    fail(f"timed out at cursor {reader.cursor}, written {written.value}")
                    break
        if reader.lost != lost:
            fail(f"reader.lost {reader.lost} != sum of lost {lost}")
        out.update(received=received, lost=lost, loss_events=loss_events, reads=reads,
                   cursor=reader.cursor)
        ring.close()
    except BaseException:
        out["error"] = traceback.format_exc()
    finally:
        results.put(out)
