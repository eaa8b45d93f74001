"""numba kernels of the resampler (rules: docs/ARCHITECTURE.md, "Resampling"), each beside
its plain numpy/Python reference (``<kernel>_reference``).

Time buckets. A sample at ``t`` seconds belongs to bucket ``floor(t / width)`` (int64). A
*bucket* is a run of consecutive samples with the same index, so a stream whose time goes
backwards simply starts a new bucket: the rule is defined for any input. Samples whose
``t / width`` is not finite or does not fit (``|t / width| >= 2**62``) are skipped and
counted. Streaming kernels keep the open bucket in two small state arrays (int64 ``si``,
float64 ``sf``, from ``m4_state()`` / ``agg_state()``) and write the buckets they close
into caller-owned buffers from ``pos``; when a buffer is full they stop and return how many
inputs they used, so the caller grows it and goes on. Closing by wall clock or at the end
is ``m4_close`` / ``agg_close`` (the references include the last bucket, as a forced close
at the end gives it).

* M4 (live view): per bucket the distinct samples among first, min, max, last, in sample
  order, with their real timestamps (min/max skip NaN y; the first occurrence wins a tie).
* Aggregates (archive): per bucket ``index, count, n`` (int64) and ``mean, min, max``
  (float64) over the non-NaN y; ``agg_combine`` folds closed rows of one level into the
  next (``ratio`` times wider): the level-k bucket of a sample is
  ``floor(floor(t / w0) / (w_k / w0))``, so levels nest exactly.

Count-based decimation of history queries is in ``decimate_kernels``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# |t / width| must stay below this to become an int64 bucket index
INDEX_LIMIT = float(2**62)

# m4 state: si int64[8], sf float64[8]
M4_OPEN, M4_INDEX, M4_SEQ, M4_S_FIRST, M4_S_MIN, M4_S_MAX, M4_S_LAST = range(7)
M4_T_FIRST, M4_Y_FIRST, M4_T_MIN, M4_Y_MIN, M4_T_MAX, M4_Y_MAX, M4_T_LAST, M4_Y_LAST = range(8)
# aggregate state: si int64[4], sf float64[4]; rows: ri int64[k, 3], rf float64[k, 3]
AGG_OPEN, AGG_INDEX, AGG_COUNT, AGG_N = range(4)
AGG_SUM, AGG_MIN, AGG_MAX = range(3)
ROW_INDEX, ROW_COUNT, ROW_N = range(3)
ROW_MEAN, ROW_MIN, ROW_MAX = range(3)


def m4_state() -> tuple[np.ndarray, np.ndarray]:
    """A fresh (closed) M4 state: ``(si int64[8], sf float64[8])``."""
    return np.zeros(8, np.int64), np.zeros(8, np.float64)


def agg_state() -> tuple[np.ndarray, np.ndarray]:
    """A fresh (closed) aggregate state: ``(si int64[4], sf float64[4])``."""
    return np.zeros(4, np.int64), np.zeros(4, np.float64)


def _bucket_runs(t: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Reference helper: ``(kept positions, their int64 bucket index, runs of kept positions)``."""
    with np.errstate(all="ignore"):
        q = np.floor(np.asarray(t, np.float64) / width)
    keep = np.flatnonzero(np.abs(q) < INDEX_LIMIT)
    index = q[keep].astype(np.int64)
    cuts = np.flatnonzero(np.diff(index) != 0) + 1
    return keep, index, np.split(np.arange(keep.size), cuts) if keep.size else []


# ---------------------------------------------------------------- M4 time buckets

@njit(cache=True, nogil=True, inline="always")
def _put(out_t, out_y, pos, t, y):
    out_t[pos] = t
    out_y[pos] = y
    return pos + 1


@njit(cache=True, nogil=True)
def _m4_emit(out_t, out_y, pos, s0, t0, y0, s1, t1, y1, s2, t2, y2, s3, t3, y3):
    """Write the distinct samples (first 0, min 1, max 2, last 3; ``s`` = sequence number,
    ``s1 < 0``: no non-NaN y) in sample order."""
    pos = _put(out_t, out_y, pos, t0, y0)
    done = s0
    if s1 >= 0:
        if s2 < s1:
            s1, t1, y1, s2, t2, y2 = s2, t2, y2, s1, t1, y1
        if s1 != done:
            pos = _put(out_t, out_y, pos, t1, y1)
            done = s1
        if s2 != done:
            pos = _put(out_t, out_y, pos, t2, y2)
            done = s2
    if s3 != done:
        pos = _put(out_t, out_y, pos, t3, y3)
    return pos


@njit(cache=True, nogil=True)
def m4_feed(t, y, width, si, sf, out_t, out_y, pos):
    """Feed samples ``t`` (float64[n], seconds) / ``y`` (float64[n]) into M4 buckets of
    ``width`` seconds; write the points of the buckets this closes to ``out_t/out_y``
    (float64) from ``pos``. Stops early when a bucket would not fit (4 points); returns
    ``(used, pos, skipped)``: samples consumed, the new ``pos``, and how many of them
    were skipped (``t / width`` not finite or out of range)."""
    is_open = si[M4_OPEN] != 0
    cur = si[M4_INDEX]
    seq = si[M4_SEQ]
    s0, s1, s2, s3 = si[M4_S_FIRST], si[M4_S_MIN], si[M4_S_MAX], si[M4_S_LAST]
    t0, y0, t1, y1 = sf[M4_T_FIRST], sf[M4_Y_FIRST], sf[M4_T_MIN], sf[M4_Y_MIN]
    t2, y2, t3, y3 = sf[M4_T_MAX], sf[M4_Y_MAX], sf[M4_T_LAST], sf[M4_Y_LAST]
    skipped = 0
    room = out_t.shape[0] - 4
    i = 0
    while i < t.shape[0]:
        ti = t[i]
        q = np.floor(ti / width)
        if not abs(q) < INDEX_LIMIT:
            skipped += 1
            i += 1
            continue
        b = np.int64(q)
        yi = y[i]
        if is_open and b == cur:
            s3, t3, y3 = seq, ti, yi
            if yi == yi:
                if s1 < 0:
                    s1, t1, y1 = seq, ti, yi
                    s2, t2, y2 = seq, ti, yi
                elif yi < y1:
                    s1, t1, y1 = seq, ti, yi
                elif yi > y2:
                    s2, t2, y2 = seq, ti, yi
        else:
            if is_open:
                if pos > room:
                    break
                pos = _m4_emit(out_t, out_y, pos, s0, t0, y0, s1, t1, y1, s2, t2, y2, s3, t3, y3)
            is_open = True
            cur = b
            s0, t0, y0 = seq, ti, yi
            s3, t3, y3 = seq, ti, yi
            if yi == yi:
                s1, t1, y1 = seq, ti, yi
                s2, t2, y2 = seq, ti, yi
            else:
                s1 = s2 = -1
        seq += 1
        i += 1
    si[M4_OPEN] = 1 if is_open else 0
    si[M4_INDEX], si[M4_SEQ] = cur, seq
    si[M4_S_FIRST], si[M4_S_MIN], si[M4_S_MAX], si[M4_S_LAST] = s0, s1, s2, s3
    sf[M4_T_FIRST], sf[M4_Y_FIRST], sf[M4_T_MIN], sf[M4_Y_MIN] = t0, y0, t1, y1
    sf[M4_T_MAX], sf[M4_Y_MAX], sf[M4_T_LAST], sf[M4_Y_LAST] = t2, y2, t3, y3
    return i, pos, skipped


@njit(cache=True, nogil=True)
def m4_close(width, si, sf, now, grace, force, out_t, out_y, pos):
    """Close the open bucket if ``force`` or ``now >= (index + 1) * width + grace``
    (seconds); write its points (at most 4) at ``pos``; return the new ``pos``."""
    if si[M4_OPEN] == 0:
        return pos
    if not force and not now >= (si[M4_INDEX] + 1) * width + grace:
        return pos
    si[M4_OPEN] = 0
    return _m4_emit(out_t, out_y, pos,
                    si[M4_S_FIRST], sf[M4_T_FIRST], sf[M4_Y_FIRST],
                    si[M4_S_MIN], sf[M4_T_MIN], sf[M4_Y_MIN],
                    si[M4_S_MAX], sf[M4_T_MAX], sf[M4_Y_MAX],
                    si[M4_S_LAST], sf[M4_T_LAST], sf[M4_Y_LAST])


def m4_feed_reference(t: np.ndarray, y: np.ndarray, width: float
                      ) -> tuple[np.ndarray, np.ndarray, int]:
    """M4 points of the whole stream, last bucket included: ``(t_out, y_out, skipped)``."""
    t = np.asarray(t, np.float64)
    y = np.asarray(y, np.float64)
    keep, _, runs = _bucket_runs(t, width)
    chosen: list[int] = []
    for run in runs:
        pos = keep[run]
        picks = {0, len(pos) - 1}
        valid = np.flatnonzero(~np.isnan(y[pos]))
        if valid.size:
            picks |= {int(valid[np.argmin(y[pos][valid])]), int(valid[np.argmax(y[pos][valid])])}
        chosen.extend(int(pos[p]) for p in sorted(picks))
    return t[chosen], y[chosen], int(t.size - keep.size)


# ---------------------------------------------------------------- fixed-interval aggregates

@njit(cache=True, nogil=True, inline="always")
def _row(ri, rf, pos, index, count, n, total, lo, hi):
    ri[pos, ROW_INDEX], ri[pos, ROW_COUNT], ri[pos, ROW_N] = index, count, n
    if count > 0:
        rf[pos, ROW_MEAN], rf[pos, ROW_MIN], rf[pos, ROW_MAX] = total / count, lo, hi
    else:
        rf[pos, ROW_MEAN] = rf[pos, ROW_MIN] = rf[pos, ROW_MAX] = np.nan
    return pos + 1


@njit(cache=True, nogil=True)
def agg_feed(t, y, width, si, sf, ri, rf, pos):
    """Feed samples ``t`` (float64[n], seconds) / ``y`` (float64[n]) into buckets of ``width``
    seconds; write the rows of the buckets this closes to ``ri`` (int64[:, 3]: index, count,
    n) and ``rf`` (float64[:, 3]: mean, min, max) from row ``pos``. Stops early when a row
    would not fit; returns ``(used, pos, skipped)`` as ``m4_feed``."""
    is_open = si[AGG_OPEN] != 0
    cur, count, n = si[AGG_INDEX], si[AGG_COUNT], si[AGG_N]
    total, lo, hi = sf[AGG_SUM], sf[AGG_MIN], sf[AGG_MAX]
    skipped = 0
    i = 0
    while i < t.shape[0]:
        q = np.floor(t[i] / width)
        if not abs(q) < INDEX_LIMIT:
            skipped += 1
            i += 1
            continue
        b = np.int64(q)
        if not (is_open and b == cur):
            if is_open:
                if pos == ri.shape[0]:
                    break
                pos = _row(ri, rf, pos, cur, count, n, total, lo, hi)
            is_open = True
            cur, count, n, total = b, 0, 0, 0.0
        n += 1
        yi = y[i]
        if yi == yi:
            if count == 0:
                lo = hi = yi
            elif yi < lo:
                lo = yi
            elif yi > hi:
                hi = yi
            count += 1
            total += yi
        i += 1
    si[AGG_OPEN] = 1 if is_open else 0
    si[AGG_INDEX], si[AGG_COUNT], si[AGG_N] = cur, count, n
    sf[AGG_SUM], sf[AGG_MIN], sf[AGG_MAX] = total, lo, hi
    return i, pos, skipped


@njit(cache=True, nogil=True)
def agg_combine(ri_in, rf_in, ratio, si, sf, ri, rf, pos):
    """Fold closed rows of a finer level (``ri_in`` int64[k, 3], ``rf_in`` float64[k, 3])
    into buckets ``ratio`` (int) times wider: index ``floor(index / ratio)``, count-weighted
    mean, min of mins, max of maxes, summed counts. Closed rows go to ``ri/rf`` from ``pos``;
    stops early when a row would not fit; returns ``(used, pos)``."""
    is_open = si[AGG_OPEN] != 0
    cur, count, n = si[AGG_INDEX], si[AGG_COUNT], si[AGG_N]
    total, lo, hi = sf[AGG_SUM], sf[AGG_MIN], sf[AGG_MAX]
    i = 0
    while i < ri_in.shape[0]:
        b = ri_in[i, ROW_INDEX] // ratio
        if not (is_open and b == cur):
            if is_open:
                if pos == ri.shape[0]:
                    break
                pos = _row(ri, rf, pos, cur, count, n, total, lo, hi)
            is_open = True
            cur, count, n, total = b, 0, 0, 0.0
        n += ri_in[i, ROW_N]
        c = ri_in[i, ROW_COUNT]
        if c > 0:
            a, z = rf_in[i, ROW_MIN], rf_in[i, ROW_MAX]
            if count == 0:
                lo, hi = a, z
            else:
                lo = a if a < lo else lo
                hi = z if z > hi else hi
            count += c
            total += rf_in[i, ROW_MEAN] * c
        i += 1
    si[AGG_OPEN] = 1 if is_open else 0
    si[AGG_INDEX], si[AGG_COUNT], si[AGG_N] = cur, count, n
    sf[AGG_SUM], sf[AGG_MIN], sf[AGG_MAX] = total, lo, hi
    return i, pos


@njit(cache=True, nogil=True)
def agg_close(width, si, sf, now, grace, force, ri, rf, pos):
    """Close the open bucket if ``force`` or ``now >= (index + 1) * width + grace``
    (seconds); write its row at ``pos``; return the new ``pos``."""
    if si[AGG_OPEN] == 0:
        return pos
    if not force and not now >= (si[AGG_INDEX] + 1) * width + grace:
        return pos
    si[AGG_OPEN] = 0
    return _row(ri, rf, pos, si[AGG_INDEX], si[AGG_COUNT], si[AGG_N],
                sf[AGG_SUM], sf[AGG_MIN], sf[AGG_MAX])


def _rows(index: list[int], count: list[int], n: list[int], total: list[float],
          lo: list[float], hi: list[float]) -> tuple[np.ndarray, np.ndarray]:
    ri = np.array([index, count, n], np.int64).T.reshape(-1, 3).copy()
    c = np.array(count, np.float64)
    with np.errstate(all="ignore"):
        mean = np.where(c > 0, np.array(total, np.float64) / np.maximum(c, 1), np.nan)
    rf = np.array([mean, lo, hi], np.float64).T.reshape(-1, 3).copy()
    return ri, rf


def agg_feed_reference(t: np.ndarray, y: np.ndarray, width: float
                       ) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of the whole stream, last bucket included: ``(ri, rf, skipped)``."""
    y = np.asarray(y, np.float64)
    keep, index, runs = _bucket_runs(t, width)
    cols: tuple[list, ...] = ([], [], [], [], [], [])
    for run in runs:
        vals = y[keep[run]]
        vals = vals[~np.isnan(vals)]
        total = 0.0
        for v in vals:  # sequential, as the kernel adds
            total += float(v)
        row = (int(index[run[0]]), vals.size, run.size, total,
               vals.min() if vals.size else np.nan, vals.max() if vals.size else np.nan)
        for col, v in zip(cols, row, strict=True):
            col.append(v)
    ri, rf = _rows(*cols)
    return ri, rf, int(np.asarray(t).size - keep.size)


def agg_combine_reference(ri_in: np.ndarray, rf_in: np.ndarray, ratio: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Coarser rows of a whole stream of finer rows, last bucket included: ``(ri, rf)``."""
    index = ri_in[:, ROW_INDEX] // ratio
    cuts = np.flatnonzero(np.diff(index) != 0) + 1
    cols: tuple[list, ...] = ([], [], [], [], [], [])
    for run in np.split(np.arange(index.size), cuts) if index.size else []:
        counts = ri_in[run, ROW_COUNT]
        full = run[counts > 0]
        total = 0.0
        for i in full:
            total += float(rf_in[i, ROW_MEAN]) * float(ri_in[i, ROW_COUNT])
        row = (int(index[run[0]]), int(counts.sum()), int(ri_in[run, ROW_N].sum()), total,
               rf_in[full, ROW_MIN].min() if full.size else np.nan,
               rf_in[full, ROW_MAX].max() if full.size else np.nan)
        for col, v in zip(cols, row, strict=True):
            col.append(v)
    return _rows(*cols)
