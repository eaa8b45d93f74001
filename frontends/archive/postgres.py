"""The PostgreSQL backend: samples in by binary COPY, out as float64 arrays.

* Tables as in ``model.py`` in one schema (``rtoc`` unless configured), created when
  missing and never altered; no primary or unique keys. Indexes: ``samples(signal, t)``
  (history, buckets), ``ledger(signal, epoch, first_seq)`` (the replay check, resume
  points), ``gaps(signal, epoch, first_seq)``, ``events(time)``, ``events(key)``,
  ``signals(name)``. ``signals.id`` is an identity column; a name gets its row inside the
  write transaction, under a table lock taken only when a name is new, so two writers never
  make two rows of one name.
* ``write`` is one transaction per batch: new signal rows; the ledger look-up of the batch's
  chunk keys (one query); the remaining samples through ONE ``COPY ... FROM STDIN (FORMAT
  BINARY)`` fed from a reusable numpy structured buffer of big-endian fields (``SampleRows``:
  no per-row Python); then ledger, events (skipped when their ``key`` exists) and gaps
  (skipped when their ``(signal, epoch, first_seq)`` exists), each one ``INSERT ... SELECT
  FROM unnest(arrays)``.
* ``history`` and ``buckets`` fetch one row of ``array_agg`` columns in binary and turn each
  array into numpy with one ``frombuffer`` (``Float8ArrayLoader``): 0.25-0.3 s per 1 M
  samples here, against 0.5-0.65 s for COPY TO binary (psycopg hands out one COPY message
  per row) and 0.6-0.9 s for ``fetchall`` (a Python float per value). History pages by 4 M
  samples so the server never builds a huge array. It is ordered by ``t`` alone, which the
  ``(signal, t)`` index gives for free; equal times come in the order they were written
  (seq order within a ring). ``ORDER BY t, epoch, seq`` made the planner sort: 0.5 s
  instead of 0.06 s for the 1 M rows.
* Connection loss, a stopped or starting server, a full disk (every psycopg
  ``OperationalError``), a closed connection, a read-only server: ``ArchiveUnavailable``,
  and the connection is dropped (the next call reconnects). Other database errors (a bug,
  data PostgreSQL refuses) are ``ArchiveError``. ``connect_timeout`` and TCP keepalives /
  ``tcp_user_timeout`` bound how long a call can hang on a dead server.
* TimescaleDB, when ``timescale`` is not False and the server offers it: a new ``samples``
  table becomes a hypertable on ``t`` through an IMMUTABLE ``to_timestamp`` partitioning
  function (1-day chunks); ``t`` must then be finite (``to_timestamp(NaN)`` is an error).
  Untested here (the test server has no TimescaleDB).

Event ``value`` and ``extra`` are JSON text (SQL NULL for a ``None`` value), as in the
DuckDB backend.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
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
from rtoc.frontends.archive.pg_binary import SampleRows, copy_samples, register_loaders

from rtoc.errors import ArchiveError, ArchiveUnavailable

log = logging.getLogger(__name__)

COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "signals": (("id", "integer"), ("device", "text"), ("name", "text"), ("unit", "text"),
                ("created", "double precision")),
    "samples": (("signal", "integer"), ("epoch", "bigint"), ("seq", "bigint"),
                ("t", "double precision"), ("y", "double precision")),
    "ledger": (("signal", "integer"), ("epoch", "bigint"), ("first_seq", "bigint"),
               ("count", "bigint"), ("t_first", "double precision"),
               ("t_last", "double precision"), ("written", "double precision")),
    "events": (("time", "double precision"), ("device", "text"), ("signal", "text"),
               ("priority", "integer"), ("id", "text"), ("text", "text"), ("value", "text"),
               ("extra", "text"), ("key", "text")),
    "gaps": (("signal", "integer"), ("epoch", "bigint"), ("first_seq", "bigint"),
             ("count", "bigint"), ("t_from", "double precision"), ("t_to", "double precision"),
             ("noted", "double precision")),
    "snapshots": (("signal", "integer"), ("epoch", "bigint"), ("first_seq", "bigint"),
                  ("count", "bigint"), ("time", "double precision"), ("t", "bytea"), ("y", "bytea"),
                  ("written", "double precision")),
}
INDEXES: dict[str, tuple[str, str]] = {  # name -> (table, columns)
    "signals_name": ("signals", "name"),
    "samples_signal_t": ("samples", "signal, t"),
    "ledger_signal_epoch_seq": ("ledger", "signal, epoch, first_seq"),
    "gaps_signal_epoch_seq": ("gaps", "signal, epoch, first_seq"),
    "snapshots_signal_time": ("snapshots", "signal, time"),
    "events_time": ("events", "time"),
    "events_key": ("events", "key"),
}
HISTORY_PAGE = 1 << 22          # samples per history query at most (2 x 32 MiB of arrays)
CONNECT_DEFAULTS = {            # unless the DSN says otherwise
    "application_name": "rtoc-archive",
    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ms: a write to a vanished server fails instead of hanging
}

# -- the backend -------------------------------------------------------------------------------
class PostgresBackend:
    """The archive in schema ``schema`` of the database at ``dsn`` (a libpq URL or key=value
    string). ``connect_timeout`` (s, at least 2 for libpq) applies unless the DSN sets it.
    ``timescale``: None uses TimescaleDB when the server offers it, True requires it, False
    never. ``clock`` gives unix seconds for ``created``/``written``/``noted``."""

    name = "postgres"

    def __init__(self, dsn: str, schema: str = "rtoc", *, connect_timeout: float = 5.0,
                 timescale: bool | None = None, clock: Callable[[], float] = time.time):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
            raise ArchiveError(f"postgres schema name {schema!r}: letters, digits and _ only")
        self.dsn, self.schema = dsn, schema
        self.connect_timeout = connect_timeout
        self.timescale = timescale
        self.clock = clock
        self.hypertable = False      # samples is a TimescaleDB hypertable (set by connect)
        self._conn: psycopg.Connection | None = None
        self._ids: dict[str, int] = {}   # signal name -> id, as committed
        self._rows: SampleRows | None = None
        self._sql: dict[str, sql.Composed] = {}
        self.history_page = HISTORY_PAGE

    # -- connection ----------------------------------------------------------------------
    def connect(self) -> None:
        """Open the connection (when not open) and create what is missing of the schema."""
        with self._guard("connect"):
            self._connection()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        params: dict[str, Any] = dict(CONNECT_DEFAULTS)
        params["connect_timeout"] = max(2, math.ceil(self.connect_timeout))
        params.update(conninfo_to_dict(self.dsn))
        conn = psycopg.connect(autocommit=True, **params)
        try:
            register_loaders(conn)
            self._create_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._ids.clear()  # the schema may have been recreated meanwhile
        self._conn = conn
        log.info("archive: connected to PostgreSQL %s, schema %s%s", conn.info.server_version,
                 self.schema, " (TimescaleDB hypertable)" if self.hypertable else "")
        return conn

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """psycopg errors as ArchiveUnavailable (the server is away: drop the connection) or
        ArchiveError (anything else)."""
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError,
                psycopg.errors.ReadOnlySqlTransaction) as exc:
            self.close()
            raise ArchiveUnavailable(f"postgres {what}: {_one_line(exc)}") from exc
        except psycopg.Error as exc:
            raise ArchiveError(f"postgres {what}: {_one_line(exc)}") from exc

    def _q(self, text: str) -> sql.Composed:
        """``text`` with ``{s}`` as the quoted schema name (cached)."""
        q = self._sql.get(text)
        if q is None:
            q = self._sql[text] = sql.SQL(text).format(s=sql.Identifier(self.schema))
        return q

    def _create_schema(self, conn: psycopg.Connection) -> None:
        if self._missing(conn):
            with conn.transaction(), conn.cursor() as cur:
                # concurrent first connects would otherwise race on CREATE ... IF NOT EXISTS
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                            (f"rtoc.archive:{self.schema}",))
                missing = self._missing(conn)
                cur.execute(self._q("CREATE SCHEMA IF NOT EXISTS {s}"))
                for table, cols in COLUMNS.items():
                    if table not in missing:
                        continue
                    body = ", ".join(f"{c} {k}" for c, k in cols)
                    if table == "signals":
                        body = body.replace("id integer", "id integer GENERATED BY DEFAULT AS IDENTITY")
                    cur.execute(self._q(f"CREATE TABLE {{s}}.{table} ({body})"))
                    if table == "samples" and self.timescale is not False:
                        self._make_hypertable(conn)
                self._check_columns(conn)
                for index, (table, cols) in INDEXES.items():
                    if index in missing:
                        cur.execute(self._q(f"CREATE INDEX {index} ON {{s}}.{table} ({cols})"))
        else:
            self._check_columns(conn)
        if not self.hypertable and self.timescale is not False:
            self.hypertable = self._is_hypertable(conn)
        if self.timescale and not self.hypertable:
            raise ArchiveError(f"postgres: {self.schema}.samples is not a TimescaleDB "
                               "hypertable (timescale = true)")

    def _missing(self, conn: psycopg.Connection) -> set[str]:
        rows = conn.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON "
                            "n.oid = c.relnamespace WHERE n.nspname = %s", (self.schema,))
        return (set(COLUMNS) | set(INDEXES)) - {r[0] for r in rows}

    def _check_columns(self, conn: psycopg.Connection) -> None:
        found: dict[str, list[tuple[str, str]]] = {}
        for table, col, kind in conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s ORDER BY table_name, ordinal_position", (self.schema,)):
            found.setdefault(table, []).append((col, kind))
        for table, cols in COLUMNS.items():
            have = tuple(found.get(table, ()))
            if have != cols:
                raise ArchiveError(f"postgres: {self.schema}.{table} has columns {list(have)}, "
                                   f"expected {list(cols)} (not migrated)")

    def _make_hypertable(self, conn: psycopg.Connection) -> None:
        """``samples`` as a hypertable on ``t`` (float unix seconds) through a partitioning
        function to timestamptz, in a savepoint: without TimescaleDB (or the right to create
        it) it stays a plain table, unless ``timescale`` is True."""
        offered = conn.execute("SELECT 1 FROM pg_available_extensions "
                               "WHERE name = 'timescaledb'").fetchone()
        if not offered:
            return
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                conn.execute(self._q(
                    "CREATE OR REPLACE FUNCTION {s}.unix_to_timestamptz(t double precision) "
                    "RETURNS timestamptz LANGUAGE SQL IMMUTABLE PARALLEL SAFE STRICT "
                    "AS 'SELECT to_timestamp(t)'"))
                conn.execute(
                    "SELECT create_hypertable(%s::regclass, 't', "
                    "chunk_time_interval => INTERVAL '1 day', "
                    "time_partitioning_func => %s::regproc, create_default_indexes => false)",
                    (f"{self.schema}.samples", f"{self.schema}.unix_to_timestamptz"))
        except psycopg.Error as exc:
            if self.timescale:
                raise
            log.warning("archive: TimescaleDB is offered but %s.samples stays a plain table: %s",
                        self.schema, _one_line(exc))
            return
        self.hypertable = True

    def _is_hypertable(self, conn: psycopg.Connection) -> bool:
        if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
            return False
        row = conn.execute("SELECT 1 FROM timescaledb_information.hypertables WHERE "
                           "hypertable_schema = %s AND hypertable_name = 'samples'",
                           (self.schema,)).fetchone()
        return row is not None

    # -- writing -------------------------------------------------------------------------
    def write(self, batch: ArchiveBatch) -> int:
        chunks = checked_chunks(batch.chunks)
        with self._guard(f"writing batch {batch.number}"):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                ids, new = self._register(cur, batch)
                todo = self._unarchived(cur, chunks, ids)
                written = self._write_samples(cur, todo, ids)
                self._write_events(cur, batch.events)
                self._write_gaps(cur, batch, ids)
                self._write_snapshots(cur, batch, ids)
        self._ids.update(new)  # only what was committed
        return written

    def _register(self, cur: psycopg.Cursor, batch: ArchiveBatch
                  ) -> tuple[dict[str, int], dict[str, int]]:
        """Signal ids of every name in the batch (rows for new names)."""
        keys = {c.key.name: c.key for c in batch.chunks}
        for g in [*batch.gaps, *batch.snapshots]:
            keys.setdefault(g.key.name, g.key)
        missing = [n for n in keys if n not in self._ids]
        new: dict[str, int] = {}
        if missing:
            find = self._q("SELECT name, min(id) FROM {s}.signals WHERE name = ANY(%s) GROUP BY name")
            new = dict(cur.execute(find, (missing,)).fetchall())
            if len(new) < len(missing):
                # a writer elsewhere may be adding the same names: the lock serialises that
                # (SHARE ROW EXCLUSIVE conflicts with itself and with INSERT, not with reads)
                cur.execute(self._q("LOCK TABLE {s}.signals IN SHARE ROW EXCLUSIVE MODE"))
                new = dict(cur.execute(find, (missing,)).fetchall())
                add = [n for n in missing if n not in new]
                now = self.clock()
                cur.execute(self._q(
                    "INSERT INTO {s}.signals (device, name, unit, created) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[]) "
                    "RETURNING name, id"),
                    ([keys[n].device for n in add], add, [keys[n].unit for n in add],
                     [now] * len(add)))
                new.update(cur.fetchall())
        return {**self._ids, **new}, new

    def _unarchived(self, cur: psycopg.Cursor, chunks: list[Chunk], ids: dict[str, int]
                    ) -> list[Chunk]:
        """The parts of the chunks beyond each ring's archived end (model.unarchived); a
        chunk of 0 samples gets no ledger row."""
        chunks = [c for c in chunks if c.n]
        if not chunks:
            return []
        rings = sorted({(ids[c.key.name], c.key.epoch) for c in chunks})
        cur.execute(self._q(
            "SELECT k.signal, k.epoch, (SELECT max(l.first_seq + l.count) FROM {s}.ledger l "
            "WHERE l.signal = k.signal AND l.epoch = k.epoch) "
            "FROM unnest(%s::int4[], %s::int8[]) AS k(signal, epoch)"),
            ([r[0] for r in rings], [r[1] for r in rings]))
        ends = {(sig, epoch): end for sig, epoch, end in cur.fetchall() if end is not None}
        return unarchived(chunks, ids, ends)

    def _write_samples(self, cur: psycopg.Cursor, chunks: list[Chunk], ids: dict[str, int]
                       ) -> int:
        if not chunks:
            return 0
        if self._rows is None:
            self._rows = SampleRows()
        sig = [ids[c.key.name] for c in chunks]
        copy_samples(cur, self.schema, self._rows,
                     ((s, c.key.epoch, c.first_seq, c.t, c.y) for s, c in zip(sig, chunks, strict=True)))
        now = self.clock()
        cur.execute(self._q(
            "INSERT INTO {s}.ledger SELECT * FROM unnest(%s::int4[], %s::int8[], %s::int8[], "
            "%s::int8[], %s::float8[], %s::float8[], %s::float8[])"),
            (sig, [c.key.epoch for c in chunks], [c.first_seq for c in chunks],
             [c.n for c in chunks], [float(np.fmin.reduce(c.t)) for c in chunks],
             [float(np.fmax.reduce(c.t)) for c in chunks], [now] * len(chunks)))
        return sum(c.n for c in chunks)

    def _write_events(self, cur: psycopg.Cursor, events: list[dict]) -> None:
        rows: dict[str, tuple] = {}
        for ev in events:
            key = event_key(ev)
            if key not in rows:
                rows[key] = (*event_row(ev), key)
        if not rows:
            return
        cols = [list(c) for c in zip(*rows.values(), strict=True)]
        cur.execute(self._q(
            "INSERT INTO {s}.events SELECT * FROM unnest(%s::float8[], %s::text[], %s::text[], "
            "%s::int4[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "AS e(time, device, signal, priority, id, text, value, extra, key) "
            "WHERE NOT EXISTS (SELECT 1 FROM {s}.events x WHERE x.key = e.key)"), cols)

    def _write_gaps(self, cur: psycopg.Cursor, batch: ArchiveBatch, ids: dict[str, int]) -> None:
        rows = {(ids[g.key.name], g.key.epoch, g.first_seq):
                (g.count, float(g.t_from), float(g.t_to)) for g in batch.gaps if g.count > 0}
        if not rows:
            return
        keys, vals = list(rows), list(rows.values())
        cur.execute(self._q(
            "INSERT INTO {s}.gaps SELECT * FROM unnest(%s::int4[], %s::int8[], %s::int8[], "
            "%s::int8[], %s::float8[], %s::float8[], %s::float8[]) "
            "AS g(signal, epoch, first_seq, count, t_from, t_to, noted) "
            "WHERE NOT EXISTS (SELECT 1 FROM {s}.gaps x WHERE x.signal = g.signal "
            "AND x.epoch = g.epoch AND x.first_seq = g.first_seq)"),
            ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
             [v[0] for v in vals], [v[1] for v in vals], [v[2] for v in vals],
             [self.clock()] * len(keys)))

    def _write_snapshots(self, cur: psycopg.Cursor, batch: ArchiveBatch, ids: dict[str, int]) -> None:
        rows = {(ids[s.key.name], s.key.epoch, s.first_seq, s.n): s for s in batch.snapshots}
        if not rows:
            return
        keys, snaps = list(rows), list(rows.values())
        cur.execute(self._q(
            "INSERT INTO {s}.snapshots SELECT * FROM unnest(%s::int4[], %s::int8[], %s::int8[], "
            "%s::int8[], %s::float8[], %s::bytea[], %s::bytea[], %s::float8[]) "
            "AS g(signal, epoch, first_seq, count, time, t, y, written) "
            "WHERE NOT EXISTS (SELECT 1 FROM {s}.snapshots x WHERE x.signal = g.signal "
            "AND x.epoch = g.epoch AND x.first_seq = g.first_seq AND x.count = g.count)"),
            ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
             [float(s.time) for s in snaps], [snapshot_bytes(s.t) for s in snaps],
             [snapshot_bytes(s.y) for s in snaps], [self.clock()] * len(keys)))

    # -- reading -------------------------------------------------------------------------
    def resume_points(self) -> dict[tuple[str, int], int]:
        """``(name, epoch) -> next seq``: the end of the last chunk or recorded gap. The
        ledger part walks its index once per ring (a loose index scan), not per chunk."""
        with self._guard("resume points"):
            rows = self._connection().execute(self._q("""
                WITH RECURSIVE k AS (
                    (SELECT signal, epoch FROM {s}.ledger ORDER BY signal, epoch LIMIT 1)
                    UNION ALL
                    SELECT n.signal, n.epoch FROM k CROSS JOIN LATERAL (
                        SELECT l.signal, l.epoch FROM {s}.ledger l
                        WHERE (l.signal, l.epoch) > (k.signal, k.epoch)
                        ORDER BY l.signal, l.epoch LIMIT 1) n),
                ends AS (
                    SELECT k.signal, k.epoch, (SELECT l.first_seq + l.count FROM {s}.ledger l
                        WHERE l.signal = k.signal AND l.epoch = k.epoch
                        ORDER BY l.first_seq DESC LIMIT 1) AS e FROM k
                    UNION ALL
                    SELECT signal, epoch, first_seq + count FROM {s}.gaps
                    UNION ALL
                    SELECT signal, epoch, first_seq + count FROM {s}.snapshots)
                SELECT s.name, x.epoch, max(x.e) FROM ends x JOIN {s}.signals s ON s.id = x.signal
                GROUP BY s.name, x.epoch""")).fetchall()
        return {(name, int(epoch)): int(end) for name, epoch, end in rows}

    def signals(self) -> list[dict[str, Any]]:
        """Every signal with ``samples`` (from the ledger), ``t_first``/``t_last`` (NaN when
        it has none), ordered by name."""
        with self._guard("signals"):
            rows = self._connection().execute(self._q("""
                SELECT s.name, s.device, s.unit, s.created, coalesce(sum(l.count), 0)::int8,
                       coalesce(min(l.t_first), 'NaN'), coalesce(max(l.t_last), 'NaN')
                FROM {s}.signals s LEFT JOIN {s}.ledger l ON l.signal = s.id
                GROUP BY s.id, s.name, s.device, s.unit, s.created ORDER BY s.name""")).fetchall()
        keys = ("name", "device", "unit", "created", "samples", "t_first", "t_last")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def _id(self, conn: psycopg.Connection, name: str) -> int | None:
        sid = self._ids.get(name)
        if sid is None:
            row = conn.execute(self._q("SELECT min(id) FROM {s}.signals WHERE name = %s"),
                               (name,)).fetchone()
            sid = row[0] if row else None
        return sid

    def history(self, name: str, t_from: float, t_to: float) -> tuple[np.ndarray, np.ndarray]:
        """Samples of ``name`` (every epoch) with ``t_from <= t <= t_to``, ordered by t
        (equal times in the order written): ``t``, ``y`` float64[n]. An unknown name gives
        empty arrays."""
        ts: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        with self._guard("history"):
            conn = self._connection()
            sid = self._id(conn, name)
            if sid is None:
                return np.empty(0), np.empty(0)
            page = self._q("""
                SELECT array_agg(t), array_agg(y) FROM (
                    SELECT t, y FROM {s}.samples WHERE signal = %(s)s AND t >= %(a)s AND t <= %(b)s
                    ORDER BY t LIMIT %(n)s) p""")
            ties = self._q("""
                SELECT array_agg(t), array_agg(y) FROM (
                    SELECT t, y FROM {s}.samples WHERE signal = %(s)s AND t = %(a)s) p""")
            lo = float(t_from)
            while True:
                t, y = _arrays(conn.execute(page, {
                    "s": sid, "a": lo, "b": float(t_to), "n": self.history_page}, binary=True))
                if t.shape[0] < self.history_page:
                    ts.append(t)
                    ys.append(y)
                    break
                # a full page: its last time may continue on the next one, so leave all
                # samples at that time to the next query (or to one of their own)
                last = t[-1]
                keep = int(np.searchsorted(t, last, side="left"))
                if keep == 0:
                    t, y = _arrays(conn.execute(ties, {"s": sid, "a": last}, binary=True))
                    keep = t.shape[0]
                    lo = float(np.nextafter(last, np.inf))
                else:
                    lo = float(last)
                ts.append(t[:keep])
                ys.append(y[:keep])
        t = ts[0] if len(ts) == 1 else np.concatenate(ts)
        y = ys[0] if len(ys) == 1 else np.concatenate(ys)
        return t, y

    def history_span(self, name: str, t_from: float, t_to: float) -> tuple[int, float, float]:
        """(samples, first t, last t) of ``name`` with ``t_from <= t <= t_to``; (0, NaN, NaN)
        when there are none. One aggregate: no row leaves the database."""
        with self._guard("history"):
            conn = self._connection()
            sid = self._id(conn, name)
            if sid is None:
                return 0, math.nan, math.nan
            n, lo, hi = conn.execute(self._q(
                "SELECT count(*), min(t), max(t) FROM {s}.samples WHERE signal = %(s)s "
                "AND t >= %(a)s AND t <= %(b)s"),
                {"s": sid, "a": float(t_from), "b": float(t_to)}).fetchone()
        return int(n), (math.nan if lo is None else lo), (math.nan if hi is None else hi)

    def history_minmax(self, name: str, t_from: float, t_to: float, bins: int, lo: float,
                       hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Min/max decimation in the database: ``bins`` equal time intervals over
        ``lo..hi``; per interval the earliest sample of the least and of the greatest y
        (NaN never wins; an interval of NaN only gives one NaN), ordered by t: ``t``, ``y``
        float64[<= 2 * bins]. Two scans (the extremes, then their times) and one row of
        arrays back: the archiver holds ``bins`` values, never the range."""
        scale = bins / (hi - lo) if hi > lo else 0.0
        k = "least(floor((t - %(lo)s) * %(sc)s), %(last)s)::bigint"
        rows = "FROM {s}.samples WHERE signal = %(s)s AND t >= %(a)s AND t <= %(b)s"
        with self._guard("history"):
            conn = self._connection()
            sid = self._id(conn, name)
            if sid is None:
                return np.empty(0), np.empty(0)
            cur = conn.execute(self._q(f"""
                WITH b AS (
                    SELECT {k} AS k, min(y) FILTER (WHERE y <> 'NaN') AS y_lo,
                           max(y) FILTER (WHERE y <> 'NaN') AS y_hi, min(t) AS t_any
                    {rows} GROUP BY 1),
                x AS (
                    SELECT b.k, min(s.t) FILTER (WHERE s.y = b.y_lo) AS t_lo,
                           min(s.t) FILTER (WHERE s.y = b.y_hi) AS t_hi
                    FROM (SELECT {k} AS k, t, y {rows}) s JOIN b ON b.k = s.k
                    WHERE s.y = b.y_lo OR s.y = b.y_hi GROUP BY b.k)
                SELECT array_agg(coalesce(x.t_lo, b.t_any) ORDER BY b.k),
                       array_agg(coalesce(b.y_lo, 'NaN') ORDER BY b.k),
                       array_agg(coalesce(x.t_hi, b.t_any) ORDER BY b.k),
                       array_agg(coalesce(b.y_hi, 'NaN') ORDER BY b.k)
                FROM b LEFT JOIN x ON x.k = b.k"""),
                {"lo": float(lo), "sc": float(scale), "last": int(bins) - 1, "s": sid,
                 "a": float(t_from), "b": float(t_to)}, binary=True)
            row = cur.fetchone()
        if row is None or row[0] is None:
            return np.empty(0), np.empty(0)
        return minmax_pairs(*(np.asarray(a, np.float64) for a in row))

    def buckets(self, name: str, t_from: float, t_to: float, width: float) -> dict[str, np.ndarray]:
        """Fixed intervals ``start = floor(t / width) * width`` over the samples with
        ``t_from <= t <= t_to``: ``mean``, ``min``, ``max`` over the non-NaN y (NaN if none),
        ``count`` of non-NaN y and ``n`` of all samples (int64), ordered by ``start``; as the
        engine's resampler, an all-NaN interval is a row with count 0."""
        if not (math.isfinite(width) and width > 0):
            raise ArchiveError(f"bucket width must be a positive number, got {width!r}")
        keys = ("start", "mean", "min", "max", "count", "n")
        empty = {k: np.empty(0, np.int64 if k in ("count", "n") else np.float64) for k in keys}
        ok = "FILTER (WHERE y <> 'NaN')"  # PostgreSQL: NaN = NaN, so this drops exactly NaN
        with self._guard("buckets"):
            conn = self._connection()
            sid = self._id(conn, name)
            if sid is None:
                return empty
            cur = conn.execute(self._q(f"""
                SELECT array_agg(start), array_agg(mean), array_agg(lo), array_agg(hi),
                       array_agg(cnt), array_agg(n) FROM (
                    SELECT floor(t / %(w)s) * %(w)s AS start,
                           coalesce(avg(y) {ok}, 'NaN') AS mean,
                           coalesce(min(y) {ok}, 'NaN') AS lo,
                           coalesce(max(y) {ok}, 'NaN') AS hi,
                           count(*) {ok} AS cnt, count(*) AS n
                    FROM {{s}}.samples WHERE signal = %(s)s AND t >= %(a)s AND t <= %(b)s
                    GROUP BY 1 ORDER BY 1) b"""),
                {"w": float(width), "s": sid, "a": float(t_from), "b": float(t_to)}, binary=True)
            row = cur.fetchone()
        if row is None or row[0] is None:
            return empty
        return dict(zip(keys, row, strict=True))

    def events(self, t_from: float, t_to: float, limit: int = 10_000) -> list[dict[str, Any]]:
        """Archived events (``Event.to_dict()`` maps) with ``t_from <= time <= t_to``,
        ordered by time, at most ``limit``."""
        with self._guard("events"):
            rows = self._connection().execute(self._q(
                "SELECT time, device, signal, priority, id, text, value, extra FROM {s}.events "
                "WHERE time >= %s AND time <= %s ORDER BY time LIMIT %s"),
                (float(t_from), float(t_to), max(0, int(limit)))).fetchall()
        return [event_from_row(r) for r in rows]

    def snapshots(self, name: str, t_from: float, t_to: float, limit: int = 10) -> list[dict[str, Any]]:
        """The snapshots of ``name`` shown in ``t_from .. t_to``, newest first, at most
        ``limit``: ``{time, first_seq, count, t, y}`` (``t``/``y`` float64 arrays)."""
        with self._guard("snapshots"):
            conn = self._connection()
            with conn.transaction(), conn.cursor(name="rtoc_snapshots") as cur:
                return self._snapshot_rows(cur, name, t_from, t_to, limit)

    def _snapshot_rows(self, cur: psycopg.ServerCursor, name: str, t_from: float, t_to: float,
                       limit: int) -> list[dict[str, Any]]:
        """A server-side cursor: rows come as they are read, up to the byte cap."""
        cur.execute(self._q(
            "SELECT x.time, x.first_seq, x.count, x.t, x.y FROM {s}.snapshots x "
            "JOIN {s}.signals s ON s.id = x.signal WHERE s.name = %s AND x.time >= %s "
            "AND x.time <= %s ORDER BY x.time DESC, x.count DESC LIMIT %s"),
            (name, float(t_from), float(t_to), max(0, int(limit))))
        cur.itersize = 4
        return snapshot_rows(cur)

    def delete_before(self, t: float) -> int:
        """Retention: samples with ``t`` below, events with ``time`` below, gaps and ledger
        rows that end below ``t``; one transaction. Returns the samples removed. A chunk
        that straddles ``t`` keeps its ledger row (its later samples are still there)."""
        t = float(t)
        if math.isnan(t):  # PostgreSQL orders NaN above everything: it would delete all
            raise ArchiveError("delete_before: t is NaN")
        with self._guard("retention"):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                # per signal, so the (signal, t) index finds the rows
                cur.execute(self._q("DELETE FROM {s}.samples WHERE signal = ANY(ARRAY("
                                    "SELECT id FROM {s}.signals)) AND t < %s"), (t,))
                removed = cur.rowcount
                cur.execute(self._q("DELETE FROM {s}.events WHERE time < %s"), (t,))
                cur.execute(self._q("DELETE FROM {s}.gaps WHERE t_to < %s"), (t,))
                cur.execute(self._q("DELETE FROM {s}.ledger WHERE t_last < %s"), (t,))
                cur.execute(self._q("DELETE FROM {s}.snapshots WHERE time < %s"), (t,))
        return int(removed)


# -- helpers -------------------------------------------------------------------------------------
def _arrays(cur: psycopg.Cursor) -> tuple[np.ndarray, np.ndarray]:
    """``t``, ``y`` of a one-row ``array_agg(t), array_agg(y)`` result, sorted by t (the
    subquery's order; checked, since SQL does not promise it)."""
    row = cur.fetchone()
    if row is None or row[0] is None:
        return np.empty(0), np.empty(0)
    t, y = row
    if t.shape[0] > 1 and not (t[1:] >= t[:-1]).all():
        order = np.argsort(t, kind="stable")
        t, y = t[order], y[order]
    return t, y


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__



