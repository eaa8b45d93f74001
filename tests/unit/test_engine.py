"""Unit tests of EngineCore (the engine's pure part) over real rings in /dev/shm."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtoc.pipeline.bus import GapCounter
from rtoc.pipeline.engine import EngineCore, Publication
from rtoc.pipeline.ring import MIN_CAPACITY, Ring, RingWriter

from rtoc.config import EngineConfig

CAP = MIN_CAPACITY  # 1024 samples
NAME = "Dev.S"
SIG = 7

_paths = itertools.count()


@pytest.fixture(scope="module")
def shm_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="rtoc-test-engine-") as d:
        yield Path(d)


class Rig:
    """A ring with its writer (the driver side) and an EngineCore following it."""

    def __init__(self, folder: Path, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.core = EngineCore(cfg)
        self.rings: list[Ring] = []
        self.paths: list[Path] = []
        self.writers: dict[int, RingWriter] = {}
        self.folder = folder
        self.next_t: dict[int, float] = {}

    def add(self, sig: int = SIG, name: str = NAME, from_start: bool = True,
            before: int = 0, plot_before: int = 0) -> RingWriter:
        path = self.folder / f"ring-{next(_paths)}.ring"
        ring = Ring.create(path, CAP, sig)
        self.rings.append(ring)
        self.paths.append(path)
        writer = self.writers[sig] = RingWriter(ring)
        self.next_t[sig] = 0.0
        if before:
            self.write(before, sig)
        if plot_before:
            self.plot(plot_before, sig)
        self.core.add(sig, name, Ring.open(path), from_start)  # the engine maps it itself
        return writer

    def write(self, n: int, sig: int = SIG) -> np.ndarray:
        """Append ``n`` samples; ``t`` counts up by one per sample, ``y = -t``."""
        t = self.next_t[sig] + np.arange(n, dtype=np.float64)
        self.next_t[sig] += n
        self.writers[sig].write(t, -t)
        return t

    def plot(self, n: int, sig: int = SIG) -> np.ndarray:
        t = 1000.0 + np.arange(n, dtype=np.float64)
        self.writers[sig].plot(t, -t)
        return t

    def close(self) -> None:
        for sig in list(self.core.tracks):
            self.core.remove(sig)
        for ring, path in zip(self.rings, self.paths, strict=True):
            ring.close()
            path.unlink(missing_ok=True)


RigFactory = Callable[..., Rig]


@pytest.fixture
def rig_factory(shm_dir: Path) -> Iterator[RigFactory]:
    rigs: list[Rig] = []

    def make(**cfg: float) -> Rig:
        rig = Rig(shm_dir, EngineConfig(**cfg))  # type: ignore[arg-type]
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def joined(pubs: list[Publication]) -> tuple[np.ndarray, np.ndarray]:
    if not pubs:
        return np.empty(0), np.empty(0)
    return np.concatenate([p.t for p in pubs]), np.concatenate([p.y for p in pubs])


def test_nothing_is_published_until_min_batch_samples_wait(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=100, max_delay=1.0, max_batch=4096)
    rig.add()
    assert rig.core.scan(0.0) == []  # nothing written
    t = rig.write(99)
    assert rig.core.scan(0.0) == []
    assert rig.core.scan(0.5) == []
    t = np.concatenate([t, rig.write(1)])
    pubs = rig.core.scan(0.6)
    assert len(pubs) == 1
    p = pubs[0]
    assert (p.name, p.sig, p.seq, p.lost, p.replace) == (NAME, SIG, 0, 0, False)
    np.testing.assert_array_equal(p.t, t)
    np.testing.assert_array_equal(p.y, -t)
    assert rig.core.scan(0.7) == []  # nothing new


def test_a_small_batch_is_published_after_max_delay(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=100, max_delay=1.0, max_batch=4096)
    rig.add()
    rig.write(10)
    assert rig.core.scan(0.0) == []   # first seen now
    rig.write(5)
    assert rig.core.scan(0.75) == []
    pubs = rig.core.scan(1.0)        # the oldest waiting sample was seen 1.0 s ago
    assert [(p.seq, len(p.t)) for p in pubs] == [(0, 15)]
    rig.write(5)
    assert rig.core.scan(1.5) == []   # the clock restarts with the next waiting sample
    assert rig.core.scan(2.25) == []
    assert [(p.seq, len(p.t)) for p in rig.core.scan(2.5)] == [(15, 5)]


def test_flush_publishes_everything_at_once(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=100, max_delay=1.0, max_batch=4096)
    rig.add()
    t = rig.write(3)
    pubs = rig.core.scan(0.0, flush=True)
    assert [(p.seq, len(p.t)) for p in pubs] == [(0, 3)]
    np.testing.assert_array_equal(pubs[0].t, t)
    assert rig.core.scan(0.0, flush=True) == []


def test_batches_larger_than_max_batch_are_split_with_contiguous_seq(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=256)
    rig.add()
    t = rig.write(1000)
    pubs = rig.core.scan(0.0)
    assert [len(p.t) for p in pubs] == [256, 256, 256, 232]
    assert [p.seq for p in pubs] == [0, 256, 512, 768]
    assert all(p.lost == 0 and not p.replace for p in pubs)
    got_t, got_y = joined(pubs)
    np.testing.assert_array_equal(got_t, t)
    np.testing.assert_array_equal(got_y, -t)


def test_lost_samples_appear_in_the_next_publication(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=4096)
    rig.add()
    rig.write(100)
    first = rig.core.scan(0.0)
    assert [(p.seq, len(p.t), p.lost) for p in first] == [(0, 100, 0)]
    written = np.concatenate([rig.write(500) for _ in range(6)])  # laps the 1024-slot ring
    pubs = rig.core.scan(1.0)
    assert [(p.seq, len(p.t), p.lost) for p in pubs] == [(3100 - CAP, CAP, 3100 - CAP - 100)]
    np.testing.assert_array_equal(pubs[0].t, written[-CAP:])
    # a subscriber sees no bus gap: seq jumped by exactly what the header says was lost
    gaps = GapCounter()
    assert [gaps.feed(p.name, p.seq, len(p.t), p.lost) for p in first + pubs] == [0, 0]
    track = rig.core.tracks[SIG]
    assert (track.lost, track.published, track.next_seq) == (1976, 100 + CAP, 3100)
    rig.write(10)
    assert [(p.seq, p.lost) for p in rig.core.scan(2.0)] == [(3100, 0)]  # reported once


def test_a_plot_is_published_as_replace_from_the_snapshot(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=4096)
    rig.add()
    rig.write(10)
    assert [p.seq for p in rig.core.scan(0.0)] == [0]
    plotted = rig.plot(5)
    pubs = rig.core.scan(1.0)
    assert [(p.seq, len(p.t), p.replace) for p in pubs] == [(10, 5, True)]
    np.testing.assert_array_equal(pubs[0].t, plotted)
    rig.write(3)
    assert [(p.seq, len(p.t), p.replace) for p in rig.core.scan(2.0)] == [(15, 3, False)]


def test_appends_and_a_plot_in_one_read_are_split_at_the_snapshot(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=4096)
    rig.add()
    appended = rig.write(10)
    plotted = rig.plot(4)
    pubs = rig.core.scan(0.0)
    assert [(p.seq, len(p.t), p.replace) for p in pubs] == [(0, 10, False), (10, 4, True)]
    np.testing.assert_array_equal(pubs[0].t, appended)
    np.testing.assert_array_equal(pubs[1].t, plotted)


def test_a_plot_after_lost_samples_is_one_replace(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=4096)
    rig.add()
    rig.write(2000)           # more than the ring holds, unread
    plotted = rig.plot(CAP)   # replaces everything the ring holds
    pubs = rig.core.scan(0.0)
    assert len(pubs) == 1
    p = pubs[0]
    assert (p.seq, len(p.t), p.replace, p.lost) == (2000, CAP, True, 2000)
    np.testing.assert_array_equal(p.t, plotted)


def test_following_from_the_start_reports_an_earlier_plot(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=4096)
    rig.add(before=10, plot_before=5)  # written, then replaced, before the engine saw it
    pubs = rig.core.scan(0.0)
    assert [(p.seq, len(p.t), p.replace) for p in pubs] == [(0, 10, False), (10, 5, True)]


def test_an_empty_plot_is_published_as_a_replace(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=4096)
    rig.add()
    rig.write(10)
    rig.core.scan(0.0)
    rig.plot(0)
    pubs = rig.core.scan(1.0, flush=True)
    assert [(p.seq, len(p.t), p.replace) for p in pubs] == [(10, 0, True)]


def test_following_from_now_skips_what_is_already_there(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=4096)
    rig.add(from_start=False, before=50)
    assert rig.core.tracks[SIG].next_seq == 50
    assert rig.core.scan(0.0, flush=True) == []
    t = rig.write(5)
    pubs = rig.core.scan(1.0)
    assert [(p.seq, p.lost) for p in pubs] == [(50, 0)]
    np.testing.assert_array_equal(pubs[0].t, t)


def test_following_from_the_start_reads_what_is_already_there(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=4096)
    rig.add(from_start=True, before=50)
    pubs = rig.core.scan(0.0)
    assert [(p.seq, len(p.t)) for p in pubs] == [(0, 50)]


def test_signals_are_triggered_independently(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=10, max_delay=1.0, max_batch=4096)
    rig.add(sig=1, name="A.x")
    rig.add(sig=2, name="B.x")
    rig.write(10, sig=1)
    rig.write(3, sig=2)
    assert [(p.name, len(p.t)) for p in rig.core.scan(0.0)] == [("A.x", 10)]
    assert [(p.name, len(p.t)) for p in rig.core.scan(1.0)] == [("B.x", 3)]


def test_heartbeat_rates(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=4096)
    rig.add()
    rig.write(100)
    rig.core.scan(0.0)
    assert rig.core.heartbeat(2.0) == {NAME: {"seq": 100, "rate": 50.0, "lost": 0, "published": 100}}
    assert rig.core.heartbeat(1.0)[NAME]["rate"] == 0.0  # nothing since the last heartbeat
    rig.write(30)
    rig.core.scan(1.0)
    hb = rig.core.heartbeat(0.5)[NAME]
    assert (hb["rate"], hb["seq"], hb["published"]) == (60.0, 130, 130)
    assert rig.core.tracks[SIG].rate == 60.0
    assert rig.core.heartbeat(0.0)[NAME]["rate"] == 0.0  # no division by zero


def test_remove_stops_following_a_ring(rig_factory: RigFactory) -> None:
    rig = rig_factory(min_batch=1, max_delay=1.0, max_batch=4096)
    rig.add()
    rig.core.remove(SIG)
    rig.core.remove(SIG)  # twice is harmless
    rig.write(5)
    assert rig.core.scan(0.0, flush=True) == []
    assert rig.core.heartbeat(1.0) == {}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.floats(0.0, 0.01)), min_size=1, max_size=15),
       st.integers(1, 64), st.integers(1, 4))
def test_publications_carry_every_sample_once_in_order(
        steps: list[tuple[int, float]], min_batch: int, batch_factor: int) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="rtoc-test-engine-") as d:
        rig = Rig(Path(d), EngineConfig(min_batch=min_batch, max_delay=0.004,
                                        max_batch=min_batch * batch_factor))
        try:
            rig.add()
            now = 0.0
            written: list[np.ndarray] = []
            pubs: list[Publication] = []
            for n, dt in steps:  # less than a ring per step: nothing is lost
                written.append(rig.write(n))
                now += dt
                while new := rig.core.scan(now):  # the engine scans again each tick
                    pubs += new
            pubs += rig.core.scan(now, flush=True)
        finally:
            rig.close()
    expected = np.concatenate(written)
    got_t, got_y = joined(pubs)
    np.testing.assert_array_equal(got_t, expected)
    np.testing.assert_array_equal(got_y, -expected)
    seq = 0
    for p in pubs:
        assert p.seq == seq and p.lost == 0 and not p.replace
        assert 0 < len(p.t) <= min_batch * batch_factor
        seq += len(p.t)


def test_one_scan_is_bounded_even_when_the_writer_keeps_pace() -> None:
    """A writer that adds a batch before every read must not keep scan() from returning."""
    from rtoc.pipeline import engine as engine_mod

    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="rtoc-test-engine-") as d:
        cfg = EngineConfig(min_batch=64, max_batch=64)
        rig = Rig(Path(d), cfg)
        try:
            rig.add()
            track = next(iter(rig.core.tracks.values()))
            real_read = track.reader.read

            def read_and_refill():
                res = real_read()
                rig.write(64)  # the writer keeps pace
                return res

            track.reader.read = read_and_refill
            rig.write(64 * 3)
            pubs = rig.core.scan(1.0)
            assert 1 <= len(pubs) <= engine_mod.MAX_READS
            assert sum(len(p.t) for p in pubs) == 64 * len(pubs)
        finally:
            rig.close()
