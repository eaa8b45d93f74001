"""7. ``PostgresBackend.write`` of one batch of 1 M samples (one chunk of one signal).

Moved here from tests/integration/test_archive_postgres.py, which kept the correctness part
(every sample back, bit for bit) and dropped its wall-clock limit (< 30 s): a speed figure
is a benchmark, not a test. Each round writes a new 1 M-sample range of the same signal
into a fresh schema of ``$RTOC_TEST_PG_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards; skipped without a server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from psycopg import sql
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, SignalKey
from rtoc.frontends.archive.postgres import PostgresBackend

DSN = os.environ.get("RTOC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
GROUP = "7 PostgreSQL archive write, 1 M samples in one chunk"
N = 1_000_000
T0 = 1_700_000_000.0


@pytest.fixture
def backend() -> Iterator[PostgresBackend]:
    try:
        with psycopg.connect(DSN, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL server at {DSN}: {' '.join(str(exc).split())}")
    schema = f"rtoc_b{uuid.uuid4().hex[:16]}"
    b = PostgresBackend(DSN, schema)
    try:
        b.connect()
        yield b
    finally:
        b.close()
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_postgres_write_a_million_in_one_batch(benchmark, rate, backend: PostgresBackend) -> None:
    key = SignalKey("M.s", 1)
    y = np.random.default_rng(1).standard_normal(N)
    number = iter(range(1 << 62))

    def batch() -> tuple[tuple[ArchiveBatch], dict]:
        n = next(number)  # a new range each round: a replay would write nothing
        t = T0 + (n * N + np.arange(N)) * 1e-6
        return (ArchiveBatch(n, [Chunk(key, n * N, t, y)]),), {}

    def write(b: ArchiveBatch) -> None:
        assert backend.write(b) == N

    benchmark.group = GROUP
    benchmark.pedantic(write, setup=batch, rounds=5, warmup_rounds=1)
    rate(benchmark, N, "target: one batch < 30 s (the test's former limit)")
