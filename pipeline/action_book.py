"""The engine's bookkeeping of the actions it carries out (a pure core; time is an argument).

An action that calls a driver function, sets a parameter or writes to a signal not yet
claimed becomes a control request; this book remembers each request until its reply comes
(or forgets it, reported as failed, after ``expire`` seconds), and keeps the samples an
action wrote while the signal's ring is being claimed (at most ``max_unwritten`` per signal,
the newest). The engine's shell sends the requests, holds the ring writers, and reports
failures; see :class:`rtoc.pipeline.reactions.Reactions` for the rules that make effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtoc.events.rules import Effect

EXPIRE = 60.0            # s a request may wait for its reply
MAX_UNWRITTEN = 10_000   # samples an action may queue for a signal whose ring is not claimed yet


@dataclass(frozen=True)
class Pending:
    """A request sent for ``effect`` at ``since`` (monotonic s), caused by event ``cause``."""

    effect: Effect
    since: float
    cause: str


class ActionBook:
    def __init__(self, prefix: str, expire: float = EXPIRE, max_unwritten: int = MAX_UNWRITTEN):
        self.prefix = prefix  # e.g. "act-<pid>": never matches a reply meant for an earlier engine
        self.expire, self.max_unwritten = expire, max_unwritten
        self.requests: dict[str, Pending] = {}
        self.unwritten: dict[str, list[tuple[float, float]]] = {}
        self._n = 0

    def ask(self, effect: Effect, cause: str, now: float) -> str:
        """A new request id for ``effect``, remembered until :meth:`answered` or expiry."""
        self._n += 1
        rid = f"{self.prefix}-{self._n}"
        self.requests[rid] = Pending(effect, now, cause)
        return rid

    def forget(self, rid: str) -> None:
        """The request could not be sent."""
        self.requests.pop(rid, None)

    def expired(self, now: float) -> list[Pending]:
        """Requests never answered within ``expire``: forgotten, to be reported failed."""
        old = [rid for rid, p in self.requests.items() if now - p.since > self.expire]
        return [self.requests.pop(rid) for rid in old]

    def answered(self, rid: object) -> Pending | None:
        """The request a reply's ``re`` names (None: not ours, or already forgotten)."""
        return self.requests.pop(rid, None) if isinstance(rid, str) else None

    def queue(self, name: str, t: float, y: float) -> bool:
        """Keep a sample for ``name`` until its ring is claimed; True for the first one
        (the time to ask for the ring). Past ``max_unwritten`` the oldest is dropped."""
        queue = self.unwritten.setdefault(name, [])
        if len(queue) >= self.max_unwritten:
            del queue[0]  # the ring never came: keep the newest (the failure was reported)
        queue.append((t, y))
        return len(queue) == 1

    def take_unwritten(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The samples waiting for ``name``'s ring (t, y: float64[n]), now that it exists."""
        samples = self.unwritten.pop(name, None)
        if not samples:
            return None
        t, y = np.array(samples, dtype=np.float64).T
        return np.ascontiguousarray(t), np.ascontiguousarray(y)

    def drop_unwritten(self, name: str) -> None:
        """The claim failed: the queued samples cannot be written."""
        self.unwritten.pop(name, None)
