"""Helpers of the ring's tests (unit and integration): batches whose t is the sequence
number, and a stand-in for ``os.statvfs``."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from rtoc.pipeline import ring as ring_mod
from rtoc.pipeline.ring import RingWriter

_counter = itertools.count()


def new_path(folder: Path) -> Path:
    """A ring file name not used before in this test run, in ``folder``."""
    return folder / f"ring-{next(_counter)}.ring"


def seqs(start: int, n: int) -> np.ndarray:
    """``t`` values equal to the sequence numbers ``start .. start+n``."""
    return np.arange(start, start + n, dtype=np.float64)


def write_seq(w: RingWriter, n: int) -> int:
    """Write ``n`` samples with t == seq and y == -seq; return the new seq."""
    t = seqs(w.seq, n)
    return w.write(t, -t)


def assert_seq_batch(res: ring_mod.ReadResult, first: int, n: int, lost: int) -> None:
    assert res.first == first
    assert res.lost == lost
    assert len(res.t) == len(res.y) == n
    np.testing.assert_array_equal(res.t, seqs(first, n))
    np.testing.assert_array_equal(res.y, -seqs(first, n))
    assert res.stop == first + n


class FakeStatvfs:
    """``os.statvfs`` of a file system with ``free_bytes`` free."""

    def __init__(self, free_bytes: int) -> None:
        self.free_bytes = free_bytes

    def __call__(self, path: object) -> SimpleNamespace:
        return SimpleNamespace(f_bavail=self.free_bytes // 4096, f_frsize=4096)
