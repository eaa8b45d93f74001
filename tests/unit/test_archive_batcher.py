"""The archiver's pure core: chunks, gaps, backfill requests, trimming, flush timing."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rtoc.frontends.archive.backend import SignalKey
from rtoc.frontends.archive.batcher import Backfill, Batcher

KEY = SignalKey("G.S", 7, "V")


def arr(seq0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.arange(seq0, seq0 + n, dtype=np.float64)
    return s / 10.0, s  # t = seq / 10, y = seq


def batcher(**kw) -> Batcher:
    b = Batcher(**kw)
    b.signal(1, "G.S", 7, "V")
    return b


def samples(batch) -> dict:
    out: dict = {}
    for c in batch.chunks:
        out.setdefault(c.key.name, []).extend(zip(range(c.first_seq, c.first_seq + c.n), c.y.tolist(),
                                                  strict=True))
    return out


def test_consecutive_batches_make_one_chunk_and_flush_after_the_interval() -> None:
    b = batcher(flush_interval=1.0)
    for seq in (0, 5, 10):
        assert b.data(1, seq, *arr(seq, 5), lost=0, now=0.5) is None
    assert not b.due(1.49) and b.due(1.5)
    batch = b.take()
    assert [(c.key, c.first_seq, c.n) for c in batch.chunks] == [(KEY, 0, 15)]
    assert batch.number == 1 and b.take().number == 2 and not b.due(100.0)


def test_size_triggers_a_flush() -> None:
    b = batcher(flush_interval=60.0, max_samples=10)
    b.data(1, 0, *arr(0, 9), lost=0, now=0.0)
    assert not b.due(0.0)
    b.data(1, 9, *arr(9, 1), lost=0, now=0.0)
    assert b.due(0.0)


def test_a_bus_gap_asks_for_a_backfill_and_holds_later_batches_until_it_comes() -> None:
    b = batcher()
    b.data(1, 0, *arr(0, 5), lost=0, now=0.0)
    req = b.data(1, 10, *arr(10, 5), lost=0, now=0.0)
    assert req == Backfill(1, 5, 5)
    assert b.data(1, 15, *arr(15, 5), lost=0, now=0.0) is None  # held
    assert b.backfilled(1, 5, *arr(5, 5), now=0.0) == []
    batch = b.take()
    assert [c.first_seq for c in batch.chunks] == [0] and batch.chunks[0].n == 20
    assert batch.gaps == [] and b.stats["backfilled"] == 5


def test_what_the_ring_no_longer_holds_is_a_gap_row() -> None:
    b = batcher()
    b.data(1, 0, *arr(0, 5), lost=0, now=0.0)
    assert b.data(1, 20, *arr(20, 5), lost=0, now=0.0) == Backfill(1, 5, 15)
    b.backfilled(1, 12, *arr(12, 8), now=0.0)   # the ring still had 12..19
    batch = b.take()
    assert [(g.first_seq, g.count) for g in batch.gaps] == [(5, 7)]
    assert batch.gaps[0].t_from == 0.4 and batch.gaps[0].t_to == 1.2
    assert [(c.first_seq, c.n) for c in batch.chunks] == [(0, 5), (12, 13)]
    assert b.stats["lost"] == 7


def test_samples_the_engine_reported_lost_are_a_gap_without_asking_the_ring() -> None:
    b = batcher()
    b.data(1, 0, *arr(0, 5), lost=0, now=0.0)
    assert b.data(1, 9, *arr(9, 1), lost=4, now=0.0) is None
    assert [(g.first_seq, g.count) for g in b.take().gaps] == [(5, 4)]


def test_overlaps_are_trimmed_and_resume_points_are_respected() -> None:
    b = Batcher(resume={("G.S", 7): 100})
    b.signal(1, "G.S", 7)
    assert b.start_at(1) == 100
    b.data(1, 95, *arr(95, 10), lost=0, now=0.0)
    b.data(1, 100, *arr(100, 3), lost=0, now=0.0)  # a repeat
    batch = b.take()
    assert [(c.first_seq, c.n) for c in batch.chunks] == [(100, 5)]
    assert b.stats["trimmed"] == 8


def test_a_new_epoch_is_a_new_ring() -> None:
    b = Batcher(resume={("G.S", 7): 100})
    b.signal(1, "G.S", 8)  # the instance restarted: a new ring, from its start
    b.data(1, 0, *arr(0, 2), lost=0, now=0.0)
    assert [(c.key.epoch, c.first_seq) for c in b.take().chunks] == [(8, 0)]


def test_heartbeat_reveals_a_gap_at_the_end_of_a_stream() -> None:
    b = batcher()
    b.data(1, 0, *arr(0, 5), lost=0, now=0.0)
    assert b.expect(1, 5, now=0.0) is None
    assert b.expect(1, 8, now=0.0) == Backfill(1, 5, 3)
    b.backfilled(1, 5, *arr(5, 3), now=0.0)
    assert b.take().chunks[0].n == 8


def test_events_flush_too_and_unknown_signals_are_ignored() -> None:
    b = batcher()
    assert b.data(99, 0, *arr(0, 3), lost=0, now=0.0) is None
    b.event({"time": 1.0, "text": "x"}, now=2.0)
    assert b.due(3.0)
    batch = b.take()
    assert batch.events == [{"time": 1.0, "text": "x"}] and not batch.chunks


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 20), st.sampled_from(["deliver", "drop", "repeat"])),
                min_size=1, max_size=30),
       st.integers(0, 40))
def test_every_sample_once_in_order_whatever_the_bus_does(steps, ring_keeps) -> None:
    """Batches delivered, dropped (then backfilled from a ring holding the newest
    ``ring_keeps`` of them) or repeated: every sample is archived once or counted lost."""
    b = batcher()
    assert b.expect(1, 0, 0.0) is None  # following from the ring's start
    seq, written = 0, 0
    for n, what in steps:
        if what == "drop":
            seq += n
            continue
        start = max(0, seq - n) if what == "repeat" else seq
        req = b.data(1, start, *arr(start, n), lost=0, now=0.0)
        while req is not None:
            first = max(req.first_seq, seq - ring_keeps)
            first = min(first, req.first_seq + req.count)
            got = arr(first, req.first_seq + req.count - first)
            more = b.backfilled(1, first, *got, now=0.0)
            req = more[0] if more else None
        seq = max(seq, start + n)
        written = seq
    batch = b.take()
    got = samples(batch).get("G.S", [])
    seqs = [s for s, _ in got]
    assert seqs == sorted(set(seqs))                     # once each, in order
    assert all(s == y for s, y in got)                   # the right values
    lost = sum(g.count for g in batch.gaps)
    assert len(seqs) + lost == written
    assert all(not math.isnan(g.t_to) for g in batch.gaps)


def test_a_new_signal_is_archived_from_its_first_sample_not_the_first_seen() -> None:
    b = Batcher()
    b.signal(1, "D.S", 7)
    req = b.data(1, 5, np.arange(5.0, 8.0), np.zeros(3), 0, 0.0)  # seq 0..4 dropped on the bus
    assert (req.sig, req.first_seq, req.count) == (1, 0, 5)
    b.backfilled(1, 0, np.arange(5.0), np.ones(5), 0.0)
    (chunk,) = b.take().chunks
    assert (chunk.first_seq, chunk.n) == (0, 8) and b.stats["lost"] == 0
