"""History over a long range: the database decimates, the archiver's memory stays flat.

A DuckDB archive of a few million samples; ``history`` with a small ``max_points`` must not
read the range into the archiver (the raw read is not called, tracemalloc's peak stays far
below the range's size) and must keep the least and the greatest sample.
"""

from __future__ import annotations

import math
import threading
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rtoc.frontends.archive import queries
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, SignalKey, minmax_pairs
from rtoc.frontends.archive.duck import DuckBackend
from rtoc.frontends.archive.queries import Queries

from rtoc.errors import ArchiveError

T0 = 1_700_000_000.0
N = 3_000_000
LOW, HIGH = 1_234_567, 2_345_678  # where the extremes are


class Archiver:
    """What ``Queries`` needs of the archiver: a backend that is up, nothing pending."""

    def __init__(self, backend: DuckBackend):
        self.backend, self.up, self.lock, self.sig_of = backend, True, threading.Lock(), {}
        self.batcher = SimpleNamespace(take=lambda: None)

    def _write(self, batch, now: float) -> None:
        pass

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> DuckBackend:
    b = DuckBackend(Path(tmp_path_factory.mktemp("archive")) / "rtoc.duckdb", clock=lambda: T0)
    b.connect()
    rng = np.random.default_rng(7)
    y = np.cumsum(rng.normal(size=N))
    y[LOW], y[HIGH] = -1e6, 1e6
    y[10:20] = np.nan
    t = T0 + np.arange(N) * 1e-3
    step = 1 << 20
    for i in range(0, N, step):
        b.write(ArchiveBatch(i // step + 1, [Chunk(SignalKey("Dev.S", 1, ""), i, t[i:i + step],
                                                   y[i:i + step])]))
    yield b
    b.close()


def _history(archive: DuckBackend, **msg) -> tuple[dict, int, list]:
    raw_reads: list = []
    real = archive.history

    def counted(*args):
        raw_reads.append(args)
        return real(*args)

    archive.history = counted
    try:
        tracemalloc.start()
        reply = Queries(Archiver(archive)).handle("history", {"signal": "Dev.S", **msg})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        del archive.history
    return reply, peak, raw_reads


def test_a_long_range_with_a_small_max_points_is_decimated_in_the_database(archive):
    reply, peak, raw_reads = _history(archive, max_points=4)
    t, y = np.frombuffer(reply["t"], "<f8"), np.frombuffer(reply["y"], "<f8")
    assert raw_reads == []               # no sample of the range was read as such
    assert peak < 4 << 20                # the range is 48 MB of t and y
    assert 2 <= reply["n"] <= 4 and len(t) == len(y) == reply["n"]
    assert -1e6 in y and 1e6 in y        # the extremes, with their times
    assert t[y == -1e6][0] == T0 + LOW * 1e-3 and t[y == 1e6][0] == T0 + HIGH * 1e-3
    assert np.all(np.diff(t) >= 0)


def test_more_points_keep_each_intervals_extremes_and_never_a_nan_over_a_number(archive):
    reply, peak, raw_reads = _history(archive, max_points=2000, **{"from": T0, "to": T0 + 100})
    t, y = np.frombuffer(reply["t"], "<f8"), np.frombuffer(reply["y"], "<f8")
    assert raw_reads == [] and peak < 4 << 20
    assert len(t) <= 2000 and np.all(np.diff(t) >= 0)
    assert not np.isnan(y).any()         # samples 10..19 are NaN: numbers win their interval
    whole, _, _ = _history(archive, max_points=2_000_000, **{"from": T0, "to": T0 + 100})
    ys = np.frombuffer(whole["y"], "<f8")
    assert whole["n"] == 100_001          # below max_points: every sample, as before
    assert y.max() == np.nanmax(ys) and y.min() == np.nanmin(ys)


def test_a_range_past_the_reply_limit_without_max_points_is_refused_before_reading(archive,
                                                                                   monkeypatch):
    monkeypatch.setattr(queries, "MAX_POINTS", 1000)
    with pytest.raises(ArchiveError, match="3000000 samples in this range"):
        _history(archive)
    archive.history = lambda *a: pytest.fail("the range was read")
    try:
        with pytest.raises(ArchiveError, match="max_points"):
            Queries(Archiver(archive)).handle("history", {"signal": "Dev.S"})
    finally:
        del archive.history
    with pytest.raises(ArchiveError, match="max_points must be at least 1"):
        Queries(Archiver(archive)).handle("history", {"signal": "Dev.S", "max_points": -3})


def test_span_and_minmax_of_an_unknown_signal_are_empty(archive):
    assert archive.history_span("Dev.None", -math.inf, math.inf)[0] == 0
    t, y = archive.history_minmax("Dev.None", -math.inf, math.inf, 4, 0.0, 1.0)
    assert len(t) == len(y) == 0


def test_minmax_pairs_orders_each_bin_and_keeps_one_of_a_single_sample():
    t, y = minmax_pairs(np.array([1.0, 5.0, 9.0]), np.array([-1.0, 3.0, np.nan]),
                        np.array([0.5, 5.0, 9.0]), np.array([2.0, 3.0, np.nan]))
    assert t.tolist() == [0.5, 1.0, 5.0, 9.0]
    assert y[:3].tolist() == [2.0, -1.0, 3.0] and np.isnan(y[3])
