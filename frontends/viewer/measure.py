"""The measure tool's figures for a region of a curve: duration, delta y, min/max/mean and
the frequency of a periodic signal (pure numpy)."""

from __future__ import annotations

import math

import numpy as np


def measure(t: np.ndarray, y: np.ndarray, t0: float, t1: float) -> dict[str, float]:
    """``t``/``y`` float64[n] (ascending ``t``); the figures of the samples in ``t0 .. t1``:
    ``duration`` (s, of the region), ``n``, ``dy`` (last - first), ``min``, ``max``,
    ``mean``, ``frequency`` (Hz; NaN when fewer than two periods are seen)."""
    i, j = (int(k) for k in np.searchsorted(t, [t0, t1], side="left"))
    ts, ys = t[i:j], y[i:j]
    ok = np.isfinite(ys)
    ts, ys = ts[ok], ys[ok]
    out = {"duration": float(t1 - t0), "n": float(len(ys)), "dy": math.nan, "min": math.nan,
           "max": math.nan, "mean": math.nan, "frequency": math.nan}
    if not len(ys):
        return out
    out.update(dy=float(ys[-1] - ys[0]), min=float(ys.min()), max=float(ys.max()), mean=float(ys.mean()))
    out["frequency"] = frequency(ts, ys)
    return out


def frequency(t: np.ndarray, y: np.ndarray) -> float:
    """Hz from the rising crossings of the mid level (between min and max), with a
    hysteresis of 10 % of the span so noise does not count; NaN under two periods."""
    lo, hi = float(y.min()), float(y.max())
    if not hi > lo:
        return math.nan
    mid, band = (lo + hi) / 2, (hi - lo) * 0.1
    state = np.where(y > mid + band, 1, np.where(y < mid - band, -1, 0))
    known = state != 0
    s, ts = state[known], t[known]
    rising = np.flatnonzero((s[1:] == 1) & (s[:-1] == -1)) + 1
    if len(rising) < 3:
        return math.nan
    return (len(rising) - 1) / float(ts[rising[-1]] - ts[rising[0]])
