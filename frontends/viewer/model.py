"""What the viewer knows, without Qt: each signal's live points and the history it fetched.

The live edge comes from the engine's view stream (M4 points: first, min, max, last per
bucket), kept per signal in a bounded buffer (``LIVE_POINTS``). A range older than the live
buffer is fetched from the archive's ``history`` with ``max_points`` = the plot's width in
pixels; :meth:`Trace.visible` joins the two where they meet, so zooming out from the live
edge into the archive shows one curve. Pure: time and widths are arguments.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

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


@dataclass
class Trace:
    """One signal: a ring of live points (ascending ``t``) and the last history answer."""

    capacity: int = LIVE_POINTS
    t: np.ndarray = field(default_factory=lambda: np.empty(0))
    y: np.ndarray = field(default_factory=lambda: np.empty(0))
    history: History | None = None
    asked: tuple[float, float, int] | None = None  # a history request on its way

    def add(self, t: np.ndarray, y: np.ndarray) -> None:
        """Append view points (float64[n] each); older ones fall off past ``capacity``."""
        if not len(t):
            return
        if len(self.t) and t[0] <= self.t[-1]:  # a restart or a replay: keep time ascending
            keep = t > self.t[-1]
            t, y = t[keep], y[keep]
        self.t = np.concatenate([self.t, t])[-self.capacity:]
        self.y = np.concatenate([self.y, y])[-self.capacity:]

    @property
    def live_start(self) -> float:
        return float(self.t[0]) if len(self.t) else np.inf

    def visible(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """The points to draw for ``t0 .. t1`` (unix s): history before the live buffer
        begins, live points after."""
        i, j = np.searchsorted(self.t, [t0, t1], side="left")
        j = min(len(self.t), j + 1)  # one point past the edge: the line reaches it
        lt, ly = self.t[max(0, i - 1):j], self.y[max(0, i - 1):j]
        h = self.history
        if h is None or t0 >= self.live_start:
            return lt, ly
        upto = min(self.live_start, t1)
        a, b = np.searchsorted(h.t, [t0, upto], side="left")
        return np.concatenate([h.t[max(0, a - 1):b], lt]), np.concatenate([h.y[max(0, a - 1):b], ly])

    def needs_history(self, t0: float, t1: float, width: int) -> tuple[float, float, int] | None:
        """The history request (from, to, max_points) this range needs, or None: only the
        part older than the live buffer, and not again while one is on its way or the last
        answer covers the range at about this width."""
        # a few pixels of margin: the live buffer's start moves with every message, and a
        # range that begins just before it needs no history (132 requests in 10 s, before)
        if t0 >= self.live_start - (t1 - t0) * 0.01:
            return None
        upto = min(t1, self.live_start) if len(self.t) else t1
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
        self.history = History(t0, t1, width, t, y)
        if self.asked is not None and self.asked[:2] == (t0, t1):
            self.asked = None


class ViewerModel:
    """Signals (as the instance lists them), their traces, and the latest events."""

    def __init__(self) -> None:
        self.signals: dict[str, dict] = {}
        self.traces: dict[str, Trace] = {}
        self.events: deque[dict] = deque(maxlen=MAX_EVENTS)
        self.received = 0  # view points since the start

    def trace(self, name: str) -> Trace:
        return self.traces.setdefault(name, Trace())

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
