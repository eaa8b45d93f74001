"""The archiver's control ops: history, status, signals, events, query, import.

Arrays travel as raw little-endian float64 bytes in msgpack (``t``, ``y``), never as lists
of floats. ``history`` combines the archive (old) with the ring (recent, not yet written or
while the database is away), so a reader never needs to know where a sample lives.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, SignalKey
from rtoc.pipeline.decimate_kernels import minmax_indices
from rtoc.pipeline.ring import RingReader

from rtoc.errors import ArchiveError, ArchiveUnavailable, SignalNotFound
from rtoc.model import check_part, split_name

if TYPE_CHECKING:
    from rtoc.frontends.archive.process import Archiver

OPS = ("history", "archive_status", "archive_signals", "archive_events", "archive_snapshots", "query",
       "import")
MAX_SNAPSHOTS = 100
MAX_POINTS = 2_000_000  # samples per history reply at most (ask for a range, or use max_points)


class Queries:
    def __init__(self, archiver: Archiver):
        self.a = archiver

    def handle(self, op: str, msg: dict[str, Any]) -> dict:
        if op not in OPS:
            raise ArchiveError(f"the archiver cannot do {op!r}")
        return getattr(self, f"_{op}")(msg)

    def _archive_status(self, msg: dict) -> dict:
        return {"ok": True, **self.a.status()}

    def _archive_signals(self, msg: dict) -> dict:
        return {"ok": True, "signals": self._db(self.a.backend.signals)}

    def _archive_events(self, msg: dict) -> dict:
        t0, t1 = _range(msg)
        limit = int(msg.get("limit", 10_000))
        return {"ok": True, "events": self._db(self.a.backend.events, t0, t1, limit)}

    def _archive_snapshots(self, msg: dict) -> dict:
        """``signal``, ``from``, ``to`` (unix s), ``limit`` (default 1: the latest): what a
        driver's ``plot()`` showed, newest first; ``t``/``y`` float64 bytes."""
        name = str(msg.get("signal", ""))
        t0, t1 = _range(msg)
        limit = max(1, min(MAX_SNAPSHOTS, int(msg.get("limit", 1))))
        found = self._db(self.a.backend.snapshots, name, t0, t1, limit)
        return {"ok": True, "signal": name, "snapshots": [
            {**s, "t": s["t"].tobytes(), "y": s["y"].tobytes()} for s in found or []]}

    def _query(self, msg: dict) -> dict:
        run = getattr(self.a.backend, "query", None)
        if run is None:
            raise ArchiveError("rtoc query needs the duckdb backend (use psql for PostgreSQL)")
        columns, rows = self._db(run, str(msg.get("sql", "")))
        return {"ok": True, "columns": columns, "rows": rows}

    def _history(self, msg: dict) -> dict:
        """``signal``, ``from``, ``to`` (unix s), ``bucket`` (s) or ``max_points``, ``source``
        (``all``: archive and ring; ``archive``: only what is archived).

        The archive's samples are counted first, in the database; with ``max_points`` below
        that count the database decimates (``history_minmax``: min/max per time interval),
        so the archiver holds about ``max_points`` samples whatever the range (20 M samples
        with ``max_points`` 4 read all 20 M into memory before, 460 -> 931 MB)."""
        name = str(msg.get("signal", ""))
        split_name(name)
        t0, t1 = _range(msg)
        source = msg.get("source", "all")
        bucket, max_points = msg.get("bucket"), msg.get("max_points")
        max_points = int(max_points) if max_points else None
        if max_points is not None and max_points < 1:
            raise ArchiveError(f"max_points must be at least 1, got {max_points}")
        if self.a.up:  # what is pending goes in first, so the archive part is complete
            self.a._write(self.a.batcher.take(), 0.0)
            self.a.flush()
        t, y, last = self._archived(name, t0, t1, bucket, max_points)
        if source != "archive":
            rt, ry = self._ring_part(name, t0, t1, last)
            if len(rt):
                t, y = np.concatenate([t, rt]), np.concatenate([y, ry])
        if not len(t) and source == "archive" and name not in {s["name"] for s in self._db(self.a.backend.signals)}:
            raise SignalNotFound(f"no archived signal {name!r}", name)
        if bucket:
            return {"ok": True, "signal": name, **_buckets(t, y, float(bucket))}
        if max_points and len(t) > max_points:
            idx = minmax_indices(y, max_points)
            t, y = t[idx], y[idx]
        if len(t) > MAX_POINTS:
            raise _too_many(len(t))
        return {"ok": True, "signal": name, "n": len(t), "t": _bytes(t), "y": _bytes(y)}

    def _archived(self, name: str, t0: float, t1: float, bucket: Any,
                  max_points: int | None) -> tuple[np.ndarray, np.ndarray, float]:
        """The archive's part of a history: (t, y, the last archived t in the range)."""
        if not self.a.up:
            return np.empty(0), np.empty(0), -math.inf
        n, lo, hi = self._db(self.a.backend.history_span, name, t0, t1)
        last = hi if n else -math.inf
        if max_points is not None and not bucket and n > max_points:
            # two samples per interval; an odd max_points leaves one for the ring's part
            t, y = self._db(self.a.backend.history_minmax, name, t0, t1,
                            max(1, max_points // 2), lo, hi)
            return t, y, last
        if not bucket and n > MAX_POINTS:  # refused before anything is read
            raise _too_many(n)
        t, y = self._db(self.a.backend.history, name, t0, t1)
        return t, y, (t[-1] if len(t) else last)

    def _ring_part(self, name: str, t0: float, t1: float, after: float) -> tuple[np.ndarray, np.ndarray]:
        sig = self.a.sig_of.get(name)
        ring = self.a._ring(sig) if sig is not None else None
        if ring is None:
            return np.empty(0), np.empty(0)
        res = RingReader(ring, cursor=max(0, ring.committed - ring.capacity), max_batch=ring.capacity).read()
        keep = (res.t > after) & (res.t >= t0) & (res.t <= t1)
        return res.t[keep], res.y[keep]

    def _import(self, msg: dict) -> dict:
        """Samples of one signal from a file: ``signal`` (Device.Signal), ``unit``, ``t``,
        ``y`` (float64 bytes). Written as ring epoch 0, continuing after earlier imports."""
        name = str(msg.get("signal", ""))
        device, sig = split_name(name)
        check_part("device", device)
        check_part("signal", sig)
        t, y = np.frombuffer(msg["t"], "<f8"), np.frombuffer(msg["y"], "<f8")
        if t.shape != y.shape:
            raise ArchiveError("t and y differ in length")
        if not self.a.up:
            raise ArchiveUnavailable(f"the database is away ({self.a.last_error}); try again later")
        start = self._db(self.a.backend.resume_points).get((name, 0), 0)
        key = SignalKey(name, 0, str(msg.get("unit") or ""))
        batch = ArchiveBatch(self.a.batcher.number, [Chunk(key, start, t.copy(), y.copy())])
        self.a.batcher.number += 1
        written = self._db(self.a.backend.write, batch)
        return {"ok": True, "signal": name, "written": written, "first_seq": start}

    def _db(self, fn, *args):
        with self.a.lock:
            try:
                return fn(*args)
            except ArchiveUnavailable as exc:
                self.a._down(exc)
                raise


def _too_many(n: int) -> ArchiveError:
    return ArchiveError(f"{n} samples in this range (at most {MAX_POINTS} per request): "
                        "ask for a shorter range, a bucket or max_points")


def _range(msg: dict) -> tuple[float, float]:
    t0 = float(msg.get("from", -math.inf) if msg.get("from") is not None else -math.inf)
    t1 = float(msg.get("to", math.inf) if msg.get("to") is not None else math.inf)
    if math.isnan(t0) or math.isnan(t1) or t0 > t1:
        raise ArchiveError(f"'from' must be <= 'to', got {t0} and {t1}")
    return t0, t1


def _bytes(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, "<f8").tobytes()


def _buckets(t: np.ndarray, y: np.ndarray, width: float) -> dict:
    """mean/min/max/count per ``floor(t / width)`` bucket (NaN y skipped)."""
    if not width > 0:
        raise ArchiveError(f"bucket must be > 0 seconds, got {width}")
    ok = ~np.isnan(y)
    t, y = t[ok], y[ok]
    if not len(t):
        empty = _bytes(np.empty(0))
        return {"n": 0, "start": empty, "mean": empty, "min": empty, "max": empty, "count": b""}
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    idx = np.floor(t / width)
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    count = np.diff(np.r_[starts, len(t)])
    return {"n": len(starts), "start": _bytes(idx[starts] * width),
            "mean": _bytes(np.add.reduceat(y, starts) / count),
            "min": _bytes(np.minimum.reduceat(y, starts)), "max": _bytes(np.maximum.reduceat(y, starts)),
            "count": np.ascontiguousarray(count, "<i8").tobytes()}
