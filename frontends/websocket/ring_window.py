"""A signal's samples in a time range straight from its ring, decimated: what both roads
answer from when the ring covers the range or the archive is away (worker threads only:
a ring copy is up to 64 MiB)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rtoc.pipeline.decimate_kernels import minmax_indices


def from_ring(world: Any, name: str, lo: float | None, hi: float | None, max_n: int,
              anyway: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """The ring's samples in ``lo..hi`` (None: open), min/max decimated to ``max_n``, when
    the ring covers ``lo`` (or ``anyway``); None when it does not, or there is no ring."""
    ring = world.ring(name)
    if ring is None:
        return None
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    t, y = ring
    if not anyway and not (len(t) and t[0] <= lo):
        return None
    keep = (t >= lo) & (t <= hi)
    return decimate(t[keep], y[keep], max_n)


def decimate(t: np.ndarray, y: np.ndarray, max_n: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_n`` samples: min/max pairs of equal-count buckets (the extremes stay)."""
    if len(t) <= max_n:
        return t, y
    idx = minmax_indices(np.ascontiguousarray(y), max_n)
    return t[idx], y[idx]
