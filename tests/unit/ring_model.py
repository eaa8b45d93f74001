"""Plain-Python reference model of the shared-memory ring (semantics of ``ring_kernels``).

Single-threaded, no shared memory: it states what a ring *should* return so that the
real ``Ring``/``RingWriter``/``RingReader`` can be checked against it.

* Sequence numbers count every sample ever written (including dropped ones).
* A batch longer than the capacity keeps its newest ``capacity`` samples but still
  advances the sequence by its full length.
* A reader whose cursor fell more than ``capacity`` behind loses the overwritten samples
  and counts them: ``lost = first - cursor``.
* A read returns at most ``max_batch`` samples, oldest first.
* ``plot`` appends its batch and moves the snapshot start to the first kept sample of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence


class RingModel:
    """The newest ``capacity`` samples of a stream, addressed by sequence number."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.committed = 0
        self.snapshot_start = 0
        self._kept: deque[tuple[float, float]] = deque(maxlen=capacity)

    @property
    def oldest(self) -> int:
        """Sequence number of the oldest sample still held."""
        return self.committed - len(self._kept)

    def write(self, ts: Sequence[float], ys: Sequence[float]) -> int:
        """Append a batch; return the new committed count."""
        if len(ts) != len(ys):
            raise ValueError(f"t and y differ in length: {len(ts)} != {len(ys)}")
        n = len(ts)
        skip = max(0, n - self.capacity)
        for i in range(skip, n):
            self._kept.append((float(ts[i]), float(ys[i])))
        self.committed += n
        return self.committed

    def plot(self, ts: Sequence[float], ys: Sequence[float]) -> int:
        """Replace the content: append the batch, snapshot starts at its first kept sample."""
        start = self.committed
        end = self.write(ts, ys)
        self.snapshot_start = start + max(0, len(ts) - self.capacity)
        return end

    def samples(self, start: int, count: int) -> tuple[list[float], list[float]]:
        """``t``/``y`` of sequence numbers ``start .. start+count`` (must be held)."""
        if count == 0:
            return [], []
        if start < self.oldest or start + count > self.committed:
            raise IndexError(f"samples {start}..{start + count} not held "
                             f"({self.oldest}..{self.committed})")
        base = start - self.oldest
        items = [self._kept[base + i] for i in range(count)]
        return [t for t, _ in items], [y for _, y in items]

    def snapshot(self) -> tuple[int, list[float], list[float]]:
        """``(first, t, y)``: the content since the last plot, bounded by the capacity."""
        first = max(self.snapshot_start, self.oldest)
        t, y = self.samples(first, self.committed - first)
        return first, t, y

    def latest(self) -> tuple[int, float, float] | None:
        """``(seq, t, y)`` of the newest sample, or None while nothing is held."""
        if not self._kept:
            return None
        t, y = self._kept[-1]
        return self.committed - 1, t, y

    def reader(self, cursor: int | None = None) -> ReaderModel:
        """A reader starting at ``cursor`` (default: now)."""
        return ReaderModel(self, self.committed if cursor is None else cursor)


class ReaderModel:
    """A cursor into a :class:`RingModel`; counts what it lost."""

    def __init__(self, ring: RingModel, cursor: int = 0) -> None:
        self.ring = ring
        self.cursor = cursor
        self.lost = 0

    def read(self, max_batch: int) -> tuple[int, list[float], list[float], int]:
        """``(first, t, y, lost)``: up to ``max_batch`` samples from the cursor on."""
        ring = self.ring
        first = min(max(self.cursor, ring.oldest), ring.committed)
        count = min(ring.committed - first, max_batch)
        t, y = ring.samples(first, count)
        lost = first - self.cursor
        self.cursor = first + count
        self.lost += lost
        return first, t, y, lost
