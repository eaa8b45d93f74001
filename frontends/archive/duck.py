"""The DuckDB backend: one file, written only by the archiver process, bulk inserts via Arrow.

* Tables as in ``model.py``, created with ``CREATE TABLE IF NOT EXISTS`` and never altered;
  no primary or unique keys, no constraints, no indexes (DuckDB's known WAL-replay bugs
  after a crash involve those and schema changes). An existing file whose columns differ is
  refused rather than migrated.
* ``write`` is one transaction per batch. All samples of a batch go in through one Arrow
  table (numpy columns concatenated into record batches of about 1 M rows, no per-row
  Python) and one ``INSERT INTO samples SELECT * FROM <registered table>``. Idempotence comes from the
  ledger: a chunk whose ``(signal, epoch, first_seq)`` is there is skipped. The ledger
  rows go in first, ``INSERT ... WHERE NOT EXISTS (...) RETURNING``, which both checks and
  tells which chunks are new (an anti-join costs 2-4 ms with a million ledger rows); no
  cache of ledger ends that a second writer could make stale.
* I/O errors, a full disk, the file lock held by another process, a database DuckDB has
  invalidated: ``ArchiveUnavailable`` (the caller spools and retries). The transaction is
  rolled back and the connection dropped; the next call reopens the file (DuckDB replays
  its WAL then).
* ``query`` runs a power user's SQL read-only; see its docstring for what it refuses.

Event ``value`` and ``extra`` are stored as JSON text (SQL NULL for a ``None`` value), so
``None``, strings and numbers come back as they went in.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from rtoc.frontends.archive.backend import (
    ArchiveBatch,
    Chunk,
    checked_chunks,
    event_from_row,
    event_key,
    event_row,
    minmax_pairs,
    snapshot_bytes,
    snapshot_rows,
    unarchived,
)
from rtoc.frontends.archive.duck_query import check_statement, plain
from rtoc.frontends.archive.rollup import COLUMNS as ROLLUP_COLUMNS
from rtoc.frontends.archive.rollup import WIDTH, rollup

from rtoc.errors import ArchiveError, ArchiveUnavailable
from rtoc.paths import PRIVATE_FILE, make_private_dir

log = logging.getLogger(__name__)

COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "signals": (("id", "INTEGER"), ("device", "VARCHAR"), ("name", "VARCHAR"),
                ("unit", "VARCHAR"), ("created", "DOUBLE")),
    "samples": (("signal", "INTEGER"), ("epoch", "BIGINT"), ("seq", "BIGINT"),
                ("t", "DOUBLE"), ("y", "DOUBLE")),
    "ledger": (("signal", "INTEGER"), ("epoch", "BIGINT"), ("first_seq", "BIGINT"),
               ("count", "BIGINT"), ("t_first", "DOUBLE"), ("t_last", "DOUBLE"),
               ("written", "DOUBLE")),
    "events": (("time", "DOUBLE"), ("device", "VARCHAR"), ("signal", "VARCHAR"),
               ("priority", "INTEGER"), ("id", "VARCHAR"), ("text", "VARCHAR"),
               ("value", "VARCHAR"), ("extra", "VARCHAR"), ("key", "VARCHAR")),
    "gaps": (("signal", "INTEGER"), ("epoch", "BIGINT"), ("first_seq", "BIGINT"),
             ("count", "BIGINT"), ("t_from", "DOUBLE"), ("t_to", "DOUBLE"),
             ("noted", "DOUBLE")),
    # per-second min/max of the samples (rollup.py), for plots of long ranges
    "rollup": (("signal", "INTEGER"), ("k", "BIGINT"), ("n", "BIGINT"), ("t_first", "DOUBLE"),
               ("t_last", "DOUBLE"), ("t_lo", "DOUBLE"), ("y_lo", "DOUBLE"), ("t_hi", "DOUBLE"),
               ("y_hi", "DOUBLE")),
    # what a driver's plot() showed (backend.py): t and y as little-endian float64 bytes
    "snapshots": (("signal", "INTEGER"), ("epoch", "BIGINT"), ("first_seq", "BIGINT"),
                  ("count", "BIGINT"), ("time", "DOUBLE"), ("t", "BLOB"), ("y", "BLOB"),
                  ("written", "DOUBLE")),
}
ROLLUP_BINS = 4.0  # rollup rows a decimation bin spans at least before the rollup answers it
LONG_RANGE = 3600.0  # s: a history span over more is counted from the rollup
_ARROW = {"INTEGER": pa.int32(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(),
          "VARCHAR": pa.string(), "BLOB": pa.binary()}
SCHEMAS = {table: pa.schema([(c, _ARROW[k]) for c, k in cols]) for table, cols in COLUMNS.items()}
# Samples per Arrow record batch: DuckDB inserted 1 M-sample batches fastest from one
# concatenated record batch, 10 M-sample ones from record batches of about 1 M (fewer
# page faults than one huge concatenation); see docs/ARCHITECTURE.md, "Archive".
ROWS_PER_BATCH = 1 << 20

# DuckDB settings of the archiver's database: never download extensions (a query could
# otherwise make the archiver write to ~/.duckdb), never scan Python variables by name.
# External access off: `rtoc query` runs on this database, and a table function the check
# missed cannot read a file (the archive's own file, WAL and temp folder stay allowed);
# locked so that no statement turns it back on.
CONFIG = {"autoinstall_known_extensions": False, "python_enable_replacements": False,
          "enable_external_access": False, "lock_configuration": True}


def default_memory_limit() -> int:
    """1 GiB or an eighth of the machine's memory, whichever is smaller (64 MiB at least)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 << 30
    return max(64 << 20, min(1 << 30, ram // 8))


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables that are missing; ArchiveError when one exists with other columns.
    An archive from before the rollup gets its rollup computed from its samples, once."""
    had = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main'").fetchall()}
    for table, cols in COLUMNS.items():
        body = ", ".join(f"{c} {k}" for c, k in cols)
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
        have = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "AND table_name = ? ORDER BY column_index", [table]).fetchall()
        if tuple(have) != cols:
            raise ArchiveError(f"{table}: the file has columns {have}, expected {list(cols)}; "
                               "it was written by another version (not migrated)")
    if "samples" in had and "rollup" not in had:
        log.info("archive: computing the per-second rollup of the samples already archived")
        con.execute(f"""INSERT INTO rollup SELECT signal, floor(t / {WIDTH!r})::BIGINT AS k, count(*),
            min(t), max(t),
            coalesce(arg_min(t, y) FILTER (WHERE NOT isnan(y)), min(t)),
            coalesce(min(y) FILTER (WHERE NOT isnan(y)), 'NaN'),
            coalesce(arg_max(t, y) FILTER (WHERE NOT isnan(y)), min(t)),
            coalesce(max(y) FILTER (WHERE NOT isnan(y)), 'NaN')
            FROM samples WHERE isfinite(t) GROUP BY signal, k""")


def samples_table(chunks: list[Chunk], ids: Iterable[int],
                  rows_per_batch: int = ROWS_PER_BATCH) -> pa.Table:
    """One Arrow table (``signal`` int32, ``epoch`` int64, ``seq`` int64, ``t``, ``y``
    float64) of all samples of ``chunks``; ``ids[i]`` is the signal id of ``chunks[i]``.

    Consecutive chunks are concatenated (numpy, no per-row Python) into record batches of
    about ``rows_per_batch`` rows; a chunk that fills a record batch alone keeps its ``t``
    and ``y`` buffers (zero-copy)."""
    ids = list(ids)
    batches: list[pa.RecordBatch] = []
    start = rows = 0
    for i, c in enumerate(chunks):
        rows += c.n
        if rows >= rows_per_batch or i == len(chunks) - 1:
            batches.append(_record_batch(chunks[start:i + 1], ids[start:i + 1]))
            start, rows = i + 1, 0
    return pa.Table.from_batches(batches, schema=SCHEMAS["samples"])


def rollup_table(chunks: list[tuple[int, Chunk]]) -> pa.Table:
    """The rollup rows (rollup.py) of ``(signal id, chunk)`` pairs, one Arrow table."""
    parts = [(sig, rollup(c.t, c.y)) for sig, c in chunks]
    cols = {"signal": np.concatenate([np.full(len(r["k"]), sig, np.int32) for sig, r in parts])}
    for name in ROLLUP_COLUMNS:
        cols[name] = np.concatenate([r[name] for _, r in parts])
    return pa.table(cols, schema=SCHEMAS["rollup"])


def _record_batch(chunks: list[Chunk], ids: list[int]) -> pa.RecordBatch:
    ns = np.fromiter((c.n for c in chunks), np.int64, len(chunks))
    offsets = np.cumsum(ns) - ns
    firsts = np.fromiter((c.first_seq for c in chunks), np.int64, len(chunks))
    epochs = np.fromiter((c.key.epoch for c in chunks), np.int64, len(chunks))
    if len(chunks) == 1:
        t, y = chunks[0].t, chunks[0].y
    else:
        t, y = np.concatenate([c.t for c in chunks]), np.concatenate([c.y for c in chunks])
    columns = [
        np.repeat(np.array(ids, np.int32), ns),
        np.repeat(epochs, ns),
        np.repeat(firsts - offsets, ns),
        np.ascontiguousarray(t, np.float64),
        np.ascontiguousarray(y, np.float64),
    ]
    columns[2] += np.arange(columns[2].size, dtype=np.int64)  # seq = first_seq + i
    return pa.RecordBatch.from_arrays([pa.array(c) for c in columns], schema=SCHEMAS["samples"])


def raw_insert(con: duckdb.DuckDBPyConnection, batch: ArchiveBatch) -> int:
    """The bulk rate to compare ``DuckBackend.write`` with: the batch's samples straight
    into ``samples`` (signal id = chunk index), one Arrow table, one INSERT, one commit; no
    signals, ledger, events or dedup; the tables must exist (``create_tables``). Returns the
    samples inserted."""
    table = samples_table(batch.chunks, range(len(batch.chunks)))
    con.begin()
    try:
        _insert(con, "samples", table)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return table.num_rows


def _insert(con: duckdb.DuckDBPyConnection, into: str, table: pa.Table,
            where: str = "") -> list[tuple]:
    """``INSERT INTO into SELECT * FROM table AS b <where>``; the rows of a RETURNING."""
    name = f"_rtoc_{into}"
    con.register(name, table)
    try:
        res = con.execute(f"INSERT INTO {into} SELECT * FROM {name} AS b {where}")
        return res.fetchall() if "RETURNING" in where else []
    finally:  # quietly: after a failed INSERT the aborted transaction refuses it too
        _quietly(lambda: con.unregister(name))


class DuckBackend:
    """The archive in one DuckDB file at ``path`` (its folder is created). ``clock`` gives
    unix seconds for the ``created``/``written``/``noted`` columns."""

    name = "duckdb"

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time,
                 memory_limit: int = 0, threads: int = 0):
        self.path = Path(path)
        self.clock = clock
        # DuckDB's default is 80 % of RAM: the archiver grew 589 MB -> 12 GB in a 15-minute
        # soak at 1 MS/s (issue 13 F); on a Raspberry Pi that is the OOM killer
        self.memory_limit = memory_limit or default_memory_limit()
        self.threads = threads or min(2, os.cpu_count() or 1)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._ids: dict[str, int] = {}  # signal name -> id (rows are never changed)

    # -- connection ----------------------------------------------------------------------
    def connect(self) -> None:
        if self._con is not None:
            return
        try:
            make_private_dir(self.path.parent)
            con = duckdb.connect(str(self.path), config={
                **CONFIG, "memory_limit": f"{self.memory_limit >> 20}MiB", "threads": self.threads})
        except (duckdb.Error, OSError) as exc:
            raise _failure(exc, f"cannot open {self.path}") from exc
        try:
            _private(self.path)
            con.begin()
            create_tables(con)
            con.commit()
            self._ids = dict(con.execute("SELECT name, id FROM signals").fetchall())
        except BaseException as exc:
            _quietly(con.close)
            if isinstance(exc, duckdb.Error | OSError):
                raise _failure(exc, f"cannot open {self.path}") from exc
            raise
        self._con = con

    def close(self) -> None:
        con, self._con = self._con, None
        if con is None:
            return
        try:
            con.execute("CHECKPOINT")
        except duckdb.Error as exc:  # the WAL keeps the data; the next open replays it
            log.warning("archive: checkpoint of %s failed: %s", self.path, exc)
        _quietly(con.close)

    def _db(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self.connect()
        assert self._con is not None
        return self._con

    def _fail(self, exc: BaseException, what: str) -> BaseException:
        """Roll back; drop the connection when the database is unavailable (reopened by
        the next call). Returns the exception to raise."""
        con = self._con
        if con is not None:
            _quietly(con.rollback)
        if not isinstance(exc, duckdb.Error | OSError):
            return exc
        err = _failure(exc, what)
        if isinstance(err, ArchiveUnavailable) and con is not None:
            self._con = None
            _quietly(con.close)
        return err

    # -- writing -------------------------------------------------------------------------
    def write(self, batch: ArchiveBatch) -> int:
        chunks = checked_chunks(batch.chunks)
        con = self._db()
        try:
            con.begin()
            ids, new_ids = self._register(con, batch)
            written = self._write_samples(con, chunks, ids)
            self._write_events(con, batch.events)
            self._write_gaps(con, batch, ids)
            self._write_snapshots(con, batch, ids)
            con.commit()
        except BaseException as exc:
            err = self._fail(exc, f"writing batch {batch.number}")
            if err is exc:
                raise
            raise err from exc
        self._ids.update(new_ids)
        return written

    def _register(self, con, batch: ArchiveBatch) -> tuple[dict[str, int], dict[str, int]]:
        """Signal ids of every name in the batch; new names get rows (id = max + 1)."""
        keys = {c.key.name: c.key for c in batch.chunks}
        for g in [*batch.gaps, *batch.snapshots]:
            keys.setdefault(g.key.name, g.key)
        missing = [k for k in keys if k not in self._ids]
        if not missing:
            return self._ids, {}
        new = dict(con.execute("SELECT name, min(id) FROM signals WHERE list_contains(?, name) "
                               "GROUP BY name", [missing]).fetchall())
        missing = [k for k in missing if k not in new]
        if missing:
            ((top,),) = con.execute("SELECT coalesce(max(id), 0) FROM signals").fetchall()
            now = self.clock()
            rows = [(i, keys[n].device, n, keys[n].unit, now)
                    for i, n in enumerate(missing, start=top + 1)]
            _insert(con, "signals", _rows_table("signals", rows))
            new.update((n, r[0]) for n, r in zip(missing, rows, strict=True))
        return {**self._ids, **new}, new

    def _write_samples(self, con, chunks: list[Chunk], ids: dict[str, int]) -> int:
        """Ledger rows for the chunks the ledger lacks (one INSERT ... WHERE NOT EXISTS
        ... RETURNING tells which), then their samples in one Arrow INSERT."""
        chunks = [c for c in chunks if c.n]
        if not chunks:
            return 0
        rings = sorted({(ids[c.key.name], c.key.epoch) for c in chunks})
        ends = {(sig, epoch): end for sig, epoch, end in con.execute(
            "SELECT signal, epoch, max(first_seq + count) FROM ledger WHERE list_contains(?, signal) "
            "GROUP BY signal, epoch", [sorted({r[0] for r in rings})]).fetchall()}
        chunks = unarchived(chunks, ids, ends)  # what lies below a ring's archived end is there
        if not chunks:
            return 0
        sig = [ids[c.key.name] for c in chunks]
        now = self.clock()
        # fmin/fmax skip NaN times (NaN only when all are)
        ledger = [(s, c.key.epoch, c.first_seq, c.n, float(np.fmin.reduce(c.t)),
                   float(np.fmax.reduce(c.t)), now) for s, c in zip(sig, chunks, strict=True)]
        new = set(_insert(con, "ledger", _rows_table("ledger", ledger), (
            "WHERE NOT EXISTS (SELECT 1 FROM ledger l WHERE l.signal = b.signal AND "
            "l.epoch = b.epoch AND l.first_seq = b.first_seq) RETURNING signal, epoch, first_seq")))
        todo = [(s, c) for s, c in zip(sig, chunks, strict=True)
                if (s, c.key.epoch, c.first_seq) in new]
        if not todo:
            return 0
        table = samples_table([c for _, c in todo], [s for s, _ in todo])
        _insert(con, "samples", table)
        _insert(con, "rollup", rollup_table(todo))
        return table.num_rows

    def _write_events(self, con, events: list[dict]) -> None:
        rows: dict[str, tuple] = {}
        for ev in events:
            key = event_key(ev)
            if key not in rows:
                rows[key] = (*event_row(ev), key)
        if not rows:
            return
        times = [r[0] for r in rows.values()]
        near = ""
        if all(isinstance(x, int | float) and math.isfinite(x) for x in times):
            # keys are hashes of the time too, so a stored duplicate has the same time:
            # the range lets DuckDB skip row groups of older events
            near = f"AND e.time BETWEEN {float(min(times))!r} AND {float(max(times))!r}"
        _insert(con, "events", _rows_table("events", list(rows.values())),
                f"WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.key = b.key {near})")

    def _write_gaps(self, con, batch: ArchiveBatch, ids: dict[str, int]) -> None:
        now = self.clock()
        rows = {(ids[g.key.name], g.key.epoch, g.first_seq):
                (g.count, float(g.t_from), float(g.t_to)) for g in batch.gaps if g.count > 0}
        if rows:
            table = _rows_table("gaps", [(*k, *v, now) for k, v in rows.items()])
            _insert(con, "gaps", table, "WHERE NOT EXISTS (SELECT 1 FROM gaps g WHERE "
                    "g.signal = b.signal AND g.epoch = b.epoch AND g.first_seq = b.first_seq)")

    def _write_snapshots(self, con, batch: ArchiveBatch, ids: dict[str, int]) -> None:
        rows = {(ids[s.key.name], s.key.epoch, s.first_seq, s.n): s for s in batch.snapshots}
        if rows:
            now = self.clock()
            table = _rows_table("snapshots", [(*k, float(s.time), snapshot_bytes(s.t), snapshot_bytes(s.y), now)
                                              for k, s in rows.items()])
            _insert(con, "snapshots", table, "WHERE NOT EXISTS (SELECT 1 FROM snapshots x WHERE "
                    "x.signal = b.signal AND x.epoch = b.epoch AND x.first_seq = b.first_seq "
                    "AND x.count = b.count)")

    # -- reading -------------------------------------------------------------------------
    def _read(self, what: str, sql: str, params: list | None = None) -> duckdb.DuckDBPyConnection:
        con = self._db()
        try:
            return con.execute(sql, params or [])
        except duckdb.Error as exc:
            raise self._fail(exc, what) from exc

    def resume_points(self) -> dict[tuple[str, int], int]:
        """``(name, epoch) -> next seq``: the end of the last chunk or recorded gap (lost
        samples are not worth waiting for either)."""
        rows = self._read("resume points", """
            SELECT s.name, x.epoch, max(x.e) FROM (
                SELECT signal, epoch, first_seq + count AS e FROM ledger
                UNION ALL SELECT signal, epoch, first_seq + count FROM gaps
                UNION ALL SELECT signal, epoch, first_seq + count FROM snapshots) x
            JOIN signals s ON s.id = x.signal GROUP BY ALL""").fetchall()
        return {(name, int(epoch)): int(end) for name, epoch, end in rows}

    def signals(self) -> list[dict[str, Any]]:
        """Every signal with ``samples`` (from the ledger), ``t_first``/``t_last`` (NaN when
        it has none), ordered by name."""
        rows = self._read("signals", """
            SELECT s.name, s.device, s.unit, s.created, coalesce(sum(l.count), 0),
                   coalesce(min(l.t_first), 'NaN'), coalesce(max(l.t_last), 'NaN')
            FROM signals s LEFT JOIN ledger l ON l.signal = s.id
            GROUP BY ALL ORDER BY s.name""").fetchall()
        keys = ("name", "device", "unit", "created", "samples", "t_first", "t_last")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def _id(self, name: str) -> int | None:
        if name not in self._ids:
            rows = self._read("signal id", "SELECT id FROM signals WHERE name = ?",
                              [name]).fetchall()
            return rows[0][0] if rows else None
        return self._ids[name]

    def history(self, name: str, t_from: float, t_to: float) -> tuple[np.ndarray, np.ndarray]:
        """Samples of ``name`` (every epoch) with ``t_from <= t <= t_to``, ordered by t (equal
        times in the order they were written): ``t``, ``y`` float64[n]. An unknown name
        gives empty arrays.

        Rows come in insertion order (DuckDB's ``preserve_insertion_order``), which is time
        order unless a clock went back; numpy checks that and sorts (stable) only then:
        10 M samples in about 0.1 s, where ``ORDER BY t`` took 0.36 s."""
        sid = self._id(name)
        if sid is None:
            return np.empty(0), np.empty(0)
        res = self._read("history", "SELECT t, y FROM samples WHERE signal = ? AND t >= ? AND "
                         "t <= ?", [sid, t_from, t_to]).fetchnumpy()
        t = np.ascontiguousarray(res["t"], np.float64)
        y = np.ascontiguousarray(res["y"], np.float64)
        if t.size > 1 and not np.all(t[1:] >= t[:-1]):
            order = np.argsort(t, kind="stable")
            t, y = t[order], y[order]
        return t, y

    def history_span(self, name: str, t_from: float, t_to: float) -> tuple[int, float, float]:
        """(samples, first t, last t) of ``name`` with ``t_from <= t <= t_to``; (0, NaN, NaN)
        when there are none. One aggregate: no row leaves the database."""
        sid = self._id(name)
        if sid is None:
            return 0, math.nan, math.nan
        if t_to - t_from > LONG_RANGE:  # counted from the rollup: exact but at both ends
            n, lo, hi = self._read("history span", "SELECT coalesce(sum(n), 0), min(t_first), "
                                   "max(t_last) FROM rollup WHERE signal = ? AND t_last >= ? AND "
                                   "t_first <= ?", [sid, t_from, t_to]).fetchone()
            lo, hi = (None if lo is None else max(lo, t_from)), (None if hi is None else min(hi, t_to))
        else:
            n, lo, hi = self._read("history span", "SELECT count(*), min(t), max(t) FROM samples "
                                   "WHERE signal = ? AND t >= ? AND t <= ?",
                                   [sid, t_from, t_to]).fetchone()
        return int(n), (math.nan if lo is None else lo), (math.nan if hi is None else hi)

    def history_minmax(self, name: str, t_from: float, t_to: float, bins: int, lo: float,
                       hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Min/max decimation in the database: ``bins`` equal time intervals over
        ``lo..hi`` (the span's first and last t); per interval the sample of the least and
        of the greatest y (NaN never wins; an interval of NaN only gives one NaN), ordered
        by t: ``t``, ``y`` float64[<= 2 * bins]. The archiver holds ``bins`` rows, never
        the range (20 M samples: flat memory)."""
        sid = self._id(name)
        if sid is None:
            return np.empty(0), np.empty(0)
        scale = bins / (hi - lo) if hi > lo else 0.0
        if hi - lo >= bins * ROLLUP_BINS * WIDTH:  # a day in 2000 bins: 86 k rollup rows, not 86 M
            return self._minmax_rollup(sid, t_from, t_to, bins, lo, scale)
        res = self._read("history", """
            SELECT least(floor((t - $lo) * $scale), $last)::BIGINT AS k,
                   coalesce(arg_min(t, y) FILTER (WHERE NOT isnan(y)), min(t)) AS t_lo,
                   coalesce(min(y) FILTER (WHERE NOT isnan(y)), 'NaN') AS y_lo,
                   coalesce(arg_max(t, y) FILTER (WHERE NOT isnan(y)), min(t)) AS t_hi,
                   coalesce(max(y) FILTER (WHERE NOT isnan(y)), 'NaN') AS y_hi
            FROM samples WHERE signal = $sid AND t >= $a AND t <= $b
            GROUP BY k ORDER BY k""",
            {"lo": lo, "scale": scale, "last": bins - 1, "sid": sid, "a": t_from,
             "b": t_to}).fetchnumpy()
        return minmax_pairs(*(np.ascontiguousarray(res[k], np.float64)
                              for k in ("t_lo", "y_lo", "t_hi", "y_hi")))

    def _minmax_rollup(self, sid: int, t_from: float, t_to: float, bins: int, lo: float,
                       scale: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`history_minmax` from the per-second rollup (each bin spans at least
        ``ROLLUP_BINS`` of its rows); points outside ``t_from .. t_to`` are left out."""
        res = self._read("history", """
            SELECT least(floor((r.t_lo - $lo) * $scale), $last)::BIGINT AS bin,
                   coalesce(arg_min(r.t_lo, r.y_lo) FILTER (WHERE NOT isnan(r.y_lo)), min(r.t_lo)) AS lo_t,
                   coalesce(min(r.y_lo) FILTER (WHERE NOT isnan(r.y_lo)), 'NaN') AS lo_y,
                   coalesce(arg_max(r.t_hi, r.y_hi) FILTER (WHERE NOT isnan(r.y_hi)), min(r.t_hi)) AS hi_t,
                   coalesce(max(r.y_hi) FILTER (WHERE NOT isnan(r.y_hi)), 'NaN') AS hi_y
            FROM rollup r WHERE r.signal = $sid AND r.t_last >= $a AND r.t_first <= $b
              AND r.t_lo >= $a AND r.t_lo <= $b AND r.t_hi >= $a AND r.t_hi <= $b
            GROUP BY bin ORDER BY bin""",
            {"lo": lo, "scale": scale, "last": bins - 1, "sid": sid, "a": t_from,
             "b": t_to}).fetchnumpy()
        return minmax_pairs(*(np.ascontiguousarray(res[k], np.float64)
                              for k in ("lo_t", "lo_y", "hi_t", "hi_y")))

    def buckets(self, name: str, t_from: float, t_to: float, width: float) -> dict[str, np.ndarray]:
        """Fixed intervals ``start = floor(t / width) * width`` over the samples with
        ``t_from <= t <= t_to``: ``mean``, ``min``, ``max`` over the non-NaN y (NaN if none),
        ``count`` of non-NaN y and ``n`` of all samples (int64), ordered by ``start``; as the
        engine's resampler, an all-NaN interval is a row with count 0."""
        if not (math.isfinite(width) and width > 0):
            raise ArchiveError(f"bucket width must be a positive number, got {width!r}")
        sid = self._id(name)
        keys = ("start", "mean", "min", "max", "count", "n")
        if sid is None:
            return {k: np.empty(0, np.int64 if k in ("count", "n") else np.float64) for k in keys}
        ok = "FILTER (WHERE NOT isnan(y))"
        res = self._read("buckets", f"""
            SELECT floor(t / $w) * $w AS start, coalesce(avg(y) {ok}, 'NaN') AS mean,
                   coalesce(min(y) {ok}, 'NaN') AS min, coalesce(max(y) {ok}, 'NaN') AS max,
                   count(*) {ok} AS count, count(*) AS n
            FROM samples WHERE signal = $sid AND t >= $a AND t <= $b
            GROUP BY start ORDER BY start""",
            {"w": float(width), "sid": sid, "a": t_from, "b": t_to}).fetchnumpy()
        return {k: np.ascontiguousarray(res[k], np.int64 if k in ("count", "n") else np.float64)
                for k in keys}

    def events(self, t_from: float, t_to: float, limit: int = 10_000) -> list[dict[str, Any]]:
        """Archived events (``Event.to_dict()`` maps) with ``t_from <= time <= t_to``,
        ordered by time, at most ``limit``."""
        rows = self._read("events", "SELECT time, device, signal, priority, id, text, value, "
                          "extra FROM events WHERE time >= ? AND time <= ? ORDER BY time "
                          "LIMIT ?", [t_from, t_to, max(0, int(limit))]).fetchall()
        return [event_from_row(r) for r in rows]

    def snapshots(self, name: str, t_from: float, t_to: float, limit: int = 10) -> list[dict[str, Any]]:
        """The snapshots of ``name`` shown in ``t_from .. t_to``, newest first, at most
        ``limit``: ``{time, first_seq, count, t, y}`` (``t``/``y`` float64 arrays)."""
        rows = self._read("snapshots", """
            SELECT x.time, x.first_seq, x.count, x.t, x.y FROM snapshots x JOIN signals s ON s.id = x.signal
            WHERE s.name = ? AND x.time >= ? AND x.time <= ?
            ORDER BY x.time DESC, x.count DESC LIMIT ?""", [name, t_from, t_to, max(0, int(limit))])
        return snapshot_rows(iter(rows.fetchone, None))  # row by row: stops at the byte cap

    def delete_before(self, t: float) -> int:
        """Retention: samples with ``t`` below, events with ``time`` below, gaps and ledger
        rows that end below ``t``; one transaction. Returns the samples removed. A chunk
        that straddles ``t`` keeps its ledger row (its later samples are still there)."""
        con = self._db()
        try:
            con.begin()
            ((removed,),) = con.execute("DELETE FROM samples WHERE t < ?", [t]).fetchall()
            con.execute("DELETE FROM events WHERE time < ?", [t])
            con.execute("DELETE FROM gaps WHERE t_to < ?", [t])
            con.execute("DELETE FROM ledger WHERE t_last < ?", [t])
            con.execute("DELETE FROM rollup WHERE t_last < ?", [t])
            con.execute("DELETE FROM snapshots WHERE time < ?", [t])
            con.commit()
        except BaseException as exc:
            err = self._fail(exc, "retention")
            if err is exc:
                raise
            raise err from exc
        return int(removed)

    # -- power users ---------------------------------------------------------------------
    def query(self, sql: str, limit: int = 10_000,
              timeout: float = 30.0) -> tuple[list[str], list[list[Any]]]:
        """Run ``sql`` read-only (``rtoc query``): column names and at most ``limit`` rows of
        plain values (decimals as float; dates, uuids ... as text); QueryRefused for what
        could change the database or touch files, ArchiveError for a bad query.

        Accepted: ONE statement that is a SELECT (also WITH, VALUES, FROM-first, DESCRIBE,
        SHOW, SUMMARIZE), EXPLAIN of such a SELECT (EXPLAIN ANALYZE runs it, so it is checked
        the same), or PRAGMA table_info/show/storage_info/database_size/version/
        database_list/show_tables/metadata_info. Refused: every other statement (INSERT,
        UPDATE, DELETE, CREATE, DROP, ALTER, COPY, EXPORT, ATTACH, DETACH, USE, INSTALL,
        LOAD, SET, CALL, CHECKPOINT, VACUUM, transactions, other PRAGMAs); in a SELECT, a
        data-modifying CTE (``WITH x AS (DELETE ... RETURNING ...)``), a table function not
        on the allow-list (read_csv/parquet/json/text/blob, glob, query, query_table,
        checkpoint, duckdb_secrets ... files or SQL strings we cannot check), a table name
        that is neither a table or view of the database nor a CTE (DuckDB would read it as a
        file), and side-effect functions (nextval, setval, setseed, write_log, sleep_ms).
        The statement also runs in a transaction that is always rolled back, and is
        interrupted after ``timeout`` seconds (the archiver does not write meanwhile)."""
        con = self._db()
        cur = con.cursor()
        try:
            text = check_statement(cur, sql)
            cur.begin()
            timer = threading.Timer(timeout, cur.interrupt)
            timer.start()
            try:
                res = cur.execute(text)
                columns = [d[0] for d in res.description or []]
                rows = res.fetchmany(max(0, int(limit))) if columns else []
            finally:
                timer.cancel()
                _quietly(cur.abort)
                _quietly(cur.rollback)
        except duckdb.InterruptException as exc:
            raise ArchiveError(f"query: interrupted after {timeout} s") from exc
        except (duckdb.IOException, duckdb.FatalException) as exc:
            raise self._fail(exc, "query") from exc
        except duckdb.Error as exc:
            raise ArchiveError(f"query: {exc}") from exc
        finally:
            _quietly(cur.close)
        return columns, [[plain(v) for v in r] for r in rows]


# -- helpers ---------------------------------------------------------------------------------
def _private(path: Path) -> None:
    """Make the archive readable by this user only: DuckDB creates it 0644 (older archives
    too); a file someone else owns is left as it is."""
    try:
        os.chmod(path, PRIVATE_FILE)
    except PermissionError as exc:
        log.warning("archive: cannot make %s private: %s", path, exc)


_UNAVAILABLE_TEXT = ("could not set lock", "locked", "no space", "read-only", "invalidated",
                     "connection already closed", "database is closed", "failed to commit",
                     "could not write", "could not read", "file too large")


def _failure(exc: BaseException, what: str) -> ArchiveError:
    """ArchiveUnavailable for what a retry may cure (I/O, full disk, lock, a failed commit,
    an invalidated or closed database, memory, a DuckDB internal error), ArchiveError for
    the rest (a bug, bad data)."""
    text = str(exc)
    low = text.lower()
    if isinstance(exc, OSError | duckdb.IOException | duckdb.FatalException | duckdb.InternalException
                  | duckdb.ConnectionException | duckdb.OutOfMemoryException) or any(
            s in low for s in _UNAVAILABLE_TEXT):
        return ArchiveUnavailable(f"{what}: {text}")
    return ArchiveError(f"{what}: {text}")


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except (duckdb.Error, OSError, RuntimeError):
        pass


def _rows_table(table: str, rows: list[tuple]) -> pa.Table:
    schema = SCHEMAS[table]
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(cols, schema, strict=True)],
                                schema=schema)
