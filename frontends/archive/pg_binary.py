"""PostgreSQL's binary wire formats, built and read with numpy: no Python object per row.

* In: ``SampleRows`` lays ``samples`` rows out in the PGCOPY binary format (a structured
  numpy buffer of big-endian fields, constants filled once) and ``copy_samples`` streams
  them through one ``COPY ... FROM STDIN (FORMAT BINARY)``; ``raw_copy`` is the bare rate
  the archiver is compared with (bench/run_archive.py).
* Out: ``decode_array`` turns a binary ``float8[]``/``int8[]`` value into a numpy array
  with one ``frombuffer``; ``register_loaders`` makes psycopg use it for those types.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Loader
from psycopg.pq import Format

from rtoc.errors import ArchiveError

# -- the PGCOPY binary format ----------------------------------------------------------------
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
COPY_TRAILER = b"\xff\xff"                        # int16 -1
#: One ``samples`` row: int16 field count, then per field int32 length and the value.
SAMPLE_ROW = np.dtype([
    ("fields", ">i2"),
    ("len_signal", ">i4"), ("signal", ">i4"),
    ("len_epoch", ">i4"), ("epoch", ">i8"),
    ("len_seq", ">i4"), ("seq", ">i8"),
    ("len_t", ">i4"), ("t", ">f8"),
    ("len_y", ">i4"), ("y", ">f8"),
])
_SAMPLE_CONSTANTS = {"fields": 5, "len_signal": 4, "len_epoch": 8, "len_seq": 8, "len_t": 8,
                     "len_y": 8}


class SampleRows:
    """A reusable buffer of ``capacity`` PGCOPY rows of ``samples`` (58 bytes each); the
    constant fields are filled once. Pure: no I/O."""

    def __init__(self, capacity: int = 1 << 18):
        self.rows = np.empty(capacity, SAMPLE_ROW)
        for name, value in _SAMPLE_CONSTANTS.items():
            self.rows[name] = value

    def blocks(self, parts: Iterable[tuple[int, int, int, np.ndarray, np.ndarray]]
               ) -> Iterator[memoryview]:
        """The rows of ``parts`` (signal id, epoch, first seq, ``t`` float64[n], ``y``
        float64[n]) as byte blocks, without the stream's header and trailer. Each block is a
        view of the buffer: write it out before taking the next."""
        rows, cap, used = self.rows, self.rows.shape[0], 0
        for signal, epoch, first_seq, t, y in parts:
            n, done = t.shape[0], 0
            while done < n:
                k = min(n - done, cap - used)
                block = rows[used:used + k]
                block["signal"] = signal
                block["epoch"] = epoch
                block["seq"] = np.arange(first_seq + done, first_seq + done + k, dtype=np.int64)
                block["t"] = t[done:done + k]
                block["y"] = y[done:done + k]
                used += k
                done += k
                if used == cap:
                    yield memoryview(rows).cast("B")
                    used = 0
        if used:
            yield memoryview(rows[:used]).cast("B")


def copy_samples(cur: psycopg.Cursor, schema: str, rows: SampleRows,
                 parts: Iterable[tuple[int, int, int, np.ndarray, np.ndarray]]) -> None:
    """One ``COPY <schema>.samples FROM STDIN (FORMAT BINARY)`` of ``parts`` (see
    ``SampleRows.blocks``), in the cursor's current transaction."""
    stmt = sql.SQL("COPY {}.samples (signal, epoch, seq, t, y) FROM STDIN (FORMAT BINARY)"
                   ).format(sql.Identifier(schema))
    with cur.copy(stmt) as copy:
        copy.write(COPY_HEADER)
        for block in rows.blocks(parts):
            copy.write(block)
        copy.write(COPY_TRAILER)


def raw_copy(conn: psycopg.Connection, schema: str, signal_id: int, epoch: int, first_seq: int,
             t: np.ndarray, y: np.ndarray, rows: SampleRows | None = None) -> int:
    """The bare binary-COPY rate, to compare ``PostgresBackend.write`` with: ``t``, ``y``
    (float64[n]) straight into ``<schema>.samples`` (which must exist) as seqs
    ``first_seq ..``; no signals, ledger or dedup; committed when ``conn`` is in autocommit
    (else in its open transaction). Returns n."""
    t = np.asarray(t, np.float64)
    y = np.asarray(y, np.float64)
    with conn.cursor() as cur:
        copy_samples(cur, schema, rows or SampleRows(),
                     [(signal_id, epoch, first_seq, t, y)])
    return int(t.shape[0])


# -- arrays out --------------------------------------------------------------------------------
def decode_array(data: bytes | memoryview, element: np.dtype) -> np.ndarray:
    """A one-dimensional PostgreSQL array without NULLs, in the binary wire format, as a
    native numpy array of ``element`` (a big-endian 8-byte dtype)."""
    ndim, has_null = (int(v) for v in np.frombuffer(data, ">i4", 2))
    if ndim == 0:
        return np.empty(0, element.newbyteorder("="))
    if ndim != 1 or has_null:
        raise ArchiveError(f"expected a 1-d array without NULLs, got {ndim} dimensions")
    n = int(np.frombuffer(data, ">i4", 1, 12)[0])
    cells = np.frombuffer(data, np.dtype([("len", ">i4"), ("v", element)]), n, 20)
    if n and not (cells["len"] == element.itemsize).all():
        raise ArchiveError("array element of unexpected size")
    return cells["v"].astype(element.newbyteorder("="))


class _ArrayLoader(Loader):
    format = Format.BINARY
    element = np.dtype(">f8")

    def load(self, data: Any) -> np.ndarray:
        return decode_array(data, self.element)


class Float8ArrayLoader(_ArrayLoader):
    element = np.dtype(">f8")


class Int8ArrayLoader(_ArrayLoader):
    element = np.dtype(">i8")


def register_loaders(conn: psycopg.Connection) -> None:
    for name, loader in (("float8", Float8ArrayLoader), ("int8", Int8ArrayLoader)):
        conn.adapters.register_loader(conn.adapters.types[name].array_oid, loader)
