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


def test_review_the_last_plot_goes_at_a_clean_stop_and_a_plot_larger_than_its_ring_is_kept_cut() -> None:
    """Review: a snapshot waiting for its interval was left out of the final batch; a plot
    larger than its ring (the engine reports its head lost) charged the previous snapshot
    as incomplete and archived the new one as if whole."""
    b = Batcher(flush_interval=1.0, snapshot_interval=10.0)
    b.signal(1, "Scope.Trace", 7, "V", content="snapshot", capacity=1024)
    b.data(1, 0, *scope(100, 0), lost=0, now=0.0)
    assert [s.n for s in b.take().snapshots] == [100]
    b.data(1, 2076, *scope(1024, 1), lost=1976, now=1.0, replace=True)  # 3000 points into 1024
    assert not b.take().snapshots  # waits for its interval ...
    final = b.take(final=True).snapshots  # ... unless the archiver stops
    assert [(s.first_seq, s.n) for s in final] == [(2076, 1024)]
    assert b.stats["snapshots_incomplete"] == 0 and b.stats["snapshots_cut"] == 1 and b.stats["lost"] == 0


def test_review_a_curve_grown_for_ever_with_hold_on_stays_bounded_in_memory_and_in_writes() -> None:
    """Review: 6 h of plot(hold="on") at 10 points/s held the whole curve and wrote it
    again every interval: 2160 rows, 233 M points."""
    b = Batcher(flush_interval=1.0, snapshot_interval=10.0)
    b.signal(1, "Scope.Trace", 7, "V", content="snapshot", capacity=65_536)
    b.data(1, 0, *scope(100, 0), lost=0, now=0.0, replace=True)
    rows, points, seq = 0, 0, 100
    for second in range(1, 6 * 3600):
        b.data(1, seq, *scope(10, second), lost=0, now=float(second))
        seq += 10
        if b.due(float(second)):
            got = b.take().snapshots
            rows += len(got)
            points += sum(s.n for s in got)
    tr = b.tracks[1]
    assert tr.snap.n == 65_536 and tr.snap.first_seq == seq - 65_536  # the newest ring-full
    assert rows <= 16 and points <= 16 * 65_536, (rows, points)


def test_a_snapshots_answer_is_bounded_in_bytes_but_holds_at_least_one() -> None:
    """Review: 100 rows of up to 64 MiB each could go into one reply."""
    from rtoc.frontends.archive.backend import snapshot_rows

    row = lambda k: (float(k), k * 1000, 1000, bytes(8000), bytes(8000))  # noqa: E731
    taken = []

    def rows():
        for k in range(100):
            taken.append(k)
            yield row(k)
    assert len(snapshot_rows(rows(), max_bytes=40_000)) == 2 and len(taken) == 3  # stops reading
    assert len(snapshot_rows([row(1)], max_bytes=10)) == 1


def test_samples_flush_at_their_interval_while_a_snapshot_waits_for_its_own() -> None:
    """A snapshot waiting for its interval held every other signal's samples back until
    then (10 s, or hours once a growing curve backs off): longer than a ring keeps them,
    so a killed archiver would have lost them. And an empty plot crashed the take."""
    b = Batcher(flush_interval=1.0, snapshot_interval=10.0)
    b.signal(1, "Scope.Trace", 7, "V", content="snapshot")
    b.signal(2, "G.S", 7, "V")
    b.data(1, 0, *scope(100, 0), lost=0, now=0.0)
    assert b.due(0.0) and [s.n for s in b.take().snapshots] == [100]
    b.data(1, 100, *scope(100, 1), lost=0, now=0.5, replace=True)  # due at 10 s
    b.data(2, 0, np.arange(5.0), np.ones(5), lost=0, now=0.6)
    assert not b.due(1.5) and b.due(1.6)
    batch = b.take()
    assert batch.samples == 5 and not batch.snapshots and b.next_deadline() == 10.0
    assert not b.due(9.9) and b.due(10.0) and [s.n for s in b.take().snapshots] == [100]
    b.data(1, 200, np.empty(0), np.empty(0), lost=0, now=11.0, replace=True)  # plot([]): cleared
    assert b.due(30.0) and [(s.first_seq, s.n) for s in b.take().snapshots] == [(200, 0)]
