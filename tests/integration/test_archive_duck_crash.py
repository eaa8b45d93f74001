"""The DuckDB archive backend killed (-9) in the middle of writes, in a spawned writer
process: the file stays consistent and a replay completes it exactly."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
from pathlib import Path

import pytest
from rtoc.frontends.archive.backend import ArchiveBatch, Gap, SignalKey
from rtoc.frontends.archive.duck import DuckBackend

from rtoc.errors import ArchiveUnavailable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from duck_checks import check_consistent, chunk, count  # noqa: E402
from waiting import wait_until  # noqa: E402

# -- kill -9 in the middle of writes -----------------------------------------------------------
CRASH_SIGNALS = 3


def _crash_size(n: int) -> int:
    """Samples per chunk of batch ``n``: every 8th is above a row group (122,880 rows), so
    DuckDB writes it to the file directly instead of the WAL."""
    return 130_000 if n % 8 == 7 else 5_000


def _crash_batch(n: int) -> ArchiveBatch:
    size = _crash_size(n)
    first = 5_000 * n + 125_000 * (n // 8)
    chunks = [chunk(SignalKey(f"Crash.S{s}", 1 + s % 2), first, size, dt=1e-3, seed=s)
              for s in range(CRASH_SIGNALS)]
    gaps = [Gap(SignalKey("Crash.Lost", 1), 10 * n, 5, math.nan, float(n))] if n % 3 == 0 else []
    return ArchiveBatch(n, chunks, [{"time": float(n), "text": f"batch {n}", "value": n}], gaps)


def _crash_writer(path: str, done, started) -> None:
    """Spawned child: write batches 0, 1, 2 ... until killed; ``done`` counts commits."""
    backend = DuckBackend(Path(path))
    backend.connect()
    n = 0
    while True:
        backend.write(_crash_batch(n))
        n += 1
        done.value = n
        started.set()


def test_kill_9_in_the_middle_of_writes_leaves_a_consistent_file(tmp_path: Path):
    path = tmp_path / "crash.duckdb"
    ctx = mp.get_context("spawn")
    done = ctx.RawValue("q", 0)  # no lock: the child dies at any point
    started = ctx.Event()
    proc = ctx.Process(target=_crash_writer, args=(str(path), done, started), daemon=True)
    proc.start()
    try:
        assert started.wait(60), "the writer did not start"
        with pytest.raises(ArchiveUnavailable, match="lock"):  # DuckDB allows one writer
            DuckBackend(path).connect()
        # killed once batch 7 (the first written to the file, not the WAL) is committed
        wait_until(lambda: done.value >= 8, 60, "the writer committing 8 batches")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
    committed = done.value
    assert committed >= 2

    b = DuckBackend(path)
    b.connect()
    try:
        check_consistent(b)
        in_db = count(b, "events")  # one event per batch
        assert committed <= in_db <= committed + 1
        replay = range(committed + 2)  # everything again, and one or two batches more
        written = sum(b.write(_crash_batch(n)) for n in replay)
        total = sum(CRASH_SIGNALS * _crash_size(n) for n in replay)
        assert written == total - sum(CRASH_SIGNALS * _crash_size(n) for n in range(in_db))
        assert count(b, "samples") == total
        assert count(b, "events") == len(replay)
        assert count(b, "gaps") == len([n for n in replay if n % 3 == 0])
        check_consistent(b)
        ends = b.resume_points()
        assert ends[("Crash.S0", 1)] == 5_000 * len(replay) + 125_000 * (len(replay) // 8)
    finally:
        b.close()
