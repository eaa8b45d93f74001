"""Shared-memory rings: one file per signal in the instance folder, one writer, any readers.

A ring file is a 64-byte header (8 little-endian uint64 words: magic, version, capacity,
signal id, reserved, committed, snapshot start, seqlock) followed by ``t`` float64[capacity]
(unix seconds) and ``y`` float64[capacity]. The protocol lives in :mod:`ring_kernels`.

Files are mmap'd (not ``multiprocessing.shared_memory``), so no resource_tracker is
involved and a crashed instance leaves a folder the next start can remove.
"""

from __future__ import annotations

import math
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rtoc.pipeline import ring_kernels as k

from rtoc.errors import RingFormatError, ShmFull
from rtoc.model import as_batch

MAGIC = int.from_bytes(b"RTOCRNG1", "little")
VERSION = 1
HEADER_BYTES = k.HEADER_WORDS * 8
MIN_CAPACITY = 1 << 10
MAX_CAPACITY = 1 << 26


def file_size(capacity: int) -> int:
    """Bytes of a ring file holding ``capacity`` samples."""
    return HEADER_BYTES + 16 * capacity


def capacity_for(rate: float, seconds: float = 4.0, minimum: int = 1 << 16,
                 maximum: int = 1 << 22) -> int:
    """The power of two holding ``seconds`` of data at ``rate`` Hz, within the bounds."""
    if minimum > maximum:
        raise ValueError(f"ring capacity bounds reversed: minimum {minimum} > maximum {maximum}")
    if not (math.isfinite(rate) and math.isfinite(seconds)) or rate < 0 or seconds < 0:
        raise ValueError(f"ring size needs a finite rate >= 0 and seconds >= 0, got rate={rate}, "
                         f"seconds={seconds}")
    product = rate * seconds
    if not math.isfinite(product):
        raise ValueError(f"ring size rate x seconds is not finite: {rate} x {seconds}")
    want = max(minimum, min(maximum, int(product)))
    cap = 1 << (max(want, 1) - 1).bit_length()
    return cap if cap <= maximum else 1 << (maximum.bit_length() - 1)


@dataclass(frozen=True)
class ReadResult:
    """Samples ``first .. first+len(t)`` of a ring; ``lost`` were overwritten before this read.

    ``t`` and ``y`` are float64 arrays owned by the caller (copies, never ring memory).
    ``snapshot`` is the ring's snapshot start at the time of the read (see ``plot``).
    """

    first: int
    t: np.ndarray
    y: np.ndarray
    lost: int
    snapshot: int

    @property
    def stop(self) -> int:
        return self.first + len(self.t)


class Ring:
    """One mapped ring file. Use :meth:`create` (supervisor) or :meth:`open` (everyone else)."""

    def __init__(self, path: Path, mm: mmap.mmap):
        self.path = Path(path)
        self._mm = mm
        self.hdr = np.frombuffer(mm, dtype="<u8", count=k.HEADER_WORDS)
        if int(self.hdr[k.MAGIC]) != MAGIC:
            raise RingFormatError(f"{path}: not an RTOC ring (bad magic)")
        if int(self.hdr[k.VERSION]) != VERSION:
            raise RingFormatError(f"{path}: ring version {int(self.hdr[k.VERSION])}, expected {VERSION}")
        cap = int(self.hdr[k.CAPACITY])
        if cap < 2 or cap & (cap - 1) or len(mm) != file_size(cap):
            raise RingFormatError(f"{path}: capacity {cap} does not match the file size {len(mm)}")
        self.capacity = cap
        self.t = np.frombuffer(mm, dtype="<f8", count=cap, offset=HEADER_BYTES)
        self.y = np.frombuffer(mm, dtype="<f8", count=cap, offset=HEADER_BYTES + 8 * cap)

    @classmethod
    def create(cls, path: Path | str, capacity: int, signal_id: int) -> Ring:
        """Create a new ring file; refuses clearly when its filesystem lacks the room."""
        if capacity < MIN_CAPACITY or capacity > MAX_CAPACITY or capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two in [{MIN_CAPACITY}, {MAX_CAPACITY}], got {capacity}")
        path = Path(path)
        size = file_size(capacity)
        st = os.statvfs(path.parent)
        free = st.f_bavail * st.f_frsize
        if size > free:
            raise ShmFull(f"no room for ring {path.name}: needs {size >> 20} MiB, "
                          f"{path.parent} has {free >> 20} MiB free")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                # reserve the pages now: touching a page beyond a full tmpfs is SIGBUS
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                os.unlink(path)
                raise ShmFull(f"no room for ring {path.name} ({size >> 20} MiB): {exc}") from exc
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        hdr = np.frombuffer(mm, dtype="<u8", count=k.HEADER_WORDS)
        hdr[k.VERSION], hdr[k.CAPACITY], hdr[k.SIGNAL_ID] = VERSION, capacity, signal_id
        hdr[k.MAGIC] = MAGIC
        return cls(path, mm)

    @classmethod
    def open(cls, path: Path | str) -> Ring:
        path = Path(path)
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_BYTES:
                raise RingFormatError(f"{path}: {size} bytes is too short for a ring")
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        return cls(path, mm)

    @property
    def signal_id(self) -> int:
        return int(self.hdr[k.SIGNAL_ID])

    @property
    def committed(self) -> int:
        """Samples written so far (a hint; the kernels do the ordered loads)."""
        return int(self.hdr[k.COMMITTED])

    def close(self) -> None:
        """Drop the mapping (views into it must be gone; copies are fine)."""
        self.hdr = self.t = self.y = None  # type: ignore[assignment]
        try:
            self._mm.close()
        except BufferError:
            pass  # a caller still holds a view: the mapping lives until it is collected


class RingWriter:
    """The single writer of a ring. ``seq`` continues from whatever the ring holds."""

    def __init__(self, ring: Ring):
        self.ring = ring

    @property
    def seq(self) -> int:
        return self.ring.committed

    def write(self, t, y) -> int:
        """Append samples (t: float64[n] unix seconds, y: float64[n]); return the new seq."""
        ts, ys = as_batch(t, y)
        r = self.ring
        return int(k.write(r.hdr, r.t, r.y, ts, ys))

    def plot(self, t, y) -> int:
        """Replace the signal's content with these samples; return the new seq."""
        ts, ys = as_batch(t, y)
        r = self.ring
        return int(k.plot(r.hdr, r.t, r.y, ts, ys))


class RingReader:
    """A reader with its own cursor; ``read`` never returns a torn sample and counts losses."""

    def __init__(self, ring: Ring, cursor: int | None = None, max_batch: int = 1 << 16):
        self.ring = ring
        self.cursor = ring.committed if cursor is None else cursor
        self.max_batch = max_batch
        self.lost = 0

    def pending(self) -> int:
        """Samples written since the cursor (lower bound of what ``read`` will cover)."""
        return max(0, self.ring.committed - self.cursor)

    def read(self) -> ReadResult:
        """Everything new up to ``max_batch`` samples, as fresh arrays (never ring memory,
        and never reused: a caller may hand them to zmq without copying)."""
        r = self.ring
        size = min(max(r.committed - self.cursor, 0), self.max_batch, r.capacity)
        out_t = np.empty(size, np.float64)
        out_y = np.empty(size, np.float64)
        first, off, count, stop = k.read(r.hdr, r.t, r.y, np.uint64(self.cursor), out_t, out_y)
        first, off, count = int(first), int(off), int(count)
        lost = max(0, first - self.cursor)  # a cursor ahead of the ring (a stale one) lost nothing
        self.cursor = int(stop)
        self.lost += lost
        return ReadResult(first, out_t[off:off + count], out_y[off:off + count],
                          lost, int(r.hdr[k.SNAPSHOT]))

    def snapshot(self) -> ReadResult:
        """The signal's current content since its last ``plot`` (bounded by capacity)."""
        r = self.ring
        while True:
            lock, snap, end = (int(v) for v in k.snapshot_bounds(r.hdr))
            start = max(snap, end - r.capacity)
            t = np.empty(end - start, np.float64)
            y = np.empty(end - start, np.float64)
            first, off, count, _ = k.read(r.hdr, r.t, r.y, np.uint64(start), t, y)
            if k.seqlock_unchanged(r.hdr, np.uint64(lock)):
                first, off, count = int(first), int(off), int(count)
                return ReadResult(first, t[off:off + count], y[off:off + count], first - start, snap)

    def latest(self) -> tuple[int, float, float] | None:
        """``(seq, t, y)`` of the newest sample, or None while the ring is empty."""
        r = self.ring
        out_t = np.empty(1, np.float64)
        out_y = np.empty(1, np.float64)
        for _ in range(100):
            end = r.committed
            if end == 0:
                return None
            first, off, count, _ = k.read(r.hdr, r.t, r.y, np.uint64(end - 1), out_t, out_y)
            if count:
                return int(first), float(out_t[0]), float(out_y[0])
        return None


def warm_up() -> None:
    """Compile (or load from numba's cache) every ring kernel once, in this process."""
    hdr = np.zeros(k.HEADER_WORDS, np.uint64)
    hdr[k.CAPACITY] = 4
    t = np.zeros(4)
    y = np.zeros(4)
    batch = np.zeros(2)
    k.write(hdr, t, y, batch, batch)
    k.plot(hdr, t, y, batch, batch)
    k.read(hdr, t, y, np.uint64(0), batch, batch.copy())
    k.snapshot_bounds(hdr)
    k.seqlock_unchanged(hdr, np.uint64(0))
