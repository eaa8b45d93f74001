"""A plotted signal is archived as snapshots, not samples (RTOC's ``plot()``: a scope at
10 Hz with 10,000 points wrote 100,000 samples/s into the archive before): at most one per
``snapshot_interval``, the latest; the replaced ones are counted, never asked for again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rtoc.frontends.archive.backend import ArchiveBatch, SignalKey, Snapshot
from rtoc.frontends.archive.batcher import Batcher
from rtoc.frontends.archive.duck import DuckBackend
from rtoc.frontends.archive.spool import decode, encode

KEY = SignalKey("Scope.Trace", 7, "V")


def scope(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(n, dtype=np.float64)
    return x, np.sin(x / 100.0 + k)


def test_ten_plots_a_second_keep_one_snapshot_per_interval_the_latest() -> None:
    wall = iter(range(1_000, 2_000))
    b = Batcher(flush_interval=0.5, snapshot_interval=1.0, wall=lambda: float(next(wall)))
    b.signal(1, "Scope.Trace", 7, "V", content="snapshot")
    seq, kept = 0, []
    for k in range(30):  # 3 s of a 10 Hz scope with 1000 points
        now = k * 0.1
        b.data(1, seq, *scope(1000, k), lost=0, now=now, replace=k > 0)
        seq += 1000
        if b.due(now):
            kept += b.take().snapshots
    b.due(10.0)
    kept += b.take().snapshots
    assert b.stats["samples"] == 0 and not b.stats["lost"] and not b.stats["gaps"]
    assert 3 <= len(kept) <= 5  # one per second, and the last one
    last = kept[-1]
    assert last.first_seq == 29_000 and np.array_equal(last.y, scope(1000, 29)[1])
    assert b.stats["snapshots"] == len(kept) and b.stats["snapshots_skipped"] == 30 - len(kept)
    assert b.start_at(1) == 30_000  # every point taken: nothing to backfill


def test_a_streamed_signal_that_is_plotted_later_and_grows_with_hold_on() -> None:
    b = Batcher(flush_interval=1.0, snapshot_interval=0.0)
    b.signal(1, "Scope.Trace", 7, "V")
    b.data(1, 0, *scope(10, 0), lost=0, now=0.0)  # streamed: samples
    b.data(1, 10, *scope(5, 1), lost=0, now=0.1, replace=True)  # plot(): a snapshot from here
    first = b.take()
    assert first.samples == 10 and [s.n for s in first.snapshots] == [5]
    b.data(1, 15, *scope(3, 2), lost=0, now=0.2)  # plot(hold="on"): the snapshot grows
    grown = b.take().snapshots
    assert [(s.first_seq, s.n) for s in grown] == [(10, 8)]
    b.data(1, 20, *scope(4, 3), lost=2, now=0.3)  # points lost for good: not kept
    assert not b.take().snapshots and b.stats["snapshots_incomplete"] == 1 and b.stats["lost"] == 0


def test_a_plot_found_in_a_backfill_starts_its_snapshot_where_the_ring_says() -> None:
    b = Batcher(flush_interval=1.0, snapshot_interval=0.0)
    b.signal(1, "Scope.Trace", 7, "V", content="snapshot")
    b.data(1, 0, *scope(10, 0), lost=0, now=0.0)
    req = b.data(1, 30, *scope(5, 9), lost=0, now=0.1)  # 10..29 dropped on the bus
    assert (req.first_seq, req.count) == (10, 20)
    b.backfilled(1, 10, *scope(20, 5), now=0.2, snapshot=20)  # the ring: a plot at 20
    snaps = b.take().snapshots
    assert [(s.first_seq, s.n) for s in snaps] == [(20, 15)]  # 20..29 and the held 30..34
    assert b.stats["snapshots_skipped"] == 1


def test_snapshots_are_written_once_read_back_spooled_and_counted_for_resume(tmp_path: Path) -> None:
    db = DuckBackend(tmp_path / "a.duckdb")
    db.connect()
    try:
        t, y = scope(1000, 0)
        batch = ArchiveBatch(1, snapshots=[Snapshot(KEY, 0, 100.0, t, y), Snapshot(KEY, 1000, 101.0, t, y + 1)])
        again = decode(encode(batch))  # through the spool
        assert [(s.first_seq, s.time) for s in again.snapshots] == [(0, 100.0), (1000, 101.0)]
        assert db.write(again) == 0 and db.write(again) == 0  # no samples; replay writes nothing twice
        got = db.snapshots("Scope.Trace", 0.0, 200.0, limit=10)
        assert [g["time"] for g in got] == [101.0, 100.0] and np.array_equal(got[0]["y"], y + 1)
        assert db.resume_points() == {("Scope.Trace", 7): 2000}
        assert db.query("SELECT count(*) FROM snapshots")[1] == [[2]]
        db.delete_before(100.5)
        assert [g["time"] for g in db.snapshots("Scope.Trace", 0.0, 200.0, limit=10)] == [101.0]
    finally:
        db.close()
