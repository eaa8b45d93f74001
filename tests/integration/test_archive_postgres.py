"""The PostgreSQL backend against a real server (no mocks).

The server is ``$RTOC_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each test gets its own schema, dropped afterwards. Without a reachable server the tests are
skipped, except in CI (``CI=true``), where they fail. The outage tests start a throw-away
cluster of their own (tests/pg_cluster.py) so they can stop and start it.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import psycopg
import pytest
from psycopg import sql
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, Gap, SignalKey, Snapshot, event_key
from rtoc.frontends.archive.pg_binary import raw_copy
from rtoc.frontends.archive.postgres import COLUMNS, INDEXES, PostgresBackend

from rtoc.errors import ArchiveError, ArchiveUnavailable
from rtoc.model import Event

_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from pg_cluster import ClusterError, PgCluster, find_bindir, free_port, pg_cluster  # noqa: E402

DSN = os.environ.get("RTOC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = 1_700_000_000.0
TABLES = tuple(COLUMNS)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the server must be there)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dsn() -> str:
    try:
        with psycopg.connect(DSN, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        _unavailable(f"no PostgreSQL server at {DSN}: {' '.join(str(exc).split())}")
    return DSN


@pytest.fixture
def schema(dsn: str) -> Iterator[str]:
    name = f"rtoc_t{uuid.uuid4().hex[:16]}"
    try:
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def backend(dsn: str, schema: str) -> Iterator[PostgresBackend]:
    b = PostgresBackend(dsn, schema)
    b.connect()
    try:
        yield b
    finally:
        b.close()


@contextlib.contextmanager
def _admin(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def _counts(dsn: str, schema: str) -> dict[str, int]:
    with _admin(dsn) as conn:
        return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(t))).fetchone()[0] for t in TABLES}


def _chunk(name: str, epoch: int, first_seq: int, n: int, t0: float = T0, dt: float = 1e-3,
           seed: int = 0) -> Chunk:
    t = t0 + (first_seq + np.arange(n)) * dt
    y = np.random.default_rng(seed + first_seq).standard_normal(n)
    return Chunk(SignalKey(name, epoch, "V"), first_seq, t, y)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float64).view(np.uint64)


# -- schema ----------------------------------------------------------------------------------
def test_connect_creates_the_model_tables_without_keys_and_with_indexes(
        backend: PostgresBackend, dsn: str, schema: str) -> None:
    with _admin(dsn) as conn:
        for table, cols in COLUMNS.items():
            have = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, table)).fetchall()
            assert tuple(have) == cols, table
        keys = conn.execute(
            "SELECT conrelid::regclass::text, contype FROM pg_constraint c JOIN pg_namespace n "
            "ON n.oid = c.connamespace WHERE n.nspname = %s AND contype IN ('p', 'u')",
            (schema,)).fetchall()
        assert keys == []
        indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))}
        assert indexes == set(INDEXES)
    backend.connect()  # again: nothing to do
    other = PostgresBackend(dsn, schema)
    try:
        other.connect()  # a second client of an existing schema
        assert other.signals() == []
    finally:
        other.close()


def test_a_table_with_other_columns_is_refused(dsn: str, schema: str) -> None:
    with _admin(dsn) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {s}; CREATE TABLE {s}.samples (t float8, y float8)")
                     .format(s=sql.Identifier(schema)))
    b = PostgresBackend(dsn, schema)
    try:
        with pytest.raises(ArchiveError, match="samples has columns") as err:
            b.connect()
        assert not isinstance(err.value, ArchiveUnavailable)
    finally:
        b.close()


def test_bad_schema_name_is_refused() -> None:
    with pytest.raises(ArchiveError):
        PostgresBackend(DSN, 'x"; DROP TABLE y; --')


# -- write / read ----------------------------------------------------------------------------
def test_round_trip_keeps_exact_values_signals_events_and_gaps(
        backend: PostgresBackend, dsn: str, schema: str) -> None:
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, -1.7976931348623157e308,
                        1.7976931348623157e308, 1 / 3, -2.5e-300])
    key = SignalKey("Dev.Special", 111, "mV")
    t_special = T0 + np.arange(special.size) * 0.001
    events = [
        Event(T0 + 0.5, "none", "Dev", "Special", 0, "e.none", None).to_dict(),
        Event(T0 + 0.6, "text", "Dev", "Special", 1, "e.str", "overheated").to_dict(),
        Event(T0 + 0.7, "float", "Dev", "Special", 2, "e.float", 3.25, {"k": [1, 2]}).to_dict(),
        Event(T0 + 0.8, "int", "", "", 0, "e.int", 7).to_dict(),
    ]
    batches = [ArchiveBatch(0, [Chunk(key, 0, t_special, special)], events,
                            [Gap(key, special.size, 5, float(t_special[-1]), T0 + 1.0)])]
    expected: dict[str, list[Chunk]] = {"Dev.Special": [Chunk(key, 0, t_special, special)]}
    rng = np.random.default_rng(7)
    seqs: dict[tuple[str, int], int] = {}
    for number in range(1, 5):
        chunks = []
        for s in range(6):
            for epoch in (1, 2):
                name = f"Dev{s % 2}.S{s}"
                n = int(rng.integers(1, 3000))
                seq = seqs.get((name, epoch), 0)
                # epoch 2 continues in time after epoch 1, so t never ties across epochs
                c = _chunk(name, epoch, seq, n, t0=T0 + 10 + 1000 * (epoch - 1), seed=s)
                seqs[(name, epoch)] = seq + n
                chunks.append(c)
                expected.setdefault(name, []).append(c)
        batches.append(ArchiveBatch(number, chunks))
    written = sum(backend.write(b) for b in batches)
    assert written == sum(b.samples for b in batches)

    for name, chunks in expected.items():
        t, y = backend.history(name, -math.inf, math.inf)
        order = np.argsort(np.concatenate([c.t for c in chunks]), kind="stable")
        want_t = np.concatenate([c.t for c in chunks])[order]
        want_y = np.concatenate([c.y for c in chunks])[order]
        assert t.dtype == y.dtype == np.float64
        np.testing.assert_array_equal(_bits(t), _bits(want_t))
        np.testing.assert_array_equal(_bits(y), _bits(want_y))  # NaN, inf, -0.0 bit for bit

    got = backend.events(-math.inf, math.inf)
    assert got == events
    assert [e["value"] for e in got] == [None, "overheated", 3.25, 7]
    with _admin(dsn) as conn:
        keys = [r[0] for r in conn.execute(
            sql.SQL("SELECT key FROM {}.events ORDER BY time").format(sql.Identifier(schema)))]
        gaps = conn.execute(sql.SQL("SELECT epoch, first_seq, count, t_from, t_to FROM {}.gaps")
                            .format(sql.Identifier(schema))).fetchall()
    assert keys == [event_key(e) for e in events]
    assert gaps == [(111, special.size, 5, float(t_special[-1]), T0 + 1.0)]
    names = [s["name"] for s in backend.signals()]
    assert names == sorted(expected)
    assert _counts(dsn, schema)["signals"] == len(expected)


def test_replaying_batches_writes_nothing_twice(backend: PostgresBackend, dsn: str,
                                                schema: str) -> None:
    k = SignalKey("A.x", 5)
    first = ArchiveBatch(1, [_chunk("A.x", 5, 0, 1000), _chunk("B.y", 5, 0, 500)],
                         [Event(T0, "hello", "A", "x").to_dict()],
                         [Gap(k, 1000, 10, T0 + 0.999, T0 + 1.01)])
    second = ArchiveBatch(2, [_chunk("A.x", 5, 1010, 700)], [Event(T0 + 2, "bye").to_dict()])
    assert backend.write(first) == 1500
    assert backend.write(second) == 700
    counts = _counts(dsn, schema)
    assert counts == {"signals": 2, "samples": 2200, "ledger": 3, "events": 2, "gaps": 1, "snapshots": 0}
    assert backend.write(first) == 0
    assert backend.write(second) == 0
    assert _counts(dsn, schema) == counts
    # a batch holding one old and one new chunk (a replayed spool file after a partial
    # flush) writes only the new one; events already there are skipped, new ones kept
    mixed = ArchiveBatch(3, [_chunk("A.x", 5, 1010, 700), _chunk("B.y", 5, 500, 100)],
                         [Event(T0 + 2, "bye").to_dict(), Event(T0 + 3, "new").to_dict()])
    assert backend.write(mixed) == 100
    counts2 = _counts(dsn, schema)
    assert counts2 == {"signals": 2, "samples": 2300, "ledger": 4, "events": 3, "gaps": 1, "snapshots": 0}
    # the same chunk twice in one batch counts once
    dup = ArchiveBatch(4, [_chunk("C.z", 1, 0, 10), _chunk("C.z", 1, 0, 10)])
    assert backend.write(dup) == 10
    # a new backend (new process) sees the same ledger
    other = PostgresBackend(dsn, schema)
    try:
        assert other.write(first) == 0 and other.write(mixed) == 0
    finally:
        other.close()
    assert _counts(dsn, schema)["samples"] == 2310


def test_resume_points_are_the_end_of_the_last_chunk_or_gap(backend: PostgresBackend) -> None:
    assert backend.resume_points() == {}
    ka, kb = SignalKey("A.x", 10), SignalKey("A.x", 20)
    backend.write(ArchiveBatch(1, [_chunk("A.x", 10, 0, 100), _chunk("A.x", 20, 0, 7)]))
    backend.write(ArchiveBatch(2, [_chunk("A.x", 10, 100, 50), _chunk("B.y", 0, 40, 2)]))
    backend.write(ArchiveBatch(3, [], [], [Gap(kb, 7, 13, T0, T0 + 1)]))
    backend.write(ArchiveBatch(4, [], [], [Gap(ka, 20, 5, T0, T0 + 1)]))  # an old gap
    backend.write(ArchiveBatch(5, [], [], [Gap(SignalKey("C.z", 3), 0, 4, math.nan, T0)]))
    assert backend.resume_points() == {("A.x", 10): 150, ("A.x", 20): 20, ("B.y", 0): 42,
                                       ("C.z", 3): 4}


def test_history_bounds_are_inclusive_and_span_epochs(backend: PostgresBackend) -> None:
    a = Chunk(SignalKey("D.s", 1), 0, np.arange(10.0), np.arange(10.0) * 10)
    b = Chunk(SignalKey("D.s", 2), 0, np.arange(10.0, 20.0), np.arange(10.0, 20.0) * 10)
    backend.write(ArchiveBatch(1, [b]))  # the later epoch first: history sorts by t
    backend.write(ArchiveBatch(2, [a]))
    t, y = backend.history("D.s", 5.0, 15.0)
    np.testing.assert_array_equal(t, np.arange(5.0, 16.0))
    np.testing.assert_array_equal(y, np.arange(5.0, 16.0) * 10)
    t, y = backend.history("D.s", 9.0, 9.0)
    assert t.tolist() == [9.0] and y.tolist() == [90.0]
    t, y = backend.history("D.s", 9.5, 9.9)
    assert t.shape == y.shape == (0,) and t.dtype == np.float64
    t, y = backend.history("No.such", -math.inf, math.inf)
    assert t.shape == y.shape == (0,)
    t, y = backend.history("D.s", math.nextafter(4.0, 5.0), math.nextafter(6.0, 5.0))
    assert t.tolist() == [5.0]


def test_history_pages_give_the_same_samples(backend: PostgresBackend) -> None:
    # ties at page boundaries and a run of equal times longer than a page
    t = np.concatenate([np.repeat(np.arange(30.0), 3), np.full(40, 30.0), np.arange(31.0, 60.0)])
    y = np.arange(t.size, dtype=np.float64)
    backend.write(ArchiveBatch(1, [Chunk(SignalKey("P.s", 1), 0, t, y)]))
    whole_t, whole_y = backend.history("P.s", 0, 100)
    assert whole_t.size == t.size
    for page in (1, 2, 3, 7, 16, 41, 1000):
        backend.history_page = page
        pt, py = backend.history("P.s", 0, 100)
        np.testing.assert_array_equal(pt, t)
        # equal times may come in any order; each (t, y) pair exactly once
        np.testing.assert_array_equal(np.lexsort((py, pt)), np.lexsort((whole_y, whole_t)))
        assert sorted(zip(pt.tolist(), py.tolist(), strict=True)) == \
            sorted(zip(t.tolist(), y.tolist(), strict=True))
    np.testing.assert_array_equal(whole_y, y)  # ties come in insertion (seq) order


def test_buckets_match_numpy(backend: PostgresBackend) -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    t = np.sort(rng.uniform(-50.0, 150.0, n))
    y = rng.normal(size=n) * 100
    y[rng.random(n) < 0.1] = np.nan
    y[(t > 20.0) & (t < 23.0)] = np.nan        # all-NaN buckets
    y[rng.integers(0, n, 5)] = np.inf
    backend.write(ArchiveBatch(1, [Chunk(SignalKey("B.s", 1), 0, t, y)]))
    width, lo, hi = 0.7, -30.0, float(t[-100])  # hi is a sample: inclusive
    got = backend.buckets("B.s", lo, hi, width)
    sel = (t >= lo) & (t <= hi)
    ts, ys = t[sel], y[sel]
    start = np.floor(ts / width) * width
    starts = np.unique(start)
    np.testing.assert_array_equal(got["start"], starts)
    assert got["count"].dtype == got["n"].dtype == np.int64
    for i, s in enumerate(starts):
        v = ys[start == s]
        ok = v[~np.isnan(v)]
        assert got["n"][i] == v.size
        assert got["count"][i] == ok.size
        if ok.size:
            assert got["min"][i] == ok.min() and got["max"][i] == ok.max()
            np.testing.assert_allclose(got["mean"][i], ok.mean(), rtol=1e-12)
        else:
            assert np.isnan(got["mean"][i]) and np.isnan(got["min"][i]) and np.isnan(got["max"][i])
    assert (got["count"] == 0).any()
    assert np.isinf(got["max"]).any()
    empty = backend.buckets("No.such", 0, 1, 1.0)
    assert all(v.size == 0 for v in empty.values()) and empty["count"].dtype == np.int64
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ArchiveError):
            backend.buckets("B.s", 0, 1, bad)


def test_events_range_order_and_limit(backend: PostgresBackend) -> None:
    evs = [Event(T0 + i, f"e{i}", "D", "s", i % 3, value=float(i)).to_dict() for i in range(10)]
    backend.write(ArchiveBatch(1, [], list(reversed(evs))))
    got = backend.events(T0 + 3, T0 + 7)
    assert [e["text"] for e in got] == ["e3", "e4", "e5", "e6", "e7"]
    assert got[0] == evs[3]
    assert [e["text"] for e in backend.events(T0 + 3, T0 + 7, limit=2)] == ["e3", "e4"]
    assert backend.events(T0 + 3, T0 + 7, limit=0) == []
    assert backend.events(T0 + 20, T0 + 30) == []
    # keys beyond the Event fields end up in extra; NUL characters cannot go into text
    backend.write(ArchiveBatch(2, [], [{"time": T0 + 50, "text": "a\x00b", "source": "x"}]))
    (odd,) = backend.events(T0 + 50, T0 + 50)
    assert odd["text"] == "a\ufffdb" and odd["extra"] == {"source": "x"}


def test_delete_before_removes_old_rows(backend: PostgresBackend, dsn: str, schema: str) -> None:
    k = SignalKey("R.s", 1)
    backend.write(ArchiveBatch(1, [Chunk(k, 0, np.arange(10.0), np.ones(10))], [
        Event(5.0, "old").to_dict(), Event(15.0, "new").to_dict()],
        [Gap(k, 10, 3, 9.0, 12.0)]))
    backend.write(ArchiveBatch(2, [Chunk(k, 13, np.arange(12.0, 22.0), np.ones(10))], [],
                               [Gap(k, 23, 3, 21.0, 30.0)]))
    assert backend.delete_before(15.0) == 13  # 0..9 and 12, 13, 14
    t, _ = backend.history("R.s", -math.inf, math.inf)
    np.testing.assert_array_equal(t, np.arange(15.0, 22.0))
    assert [e["text"] for e in backend.events(-math.inf, math.inf)] == ["new"]
    counts = _counts(dsn, schema)
    assert counts["ledger"] == 1 and counts["gaps"] == 1  # the straddling chunk stays
    assert backend.resume_points() == {("R.s", 1): 26}
    assert backend.delete_before(-math.inf) == 0
    with pytest.raises(ArchiveError):
        backend.delete_before(math.nan)
    assert backend.delete_before(math.inf) == 7
    assert _counts(dsn, schema)["samples"] == 0


def test_signals_listing(dsn: str, schema: str) -> None:
    b = PostgresBackend(dsn, schema, clock=lambda: 42.0)
    first, second = _chunk("Dev.a", 1, 0, 100), _chunk("Dev.a", 2, 0, 50, t0=T0 + 5)
    try:
        b.write(ArchiveBatch(1, [first, second, _chunk("Other.b", 1, 0, 3)]))
        b.write(ArchiveBatch(2, [], [], [Gap(SignalKey("Lost.c", 1, "K"), 0, 9, math.nan, T0)]))
        got = {s["name"]: s for s in b.signals()}
    finally:
        b.close()
    assert list(got) == ["Dev.a", "Lost.c", "Other.b"]
    a = got["Dev.a"]
    assert (a["device"], a["unit"], a["created"], a["samples"]) == ("Dev", "V", 42.0, 150)
    assert a["t_first"] == first.t[0] and a["t_last"] == second.t[-1]
    lost = got["Lost.c"]
    assert lost["samples"] == 0 and lost["unit"] == "K"
    assert math.isnan(lost["t_first"]) and math.isnan(lost["t_last"])


def test_a_chunk_of_no_samples_registers_the_signal_but_shadows_nothing(
        backend: PostgresBackend, dsn: str, schema: str) -> None:
    empty = Chunk(SignalKey("E.s", 1), 0, np.empty(0), np.empty(0))
    assert backend.write(ArchiveBatch(1, [empty])) == 0
    assert _counts(dsn, schema) == {"signals": 1, "samples": 0, "ledger": 0, "events": 0,
                                    "gaps": 0, "snapshots": 0}
    assert backend.write(ArchiveBatch(2, [_chunk("E.s", 1, 0, 5)])) == 5
    assert backend.resume_points() == {("E.s", 1): 5}
    with pytest.raises(ArchiveError):
        backend.write(ArchiveBatch(3, [Chunk(SignalKey("E.s", 1), 5, np.zeros(3), np.zeros(2))]))


def test_a_million_samples_in_one_batch(backend: PostgresBackend) -> None:
    """Correctness only; how fast is bench/test_archive_write_postgres.py."""
    n = 1_000_000
    t = T0 + np.arange(n) * 1e-6
    y = np.random.default_rng(1).standard_normal(n)
    assert backend.write(ArchiveBatch(1, [Chunk(SignalKey("M.s", 1), 0, t, y)])) == n
    (info,) = backend.signals()
    assert info["samples"] == n and info["t_first"] == t[0] and info["t_last"] == t[-1]
    gt, gy = backend.history("M.s", T0, T0 + 2)
    assert gt.size == n
    assert np.array_equal(gt, t) and np.array_equal(gy, y)
    assert math.fsum(gy) == math.fsum(y)


def test_raw_copy_writes_the_same_rows(backend: PostgresBackend, dsn: str, schema: str) -> None:
    backend.write(ArchiveBatch(1, [_chunk("Raw.s", 9, 0, 1)]))  # the signal row, id 1
    t = T0 + 10 + np.arange(1000) * 0.5
    y = np.linspace(-1, 1, 1000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert raw_copy(conn, schema, 1, 9, 1, t, y) == 1000
        seqs = conn.execute(sql.SQL("SELECT min(seq), max(seq), min(epoch) FROM {}.samples "
                                    "WHERE t >= %s").format(sql.Identifier(schema)),
                            (T0 + 10,)).fetchone()
    assert seqs == (1, 1000, 9)
    gt, gy = backend.history("Raw.s", T0 + 10, math.inf)
    assert np.array_equal(gt, t) and np.array_equal(gy, y)


# -- concurrency and failures ------------------------------------------------------------------
def _wait_for_lock_waiters(conn: psycopg.Connection, relation: str, want: int) -> list[int]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
            (relation,))]
        if len(pids) >= want:
            return pids
        time.sleep(0.02)
    raise AssertionError(f"no {want} waiters on {relation}")


def test_two_writers_never_make_two_rows_of_one_name(dsn: str, schema: str) -> None:
    writers = [PostgresBackend(dsn, schema) for _ in range(2)]
    try:
        for w in writers:
            w.connect()
        with _admin(dsn) as admin, ThreadPoolExecutor(2) as pool:
            with admin.transaction():
                # hold the signals lock, so both writers find the name missing and queue up
                admin.execute(sql.SQL("LOCK TABLE {}.signals IN SHARE ROW EXCLUSIVE MODE")
                              .format(sql.Identifier(schema)))
                futures = [pool.submit(w.write, ArchiveBatch(i, [_chunk("New.s", i, 0, 10)]))
                           for i, w in enumerate(writers)]
                _wait_for_lock_waiters(admin, f"{schema}.signals", 2)
            assert [f.result(timeout=30) for f in futures] == [10, 10]
    finally:
        for w in writers:
            w.close()
    assert _counts(dsn, schema)["signals"] == 1
    b = PostgresBackend(dsn, schema)
    try:
        assert b.signals()[0]["samples"] == 20
        assert b.history("New.s", -math.inf, math.inf)[0].size == 20
    finally:
        b.close()


def test_a_write_cut_off_midway_leaves_nothing_and_the_next_one_reconnects(
        backend: PostgresBackend, dsn: str, schema: str) -> None:
    batch = ArchiveBatch(1, [_chunk("Cut.s", 1, 0, 5000)], [Event(T0, "e").to_dict()],
                         [Gap(SignalKey("Cut.s", 1), 5000, 1, T0, T0 + 6)])
    with _admin(dsn) as admin, ThreadPoolExecutor(1) as pool:
        with admin.transaction():
            admin.execute(sql.SQL("LOCK TABLE {}.samples IN ACCESS EXCLUSIVE MODE")
                          .format(sql.Identifier(schema)))
            future = pool.submit(backend.write, batch)
            (pid,) = _wait_for_lock_waiters(admin, f"{schema}.samples", 1)
            # the writer has registered the signal and waits in its COPY: kill its session
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(ArchiveUnavailable):
                future.result(timeout=30)
    assert _counts(dsn, schema) == dict.fromkeys(TABLES, 0)
    assert backend.write(batch) == 5000
    assert _counts(dsn, schema) == {"signals": 1, "samples": 5000, "ledger": 1, "events": 1,
                                    "gaps": 1, "snapshots": 0}
    t, _ = backend.history("Cut.s", -math.inf, math.inf)  # no stale signal id was kept
    assert t.size == 5000


def test_a_batch_the_database_refuses_is_rolled_back_whole(
        backend: PostgresBackend, dsn: str, schema: str) -> None:
    # a gap count beyond bigint: the server refuses the last statement of the transaction
    bad = ArchiveBatch(1, [_chunk("Bad.s", 1, 0, 10)], [Event(T0, "e").to_dict()],
                       [Gap(SignalKey("Bad.s", 1), 10, 2**70, T0, T0)])
    with pytest.raises(ArchiveError) as err:
        backend.write(bad)
    assert not isinstance(err.value, ArchiveUnavailable)  # retrying would not help
    assert _counts(dsn, schema) == dict.fromkeys(TABLES, 0)
    # the same connection goes on, and no id of the rolled-back signal row is remembered
    assert backend.write(ArchiveBatch(2, [_chunk("Bad.s", 1, 0, 10)])) == 10
    assert _counts(dsn, schema)["signals"] == 1
    assert backend.signals()[0]["samples"] == 10
    assert backend.history("Bad.s", -math.inf, math.inf)[0].size == 10


def test_an_unreachable_server_raises_unavailable_promptly() -> None:
    b = PostgresBackend(f"postgresql://postgres@127.0.0.1:{free_port()}/test", connect_timeout=2)
    start = time.monotonic()
    try:
        with pytest.raises(ArchiveUnavailable):
            b.connect()
        with pytest.raises(ArchiveUnavailable):
            b.write(ArchiveBatch(1, [_chunk("U.s", 1, 0, 10)]))
        with pytest.raises(ArchiveUnavailable):
            b.resume_points()
        with pytest.raises(ArchiveUnavailable):
            b.history("U.s", 0, 1)
    finally:
        b.close()
    assert time.monotonic() - start < 5


# -- a real outage: a server of our own, stopped and started -------------------------------------
@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    if find_bindir() is None:
        _unavailable("no PostgreSQL server binaries (initdb, pg_ctl) to start a cluster")
    stack = contextlib.ExitStack()
    try:
        pg = stack.enter_context(pg_cluster())
    except ClusterError as exc:
        _unavailable(f"cannot start a throw-away PostgreSQL cluster: {exc}")
    pids: set[int] = set()
    try:
        with stack:
            yield pg
            pids.add(pg.pid or 0)
    finally:
        assert not pg.root.exists(), "the cluster folder was left behind"
        for pid in pids - {0}:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def _outage_batch(number: int, n: int = 10_000) -> ArchiveBatch:
    k = SignalKey("Out.a", 7)
    return ArchiveBatch(number, [_chunk("Out.a", 7, number * n, n), _chunk("Out.b", 7, number * n, n)],
                        [Event(T0 + number, f"batch {number}").to_dict()],
                        [Gap(k, 10**9 + number, 1, T0, T0)])


def test_outage_stop_and_start_of_a_real_server(cluster: PgCluster) -> None:
    b = PostgresBackend(cluster.dsn, connect_timeout=2)
    try:
        b.connect()
        for i in range(3):
            assert b.write(_outage_batch(i)) == 20_000
        cluster.stop("fast")
        start = time.monotonic()
        with pytest.raises(ArchiveUnavailable):
            b.write(_outage_batch(3))
        with pytest.raises(ArchiveUnavailable):  # the reconnect is refused as promptly
            b.resume_points()
        assert time.monotonic() - start < 5
        cluster.start()
        assert b.write(_outage_batch(3)) == 20_000  # reconnects by itself
        assert b.write(_outage_batch(2)) == 0       # a replay after the outage
        # a crash: what was committed survives recovery
        cluster.stop("immediate")
        with pytest.raises(ArchiveUnavailable):
            b.write(_outage_batch(4))
        cluster.start()
        assert b.write(_outage_batch(4)) == 20_000
        assert b.write(_outage_batch(4)) == 0
        sigs = {s["name"]: s["samples"] for s in b.signals()}
        assert sigs == {"Out.a": 50_000, "Out.b": 50_000}
        assert b.resume_points()[("Out.b", 7)] == 50_000
        t, y = b.history("Out.a", -math.inf, math.inf)
        want = [_chunk("Out.a", 7, i * 10_000, 10_000) for i in range(5)]
        assert np.array_equal(t, np.concatenate([c.t for c in want]))
        assert np.array_equal(y, np.concatenate([c.y for c in want]))
        assert len(b.events(-math.inf, math.inf)) == 5
    finally:
        b.close()


def test_cluster_helper_refuses_unknown_stop_modes(cluster: PgCluster) -> None:
    with pytest.raises(ValueError):
        cluster.stop("gently")
    assert cluster.is_running
    with psycopg.connect(cluster.dsn, connect_timeout=3) as conn:
        assert conn.execute("SELECT current_setting('listen_addresses')").fetchone()[0] == "127.0.0.1"


# -- TimescaleDB -----------------------------------------------------------------------------------
def _timescale_offered(dsn: str) -> bool:
    with _admin(dsn) as conn:
        return conn.execute("SELECT 1 FROM pg_available_extensions "
                            "WHERE name = 'timescaledb'").fetchone() is not None


def test_timescale_hypertable_round_trip(dsn: str, schema: str) -> None:
    if not _timescale_offered(dsn):
        pytest.skip("the server does not offer the timescaledb extension")
    b = PostgresBackend(dsn, schema, timescale=True)
    try:
        b.connect()
        assert b.hypertable
        c = _chunk("Ts.s", 1, 0, 10_000, t0=T0, dt=20.0)  # spans a few 1-day chunks
        assert b.write(ArchiveBatch(1, [c])) == 10_000
        assert b.write(ArchiveBatch(1, [c])) == 0
        t, y = b.history("Ts.s", -math.inf, math.inf)
        assert np.array_equal(t, c.t) and np.array_equal(y, c.y)
        assert b.delete_before(T0 + 86_400) == int(np.sum(c.t < T0 + 86_400))
    finally:
        b.close()


def test_timescale_required_but_not_offered_is_an_error(dsn: str, schema: str) -> None:
    if _timescale_offered(dsn):
        pytest.skip("the server offers timescaledb")
    b = PostgresBackend(dsn, schema, timescale=True)
    try:
        with pytest.raises(ArchiveError, match="hypertable"):
            b.connect()
    finally:
        b.close()
    b = PostgresBackend(dsn, schema, timescale=False)
    try:
        b.connect()
        assert not b.hypertable
    finally:
        b.close()



def test_snapshots_round_trip_once_count_for_resume_and_an_older_schema_gets_the_table(
        backend: PostgresBackend, dsn: str, schema: str) -> None:
    key = SignalKey("Scope.Trace", 7, "V")
    x = np.arange(1000, dtype=np.float64)
    batch = ArchiveBatch(1, snapshots=[Snapshot(key, 0, T0, x, np.sin(x)), Snapshot(key, 1000, T0 + 1, x, np.cos(x))])
    assert backend.write(batch) == 0 and backend.write(batch) == 0  # no samples; a replay adds nothing
    got = backend.snapshots("Scope.Trace", T0 - 1, T0 + 2, limit=10)
    assert [g["time"] for g in got] == [T0 + 1, T0] and np.array_equal(got[0]["y"], np.cos(x))
    assert backend.resume_points() == {("Scope.Trace", 7): 2000}
    backend.delete_before(T0 + 0.5)
    assert [g["time"] for g in backend.snapshots("Scope.Trace", 0, math.inf, limit=10)] == [T0 + 1]
    backend.close()
    with _admin(dsn) as conn:  # an archive from before snapshots were archived
        conn.execute(sql.SQL("DROP TABLE {}.snapshots").format(sql.Identifier(schema)))
    older = PostgresBackend(dsn, schema)
    try:
        older.connect()
        assert older.snapshots("Scope.Trace", 0, math.inf) == []
    finally:
        older.close()
