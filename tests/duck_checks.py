"""Helpers of the DuckDB archive's tests (unit and integration): chunks of samples, row
counts and the ledger's consistency check."""

from __future__ import annotations

import numpy as np
from rtoc.frontends.archive.backend import Chunk, SignalKey
from rtoc.frontends.archive.duck import DuckBackend


def chunk(k: SignalKey, first: int, n: int, t0: float = 0.0, dt: float = 1.0,
          seed: int = 0) -> Chunk:
    """Samples ``first .. first+n-1`` at ``t0 + seq * dt``, random y."""
    t = t0 + (first + np.arange(n)) * dt
    return Chunk(k, first, t, np.random.default_rng(seed + first).standard_normal(n))


def count(b: DuckBackend, table: str) -> int:
    return b.query(f"SELECT count(*) FROM {table}")[1][0][0]


def check_consistent(b: DuckBackend) -> None:
    """Every ledger row's samples are there exactly once, and nothing else is."""
    _, dups = b.query("SELECT count(*) - count(DISTINCT (signal, epoch, seq)) FROM samples")
    assert dups == [[0]]
    _, ledger_dups = b.query(
        "SELECT count(*) - count(DISTINCT (signal, epoch, first_seq)) FROM ledger")
    assert ledger_dups == [[0]]
    # each sample to the ledger row at or before its seq (ASOF), then compare per row
    _, rows = b.query("""
        SELECT l.first_seq IS NULL, l.count, count(*),
               count(*) FILTER (WHERE s.seq >= l.first_seq + l.count)
        FROM samples s ASOF LEFT JOIN ledger l
          ON s.signal = l.signal AND s.epoch = l.epoch AND s.seq >= l.first_seq
        GROUP BY l.signal, l.epoch, l.first_seq, l.count""", limit=1_000_000)
    assert not [r for r in rows if r[0] or r[3] or r[1] != r[2]]
    assert len(rows) == count(b, "ledger")
    _, total = b.query("SELECT (SELECT count(*) FROM samples), "
                       "(SELECT coalesce(sum(count), 0) FROM ledger)")
    assert total[0][0] == total[0][1]
