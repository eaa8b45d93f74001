"""Unit tests of the pure part of rtoc.pipeline.bus: GapCounter's loss accounting."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from rtoc.pipeline.bus import DataBatch, GapCounter


def test_contiguous_batches_have_no_gap() -> None:
    g = GapCounter()
    assert g.feed("A", 0, 10, 0) == 0
    assert g.feed("A", 10, 5, 0) == 0
    assert g.feed("A", 15, 1, 0) == 0
    c = g.signals["A"]
    assert (c.next_seq, c.received, c.lost, c.gap) == (16, 16, 0, 0)
    assert g.received == 16 and g.lost == 0


def test_the_first_batch_may_start_anywhere() -> None:
    g = GapCounter()
    assert g.feed("A", 1000, 10, 0) == 0
    assert g.signals["A"].next_seq == 1010


def test_a_seq_jump_counts_the_gap_minus_what_the_header_says_was_lost() -> None:
    g = GapCounter()
    g.feed("A", 0, 10, 0)
    assert g.feed("A", 25, 5, 0) == 15       # 10 .. 25 never arrived
    assert g.feed("A", 40, 5, 6) == 4        # 30 .. 40: 6 lost in the ring, 4 on the bus
    assert g.feed("A", 50, 5, 5) == 0        # 45 .. 50: all lost in the ring
    c = g.signals["A"]
    assert (c.received, c.lost, c.gap, c.next_seq) == (25, 11, 19, 55)
    assert g.lost == 30


def test_header_loss_larger_than_the_jump_is_no_negative_gap() -> None:
    g = GapCounter()
    g.feed("A", 0, 10, 0)
    assert g.feed("A", 12, 1, 5) == 0
    assert g.signals["A"].gap == 0 and g.signals["A"].lost == 5


def test_a_batch_behind_the_stream_is_no_gap() -> None:
    g = GapCounter()
    g.feed("A", 0, 100, 0)
    assert g.feed("A", 50, 10, 0) == 0  # a repeat from behind the stream
    assert g.signals["A"].next_seq == 100  # no rewind ...
    assert g.feed("A", 100, 5, 0) == 0  # ... so the next batch is no phantom gap
    assert g.signals["A"].gap == 0


def test_signals_are_counted_separately() -> None:
    g = GapCounter()
    g.feed("A", 0, 10, 0)
    g.feed("B", 0, 3, 0)
    assert g.feed("B", 5, 1, 0) == 2
    assert g.feed("A", 10, 1, 0) == 0
    assert (g.signals["A"].gap, g.signals["B"].gap) == (0, 2)
    assert g.received == 15 and g.lost == 2


def test_expect_from_a_heartbeat_counts_a_trailing_gap() -> None:
    g = GapCounter()
    g.feed("A", 0, 10, 0)
    g.expect("A", 30)  # the engine published up to 30; we saw up to 10
    assert g.signals["A"].gap == 20
    assert g.feed("A", 30, 5, 0) == 0  # and is not counted twice
    assert g.signals["A"].gap == 20 and g.lost == 20


def test_expect_at_or_behind_the_stream_changes_nothing() -> None:
    g = GapCounter()
    g.feed("A", 0, 10, 0)
    g.expect("A", 10)
    g.expect("A", 4)
    c = g.signals["A"]
    assert (c.gap, c.next_seq) == (0, 10)


def test_expect_before_any_data_sets_the_start() -> None:
    g = GapCounter()
    g.expect("A", 100)
    assert g.signals["A"].gap == 0
    assert g.feed("A", 100, 5, 0) == 0
    assert g.feed("A", 110, 5, 0) == 5


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 30), st.booleans()),
                min_size=1, max_size=40))
def test_every_sample_is_received_lost_in_the_ring_or_a_gap(
        msgs: list[tuple[int, int, bool]]) -> None:
    """The engine publishes messages of ``n`` samples, each after ``ring_lost`` samples lost
    in the ring (reported in its header); the bus delivers some of them; a heartbeat ends."""
    g = GapCounter()
    seq = 0
    first: tuple[int, int] | None = None
    for n, ring_lost, delivered in msgs:
        seq += ring_lost
        if delivered:
            if first is None:
                first = (seq, ring_lost)
            g.feed("A", seq, n, ring_lost)
        seq += n
    g.expect("A", seq)
    c = g.signals["A"]
    assert c.next_seq == seq
    if first is None:
        assert (c.received, c.gap, c.lost) == (0, 0, 0)
        return
    start, lost_before = first
    assert c.received == sum(n for n, _, d in msgs if d)
    # from the first delivered sample on, every sample is accounted for exactly once
    assert c.received + c.gap + (c.lost - lost_before) == seq - start


def test_data_batch_n() -> None:
    b = DataBatch("A", 1, 0, np.zeros(3), np.zeros(3))
    assert b.n == 3 and b.gap == 0 and b.replace is False


def test_what_a_restarted_engine_skipped_is_counted_as_restart_not_gap() -> None:
    from rtoc.pipeline.bus import GapCounter

    g = GapCounter()
    assert g.feed("D.S", 0, 10, 0) == 0
    # the engine restarted and went on at seq 50; then 5 more were dropped on the bus
    assert g.feed("D.S", 55, 10, 0, resumed=50) == 5
    c = g.signals["D.S"]
    assert (c.restart, c.gap, c.next_seq) == (40, 5, 65)
    g.expect("D.S", 80, resumed=50)         # a heartbeat: nothing more was skipped by it
    assert (c.restart, c.gap) == (40, 20)
    h = GapCounter()
    h.feed("D.S", 0, 10, 0)
    h.expect("D.S", 70, resumed=60)         # the heartbeat came first
    assert (h.signals["D.S"].restart, h.signals["D.S"].gap) == (50, 10)
