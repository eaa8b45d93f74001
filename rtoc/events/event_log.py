"""The bounded in-memory list of recent events that the control plane can query."""

from __future__ import annotations

from collections import deque
from typing import Any

from rtoc.errors import EventError
from rtoc.model import PRIORITIES, Event

MAX_RESULTS = 10_000


class EventLog:
    """The newest ``size`` events, oldest first; older ones fall off (the archive keeps
    them). ``total`` counts every event ever added."""

    def __init__(self, size: int = 10_000):
        self.events: deque[Event] = deque(maxlen=max(1, size))
        self.seqs: deque[int] = deque(maxlen=max(1, size))  # each event's number (0, 1, ...)
        self.total = 0

    def add(self, event: Event) -> int:
        """Keep ``event``; returns its number (events ever added before it)."""
        self.events.append(event)
        self.seqs.append(self.total)
        self.total += 1
        return self.total - 1

    def numbered(self, **filters: Any) -> list[tuple[int, Event]]:
        """``query`` with each event's number: the same number the bus carries as ``seq``."""
        found = {id(e) for e in self.query(**filters)}
        return [(n, e) for n, e in zip(self.seqs, self.events, strict=True) if id(e) in found]

    def query(self, since: float | None = None, until: float | None = None,
              priority: int | list[int] | None = None, min_priority: int | None = None,
              device: str | None = None, signal: str | None = None, text: str | None = None,
              id: str | None = None, limit: int = 1000) -> list[Event]:
        """Events matching every filter given, oldest first, at most the newest ``limit``.

        ``since``/``until``: unix s (inclusive); ``priority``: one level or a list;
        ``min_priority``: this level or above; ``device``, ``signal``, ``id``: exact;
        ``text``: a case-insensitive substring.
        """
        checks = _filters(since, until, priority, min_priority, device, signal, text, id)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_RESULTS:
            raise EventError(f"limit must be an integer 1..{MAX_RESULTS}, got {limit!r}")
        out: list[Event] = []
        for ev in reversed(self.events):
            if all(check(ev) for check in checks):
                out.append(ev)
                if len(out) >= limit:
                    break
        out.reverse()
        return out


def _filters(since, until, priority, min_priority, device, signal, text, id) -> list:
    checks: list = []
    for name, value in (("since", since), ("until", until)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise EventError(f"{name} must be a number (unix seconds), got {value!r}")
    if since is not None:
        checks.append(lambda e: e.time >= since)
    if until is not None:
        checks.append(lambda e: e.time <= until)
    if priority is not None:
        levels = priority if isinstance(priority, list) else [priority]
        if not all(isinstance(p, int) and not isinstance(p, bool) and p in PRIORITIES for p in levels):
            raise EventError(f"priority must be 0, 1, 2 or a list of them, got {priority!r}")
        checks.append(lambda e: e.priority in levels)
    if min_priority is not None:
        if min_priority not in PRIORITIES or isinstance(min_priority, bool):
            raise EventError(f"min_priority must be 0, 1 or 2, got {min_priority!r}")
        checks.append(lambda e: e.priority >= min_priority)
    for name, value in (("device", device), ("signal", signal), ("id", id), ("text", text)):
        if value is not None and not isinstance(value, str):
            raise EventError(f"{name} must be text, got {value!r}")
    if device is not None:
        checks.append(lambda e: e.device == device)
    if signal is not None:
        checks.append(lambda e: e.signal == signal)
    if id is not None:
        checks.append(lambda e: e.id == id)
    if text is not None:
        needle = text.casefold()
        checks.append(lambda e: needle in e.text.casefold())
    return checks


def query_fields(msg: dict[str, Any]) -> dict[str, Any]:
    """The filter fields of a control request (``events`` op), unknown keys ignored."""
    keys = ("since", "until", "priority", "min_priority", "device", "signal", "text", "id", "limit")
    return {k: msg[k] for k in keys if k in msg}
