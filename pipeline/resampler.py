"""The resampling core of one signal: M4 points for the live view and fixed-interval
aggregates at several resolutions for the archive (rules: docs/ARCHITECTURE.md,
"Resampling"; kernels: :mod:`resample_kernels`).

Pure: no clock, no sockets. The shell feeds batches, drains ``view()`` and
``aggregates()``, and calls ``close(now, grace)`` with the wall clock (at
``next_deadline(grace)``) so that the last bucket of a slow or stopped signal is not held
back forever. A bucket closed that way is final: a later sample of the same interval opens
a new bucket, so the view gets a second group of points for that interval and the archive a
second row with the same ``start`` (merge them count-weighted, or keep both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rtoc.pipeline import decimate_kernels as d
from rtoc.pipeline import resample_kernels as k

_FIRST_ROWS = 64  # initial room of the output buffers (rows or points); they double as needed
_KEEP_ROWS = 4096  # a drain that used < 1/8 of a buffer larger than this shrinks it back


def view_width_for(points_per_second: int) -> float:
    """Bucket width (seconds) of an M4 view holding ``points_per_second`` points per second:
    M4 gives at most 4 points per bucket."""
    if not points_per_second > 0:
        raise ValueError(f"points_per_second must be > 0, got {points_per_second}")
    return 4.0 / points_per_second


def level_ratios(levels: tuple[float, ...]) -> tuple[int, ...]:
    """Integer ratio of each level's width to the previous one (the first is 1).

    Raises ValueError unless every width is finite and > 0 and each is an integer multiple
    (at least 2) of the previous one.
    """
    ratios = []
    for i, w in enumerate(levels):
        if not (math.isfinite(w) and w > 0):
            raise ValueError(f"levels[{i}] must be a finite width > 0 seconds, got {w!r}")
        if i == 0:
            ratios.append(1)
            continue
        r = w / levels[i - 1]
        m = round(r)
        if m < 2 or abs(r - m) > 1e-9 * r:
            raise ValueError(f"levels[{i}] = {w} s is not an integer multiple (>= 2) of "
                             f"levels[{i - 1}] = {levels[i - 1]} s")
        ratios.append(m)
    return tuple(ratios)


@dataclass(frozen=True)
class AggRows:
    """Closed intervals of one level: ``start`` (float64[k], seconds, ``index * width``),
    ``mean``/``min``/``max`` (float64[k], over the non-NaN y; NaN when ``count`` is 0),
    ``count`` (int64[k], non-NaN samples) and ``n`` (int64[k], all samples)."""

    level: int
    width: float
    start: np.ndarray
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray
    n: np.ndarray


class _Level:
    """Open bucket and closed-but-undrained rows of one aggregate level."""

    def __init__(self, width: float, ratio: int):
        self.width, self.ratio = width, ratio
        self.si, self.sf = k.agg_state()
        self.ri = np.empty((_FIRST_ROWS, 3), np.int64)
        self.rf = np.empty((_FIRST_ROWS, 3), np.float64)
        self.pos = 0
        self.rows = 0  # rows closed since creation

    def grow(self) -> None:
        cap = 2 * self.ri.shape[0]
        self.ri = _grown(self.ri, self.pos, (cap, 3))
        self.rf = _grown(self.rf, self.pos, (cap, 3))

    def close(self, now: float, grace: float, force: bool) -> None:
        if self.pos == self.ri.shape[0]:
            self.grow()
        before = self.pos
        self.pos = k.agg_close(self.width, self.si, self.sf, now, grace, force, self.ri,
                               self.rf, self.pos)
        self.rows += self.pos - before

    def drain(self, level: int) -> AggRows:
        p = self.pos
        self.pos = 0
        ri, rf = self.ri[:p], self.rf[:p]
        rows = AggRows(level, self.width, ri[:, k.ROW_INDEX] * self.width,
                       rf[:, k.ROW_MEAN].copy(), rf[:, k.ROW_MIN].copy(),
                       rf[:, k.ROW_MAX].copy(), ri[:, k.ROW_COUNT].copy(),
                       ri[:, k.ROW_N].copy())
        if self.ri.shape[0] > max(_KEEP_ROWS, 8 * p):
            self.ri = np.empty((_FIRST_ROWS, 3), np.int64)
            self.rf = np.empty((_FIRST_ROWS, 3), np.float64)
        return rows


def _grown(a: np.ndarray, keep: int, shape: tuple[int, ...]) -> np.ndarray:
    b = np.empty(shape, a.dtype)
    b[:keep] = a[:keep]
    return b


class Resampler:
    """M4 view buckets of ``view_width`` seconds and aggregate ``levels`` (widths in
    seconds, each an integer multiple of the one before) of one signal.

    Counters: ``samples`` (accepted), ``skipped`` (t not finite, or ``|t / view_width| >=
    2**62``), ``view_points`` (points closed), ``rows`` (rows closed per level), ``resets``.
    """

    def __init__(self, view_width: float, levels: tuple[float, ...] = ()):
        if not (math.isfinite(view_width) and view_width > 0):
            raise ValueError(f"view_width must be a finite width > 0 seconds, got {view_width!r}")
        self.view_width = float(view_width)
        self.levels = tuple(float(w) for w in levels)
        self._levels = [_Level(w, r) for w, r in zip(self.levels, level_ratios(self.levels),
                                                     strict=True)]
        self._si, self._sf = k.m4_state()
        self._vt = np.empty(_FIRST_ROWS, np.float64)
        self._vy = np.empty(_FIRST_ROWS, np.float64)
        self._vpos = 0
        self.samples = 0
        self.skipped = 0
        self.view_points = 0
        self.resets = 0

    @property
    def rows(self) -> tuple[int, ...]:
        """Rows closed per level since creation."""
        return tuple(lv.rows for lv in self._levels)

    def feed(self, t: np.ndarray, y: np.ndarray) -> None:
        """Add a batch: ``t`` (float64[n], unix seconds) and ``y`` (float64[n])."""
        t = np.ascontiguousarray(t, np.float64)
        y = np.ascontiguousarray(y, np.float64)
        if t.ndim != 1 or t.shape != y.shape:
            raise ValueError(f"t and y must be 1-D of one length, got {t.shape} and {y.shape}")
        if t.size == 0:
            return
        before = self._vpos
        i = 0
        while True:
            used, self._vpos, skipped = k.m4_feed(t[i:], y[i:], self.view_width, self._si,
                                                  self._sf, self._vt, self._vy, self._vpos)
            self.skipped += skipped
            self.samples += used - skipped
            i += used
            if i == t.size:
                break
            self._grow_view()
        self.view_points += self._vpos - before
        if self._levels:
            lv = self._levels[0]
            starts = [x.pos for x in self._levels]
            i = 0
            while True:
                used, lv.pos, _ = k.agg_feed(t[i:], y[i:], lv.width, lv.si, lv.sf, lv.ri,
                                             lv.rf, lv.pos)
                i += used
                if i == t.size:
                    break
                lv.grow()
            lv.rows += lv.pos - starts[0]
            self._cascade(starts, None)

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        """``(t, y)`` (float64[m]) of the M4 points closed since the last call."""
        p = self._vpos
        self._vpos = 0
        t, y = self._vt[:p].copy(), self._vy[:p].copy()
        if self._vt.shape[0] > max(_KEEP_ROWS, 8 * p):
            self._vt = np.empty(_FIRST_ROWS, np.float64)
            self._vy = np.empty(_FIRST_ROWS, np.float64)
        return t, y

    def aggregates(self) -> list[AggRows]:
        """Rows closed since the last call: one ``AggRows`` per level that has any, in level
        order."""
        return [lv.drain(i) for i, lv in enumerate(self._levels) if lv.pos]

    def close(self, now: float, grace: float = 0.0) -> None:
        """Close every open bucket whose interval ended at least ``grace`` seconds before
        ``now`` (unix seconds): ``now >= (index + 1) * width + grace``."""
        self._close(float(now), float(grace), False)

    def flush(self) -> None:
        """Close every open bucket (at the end of a stream)."""
        self._close(0.0, 0.0, True)

    def reset(self) -> None:
        """Drop the open buckets without emitting them (the signal's content was replaced).
        Closed points and rows not yet drained stay."""
        self._si[k.M4_OPEN] = 0
        for lv in self._levels:
            lv.si[k.AGG_OPEN] = 0
        self.resets += 1

    def next_deadline(self, grace: float = 0.0) -> float | None:
        """The earliest ``now`` at which ``close(now, grace)`` closes something, or None
        when no bucket is open."""
        ends = [(self._si[k.M4_INDEX] + 1) * self.view_width] if self._si[k.M4_OPEN] else []
        ends += [(lv.si[k.AGG_INDEX] + 1) * lv.width for lv in self._levels if lv.si[k.AGG_OPEN]]
        return float(min(ends)) + grace if ends else None

    def _grow_view(self) -> None:
        cap = 2 * self._vt.shape[0]
        self._vt = _grown(self._vt, self._vpos, (cap,))
        self._vy = _grown(self._vy, self._vpos, (cap,))

    def _close(self, now: float, grace: float, force: bool) -> None:
        if self._vpos + 4 > self._vt.shape[0]:
            self._grow_view()
        before = self._vpos
        self._vpos = k.m4_close(self.view_width, self._si, self._sf, now, grace, force,
                                self._vt, self._vy, self._vpos)
        self.view_points += self._vpos - before
        if self._levels:
            starts = [lv.pos for lv in self._levels]
            self._levels[0].close(now, grace, force)
            self._cascade(starts, (now, grace, force))

    def _cascade(self, starts: list[int], closing: tuple[float, float, bool] | None) -> None:
        """Fold the rows each level closed since ``starts`` into the next level, finest
        first; with ``closing = (now, grace, force)`` close each level after its fold."""
        for i in range(1, len(self._levels)):
            fine, lv, lo = self._levels[i - 1], self._levels[i], starts[i - 1]
            before = lv.pos
            while lo < fine.pos:
                used, lv.pos = k.agg_combine(fine.ri[lo:fine.pos], fine.rf[lo:fine.pos],
                                             lv.ratio, lv.si, lv.sf, lv.ri, lv.rf, lv.pos)
                lo += used
                if lo < fine.pos:
                    lv.grow()
            lv.rows += lv.pos - before
            if closing is not None:
                lv.close(*closing)


def warm_up() -> None:
    """Compile (or load from numba's cache) every resample kernel once, in this process."""
    r = Resampler(1.0, (1.0, 2.0))
    r.feed(np.array([0.5, 1.5, 2.5, np.nan]), np.array([1.0, np.nan, 2.0, 3.0]))
    r.close(10.0, 0.0)
    r.flush()
    r.view()
    r.aggregates()
    y = np.arange(16, dtype=np.float64)
    d.minmax_indices(y, 4)
    d.m4_indices(y, 4)
