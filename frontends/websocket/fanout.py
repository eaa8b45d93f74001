"""What the two roads' fan-outs share: waiting samples, who wants which push. Pure.

Both fan-outs keep the bus's batches until the push timer takes them: the JSON one per
signal (one serialization for every JSON client, :mod:`json_protocol.fanout`), the binary
one per session (frames with ``seq``, :mod:`binary_protocol.fanout`). Both keep them as
:class:`Chunks`, ask the session whether it wants a push (:meth:`FanoutBase.wants`: raw
data by subscription, views by name, both only with the ``read`` role) and count what a
slow client loses in its session (``dropped``, reported once per loss:
``Session.report_dropped``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rtoc.frontends.websocket.session import Session

__all__ = ["Chunks", "FanoutBase", "cat"]


@dataclass
class Chunks:
    """Samples of one signal waiting for the next push: float64 chunks in order (``t``,
    ``y`` float64[k] each, kept as given: pass owned or read-only arrays), ``n`` in all."""

    t: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    n: int = 0

    def add(self, t: np.ndarray, y: np.ndarray) -> None:
        self.t.append(t)
        self.y.append(y)
        self.n += len(t)

    def drop_first(self) -> int:
        """Forget the oldest chunk; returns how many samples it held."""
        k = len(self.t[0])
        del self.t[0], self.y[0]
        self.n -= k
        return k

    def joined(self) -> tuple[np.ndarray, np.ndarray]:
        """All waiting samples as two float64 arrays (no copy for a single chunk)."""
        return cat(self.t), cat(self.y)


class FanoutBase:
    """The part of a fan-out that does not depend on the road."""

    @staticmethod
    def wants(session: Session, kind: str, name: str) -> bool:
        """Whether ``session`` wants a push of ``kind`` ("signal": raw data, "view") of the
        signal ``name``."""
        if kind == "signal":
            return session.wants_signal(name)
        return session.wants_view(name)


def cat(parts: list[np.ndarray]) -> np.ndarray:
    """The chunks as one float64 array (the chunk itself when there is one)."""
    if not parts:
        return np.empty(0, np.float64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
