"""What the archiver writes and reads: batches, the backend interface, the schema.

Schema (the same tables in DuckDB and PostgreSQL; docs/ARCHITECTURE.md, "Archive")::

    signals (id INTEGER, device TEXT, name TEXT, unit TEXT, created DOUBLE)
    samples (signal INTEGER, epoch BIGINT, seq BIGINT, t DOUBLE, y DOUBLE)
    ledger  (signal INTEGER, epoch BIGINT, first_seq BIGINT, count BIGINT,
             t_first DOUBLE, t_last DOUBLE, written DOUBLE)
    events  (time DOUBLE, device TEXT, signal TEXT, priority INTEGER, id TEXT, text TEXT,
             value TEXT, extra TEXT, key TEXT)
    gaps    (signal INTEGER, epoch BIGINT, first_seq BIGINT, count BIGINT,
             t_from DOUBLE, t_to DOUBLE, noted DOUBLE)
    snapshots (signal INTEGER, epoch BIGINT, first_seq BIGINT, count BIGINT, time DOUBLE,
               t BLOB, y BLOB, written DOUBLE)

* A signal is a row of ``signals`` per ``Device.Signal`` (``name`` is the full name,
  ``device`` its device part); ``samples.signal`` refers to ``signals.id``.
* ``epoch`` is the ring's creation time in ns: a ring's sequence numbers start at 0, so
  ``(signal, epoch, seq)`` is what names one sample for good. Imported data has epoch 0.
* Tables are append-only and have no primary or unique keys (DuckDB's known WAL-replay
  bugs after a crash involve those). Idempotence comes from the ``ledger``: the archiver
  writes each ring's samples in seq order, so whatever lies below the end of the ring's
  last ledger row is already archived and is cut off a chunk (:func:`unarchived`); a
  replayed batch, a resume from the rings, a restart while the database was away all
  write nothing twice. Events carry ``key`` (a hash of their fields) and are skipped when
  the key exists.
* ``gaps`` records samples that were lost for good (the ring had overwritten them before
  the archiver could read them): ``count`` samples from ``first_seq``, between ``t_from``
  (the last sample before, NaN if unknown) and ``t_to`` (the first after).
* ``snapshots`` holds what a driver's ``plot()`` showed (RTOC's plot: a signal's whole
  content replaced, a scope trace, a spectrum): ``count`` points from ``first_seq`` of the
  ring, ``t``/``y`` as little-endian float64 bytes, ``time`` when it was shown (unix s). A
  plotted signal's points are never samples; at most one snapshot per signal is kept per
  ``snapshot_interval`` (the latest of it), the rest were replaced before their turn. A
  ``plot(hold="on")`` after it grows the snapshot: written again as a longer one with the
  same ``first_seq``. Resume counts a snapshot's end like a ledger row's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rtoc.errors import ArchiveError


@dataclass(frozen=True)
class SignalKey:
    """One ring's life of a signal: full name ``Device.Signal``, ring epoch (ns), unit."""

    name: str
    epoch: int
    unit: str = ""

    @property
    def device(self) -> str:
        return self.name.partition(".")[0]


@dataclass
class Chunk:
    """Samples ``first_seq .. first_seq + n - 1`` of one ring: ``t`` float64[n] (unix s),
    ``y`` float64[n]."""

    key: SignalKey
    first_seq: int
    t: np.ndarray
    y: np.ndarray

    @property
    def n(self) -> int:
        return int(self.t.shape[0])


@dataclass(frozen=True)
class Gap:
    key: SignalKey
    first_seq: int
    count: int
    t_from: float
    t_to: float


@dataclass
class Snapshot:
    """Points ``first_seq .. first_seq + n - 1`` of one ring, a signal's whole content as a
    driver's ``plot()`` left it at ``time`` (unix s)."""

    key: SignalKey
    first_seq: int
    time: float
    t: np.ndarray
    y: np.ndarray

    @property
    def n(self) -> int:
        return int(self.t.shape[0])


@dataclass
class ArchiveBatch:
    """What one flush writes, atomically: chunks (of one signal and ring they never
    overlap, and come in seq order), events (``Event.to_dict()`` maps) and gaps. ``number`` increases per archiver
    run (the spool replays in that order)."""

    number: int
    chunks: list[Chunk] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(c.n for c in self.chunks)

    def __bool__(self) -> bool:
        return bool(self.chunks or self.events or self.gaps or self.snapshots)


def snapshot_bytes(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, "<f8").tobytes()


MAX_SNAPSHOT_BYTES = 64 << 20  # of t and y in one ``snapshots`` answer (at least one snapshot)


def snapshot_rows(rows: Iterable[tuple], max_bytes: int = MAX_SNAPSHOT_BYTES) -> list[dict[str, Any]]:
    """``(time, first_seq, count, t bytes, y bytes)`` rows as the ``snapshots`` answer;
    of a snapshot that grew (``hold="on"``) only its longest row; rows are read only until
    ``max_bytes`` of points are taken."""
    out, seen, size = [], set(), 0
    for time_, first, count, t, y in rows:
        if (first, time_) in seen:
            continue
        size += len(t) + len(y)
        if out and size > max_bytes:
            break
        seen.add((first, time_))
        out.append({"time": float(time_), "first_seq": int(first), "count": int(count),
                    "t": np.frombuffer(bytes(t), "<f8"), "y": np.frombuffer(bytes(y), "<f8")})
    return out


def event_key(event: dict) -> str:
    """The idempotence key of an event: a hash of its fields."""
    fields = [event.get(k) for k in ("time", "id", "text", "device", "signal", "priority")]
    return hashlib.sha1(json.dumps(fields, default=str).encode()).hexdigest()


def unarchived(chunks: list[Chunk], ids: dict[str, int], ends: dict[tuple[int, int], int]
               ) -> list[Chunk]:
    """The parts of ``chunks`` not yet archived: ``ends[(signal id, epoch)]`` is the end of
    that ring's archived samples (max ``first_seq + count`` of its ledger rows); samples
    below it are cut off, empty chunks dropped. Chunks of one ring come in seq order."""
    out = []
    for c in chunks:
        end = ends.get((ids[c.key.name], c.key.epoch), 0)
        cut = max(0, end - c.first_seq)
        if cut >= c.n:
            continue
        out.append(c if not cut else Chunk(c.key, c.first_seq + cut, c.t[cut:], c.y[cut:]))
        ends[(ids[c.key.name], c.key.epoch)] = c.first_seq + c.n
    return out


EVENT_FIELDS = ("time", "device", "signal", "priority", "id", "text", "value", "extra")


def checked_chunks(chunks: list[Chunk]) -> list[Chunk]:
    """The non-empty chunks, with float64 columns of equal length; the first of duplicate
    keys. Raises ArchiveError for a chunk whose t and y differ."""
    out, seen = [], set()
    for c in chunks:
        t, y = np.asarray(c.t, np.float64), np.asarray(c.y, np.float64)
        if t.ndim != 1 or t.shape != y.shape:
            raise ArchiveError(f"{c.key.name}: chunk t{t.shape} and y{y.shape} differ")
        k = (c.key.name, c.key.epoch, c.first_seq)
        if not t.size or k in seen:  # an empty chunk only registers its signal
            continue
        seen.add(k)
        if t is not c.t or y is not c.y:
            c = Chunk(c.key, c.first_seq, t, y)
        out.append(c)
    return out


def _text(value: Any) -> str:
    return str(value).replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL


def to_json(value: Any) -> str:
    return _text(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def event_row(ev: dict) -> tuple:
    """An event map as ``events`` columns (without ``key``); keys beyond the Event fields
    go into ``extra``; ``value`` and ``extra`` as JSON text."""
    extra = dict(ev.get("extra") or {})
    extra.update({k: v for k, v in ev.items() if k not in EVENT_FIELDS})
    time_ = ev.get("time")
    value = ev.get("value")
    return (None if time_ is None else float(time_), _text(ev.get("device", "")),
            _text(ev.get("signal", "")), int(ev.get("priority", 0)), _text(ev.get("id", "")),
            _text(ev.get("text", "")), None if value is None else to_json(value),
            to_json(extra) if extra else None)


def event_from_row(row: tuple) -> dict[str, Any]:
    """The inverse of :func:`event_row` for a row of the ``EVENT_FIELDS`` columns."""
    ev = dict(zip(EVENT_FIELDS, row, strict=True))
    ev["value"] = None if ev["value"] is None else json.loads(ev["value"])
    ev["extra"] = {} if ev["extra"] is None else json.loads(ev["extra"])
    return ev


def minmax_pairs(t_lo: np.ndarray, y_lo: np.ndarray, t_hi: np.ndarray,
                 y_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin extremes of a min/max decimation in the database (float64[bins] each: the
    t and y of the least and of the greatest sample, bins in time order) as one series
    ordered by t: both samples of a bin, earlier first; one when they are the same sample
    (or the bin holds NaN only)."""
    first = t_lo <= t_hi
    t = np.empty(2 * len(t_lo))
    y = np.empty(2 * len(t_lo))
    t[0::2], y[0::2] = np.where(first, t_lo, t_hi), np.where(first, y_lo, y_hi)
    t[1::2], y[1::2] = np.where(first, t_hi, t_lo), np.where(first, y_hi, y_lo)
    keep = np.ones(len(t), bool)
    keep[1::2] = ~((t_lo == t_hi) & ((y_lo == y_hi) | np.isnan(y_lo)))
    return t[keep], y[keep]


class Backend(Protocol):
    """A database the archiver writes to. Every method may raise ArchiveUnavailable."""

    name: str

    def connect(self) -> None:
        """Open the database and create the tables when missing."""

    def write(self, batch: ArchiveBatch) -> int:
        """Write a batch in one transaction; chunks and events already archived are
        skipped (replay is idempotent). Returns the samples actually written."""

    def resume_points(self) -> dict[tuple[str, int], int]:
        """``(name, epoch) -> next seq`` not yet archived (the end of its last chunk)."""

    def signals(self) -> list[dict[str, Any]]:
        """``[{name, device, unit, created, samples, t_first, t_last}]``."""

    def history(self, name: str, t_from: float, t_to: float) -> tuple[np.ndarray, np.ndarray]:
        """Samples of ``name`` (every epoch) with ``t_from <= t <= t_to``, ordered by t:
        float64 arrays."""

    def history_span(self, name: str, t_from: float, t_to: float) -> tuple[int, float, float]:
        """(samples, first t, last t) in the range, counted in the database."""

    def history_minmax(self, name: str, t_from: float, t_to: float, bins: int, lo: float,
                       hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Min/max decimation in the database over ``bins`` equal time intervals of
        ``lo..hi``: at most ``2 * bins`` samples, ordered by t (see ``minmax_pairs``)."""

    def buckets(self, name: str, t_from: float, t_to: float, width: float) -> dict[str, np.ndarray]:
        """Fixed-interval aggregates over the samples: ``start`` (a multiple of ``width``),
        ``mean``, ``min``, ``max`` (float64), ``count`` (int64), ordered by start."""

    def events(self, t_from: float, t_to: float, limit: int = 10_000) -> list[dict[str, Any]]:
        """Archived events in the range, ordered by time."""

    def snapshots(self, name: str, t_from: float, t_to: float, limit: int = 10) -> list[dict[str, Any]]:
        """What ``name``'s ``plot()`` showed in the range, newest first (``snapshot_rows``)."""

    def delete_before(self, t: float) -> int:
        """Retention: remove samples, events, gaps, ledger rows and snapshots older than
        ``t``; returns the samples removed."""

    def close(self) -> None: ...
