"""What the viewer knows, without Qt: each signal's live points and the history it fetched.

The live edge comes from the engine's view stream (M4 points: first, min, max, last per
bucket), kept per signal in a bounded buffer (``LIVE_POINTS``). A range older than the live
buffer is fetched from the archive's ``history`` with ``max_points`` = the plot's width in
pixels; :meth:`Trace.visible` joins the two where they meet, so zooming out from the live
edge into the archive shows one curve. Pure: time and widths are arguments.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

LIVE_POINTS = 1 << 18     # view points kept per signal (2000/s: over 2 minutes at full rate)
MAX_EVENTS = 5000


@dataclass
class History:
    t0: float
    t1: float
    width: int
    t: np.ndarray
    y: np.ndarray


class Trace:
    """One signal: a ring of live points (ascending ``t``) and the last history answer.

    The ring is two arrays of twice ``capacity``; points are appended in place and the
    newest ``capacity`` are moved to the front only when the end is reached, so a message
    costs its own length (amortised), not the buffer's (167 us per 100-point message into a
    full buffer, before). ``version`` changes with every change a drawing would show.
    """

    def __init__(self, capacity: int = LIVE_POINTS):
        self.capacity = capacity
        self._t = np.empty(2 * capacity)
        self._y = np.empty(2 * capacity)
        self._a = self._b = 0                       # live points are _t[_a:_b]
        self.history: History | None = None
        self.asked: tuple[float, float, int] | None = None  # a history request on its way
        self.version = 0
        self._cache: tuple | None = None  # (step, version, t, y): the live part thinned

    @property
    def t(self) -> np.ndarray:
        return self._t[self._a:self._b]

    @property
    def y(self) -> np.ndarray:
        return self._y[self._a:self._b]

    def add(self, t: np.ndarray, y: np.ndarray) -> None:
        """Append view points (float64[n] each, ascending ``t``); older ones fall off past
        ``capacity``; points without a finite time are dropped."""
        if not len(t):
            return
        if not np.isfinite(t).all():  # a driver's NaN time: nowhere to draw it, and it would
            keep = np.isfinite(t)    # break the ascending order everything here relies on
            t, y = t[keep], y[keep]
            if not len(t):
                return
        if self._b > self._a and t[0] <= self._t[self._b - 1]:  # a restart or a replay
            keep = t > self._t[self._b - 1]
            t, y = t[keep], y[keep]
        n = len(t)
        if n >= self.capacity:
            t, y, n = t[-self.capacity:], y[-self.capacity:], self.capacity
            self._a = self._b = 0
        elif self._b + n > len(self._t):             # the end reached: keep the newest at the front
            keep = min(self._b - self._a, self.capacity - n)
            self._t[:keep] = self._t[self._b - keep:self._b]
            self._y[:keep] = self._y[self._b - keep:self._b]
            self._a, self._b = 0, keep
        self._t[self._b:self._b + n] = t
        self._y[self._b:self._b + n] = y
        self._b += n
        self._a = max(self._a, self._b - self.capacity)
        self.version += 1

    @property
    def live_start(self) -> float:
        return float(self._t[self._a]) if self._b > self._a else np.inf

    def visible(self, t0: float, t1: float, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The points to draw for ``t0 .. t1`` (unix s): history before the live buffer
        begins, live points after. With ``width`` (pixels), a part with more than two points
        per pixel column is thinned to each column's min and max (:func:`decimate`; the live
        part from a cache extended by the new points only); without, every point (measuring)."""
        live_t, live_y = self.t, self.y
        i, j = np.searchsorted(live_t, [t0, t1], side="left")
        j = min(len(live_t), j + 1)  # one point past the edge: the line reaches it
        lo = max(0, i - 1)
        if width and j - lo > 2 * width:
            lt, ly = self._decimated(column_step(t0, t1, width), live_t[lo], live_t[j - 1])
        else:
            lt, ly = live_t[lo:j], live_y[lo:j]
        h = self.history
        if h is None or t0 >= self.live_start:
            return lt, ly
        upto = min(self.live_start, t1)
        a, b = np.searchsorted(h.t, [t0, upto], side="left")
        ht, hy = h.t[max(0, a - 1):b], h.y[max(0, a - 1):b]
        if width:
            ht, hy = decimate(ht, hy, column_step(t0, t1, width))
        return np.concatenate([ht, lt]), np.concatenate([hy, ly])

    def _decimated(self, step: float, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """The live buffer thinned at ``step``, ``t0 .. t1``: kept between frames, and only
        the columns from the last (then unfinished) one on are computed again."""
        c = self._cache
        if c is None or c[0] != step or c[1] != self.version:
            if c is not None and c[0] == step and len(c[2]):  # new points: redo from the last column
                redo = np.floor(c[2][-1] / step) * step
                keep = np.searchsorted(c[2], redo, side="left")
                k = np.searchsorted(self.t, redo, side="left")
                nt, ny = decimate(self.t[k:], self.y[k:], step)
                start = np.searchsorted(c[2], self.live_start, side="left")  # fallen off the ring
                ct, cy = np.concatenate([c[2][start:keep], nt]), np.concatenate([c[3][start:keep], ny])
            else:
                ct, cy = decimate(self.t, self.y, step)
                if np.shares_memory(ct, self._t):  # sparse: decimate gave the ring's own points,
                    ct, cy = ct.copy(), cy.copy()  # which the ring moves when it compacts
            c = self._cache = (step, self.version, ct, cy)
        a, b = np.searchsorted(c[2], t0, side="left"), np.searchsorted(c[2], t1, side="right")
        return c[2][max(0, a - 1):b + 1], c[3][max(0, a - 1):b + 1]  # a column's two points: both

    def needs_history(self, t0: float, t1: float, width: int) -> tuple[float, float, int] | None:
        """The history request (from, to, max_points) this range needs, or None: only the
        part older than the live buffer, and not again while one is on its way or the last
        answer covers the range at about this width."""
        # a few pixels of margin: the live buffer's start moves with every message, and a
        # range that begins just before it needs no history (132 requests in 10 s, before)
        if t0 >= self.live_start - (t1 - t0) * 0.01:
            return None
        upto = min(t1, self.live_start) if self._b > self._a else t1
        h = self.history
        slack = (t1 - t0) * 0.01
        if h is not None and h.t0 <= t0 + slack and h.t1 >= upto - slack \
                and (upto - t0) >= (h.t1 - h.t0) / 4 and h.width >= width // 2:
            return None  # covered, and not zoomed in so far that it looks coarse
        want = (t0, upto, max(4, int(width)))
        if self.asked is not None and self.asked[0] <= t0 and self.asked[1] >= upto:
            return None
        self.asked = want
        return want

    def got_history(self, t0: float, t1: float, width: int, t: np.ndarray, y: np.ndarray) -> None:
        if not np.isfinite(t).all():
            keep = np.isfinite(t)
            t, y = t[keep], y[keep]
        self.history = History(t0, t1, width, t, y)
        self.version += 1
        if self.asked is not None and self.asked[:2] == (t0, t1):
            self.asked = None


def column_step(t0: float, t1: float, width: int) -> float:
    """The duration of one pixel column, to 6 digits: a window sliding with the live edge
    keeps the same step (and the same columns) from frame to frame."""
    return float(f"{(t1 - t0) / max(1, width):.6g}")


def decimate(t: np.ndarray, y: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Each column of ``step`` s (a fixed grid of multiples of ``step``) as two points at its
    middle: its min and max (NaN skipped; an all-NaN column stays a gap), the one the
    signal passed first first (judged by the column's first value). A column's extremes
    are what a line drawn through all its points covers, so the picture is the same. Points
    that average two or fewer per column are returned as they are. ``t`` ascending and
    finite. Costs O(n) whatever the time span (a grid of every column between two points
    days apart took 4 GB once).
    """
    n = len(t)
    if n <= 2 or step <= 0:
        return t, y
    col = np.floor(t / step)
    starts = np.flatnonzero(np.concatenate([[True], col[1:] != col[:-1]]))  # columns holding points
    if n <= 2 * len(starts):
        return t, y
    ends = np.concatenate([starts[1:], [n]])
    with np.errstate(invalid="ignore"):
        lo, hi = np.fmin.reduceat(y, starts), np.fmax.reduceat(y, starts)
        falling = (y[starts] - lo) > (hi - y[starts])
    ta, tb = t[starts], t[ends - 1]
    mid = np.clip((col[starts] + 0.5) * step, ta, tb)
    out_t = np.repeat(mid, 2)
    out_y = np.stack([np.where(falling, hi, lo), np.where(falling, lo, hi)], axis=1).ravel()
    return out_t, out_y


class ViewerModel:
    """Signals (as the instance lists them), their traces, and the latest events."""

    def __init__(self) -> None:
        self.signals: dict[str, dict] = {}
        self.traces: dict[str, Trace] = {}
        self.events: deque[dict] = deque(maxlen=MAX_EVENTS)
        self.received = 0  # view points since the start

    def trace(self, name: str) -> Trace:
        trace = self.traces.get(name)
        if trace is None:
            trace = self.traces[name] = Trace()
        return trace

    def on_points(self, name: str, t: np.ndarray, y: np.ndarray) -> None:
        self.trace(name).add(t, y)
        self.received += len(t)

    def on_signals(self, signals: list[dict]) -> None:
        self.signals = {s["name"]: s for s in signals}

    def on_events(self, events: list[dict]) -> None:
        seen = {(e.get("time"), e.get("id"), e.get("text")) for e in self.events}
        for e in sorted(events, key=lambda e: e.get("time", 0.0)):
            key = (e.get("time"), e.get("id"), e.get("text"))
            if key not in seen:
                seen.add(key)
                self.events.append(e)

    def events_between(self, t0: float, t1: float, names: set[str] | None = None) -> list[dict]:
        """Events in ``t0 .. t1`` of the devices or signals in ``names`` (None: all)."""
        devices = {n.split(".", 1)[0] for n in names} if names is not None else None
        return [e for e in self.events if t0 <= e.get("time", 0.0) <= t1 and (
            devices is None or e.get("device") in devices or
            f"{e.get('device')}.{e.get('signal')}" in (names or ()))]
