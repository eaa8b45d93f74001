"""The waiting data frames of every ``rtoc.bin.v1`` session (the fan-out). Pure.

The server's bus loop feeds each batch in; its push timer takes each session's frames
(:mod:`binary_shell`). Slow sessions lose their oldest samples here, counted, and are
told so by a ``dropped`` push (:func:`dropped_report`). The waiting samples and who wants
them are the shared part of both roads' fan-outs (:mod:`rtoc.frontends.websocket.fanout`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rtoc.frontends.websocket.binary_protocol.protocol import BinSession
from rtoc.frontends.websocket.fanout import Chunks, FanoutBase

from rtoc.client.frames import encode_control, encode_data, encode_view


@dataclass
class _Run(Chunks):
    """Consecutive samples of one signal waiting for the next push: from ``seq`` on, with
    ``lost`` samples missing before them (the ring's count), or replacing the signal."""

    seq: int = 0
    lost: int = 0
    replace: bool = False


@dataclass
class _Views(Chunks):
    width: float = 0.0


class BinaryFanout(FanoutBase):
    """The waiting data frames of every binary session. Pure.

    The server's bus loop feeds each batch in (``data``, ``view``); every ``push_interval``
    ``take(session)`` gives that session's frames: per signal, the batches since the last
    take, concatenated while consecutive (``seq`` continues, nothing lost or replaced in
    between), cut into frames of at most ``max_frame`` samples. A session that lets more
    than ``max_pending`` samples of one signal pile up loses the oldest (counted in
    ``session.dropped``; the client sees the gap in ``seq``).
    """

    def __init__(self, max_pending: int = 1 << 22, max_frame: int = 1 << 19):
        self.max_pending, self.max_frame = max_pending, max_frame
        self.pending: dict[BinSession, dict[str, list[_Run]]] = {}
        self.views: dict[BinSession, dict[str, _Views]] = {}

    def add(self, session: BinSession) -> None:
        self.pending[session] = {}
        self.views[session] = {}

    def remove(self, session: BinSession) -> None:
        self.pending.pop(session, None)
        self.views.pop(session, None)

    def sessions(self) -> list[BinSession]:
        return list(self.pending)

    def data(self, name: str, seq: int, lost: int, t: np.ndarray, y: np.ndarray,
             replace: bool = False) -> None:
        """A bus batch (``t``/``y`` float64[n], kept: pass owned or read-only buffers)."""
        n = len(t)
        if not n and not replace:
            return
        for session, waiting in self.pending.items():
            if not self.wants(session, "signal", name):
                continue
            runs = waiting.setdefault(name, [])
            last = runs[-1] if runs else None
            if last is not None and not lost and not replace and last.seq + last.n == seq:
                run = last
            else:
                run = _Run(seq=seq, lost=lost, replace=replace)
                runs.append(run)
            run.add(t, y)
            self._trim(session, runs)

    def _trim(self, session: BinSession, runs: list[_Run]) -> None:
        total = sum(r.n for r in runs)
        while total > self.max_pending and (len(runs) > 1 or len(runs[0].t) > 1):
            run = runs[0]
            k = run.drop_first()
            run.seq += k
            run.lost = 0
            total -= k
            session.dropped += k
            if not run.t:
                del runs[0]

    def view(self, name: str, t: np.ndarray, y: np.ndarray, width: float) -> None:
        for session, waiting in self.views.items():
            if self.wants(session, "view", name):
                v = waiting.setdefault(name, _Views())
                v.add(t, y)
                v.width = width
                while v.n > self.max_pending and len(v.t) > 1:
                    v.drop_first()

    def take(self, session: BinSession) -> list[bytes]:
        """The session's frames since the last call (plaintext), then nothing waits."""
        out: list[bytes] = []
        waiting = self.pending.get(session)
        if waiting:
            for name, runs in waiting.items():
                for run in runs:
                    t, y = run.joined()
                    for i in range(0, max(run.n, 1), self.max_frame):
                        header = {"sig": name, "seq": run.seq + i, "lost": run.lost if i == 0 else 0}
                        if run.replace and i == 0:
                            header["replace"] = True
                        out.append(encode_data(header, t[i:i + self.max_frame], y[i:i + self.max_frame]))
            waiting.clear()
        views = self.views.get(session)
        if views:
            for name, v in views.items():
                out.append(encode_view(name, *v.joined(), v.width))
            views.clear()
        return out


def dropped_report(session: BinSession) -> bytes | None:
    """The ``dropped`` push when the session missed more since the last report, else None."""
    if not session.report_dropped():
        return None
    return encode_control({"op": "dropped", "frames": session.dropped_frames,
                           "samples": session.dropped})

