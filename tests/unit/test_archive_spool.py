"""Batches spooled to disk while the database is away come back exactly, in order."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, Gap, SignalKey
from rtoc.frontends.archive.spool import Spool


def batch(number: int) -> ArchiveBatch:
    key = SignalKey("G.S", 123456789, "V")
    t = np.array([1.0, 2.0, math.inf])
    y = np.array([math.nan, -0.0, 1e308])
    return ArchiveBatch(number, [Chunk(key, 10, t, y)], [{"time": 1.5, "text": "é", "value": None}],
                        [Gap(key, 5, 5, math.nan, 1.0)])


def test_round_trip_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for n in (30, 4, 1000):
        spool.put(batch(n))
    assert [p.name for p in spool.pending()] == [f"{n:020d}.batch" for n in (4, 30, 1000)]
    assert spool.last_number() == 1000 and spool.size == 3
    got = spool.load(spool.pending()[0])
    want = batch(4)
    assert got.number == 4 and got.events == want.events
    (c,) = got.chunks
    assert c.key == want.chunks[0].key and c.first_seq == 10
    np.testing.assert_array_equal(c.t, want.chunks[0].t)
    assert np.array_equal(c.y, want.chunks[0].y, equal_nan=True) and math.copysign(1, c.y[1]) == -1
    assert got.gaps[0].count == 5 and math.isnan(got.gaps[0].t_from)
    spool.done(spool.pending()[0])
    assert spool.size == 2
    assert not [p for p in (tmp_path / "spool").iterdir() if p.name.startswith(".")]  # no temp files


def test_a_damaged_file_is_moved_aside_not_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    path = spool.put(batch(1))
    path.write_bytes(path.read_bytes()[:20])
    assert spool.load(path) is None
    assert spool.pending() == [] and (tmp_path / f"{1:020d}.bad").exists()


def test_an_empty_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "never-made")
    assert spool.pending() == [] and spool.last_number() == 0
