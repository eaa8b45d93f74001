"""Unit tests of the ring arithmetic through the real Ring/RingWriter/RingReader (a real
tmpfs full to the brim is in tests/integration/test_ring_tmpfs.py)."""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtoc.pipeline import ring as ring_mod
from rtoc.pipeline import ring_kernels as k
from rtoc.pipeline.ring import (
    MAX_CAPACITY,
    MIN_CAPACITY,
    Ring,
    RingReader,
    RingWriter,
    capacity_for,
    file_size,
)

from rtoc.errors import RingFormatError, SampleError, ShmFull

_HERE = str(Path(__file__).resolve().parent)  # the model sits next to this file
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from ring_model import RingModel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ring_checks import FakeStatvfs, assert_seq_batch, new_path, seqs, write_seq  # noqa: E402

CAP = MIN_CAPACITY  # 1024
SHM = "/dev/shm"


@pytest.fixture
def ring(shm_dir: Path) -> Iterator[Ring]:
    """A fresh ring of the minimum capacity; closed and unlinked afterwards."""
    path = new_path(shm_dir)
    r = Ring.create(path, CAP, signal_id=7)
    try:
        yield r
    finally:
        r.close()
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- basics


def test_create_header_and_empty_read(ring: Ring) -> None:
    assert ring.capacity == CAP
    assert ring.signal_id == 7
    assert ring.committed == 0
    assert ring.path.stat().st_size == file_size(CAP)
    r = RingReader(ring, cursor=0)
    assert_seq_batch(r.read(), 0, 0, 0)
    assert r.pending() == 0


def test_default_cursor_starts_at_committed(ring: Ring) -> None:
    w = RingWriter(ring)
    write_seq(w, 100)
    r = RingReader(ring)
    assert r.cursor == 100
    assert_seq_batch(r.read(), 100, 0, 0)
    write_seq(w, 5)
    assert r.pending() == 5
    assert_seq_batch(r.read(), 100, 5, 0)


def test_write_returns_seq_and_slot_layout(ring: Ring) -> None:
    w = RingWriter(ring)
    assert w.seq == 0
    assert write_seq(w, 10) == 10
    assert write_seq(w, 0) == 10  # empty batch
    assert w.seq == ring.committed == 10
    np.testing.assert_array_equal(ring.t[:10], seqs(0, 10))
    assert int(ring.hdr[k.RESERVED]) == 10


def test_wrap_around(ring: Ring) -> None:
    w = RingWriter(ring)
    r = RingReader(ring, cursor=0)
    write_seq(w, 700)
    assert_seq_batch(r.read(), 0, 700, 0)
    write_seq(w, 700)  # slots 700..1023 then 0..375
    assert_seq_batch(r.read(), 700, 700, 0)
    # sample s sits in slot s % capacity
    np.testing.assert_array_equal(ring.t[:376], seqs(1024, 376))
    np.testing.assert_array_equal(ring.t[376:700], seqs(376, 324))
    np.testing.assert_array_equal(ring.t[700:], seqs(700, 324))
    # many laps, read each time
    for _ in range(20):
        start = w.seq
        write_seq(w, 333)
        assert_seq_batch(r.read(), start, 333, 0)
    assert r.lost == 0


def test_exact_fill(ring: Ring) -> None:
    w = RingWriter(ring)
    assert write_seq(w, CAP) == CAP
    np.testing.assert_array_equal(ring.t, seqs(0, CAP))
    assert_seq_batch(RingReader(ring, cursor=0).read(), 0, CAP, 0)
    write_seq(w, CAP)  # a second exact lap
    assert_seq_batch(RingReader(ring, cursor=0).read(), CAP, CAP, CAP)
    assert_seq_batch(RingReader(ring, cursor=CAP).read(), CAP, CAP, 0)
    write_seq(w, 1)
    assert_seq_batch(RingReader(ring, cursor=CAP).read(), CAP + 1, CAP, 1)


@pytest.mark.parametrize("before", [0, 1, 100, CAP - 1, CAP])
@pytest.mark.parametrize("n", [CAP + 1, 2 * CAP, 3000, 10 * CAP + 17])
def test_batch_larger_than_capacity(ring: Ring, before: int, n: int) -> None:
    w = RingWriter(ring)
    write_seq(w, before)
    behind = RingReader(ring, cursor=0)
    current = RingReader(ring)  # at `before`
    assert write_seq(w, n) == before + n  # the sequence advances by all n
    end = before + n
    assert ring.committed == end
    assert int(ring.hdr[k.RESERVED]) == end
    # only the newest `capacity` samples are kept, in their slots
    assert sorted(ring.t.tolist()) == seqs(end - CAP, CAP).tolist()
    assert_seq_batch(behind.read(), end - CAP, CAP, end - CAP)
    assert behind.lost == end - CAP
    assert_seq_batch(current.read(), end - CAP, CAP, n - CAP)
    assert current.lost == n - CAP


def test_lost_counting_when_reader_falls_behind(ring: Ring) -> None:
    w = RingWriter(ring)
    r = RingReader(ring, cursor=0)
    write_seq(w, 500)
    assert_seq_batch(r.read(), 0, 500, 0)
    for n in (400, 300, 600, 250):  # 1550 written since the last read
        write_seq(w, n)
    assert r.pending() == 1550
    assert_seq_batch(r.read(), 2050 - CAP, CAP, 2050 - CAP - 500)
    assert r.lost == 2050 - CAP - 500
    # caught up again: nothing lost from here on
    write_seq(w, 10)
    assert_seq_batch(r.read(), 2050, 10, 0)
    assert r.lost == 2050 - CAP - 500
    # exactly one lap behind is not a loss, one more sample is
    write_seq(w, CAP)
    assert_seq_batch(r.read(), 2060, CAP, 0)
    write_seq(w, CAP + 3)
    assert_seq_batch(r.read(), 2060 + CAP + 3, CAP, 3)


def test_max_batch_limited_reads_continue(ring: Ring) -> None:
    w = RingWriter(ring)
    r = RingReader(ring, cursor=0, max_batch=100)
    write_seq(w, 1000)
    for i in range(10):
        assert_seq_batch(r.read(), 100 * i, 100, 0)
    assert_seq_batch(r.read(), 1000, 0, 0)
    write_seq(w, 50)
    assert_seq_batch(r.read(), 1000, 50, 0)
    # fall behind while reading in small steps: the loss is counted once, then continue
    write_seq(w, 1500)  # committed 2550, oldest held 1526
    assert_seq_batch(r.read(), 2550 - CAP, 100, 2550 - CAP - 1050)
    assert_seq_batch(r.read(), 2550 - CAP + 100, 100, 0)
    # the writer laps the reader again mid-way
    write_seq(w, 2000)  # committed 4550, oldest 3526; cursor at 1726
    assert_seq_batch(r.read(), 4550 - CAP, 100, 4550 - CAP - 1726)
    got = 0
    while True:
        res = r.read()
        assert res.lost == 0
        if not len(res.t):
            break
        got += len(res.t)
    assert r.cursor == 4550
    assert got == CAP - 100
    assert r.lost == (2550 - CAP - 1050) + (4550 - CAP - 1726)


def test_reads_are_copies(ring: Ring) -> None:
    w = RingWriter(ring)
    r = RingReader(ring, cursor=0)
    write_seq(w, 10)
    res = r.read()
    write_seq(w, 2 * CAP)  # overwrite every slot
    np.testing.assert_array_equal(res.t, seqs(0, 10))


def test_two_mappings_share_data(ring: Ring) -> None:
    other = Ring.open(ring.path)
    try:
        assert other.capacity == CAP and other.signal_id == 7
        w = RingWriter(ring)
        r = RingReader(other, cursor=0)
        write_seq(w, 1500)
        assert other.committed == 1500
        assert_seq_batch(r.read(), 1500 - CAP, CAP, 1500 - CAP)
        # a writer continues from what the file holds
        assert RingWriter(other).seq == 1500
    finally:
        other.close()


# --------------------------------------------------------------------------- plot/snapshot


def test_snapshot_before_any_plot_is_whole_content(ring: Ring) -> None:
    w = RingWriter(ring)
    r = RingReader(ring)
    assert_seq_batch(r.snapshot(), 0, 0, 0)
    write_seq(w, 300)
    snap = r.snapshot()
    assert_seq_batch(snap, 0, 300, 0)
    assert snap.snapshot == 0
    write_seq(w, 2000)
    assert_seq_batch(r.snapshot(), 2300 - CAP, CAP, 0)


def test_plot_snapshot(ring: Ring) -> None:
    w = RingWriter(ring)
    stream = RingReader(ring, cursor=0)
    write_seq(w, 300)
    t = seqs(300, 200)
    assert w.plot(t, -t) == 500
    assert int(ring.hdr[k.SNAPSHOT]) == 300
    assert int(ring.hdr[k.SEQLOCK]) == 2  # even: stable, one replace done
    viewer = RingReader(ring)
    snap = viewer.snapshot()
    assert_seq_batch(snap, 300, 200, 0)  # only the plot, not the older 300
    assert snap.snapshot == 300
    # a streaming reader sees everything, the plot batch included
    res = stream.read()
    assert_seq_batch(res, 0, 500, 0)
    assert res.snapshot == 300
    # writes after a plot extend the snapshot
    write_seq(w, 50)
    assert_seq_batch(viewer.snapshot(), 300, 250, 0)
    # a second plot replaces it
    t = seqs(550, 10)
    w.plot(t, -t)
    assert_seq_batch(viewer.snapshot(), 550, 10, 0)
    assert int(ring.hdr[k.SEQLOCK]) == 4
    # the snapshot is bounded by the capacity when writes follow
    write_seq(w, 2000)
    assert_seq_batch(viewer.snapshot(), 2560 - CAP, CAP, 0)
    assert_seq_batch(stream.read(), 2560 - CAP, CAP, 2560 - CAP - 500)


def test_plot_larger_than_capacity(ring: Ring) -> None:
    w = RingWriter(ring)
    write_seq(w, 100)
    t = seqs(100, 3000)
    assert w.plot(t, -t) == 3100
    assert int(ring.hdr[k.SNAPSHOT]) == 3100 - CAP
    assert_seq_batch(RingReader(ring).snapshot(), 3100 - CAP, CAP, 0)


def test_empty_plot_clears_snapshot(ring: Ring) -> None:
    w = RingWriter(ring)
    write_seq(w, 100)
    assert w.plot([], []) == 100
    assert_seq_batch(RingReader(ring).snapshot(), 100, 0, 0)
    write_seq(w, 3)
    assert_seq_batch(RingReader(ring).snapshot(), 100, 3, 0)


# --------------------------------------------------------------------------- latest


def test_latest(ring: Ring) -> None:
    w = RingWriter(ring)
    r = RingReader(ring)
    assert r.latest() is None
    w.write([1.5], [2.5])
    assert r.latest() == (0, 1.5, 2.5)
    write_seq(w, 3 * CAP + 5)
    assert r.latest() == (3 * CAP + 5, float(3 * CAP + 5), -float(3 * CAP + 5))
    assert r.cursor == 0  # latest() does not move the cursor


# --------------------------------------------------------------------------- errors


def test_open_non_ring_file_raises(shm_dir: Path) -> None:
    path = new_path(shm_dir)
    try:
        path.write_bytes(os.urandom(file_size(CAP)))
        with pytest.raises(RingFormatError, match="bad magic"):
            Ring.open(path)
        path.write_bytes(b"short")
        with pytest.raises(RingFormatError, match="too short"):
            Ring.open(path)
        path.write_bytes(b"")
        with pytest.raises(RingFormatError):
            Ring.open(path)
        path.write_bytes(b"\0" * file_size(CAP))
        with pytest.raises(RingFormatError, match="bad magic"):
            Ring.open(path)
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("word, value, match", [
    (k.VERSION, 2, "version"),
    (k.CAPACITY, 2 * CAP, "capacity"),
    (k.CAPACITY, CAP - 1, "capacity"),
    (k.CAPACITY, 0, "capacity"),
])
def test_open_corrupt_header_raises(shm_dir: Path, word: int, value: int, match: str) -> None:
    path = new_path(shm_dir)
    try:
        Ring.create(path, CAP, 1).close()
        hdr = np.fromfile(path, dtype="<u8", count=k.HEADER_WORDS)
        hdr[word] = value
        with open(path, "r+b") as f:
            f.write(hdr.tobytes())
        with pytest.raises(RingFormatError, match=match):
            Ring.open(path)
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("capacity", [0, 1, 2, MIN_CAPACITY // 2, MIN_CAPACITY + 1, 1000, 3000,
                                      MAX_CAPACITY * 2, -1024])
def test_bad_capacity_raises(shm_dir: Path, capacity: int) -> None:
    path = new_path(shm_dir)
    with pytest.raises(ValueError, match="power of two"):
        Ring.create(path, capacity, 1)
    assert not path.exists()


def test_create_refuses_existing_file(ring: Ring) -> None:
    with pytest.raises(FileExistsError):
        Ring.create(ring.path, CAP, 1)


@pytest.mark.parametrize("t, y", [
    ([1.0, 2.0, 3.0], [1.0, 2.0]),
    ([], [1.0]),
    (np.zeros(5), np.zeros(4)),
    (["a", "b"], [1.0, 2.0]),
    ([1.0, 2.0], ["x", "y"]),
    ([object()], [1.0]),
    ([1.0], [{"a": 1}]),
    ([[1.0, 2.0], [3.0]], [1.0, 2.0, 3.0]),  # ragged
])
def test_bad_samples_raise(ring: Ring, t: object, y: object) -> None:
    w = RingWriter(ring)
    write_seq(w, 3)
    with pytest.raises(SampleError):
        w.write(t, y)
    with pytest.raises(SampleError):
        w.plot(t, y)
    assert ring.committed == 3  # nothing written
    assert int(ring.hdr[k.RESERVED]) == 3
    assert int(ring.hdr[k.SEQLOCK]) == 0


# --------------------------------------------------------------------------- capacity_for


@pytest.mark.parametrize("rate, expected", [
    (0.0, 1 << 16),
    (1.0, 1 << 16),
    (1000.0, 1 << 16),
    (16384.0, 1 << 16),  # exactly 4 s of 2**16
    (16384.25, 1 << 17),
    (20000.0, 1 << 17),
    (1e6, 1 << 22),
    (1e9, 1 << 22),
])
def test_capacity_for_defaults(rate: float, expected: int) -> None:
    assert capacity_for(rate) == expected


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@settings(max_examples=60, deadline=None, database=None)
@given(
    rate=st.floats(min_value=0.0, max_value=1e12, allow_nan=False),
    seconds=st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
    lo=st.integers(10, 20),
    span=st.integers(0, 6),
)
def test_capacity_for_powers_of_two_within_bounds(rate: float, seconds: float, lo: int,
                                                  span: int) -> None:
    minimum, maximum = 1 << lo, 1 << (lo + span)
    cap = capacity_for(rate, seconds, minimum, maximum)
    assert _is_pow2(cap)
    assert minimum <= cap <= maximum
    assert cap >= min(maximum, int(rate * seconds))  # holds the span when allowed
    assert MIN_CAPACITY <= cap <= MAX_CAPACITY
    if cap > minimum:
        assert cap // 2 < rate * seconds  # the smallest power of two that does


# --------------------------------------------------------------------------- ShmFull


def test_shm_full_from_statvfs(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = new_path(shm_dir)
    monkeypatch.setattr(ring_mod.os, "statvfs", FakeStatvfs(1 << 20))
    with pytest.raises(ShmFull, match="no room") as info:
        Ring.create(path, 1 << 16, 1)  # 1 MiB + 64 bytes
    assert isinstance(info.value, OSError)
    assert not path.exists()
    # a ring that fits is still created
    small = Ring.create(path, CAP, 1)
    small.close()
    path.unlink()


def test_shm_full_from_fallocate(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = new_path(shm_dir)

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ring_mod.os, "posix_fallocate", no_space)
    with pytest.raises(ShmFull, match="no room"):
        Ring.create(path, CAP, 1)
    assert not path.exists()  # the half-made file is removed


# --------------------------------------------------------------------------- model-based


OPS = st.one_of(
    st.tuples(st.just("write"), st.one_of(st.integers(0, 40), st.integers(0, 3 * CAP)),
              st.integers(0, 2**32 - 1)),
    st.tuples(st.just("plot"), st.one_of(st.integers(0, 40), st.integers(0, 3 * CAP)),
              st.integers(0, 2**32 - 1)),
    st.tuples(st.just("read"), st.integers(0, 1), st.integers(1, 2 * CAP)),
    st.tuples(st.just("snapshot"), st.just(0), st.just(0)),
    st.tuples(st.just("latest"), st.just(0), st.just(0)),
)


@settings(max_examples=60, deadline=None, database=None)
@given(ops=st.lists(OPS, min_size=1, max_size=40))
def test_ring_matches_model(ops: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory(dir=SHM, prefix="rtoc-test-model-") as d:
        ring = Ring.create(Path(d) / "m.ring", CAP, 3)
        try:
            _run_against_model(ring, ops)
        finally:
            ring.close()


def _run_against_model(ring: Ring, ops: list[tuple[str, int, int]]) -> None:
    """Apply ``ops`` to the real ring and the model; every observation must agree."""
    model = RingModel(CAP)
    w = RingWriter(ring)
    cursors = [0, 0]  # two independent readers (the real ones are rebuilt per max_batch)
    model_readers = [model.reader(0), model.reader(0)]
    for kind, a, b in ops:
        if kind in ("write", "plot"):
            rng = np.random.default_rng(b)
            t = rng.random(a) * 1e9
            y = rng.standard_normal(a)
            if kind == "write":
                assert w.write(t, y) == model.write(t.tolist(), y.tolist())
            else:
                assert w.plot(t, y) == model.plot(t.tolist(), y.tolist())
            assert ring.committed == model.committed
        elif kind == "read":
            real = RingReader(ring, cursor=cursors[a], max_batch=b)
            got = real.read()
            first, t, y, lost = model_readers[a].read(b)
            assert (got.first, got.lost) == (first, lost)
            assert got.t.tolist() == t
            assert got.y.tolist() == y
            assert got.snapshot == model.snapshot_start
            assert got.stop == real.cursor == model_readers[a].cursor
            assert real.lost == lost
            cursors[a] = real.cursor
        elif kind == "snapshot":
            snap = RingReader(ring).snapshot()
            first, t, y = model.snapshot()
            assert (snap.first, snap.lost, snap.snapshot) == (first, 0, model.snapshot_start)
            assert snap.t.tolist() == t
            assert snap.y.tolist() == y
        else:
            assert RingReader(ring).latest() == model.latest()
    # a final full drain agrees too
    for i in (0, 1):
        got = RingReader(ring, cursor=cursors[i], max_batch=CAP).read()
        first, t, y, lost = model_readers[i].read(CAP)
        assert (got.first, got.lost, got.t.tolist(), got.y.tolist()) == (first, lost, t, y)
        assert got.stop == model.committed


# --------------------------------------------------------------------------- stale cursors


def test_cursor_ahead_of_ring_is_not_negative_loss(ring: Ring) -> None:
    write_seq(RingWriter(ring), 10)
    r = RingReader(ring, cursor=50)  # e.g. a cursor kept across a recreated ring
    res = r.read()
    assert res.first == 10 and r.cursor == 10
    assert res.lost >= 0 and r.lost >= 0


@pytest.mark.parametrize("bad", [None, "1.5", ["1.5"], [object()], [[1.0], [1.0, 2.0]]])
def test_non_numeric_batches_are_refused(ring: Ring, bad) -> None:
    with pytest.raises(SampleError):
        RingWriter(ring).write(bad, bad)
    assert ring.committed == 0


def test_capacity_for_never_exceeds_maximum() -> None:
    assert capacity_for(1e9, minimum=1024, maximum=3000) == 2048
    with pytest.raises(ValueError):
        capacity_for(10, minimum=4096, maximum=1024)
