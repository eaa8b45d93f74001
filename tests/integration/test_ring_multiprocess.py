"""Multi-process stress test of the ring protocol: one writer, two readers, separate processes.

The writer writes ``t == y == sequence number`` at full speed; the readers check that no
sample is ever torn, that every gap is counted as lost, and that received + lost == written.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest
from rtoc.pipeline.ring import Ring

# spawn children import the workers by module name: make it importable however pytest
# imports this file (the children inherit sys.path)
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import ring_workers  # noqa: E402

CAPACITY = 1 << 16
TOTAL = 1_000_000_000  # samples, or SECONDS of writing, whichever comes first
SECONDS = 4.0
WRITER_MAX_BATCH = 5000
READERS = {"big": CAPACITY, "small": 64}  # name -> max_batch
START_TIMEOUT = 60.0
RUN_TIMEOUT = 60.0


def _collect(q: Any, want: int, procs: list[BaseProcess], timeout: float) -> list[Any]:
    """Up to ``want`` messages from ``q``; stops early when every process has exited."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    while len(got) < want and time.monotonic() < deadline:
        try:
            got.append(q.get(timeout=0.2))
            idle_since = None
        except queue.Empty:
            if all(p.exitcode is not None for p in procs):
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 2.0:
                    break
    return got


@pytest.mark.timeout(120)
def test_ring_one_writer_two_readers_across_processes() -> None:
    _stress(SECONDS)


@pytest.mark.soak
@pytest.mark.timeout(600)
def test_ring_stress_soak() -> None:
    """The same for two minutes (make soak)."""
    _stress(120.0)


def _stress(seconds: float) -> None:
    ctx = mp.get_context("spawn")
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="rtoc-test-mp-") as folder:
        path = Path(folder) / "stress.ring"
        Ring.create(path, CAPACITY, signal_id=1).close()
        ready, results = ctx.Queue(), ctx.Queue()
        go, done = ctx.Event(), ctx.Event()
        written = ctx.Value("Q", 0)
        procs: list[BaseProcess] = [
            ctx.Process(target=ring_workers.writer_main, name="ring-writer", daemon=True,
                        args=(str(path), 10**12 if seconds > SECONDS else TOTAL, seconds,
                              WRITER_MAX_BATCH, 12345,
                              ready, go, done, written, results)),
        ]
        for name, max_batch in READERS.items():
            procs.append(ctx.Process(target=ring_workers.reader_main, name=f"ring-reader-{name}",
                                     daemon=True,
                                     args=(name, str(path), max_batch, ready, go, done, written,
                                           results, RUN_TIMEOUT + seconds)))
        try:
            for p in procs:
                p.start()
            started = _collect(ready, len(procs), procs, START_TIMEOUT)
            assert len(started) == len(procs), f"only {started} started; exit codes " \
                f"{[p.exitcode for p in procs]}"
            go.set()
            reports = _collect(results, len(procs), procs, RUN_TIMEOUT + seconds + 30)
            for p in procs:
                p.join(10)
        finally:
            go.set()
            done.set()
            for p in procs:
                if p.pid is None:
                    continue
                p.join(2)
                if p.is_alive():
                    p.kill()
                    p.join(5)
            for q in (ready, results):
                q.close()
                q.join_thread()
        committed = Ring.open(path)
        try:
            final = committed.committed
        finally:
            committed.close()
    elapsed = time.monotonic() - t_start

    by_role = {r["name"] if r["role"] == "reader" else "writer": r for r in reports}
    assert set(by_role) == {"writer", *READERS}, f"missing reports: {reports!r}"
    assert [p.exitcode for p in procs] == [0] * len(procs)

    writer = by_role.pop("writer")
    print(f"stress: {elapsed:.1f} s; writer {writer!r}")
    for rep in by_role.values():
        print(f"stress: reader {rep!r}")
    assert writer["error"] is None, writer["error"]
    n_written = writer["written"]
    assert n_written > 10 * CAPACITY, f"writer wrote only {n_written} samples"
    assert final == n_written

    for name, rep in by_role.items():
        assert rep["error"] is None, f"reader {name}: {rep['error']}"
        assert rep["failures"] == [], f"reader {name}: {rep['failures']}"
        assert rep["received"] > 0, f"reader {name} received nothing"
        assert rep["cursor"] == n_written, f"reader {name}: {rep!r}"
        assert rep["received"] + rep["lost"] == n_written, f"reader {name}: {rep!r}"

    # the loss path must really have been exercised by the slow reader
    small = by_role["small"]
    assert small["loss_events"] > 0 and small["lost"] > 0, f"small reader lost nothing: {small!r}"
