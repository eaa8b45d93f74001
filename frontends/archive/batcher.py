"""The archiver's pure core: bus messages in, :class:`ArchiveBatch` es out.

Per signal (one ring's life: name and epoch) it keeps ``next_seq``, the first sample not
yet taken. A data batch that starts beyond it leaves a hole: the part the engine reported
``lost`` (overwritten in the ring before the engine read it) is a gap for good; the rest
was dropped on the bus and may still be in the ring, so the core asks the shell to
backfill it (:class:`Backfill`) and holds that signal's newer samples until the answer
comes, so chunks stay in seq order. What overlaps samples already taken (a repeat, a
resume) is trimmed. ``take(now)`` hands out a batch once ``flush_interval`` s passed since
the oldest pending sample arrived, or ``max_samples`` are pending.

A signal a driver ``plot()`` s (announced with ``content = "snapshot"``, or from the first
batch flagged ``replace``) is archived as snapshots, not samples: each replace starts a
new snapshot, later batches (``plot(hold="on")``, a snapshot longer than a batch) grow it,
and at most one per ``snapshot_interval`` s is handed out, the latest; the ones replaced
before their turn are counted (``snapshots_skipped``) and their points are taken all the
same (seq accounting: nothing is lost, nothing is asked for again). A snapshot that lost
points (a gap, for good) is not kept (``snapshots_incomplete``). A snapshot holds at most
its ring's capacity (the newest points, as the ring shows them): a plot larger than its
ring, or one grown on and on with ``hold="on"``, is kept as its newest ring-full
(``snapshots_cut``); one that keeps growing is written again whole after 1, 2, 4 ...
intervals (at most 1024). ``take(final=True)`` (a clean stop) hands out every snapshot still waiting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, Gap, SignalKey, Snapshot


@dataclass(frozen=True)
class Backfill:
    """Read ``count`` samples from ``first_seq`` of the signal's ring and call
    :meth:`Batcher.backfilled` with what the ring still holds."""

    sig: int
    first_seq: int
    count: int


@dataclass
class _Track:
    key: SignalKey
    next_seq: int = 0                   # first sample not taken yet
    t_last: float = math.nan            # time of the last sample taken
    waiting: Backfill | None = None     # a backfill asked for, not answered yet
    held: list[tuple[int, np.ndarray, np.ndarray, int, bool]] = field(default_factory=list)
    snapshots: bool = False             # plotted: its points are snapshots, not samples
    snap: _Snap | None = None           # the snapshot being shown now
    snap_written: float = -math.inf     # when the last one was handed out (monotonic s)
    capacity: int = 1 << 22             # the ring's: a snapshot holds at most this many points


@dataclass
class _Snap:
    first_seq: int
    time: float                          # unix s of its start
    ts: list[np.ndarray] = field(default_factory=list)
    ys: list[np.ndarray] = field(default_factory=list)
    dirty: bool = True                   # changed since it was last handed out
    broken: bool = False                 # lost points: not kept
    n: int = 0                           # points held
    writes: int = 0                      # times handed out: one that keeps growing waits longer
    cut: bool = False                    # its oldest points were dropped (larger than the ring)


class Batcher:
    def __init__(self, flush_interval: float = 1.0, max_samples: int = 1_000_000,
                 resume: dict[tuple[str, int], int] | None = None, first_number: int = 1,
                 snapshot_interval: float = 10.0, wall: Callable[[], float] = time.time):
        self.flush_interval, self.max_samples = flush_interval, max_samples
        self.snapshot_interval, self.wall = snapshot_interval, wall
        self._now = 0.0  # the latest monotonic time seen (``take`` has none of its own)
        self.resume = dict(resume or {})
        self.tracks: dict[int, _Track] = {}
        self.number = first_number
        self._batch = ArchiveBatch(0)
        self._runs: dict[SignalKey, list] = {}  # key -> [first_seq, end, [t...], [y...]]
        self._pending = 0
        self._since: float | None = None
        self._snap_due: float | None = None  # when a waiting snapshot is due (apart from
        # ``_since``: samples must not wait for a snapshot's interval, nor it for them)
        self.stats = {"samples": 0, "gaps": 0, "lost": 0, "trimmed": 0, "backfilled": 0,
                      "snapshots": 0, "snapshots_skipped": 0, "snapshots_incomplete": 0,
                      "snapshots_cut": 0}

    # -- input ---------------------------------------------------------------------------
    def signal(self, sig: int, name: str, epoch: int, unit: str = "", content: str = "",
               capacity: int = 0) -> None:
        """A ring to follow (from the ``signals`` op or a ``signal_created`` meta);
        ``content`` "snapshot": a signal a driver plots."""
        key = SignalKey(name, int(epoch), unit or "")
        tr = self.tracks.get(sig)
        if tr is not None and tr.key == key:
            return
        # a ring the archive has nothing of is archived from its first sample, not from the
        # first one seen on the bus (the first messages may have been dropped there)
        self.tracks[sig] = _Track(key, self.resume.get((name, int(epoch)), 0), snapshots=content == "snapshot",
                                  capacity=int(capacity) if capacity and capacity > 0 else 1 << 22)

    def start_at(self, sig: int) -> int | None:
        """Where following ``sig`` goes on: its resume point (0 when the archive has none),
        or None for a signal not followed."""
        tr = self.tracks.get(sig)
        return None if tr is None else tr.next_seq

    def data(self, sig: int, seq: int, t: np.ndarray, y: np.ndarray, lost: int, now: float,
             replace: bool = False) -> Backfill | None:
        """Samples ``seq ..`` of ring ``sig`` (float64[n] t, y); ``lost``: how many before
        ``seq`` the engine found overwritten; ``replace``: a ``plot()`` starts at ``seq``.
        Returns a backfill request for a bus gap."""
        self._now = max(self._now, now)
        tr = self.tracks.get(sig)
        if tr is None:
            return None  # a signal we were not told about (yet): its ring will be read
        if tr.waiting is not None:
            tr.held.append((seq, t, y, lost, replace))
            return None
        return self._accept(sig, tr, seq, t, y, lost, now, replace)

    def backfilled(self, sig: int, first_seq: int, t: np.ndarray, y: np.ndarray, now: float,
                   snapshot: int | None = None) -> list[Backfill]:
        """The answer to a :class:`Backfill`: samples from ``first_seq`` (what the ring still
        held; anything before them that was asked for is lost). Releases held batches.
        ``snapshot``: where the ring's last ``plot()`` began (its header), so a snapshot
        that started in the backfilled range starts there."""
        self._now = max(self._now, now)
        tr = self.tracks.get(sig)
        if tr is None or tr.waiting is None:
            return []
        asked, tr.waiting = tr.waiting, None
        lost = max(0, first_seq - asked.first_seq) if len(t) else asked.count
        end = asked.first_seq + asked.count
        keep = max(0, min(len(t), end - first_seq))
        if lost:
            after = t if len(t) else next((h[1] for h in tr.held if len(h[1])), t)
            self._gap(tr, asked.first_seq, min(lost, asked.count), after[0] if len(after) else math.nan)
        if keep:
            cut = snapshot - first_seq if snapshot is not None and first_seq < snapshot < first_seq + keep else 0
            if cut:  # the part before the plot, then the plot
                self._take(tr, first_seq, t[:cut], y[:cut], now)
            if snapshot is not None and first_seq <= snapshot < first_seq + keep:
                self._replace(tr, snapshot)
            self._take(tr, first_seq + cut, t[cut:keep], y[cut:keep], now)
            self.stats["backfilled"] += keep
        tr.next_seq = max(tr.next_seq, end)
        out: list[Backfill] = []
        held, tr.held = tr.held, []
        for i, (seq, ht, hy, hlost, hrep) in enumerate(held):
            req = self._accept(sig, tr, seq, ht, hy, hlost, now, hrep)
            if req is not None:
                tr.held = held[i + 1:]
                out.append(req)
                break
        return out

    def event(self, event: dict, now: float) -> None:
        self._batch.events.append(event)
        if self._since is None:
            self._since = now

    def expect(self, sig: int, seq: int, now: float) -> Backfill | None:
        """A heartbeat says ring ``sig`` has samples up to ``seq``: a hole at the end of a
        stream (nothing more came on the bus) is backfilled too."""
        tr = self.tracks.get(sig)
        if tr is None or tr.waiting is not None or seq <= tr.next_seq:
            return None
        tr.waiting = Backfill(sig, tr.next_seq, seq - tr.next_seq)
        return tr.waiting

    # -- output --------------------------------------------------------------------------
    def due(self, now: float) -> bool:
        self._now = max(self._now, now)
        if self._snap_due is not None and now >= self._snap_due:
            return True
        if self._since is None:
            return False
        return now - self._since >= self.flush_interval or self._pending >= self.max_samples

    def next_deadline(self) -> float | None:
        times = [t for t in (None if self._since is None else self._since + self.flush_interval,
                             self._snap_due) if t is not None]
        return min(times) if times else None

    def next_number(self) -> int:
        """A batch number for a batch made elsewhere (a dead instance's rings)."""
        self.number += 1
        return self.number - 1

    def take(self, final: bool = False) -> ArchiveBatch:
        """The pending batch (possibly empty), numbered; a new one starts. ``final``: the
        archiver stops, every snapshot still waiting for its interval goes too."""
        for key in list(self._runs):
            self._close_run(key)
        self._snap_due = self._take_snapshots(final)  # a snapshot waits: a batch is due then
        batch, self._batch, self._since, self._pending = self._batch, ArchiveBatch(0), None, 0
        batch.number = self.number
        self.number += 1
        return batch

    # -- snapshots -----------------------------------------------------------------------
    def _replace(self, tr: _Track, seq: int) -> None:
        """A ``plot()`` begins at ``seq``: the snapshot shown until now is done."""
        old = tr.snap
        if old is not None and old.dirty and not old.broken:
            self.stats["snapshots_skipped"] += 1  # replaced before its turn
        tr.snapshots = True
        tr.snap = _Snap(seq, self.wall())
        self._schedule(tr)

    def _schedule(self, tr: _Track) -> None:
        """``tr``'s snapshot changed: a batch is due when its interval is over."""
        due = tr.snap_written + self.snapshot_interval * (1 << min(tr.snap.writes, 10))
        self._snap_due = due if self._snap_due is None else min(self._snap_due, due)

    def _take_snapshots(self, final: bool = False) -> float | None:
        """The due snapshots into the batch; when the next one that waits is due."""
        later = None
        for tr in self.tracks.values():
            sn = tr.snap
            if sn is None or not sn.dirty or sn.broken:
                continue
            # one that keeps growing (hold="on") goes again after 1, 2, 4 ... intervals: its
            # bytes written stay a small multiple of its size, not one copy per interval
            due = tr.snap_written + self.snapshot_interval * (1 << min(sn.writes, 10))
            if self._now < due and not final:
                later = due if later is None else min(later, due)
                continue
            # an empty plot (the signal cleared) is a snapshot of no points
            t = np.concatenate(sn.ts) if len(sn.ts) > 1 else sn.ts[0] if sn.ts else np.empty(0)
            y = np.concatenate(sn.ys) if len(sn.ys) > 1 else sn.ys[0] if sn.ys else np.empty(0)
            sn.ts, sn.ys = [t], [y]
            self._batch.snapshots.append(Snapshot(tr.key, sn.first_seq, sn.time, t, y))
            sn.dirty, tr.snap_written = False, self._now
            sn.writes += 1
            self.stats["snapshots"] += 1
            self.stats["snapshots_cut"] += sn.cut
            sn.cut = False
        return later

    # -- internals -----------------------------------------------------------------------
    def _accept(self, sig, tr: _Track, seq, t, y, lost, now, replace: bool = False) -> Backfill | None:
        n = len(t)
        if seq < tr.next_seq:  # overlaps what was taken: trim
            cut = min(n, tr.next_seq - seq)
            self.stats["trimmed"] += cut
            seq, t, y, lost = seq + cut, t[cut:], y[cut:], 0
            n -= cut
            if n == 0:
                return None
        if seq > tr.next_seq and replace and tr.snapshots:
            # a plot replaces what came before it: nothing there to fetch or count as lost.
            # What the engine saw overwritten is the plot's own head when it is larger than
            # its ring: it is kept as the ring shows it, its newest points (``cut``).
            tr.next_seq = seq
            self._replace(tr, seq)
            tr.snap.cut = lost > 0
            replace = False
        if seq > tr.next_seq:
            hole = seq - tr.next_seq
            known = min(lost, hole)  # the engine saw these overwritten: gone for good
            bus = hole - known
            if bus:  # dropped on the bus: maybe still in the ring
                tr.waiting = Backfill(sig, tr.next_seq, bus)
                tr.held.append((seq, t, y, known, replace))
                return tr.waiting
            self._gap(tr, tr.next_seq, known, t[0] if n else math.nan)
            tr.next_seq = seq
        if replace:
            self._replace(tr, seq)
        if n:
            self._take(tr, seq, t, y, now)
        return None

    def _take(self, tr: _Track, seq: int, t: np.ndarray, y: np.ndarray, now: float) -> None:
        if tr.snapshots:
            self._grow(tr, seq, t, y, now)
            return
        run = self._runs.get(tr.key)
        if run is not None and run[1] == seq:  # consecutive: the same chunk
            run[2].append(t)
            run[3].append(y)
            run[1] += len(t)
        else:
            if run is not None:
                self._close_run(tr.key)
            self._runs[tr.key] = [seq, seq + len(t), [t], [y]]
        self._pending += len(t)
        tr.next_seq = seq + len(t)
        tr.t_last = float(t[-1])
        self.stats["samples"] += len(t)
        if self._since is None:
            self._since = now

    def _grow(self, tr: _Track, seq: int, t: np.ndarray, y: np.ndarray, now: float) -> None:
        if not len(t):
            return
        if tr.snap is None:  # announced as plotted, the first points: its first snapshot
            tr.snap = _Snap(seq, self.wall())
        sn = tr.snap
        tr.next_seq = seq + len(t)
        if not sn.broken:
            sn.ts.append(t)
            sn.ys.append(y)
            sn.n += len(t)
            sn.dirty = True
            if sn.n > tr.capacity:  # as the ring holds it: the newest capacity points
                drop = sn.n - tr.capacity
                whole_t, whole_y = np.concatenate(sn.ts)[drop:], np.concatenate(sn.ys)[drop:]
                sn.ts, sn.ys, sn.n = [whole_t], [whole_y], tr.capacity
                sn.first_seq += drop
                sn.cut = True
            self._schedule(tr)
        tr.t_last = float(t[-1])

    def _close_run(self, key: SignalKey) -> None:
        first, _, ts, ys = self._runs.pop(key)
        t = ts[0] if len(ts) == 1 else np.concatenate(ts)
        y = ys[0] if len(ys) == 1 else np.concatenate(ys)
        self._batch.chunks.append(Chunk(key, first, t, y))

    def _gap(self, tr: _Track, first_seq: int, count: int, t_to: float) -> None:
        if count <= 0:
            return
        if tr.snapshots:  # not samples lost: a snapshot that lost points is not kept
            if tr.snap is not None and not tr.snap.broken:
                tr.snap.broken = True
                tr.snap.ts, tr.snap.ys, tr.snap.n = [], [], 0  # its memory goes now
                self.stats["snapshots_incomplete"] += 1
            return
        self._batch.gaps.append(Gap(tr.key, first_seq, count, tr.t_last, float(t_to)))
        self.stats["gaps"] += 1
        self.stats["lost"] += count
