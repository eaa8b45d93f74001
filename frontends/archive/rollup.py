"""Per-second min/max rollups of the samples, kept beside them at write time (pure numpy).

A plot of a long range (a day of a 1 kHz signal: 86.4 M samples) needs a few thousand
min/max points; computing them from the raw rows made DuckDB read every row (4.2 s for that
day on 2 cores). Each written chunk also yields one row per ``WIDTH``-second bucket it
touches: the count, the first and last time, and the sample of the least and of the
greatest y (NaN never wins; an all-NaN bucket keeps NaN). Rows of one bucket from several
chunks (or a replayed chunk, twice) combine by min/max, so duplicates do no harm.
"""

from __future__ import annotations

import numpy as np

WIDTH = 1.0  # s per rollup bucket
COLUMNS = ("k", "n", "t_first", "t_last", "t_lo", "y_lo", "t_hi", "y_hi")


def rollup(t: np.ndarray, y: np.ndarray, width: float = WIDTH) -> dict[str, np.ndarray]:
    """``t``/``y`` float64[n] (any order; NaN t are skipped) -> one row per bucket
    ``k = floor(t / width)``: arrays named as :data:`COLUMNS`, ordered by ``k``."""
    ok = np.isfinite(t)
    t, y = t[ok], y[ok]
    if not len(t):
        return {c: np.empty(0, np.int64 if c in ("k", "n") else np.float64) for c in COLUMNS}
    k = np.floor(t / width).astype(np.int64)
    if np.any(k[1:] < k[:-1]):
        order = np.argsort(k, kind="stable")
        t, y, k = t[order], y[order], k[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ends = np.r_[starts[1:], len(k)]
    nan = np.isnan(y)
    low = np.where(nan, np.inf, y)
    high = np.where(nan, -np.inf, y)
    i_lo = _arg_reduce(low, starts, ends, np.minimum)
    i_hi = _arg_reduce(high, starts, ends, np.maximum)
    return {"k": k[starts], "n": (ends - starts).astype(np.int64),
            "t_first": np.minimum.reduceat(t, starts), "t_last": np.maximum.reduceat(t, starts),
            "t_lo": t[i_lo], "y_lo": y[i_lo], "t_hi": t[i_hi], "y_hi": y[i_hi]}


def _arg_reduce(v: np.ndarray, starts: np.ndarray, ends: np.ndarray, fn) -> np.ndarray:
    """Per group ``starts[i]:ends[i]``, the index of its first element equal to ``fn``'s
    result (min or max); an all-±inf group (all NaN) gives its first element."""
    best = fn.reduceat(v, starts)
    group = np.repeat(np.arange(len(starts)), ends - starts)
    hit = np.flatnonzero(v == best[group])
    first = np.full(len(starts), len(v))
    np.minimum.at(first, group[hit], hit)
    return np.where(first == len(v), starts, first)


def reference(t: np.ndarray, y: np.ndarray, width: float = WIDTH) -> dict[str, np.ndarray]:
    """The same rows by plain Python (for tests)."""
    rows: dict[int, list] = {}
    for ti, yi in zip(t.tolist(), y.tolist(), strict=True):
        if ti != ti or ti in (float("inf"), float("-inf")):
            continue
        rows.setdefault(int(np.floor(ti / width)), []).append((ti, yi))
    out: dict[str, list] = {c: [] for c in COLUMNS}
    for k in sorted(rows):
        pts = rows[k]
        good = [p for p in pts if p[1] == p[1]]
        lo = min(good, key=lambda p: p[1]) if good else pts[0]
        hi = max(good, key=lambda p: p[1]) if good else pts[0]
        for c, v in zip(COLUMNS, (k, len(pts), min(p[0] for p in pts), max(p[0] for p in pts),
                                  lo[0], lo[1], hi[0], hi[1]), strict=True):
            out[c].append(v)
    return {c: np.array(v, np.int64 if c in ("k", "n") else np.float64) for c, v in out.items()}
