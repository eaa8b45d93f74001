"""History over a long range on PostgreSQL: the database decimates (min/max per interval).

``$RTOC_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``), a schema of
its own; skipped without a server (failed under CI=true), as test_archive_postgres.py.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import psycopg
import pytest
from psycopg import sql
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, SignalKey
from rtoc.frontends.archive.postgres import PostgresBackend
from rtoc.frontends.archive.queries import Queries

DSN = os.environ.get("RTOC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = 1_700_000_000.0
N = 1_000_000
LOW, HIGH = 123_456, 876_543


@pytest.fixture
def backend() -> Iterator[PostgresBackend]:
    try:
        with psycopg.connect(DSN, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        reason = f"no PostgreSQL server at {DSN}: {' '.join(str(exc).split())}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    schema = f"rtoc_t{uuid.uuid4().hex[:16]}"
    b = PostgresBackend(DSN, schema)
    try:
        b.connect()
        yield b
    finally:
        b.close()
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_a_long_range_with_a_small_max_points_is_decimated_in_the_database(backend):
    y = np.cumsum(np.random.default_rng(3).normal(size=N))
    y[LOW], y[HIGH] = -1e6, 1e6
    y[5:9] = np.nan
    t = T0 + np.arange(N) * 1e-3
    backend.write(ArchiveBatch(1, [Chunk(SignalKey("Dev.S", 1, ""), 0, t, y)]))
    backend.history = lambda *a: pytest.fail("the whole range was read into the archiver")
    archiver = SimpleNamespace(backend=backend, up=True, lock=threading.Lock(), sig_of={},
                               batcher=SimpleNamespace(take=lambda: None),
                               _write=lambda batch, now: None, flush=lambda: None)
    reply = Queries(archiver).handle("history", {"signal": "Dev.S", "max_points": 4})
    got_t, got_y = np.frombuffer(reply["t"], "<f8"), np.frombuffer(reply["y"], "<f8")
    assert 2 <= reply["n"] <= 4
    assert got_t[got_y == -1e6][0] == t[LOW] and got_t[got_y == 1e6][0] == t[HIGH]
    reply = Queries(archiver).handle("history", {"signal": "Dev.S", "max_points": 1000,
                                                 "from": T0, "to": T0 + 10})
    got_y = np.frombuffer(reply["y"], "<f8")
    assert reply["n"] <= 1000 and not np.isnan(got_y).any()
    assert got_y.max() == np.nanmax(y[:10_001]) and got_y.min() == np.nanmin(y[:10_001])
