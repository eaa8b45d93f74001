"""The DuckDB archive backend: round trips, idempotent replays, reads, refusals.

Every database is a file in ``tmp_path``; no processes (kill -9 in the middle of writes is
in tests/integration/test_archive_duck_crash.py).
"""

from __future__ import annotations

import math
import resource
import signal
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, Gap, SignalKey, event_key
from rtoc.frontends.archive.duck import (
    COLUMNS,
    DuckBackend,
    create_tables,
    raw_insert,
    samples_table,
)

from rtoc.errors import ArchiveError, ArchiveUnavailable, QueryRefused

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from duck_checks import check_consistent, chunk, count  # noqa: E402

NOW = 1_700_000_000.0


def key(name: str = "Dev.A", epoch: int = 1, unit: str = "") -> SignalKey:
    return SignalKey(name, epoch, unit)


@pytest.fixture
def backend(tmp_path: Path):
    b = DuckBackend(tmp_path / "archive" / "rtoc.duckdb", clock=lambda: NOW)
    b.connect()
    yield b
    b.close()


# -- writing and reading back ------------------------------------------------------------------
def test_round_trip_is_exact_for_every_float64(backend: DuckBackend):
    y = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, -1.7976931348623157e308,
                  1 / 3, np.pi, 1e-300, 123456789.123456789])
    t = 1.7e9 + np.arange(y.size) * 1e-6
    assert backend.write(ArchiveBatch(1, [Chunk(key(), 0, t, y)])) == y.size
    t2, y2 = backend.history("Dev.A", -math.inf, math.inf)
    assert t2.dtype == y2.dtype == np.float64
    assert t2.view(np.int64).tolist() == t.view(np.int64).tolist()
    assert y2.view(np.int64).tolist() == y.view(np.int64).tolist()  # NaN bits and -0.0 too


def test_many_signals_and_epochs(backend: DuckBackend):
    chunks = [chunk(key(f"Dev{d}.S{s}", epoch, "V"), 0, 100 + s, t0=epoch * 1000.0)
              for d in range(3) for s in range(7) for epoch in (1, 2, 3)]
    assert backend.write(ArchiveBatch(1, chunks)) == sum(c.n for c in chunks)
    listed = {s["name"]: s for s in backend.signals()}
    assert len(listed) == 21
    assert listed["Dev2.S6"] == {"name": "Dev2.S6", "device": "Dev2", "unit": "V",
                                 "created": NOW, "samples": 3 * 106, "t_first": 1000.0,
                                 "t_last": 3105.0}
    t, _ = backend.history("Dev1.S3", -math.inf, math.inf)
    assert t.size == 3 * 103 and np.all(np.diff(t) > 0)
    assert len(backend.resume_points()) == 63
    check_consistent(backend)


def test_replay_is_idempotent_also_after_reopening(backend: DuckBackend, tmp_path: Path):
    ev = {"time": 5.0, "text": "hi", "device": "Dev", "priority": 1}
    gap = Gap(key(), 100, 10, 99.0, 110.0)
    batch = ArchiveBatch(7, [chunk(key(), 0, 100), chunk(key("Dev.B", 2), 50, 30)], [ev], [gap])
    assert backend.write(batch) == 130
    assert backend.write(batch) == 0
    again = DuckBackend(backend.path)
    backend.close()
    again.connect()
    try:
        assert again.write(batch) == 0
        assert [count(again, t) for t in ("samples", "ledger", "events", "gaps", "signals")] \
            == [130, 2, 1, 1, 2]
        check_consistent(again)
    finally:
        again.close()


def test_replay_writes_only_what_lies_beyond_each_rings_archived_end(backend: DuckBackend):
    """A ring's samples are written in seq order, so what lies below its archived end is
    there: a replay writes nothing, an overlapping chunk only its new part."""
    backend.write(ArchiveBatch(1, [chunk(key(), 0, 100)]))
    mixed = ArchiveBatch(3, [chunk(key(), 0, 100), chunk(key(), 50, 150),
                             chunk(key("Dev.New"), 0, 5)])
    assert backend.write(mixed) == 105
    assert backend.write(mixed) == 0
    t, _ = backend.history("Dev.A", -math.inf, math.inf)
    assert t.tolist() == list(map(float, range(200)))
    check_consistent(backend)


def test_a_second_backend_on_the_file_does_not_duplicate(backend: DuckBackend):
    """Not how RTOC runs (one archiver), but nothing is cached that could go stale."""
    other = DuckBackend(backend.path)  # the same process shares DuckDB's database
    other.connect()
    try:
        batch = ArchiveBatch(1, [chunk(key(), 0, 10), chunk(key("Dev.B"), 0, 4)])
        assert other.write(batch) == 14
        assert backend.write(batch) == 0
        assert backend.write(ArchiveBatch(2, [chunk(key("Dev.B"), 4, 4)])) == 4
        assert [s["samples"] for s in other.signals()] == [10, 8]
        assert count(other, "signals") == 2
    finally:
        other.close()


def test_duplicate_chunks_in_one_batch_are_written_once(backend: DuckBackend):
    c = chunk(key(), 0, 10)
    assert backend.write(ArchiveBatch(1, [c, c])) == 10
    check_consistent(backend)


def test_resume_points_end_at_the_last_chunk_or_gap(backend: DuckBackend):
    assert backend.resume_points() == {}
    backend.write(ArchiveBatch(1, [chunk(key(), 0, 100), chunk(key(epoch=2), 0, 7)]))
    backend.write(ArchiveBatch(2, [chunk(key(), 100, 50)],
                               gaps=[Gap(key("Dev.B", 9), 0, 40, math.nan, 3.0)]))
    assert backend.resume_points() == {("Dev.A", 1): 150, ("Dev.A", 2): 7, ("Dev.B", 9): 40}
    backend.write(ArchiveBatch(3, gaps=[Gap(key(), 150, 25, 149.0, 175.0)]))
    assert backend.resume_points()[("Dev.A", 1)] == 175


def test_history_is_inclusive_ordered_and_spans_epochs(backend: DuckBackend):
    backend.write(ArchiveBatch(1, [chunk(key(epoch=2), 0, 10, t0=10.0),
                                   chunk(key(epoch=1), 0, 10, t0=0.0)]))
    backend.write(ArchiveBatch(2, [chunk(key(epoch=3), 0, 3, t0=19.0)]))  # t 19 twice
    t, y = backend.history("Dev.A", 5.0, 19.0)
    assert t.tolist() == [5.0, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 19]
    assert y[-2] == chunk(key(), 0, 10).y[9]  # epoch 2 before epoch 3 at the same t
    assert backend.history("Dev.A", 7.5, 7.5)[0].size == 0
    assert backend.history("Dev.A", 8.0, 8.0)[0].tolist() == [8.0]
    assert backend.history("Dev.A", 9.0, 1.0)[0].size == 0
    t, y = backend.history("No.Such", -math.inf, math.inf)
    assert t.size == y.size == 0 and t.dtype == np.float64


def _buckets_reference(t, y, t_from, t_to, width):
    keep = (t >= t_from) & (t <= t_to)
    t, y = t[keep], y[keep]
    start = np.floor(t / width) * width
    out = {k: [] for k in ("start", "mean", "min", "max", "count", "n")}
    for s in np.unique(start):
        v = y[start == s]
        ok = v[~np.isnan(v)]
        out["start"].append(s)
        out["n"].append(v.size)
        out["count"].append(ok.size)
        for k, f in (("mean", np.mean), ("min", np.min), ("max", np.max)):
            out[k].append(f(ok) if ok.size else np.nan)
    return out


def test_buckets_match_a_numpy_reference(backend: DuckBackend):
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(-50, 150, 5000))
    y = rng.standard_normal(5000) * 1e3
    y[rng.random(5000) < 0.1] = np.nan
    y[(t > 20) & (t < 23)] = np.nan  # whole all-NaN buckets
    y[7] = np.inf
    half = 2500
    backend.write(ArchiveBatch(1, [Chunk(key(epoch=1), 0, t[:half], y[:half]),
                                   Chunk(key(epoch=2), 0, t[half:], y[half:])]))
    for t_from, t_to, width in ((-math.inf, math.inf, 2.5), (-10.0, 99.0, 7.0), (0.0, 1.0, 60.0)):
        got = backend.buckets("Dev.A", t_from, t_to, width)
        want = _buckets_reference(t, y, t_from, t_to, width)
        assert got["start"].tolist() == want["start"]
        assert got["count"].dtype == np.int64
        assert got["count"].tolist() == want["count"] and got["n"].tolist() == want["n"]
        for k in ("min", "max"):
            np.testing.assert_array_equal(got[k], want[k])
        np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-12, equal_nan=True)
    assert 0 in backend.buckets("Dev.A", 20.0, 23.0, 1.0)["count"]
    with pytest.raises(ArchiveError):
        backend.buckets("Dev.A", 0, 1, 0.0)
    assert backend.buckets("No.Such", 0, 1, 1.0)["start"].size == 0


def test_events_keep_their_values_and_are_deduplicated(backend: DuckBackend):
    events = [
        {"time": 3.0, "text": "none", "device": "Dev", "signal": "A", "priority": 2,
         "id": "x", "value": None, "extra": {}},
        {"time": 1.0, "text": "str", "value": "open", "extra": {"by": "rule 3"}},
        {"time": 2.0, "text": "float", "value": 2.5},
        {"time": 2.0, "text": "numpy", "value": np.float64(-1e300), "note": "kept in extra"},
    ]
    backend.write(ArchiveBatch(1, events=events + [dict(events[0])]))
    backend.write(ArchiveBatch(2, events=[{**events[1], "value": "changed"}]))  # same key
    got = backend.events(-math.inf, math.inf)
    assert [e["text"] for e in got] == ["str", "float", "numpy", "none"]
    assert [e["value"] for e in got] == ["open", 2.5, -1e300, None]
    assert got[0]["extra"] == {"by": "rule 3"} and got[2]["extra"] == {"note": "kept in extra"}
    assert got[3] == {"time": 3.0, "device": "Dev", "signal": "A", "priority": 2, "id": "x",
                      "text": "none", "value": None, "extra": {}}
    assert [e["text"] for e in backend.events(2.0, 3.0, limit=2)] == ["float", "numpy"]
    keys = {k for (k,) in backend.query("SELECT key FROM events")[1]}
    assert keys == {event_key(e) for e in events}


def test_gaps_are_recorded_once(backend: DuckBackend):
    gap = Gap(key(unit="K"), 10, 5, 9.5, 15.5)
    backend.write(ArchiveBatch(1, gaps=[gap, Gap(key(), 0, 0, 0.0, 0.0)]))
    backend.write(ArchiveBatch(2, gaps=[gap]))
    _, rows = backend.query("SELECT signal, epoch, first_seq, count, t_from, t_to, noted FROM gaps")
    assert rows == [[1, 1, 10, 5, 9.5, 15.5, NOW]]
    assert backend.signals()[0]["unit"] == "K"


def test_delete_before_removes_old_rows(backend: DuckBackend):
    backend.write(ArchiveBatch(1, [chunk(key(), 0, 100), chunk(key(), 100, 100)],
                               [{"time": 50.0}, {"time": 150.0}],
                               [Gap(key("Dev.B"), 0, 5, 10.0, 20.0)]))
    assert backend.delete_before(150.0) == 150
    assert backend.history("Dev.A", -math.inf, math.inf)[0][0] == 150.0
    assert [e["time"] for e in backend.events(-math.inf, math.inf)] == [150.0]
    assert count(backend, "gaps") == 0
    assert count(backend, "ledger") == 1  # the chunk 100..199 straddles 150: kept
    assert backend.delete_before(1e9) == 50 and backend.delete_before(1e9) == 0


def test_signals_listing(backend: DuckBackend):
    backend.write(ArchiveBatch(1, [chunk(key("Dev.A", unit="V"), 0, 5, t0=2.0),
                                   Chunk(key("Pump.Flow", 3, "l/min"), 0, np.empty(0),
                                         np.empty(0))]))
    got = backend.signals()
    assert got[0] == {"name": "Dev.A", "device": "Dev", "unit": "V", "created": NOW,
                      "samples": 5, "t_first": 2.0, "t_last": 6.0}
    assert got[1]["name"] == "Pump.Flow" and got[1]["samples"] == 0
    assert math.isnan(got[1]["t_first"]) and math.isnan(got[1]["t_last"])


def test_empty_chunks_and_batches(backend: DuckBackend):
    empty = Chunk(key(), 0, np.empty(0), np.empty(0))
    assert backend.write(ArchiveBatch(1, [empty])) == 0
    assert backend.write(ArchiveBatch(2)) == 0
    assert count(backend, "ledger") == 0 and count(backend, "signals") == 1
    assert backend.resume_points() == {}
    assert backend.write(ArchiveBatch(3, [empty, chunk(key(), 0, 3)])) == 3
    check_consistent(backend)


def test_a_million_samples_in_one_batch(backend: DuckBackend):
    chunks = [chunk(key(f"Big.S{i}", 5), 10_000, 250_000, t0=1.7e9, dt=1e-6, seed=i)
              for i in range(4)]
    assert backend.write(ArchiveBatch(1, chunks)) == 1_000_000
    t, y = backend.history("Big.S2", -math.inf, math.inf)
    assert np.array_equal(t, chunks[2].t) and np.array_equal(y, chunks[2].y)
    _, rows = backend.query("SELECT min(seq), max(seq), count(*) FROM samples WHERE signal = 3")
    assert rows == [[10_000, 259_999, 250_000]]
    check_consistent(backend)


def test_a_bad_chunk_writes_nothing(backend: DuckBackend):
    bad = Chunk(key(), 0, np.arange(3.0), np.arange(2.0))
    with pytest.raises(ArchiveError) as info:
        backend.write(ArchiveBatch(1, [chunk(key("Dev.B"), 0, 5), bad]))
    assert not isinstance(info.value, ArchiveUnavailable)
    assert count(backend, "samples") == count(backend, "signals") == 0


# -- the Arrow helpers -------------------------------------------------------------------------
@pytest.mark.parametrize("rows_per_batch", [1, 4, 1 << 20])
def test_samples_table_columns(rows_per_batch: int):
    chunks = [Chunk(key(epoch=9), 5, np.array([1.0, 2, 3]), np.array([4.0, 5, 6])),
              Chunk(key("Dev.B", 8), 100, np.array([7.0, 8]), np.array([9.0, 10])),
              Chunk(key("Dev.C", 1), 0, np.empty(0), np.empty(0))]
    table = samples_table(chunks, [7, 3, 1], rows_per_batch)
    assert table.schema.names == [c for c, _ in COLUMNS["samples"]]
    assert table.to_pydict() == {"signal": [7, 7, 7, 3, 3], "epoch": [9, 9, 9, 8, 8],
                                 "seq": [5, 6, 7, 100, 101], "t": [1.0, 2, 3, 7, 8],
                                 "y": [4.0, 5, 6, 9, 10]}


def test_raw_insert(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "raw.duckdb"))
    try:
        create_tables(con)
        n = raw_insert(con, ArchiveBatch(1, [chunk(key(), 0, 10), chunk(key("Dev.B"), 3, 5)]))
        assert n == 15
        assert con.execute("SELECT signal, count(*), min(seq) FROM samples GROUP BY ALL "
                           "ORDER BY 1").fetchall() == [(0, 10, 0), (1, 5, 3)]
    finally:
        con.close()


def test_an_old_schema_is_refused_not_migrated(tmp_path: Path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE samples (signal INTEGER, t DOUBLE, y DOUBLE)")
    con.close()
    with pytest.raises(ArchiveError, match="samples") as info:
        DuckBackend(path).connect()
    assert not isinstance(info.value, ArchiveUnavailable)


# -- unavailable databases ---------------------------------------------------------------------
def test_an_unwritable_location_is_unavailable(tmp_path: Path):
    (tmp_path / "file").write_text("not a folder")
    b = DuckBackend(tmp_path / "file" / "sub" / "rtoc.duckdb")
    with pytest.raises(ArchiveUnavailable):
        b.connect()
    with pytest.raises(ArchiveUnavailable):  # write connects first
        b.write(ArchiveBatch(1, [chunk(key(), 0, 3)]))


class _FileSizeLimit:
    """RLIMIT_FSIZE for this process (root ignores read-only folders, not this): writes
    beyond ``limit`` bytes fail with EFBIG, as on a full disk."""

    def __init__(self, limit: int):
        self.limit = limit

    def __enter__(self):
        self.old = resource.getrlimit(resource.RLIMIT_FSIZE)
        self.handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.old[1]))

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_FSIZE, self.old)
        signal.signal(signal.SIGXFSZ, self.handler)


@pytest.mark.parametrize("n", [1000, 300_000], ids=["wal-at-commit", "rows-to-the-file"])
def test_a_full_disk_is_unavailable_and_rolled_back(backend: DuckBackend, n: int):
    backend.write(ArchiveBatch(1, [chunk(key(), 0, 1000)], [{"time": 1.0}]))
    batch = ArchiveBatch(2, [chunk(key(), 1000, n), chunk(key("Dev.New"), 0, n)],
                         [{"time": 2.0}], [Gap(key(), 1000 + n, 5, 0.0, 1.0)])
    with _FileSizeLimit(4096), pytest.raises(ArchiveUnavailable):
        backend.write(batch)
    assert count(backend, "samples") == 1000  # reconnected; nothing of batch 2 is there
    assert count(backend, "events") == 1 and count(backend, "signals") == 1
    assert backend.write(batch) == 2 * n  # the caller's retry
    check_consistent(backend)
    assert count(backend, "events") == 2 and count(backend, "gaps") == 1


# -- power-user queries ------------------------------------------------------------------------
ALLOWED = [
    "SELECT count(*) FROM samples",
    "WITH x AS (SELECT 1 AS a) SELECT * FROM x, signals",
    "FROM ledger", "VALUES (1, 'a')", "DESCRIBE samples", "SHOW TABLES", "SUMMARIZE samples",
    "PRAGMA table_info('samples')", "SELECT * FROM pragma_table_info('events')",
    "EXPLAIN SELECT * FROM samples", "EXPLAIN ANALYZE SELECT count(*) FROM samples",
    "SELECT * FROM information_schema.columns", "SELECT * FROM duckdb_tables()",
    "SELECT * FROM range(3) UNION ALL SELECT 7", "SELECT histogram(y) FROM samples",
]


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """One archive for the read-only query tests (which check that it stays unchanged)."""
    b = DuckBackend(tmp_path_factory.mktemp("query") / "rtoc.duckdb")
    b.connect()
    b.write(ArchiveBatch(1, [chunk(key(), 0, 10)]))
    yield b
    b.close()


@pytest.mark.parametrize("sql", ALLOWED)
def test_query_reads(filled: DuckBackend, sql: str):
    columns, rows = filled.query(sql)
    assert columns and isinstance(rows, list)


def test_query_values_rows_and_limit(filled: DuckBackend):
    columns, rows = filled.query("SELECT range AS i, i * 0.5 AS h FROM range(100)", limit=3)
    assert columns == ["i", "h"] and rows == [[0, 0.0], [1, 0.5], [2, 1.0]]
    _, rows = filled.query("SELECT DATE '2024-02-29', 1.25::DECIMAL(5, 2), [1, 2], "
                           "{'a': NULL}, 'x'::BLOB, NULL, 2::HUGEINT ** 70, 2::HUGEINT << 70")
    assert rows == [["2024-02-29", 1.25, [1, 2], {"a": None}, b"x", None, 2.0 ** 70,
                     str(2 ** 71)]]


REFUSED = [
    "INSERT INTO samples VALUES (1, 1, 1, 1, 1)", "DELETE FROM samples",
    "UPDATE ledger SET count = 0", "DROP TABLE samples", "CREATE TABLE x (a INT)",
    "ALTER TABLE samples ADD COLUMN z INT", "TRUNCATE samples",
    "WITH d AS (DELETE FROM samples RETURNING *) SELECT count(*) FROM d",
    "COPY samples TO '{out}'", "COPY (SELECT 1) TO '{out}' (FORMAT parquet)",
    "EXPORT DATABASE '{dir}'", "ATTACH '{out}' AS other", "DETACH other", "USE other",
    "INSTALL httpfs", "LOAD parquet", "SET threads = 1", "RESET threads", "CALL checkpoint()",
    "CHECKPOINT", "VACUUM", "BEGIN", "COMMIT", "PRAGMA enable_profiling",
    "PRAGMA profiling_output = '{out}'", "EXPLAIN ANALYZE COPY samples TO '{out}'",
    "EXPLAIN ANALYZE DELETE FROM samples", "SELECT 1; DELETE FROM samples",
    "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_text('/etc/hostname')", "SELECT * FROM glob('/*')",
    "SELECT * FROM query('SELECT 1')", "SELECT * FROM query_table('samples')",
    "SELECT * FROM checkpoint()", "SELECT * FROM duckdb_secrets()",
    "SELECT (SELECT count(*) FROM read_parquet('{out}'))", "SUMMARIZE SELECT * FROM '{out}'",
    "SELECT * FROM (WITH \"{out}\" AS (SELECT 1) SELECT 1), \"{out}\"",  # CTE out of scope
    "SELECT nextval('s')", "SELECT setseed(0.5)", "PREPARE p AS SELECT 1", "", "  ;  ",
    "CREATE MACRO m() AS 1", "SET VARIABLE v = 1",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_query_refuses_what_could_write_or_read_files(filled: DuckBackend, tmp_path: Path,
                                                      sql: str):
    out, folder = tmp_path / "out.csv", tmp_path / "export"
    with pytest.raises(QueryRefused):
        filled.query(sql.format(out=out, dir=folder))
    assert not out.exists() and not folder.exists()
    assert count(filled, "samples") == 10 and count(filled, "ledger") == 1


def test_query_interrupted_after_timeout(backend: DuckBackend):
    t0 = time.monotonic()
    with pytest.raises(ArchiveError, match="interrupted"):
        backend.query("SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b",
                      timeout=0.2)
    assert time.monotonic() - t0 < 5
    assert backend.write(ArchiveBatch(1, [chunk(key(), 0, 3)])) == 3  # still usable


def test_query_errors_are_archive_errors(backend: DuckBackend):
    with pytest.raises(ArchiveError, match="nope"):
        backend.query("SELECT nope FROM samples")


@pytest.mark.parametrize("sql", [
    "SELECT bin FROM histogram_values('{secret}', a)",
    "SELECT * FROM histogram('{secret}', a)",
    "SELECT * FROM histogram_values('{secret}', b, bin_count := 2)",
])
def test_query_refuses_histogram_table_functions_that_read_files(filled: DuckBackend,
                                                                 tmp_path: Path, sql: str):
    secret = tmp_path / "secret.json"
    secret.write_text('[{"a": 1, "b": "password"}]')
    with pytest.raises(QueryRefused, match="histogram"):
        filled.query(sql.format(secret=secret))


def test_the_database_reads_no_file_even_past_the_check(backend: DuckBackend, tmp_path: Path):
    secret = tmp_path / "secret.json"
    secret.write_text('[{"a": 1, "b": "password"}]')
    con = backend._db()  # as if a function slipped through check_statement
    for sql in (f"SELECT bin FROM histogram_values('{secret}', b)",
                f"SELECT * FROM read_text('{secret}')", f"SELECT * FROM '{secret}'"):
        with pytest.raises(duckdb.PermissionException):
            con.execute(sql).fetchall()
    with pytest.raises(duckdb.Error, match="locked"):
        con.execute("SET enable_external_access = true")
    assert backend.write(ArchiveBatch(1, [chunk(key(), 10, 5)])) == 5  # its own writes work


def test_duckdb_memory_and_threads_are_bounded(tmp_path: Path) -> None:
    """DuckDB's own default is 80 % of RAM (the archiver grew to 12 GB in a soak): the
    backend sets [archive] memory_limit / threads, by default 1 GiB or 1/8 of RAM."""
    from rtoc.frontends.archive.duck import default_memory_limit

    assert 64 << 20 <= default_memory_limit() <= 1 << 30
    b = DuckBackend(tmp_path / "a.duckdb", memory_limit=256 << 20, threads=1)
    b.connect()
    try:
        got = dict(b._con.execute("SELECT name, value FROM duckdb_settings() "
                                  "WHERE name IN ('memory_limit', 'threads')").fetchall())
        assert got["threads"] == "1"
        assert got["memory_limit"] in ("256.0 MiB", "268.4 MB", "256MiB"), got
    finally:
        b.close()
    d = DuckBackend(tmp_path / "b.duckdb")
    d.connect()
    try:
        limit = d._con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        assert limit != "" and d.memory_limit == default_memory_limit(), limit
    finally:
        d.close()
