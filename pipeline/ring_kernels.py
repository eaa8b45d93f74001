"""numba kernels of the ring protocol (layout and rules: docs/ARCHITECTURE.md, "Rings").

``hdr`` is the header as a uint64[8] view; ``t`` and ``y`` are the float64[capacity] data
columns (capacity a power of two). Sequence numbers count samples since the ring was
created; sample ``s`` lives in slot ``s & (capacity - 1)``.

The plain-Python model these must agree with is ``tests/unit/ring_model.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from rtoc.pipeline.atomics import fence_acquire, fence_release, load_acquire, store_release

# header slots (uint64 each)
MAGIC, VERSION, CAPACITY, SIGNAL_ID, RESERVED, COMMITTED, SNAPSHOT, SEQLOCK = range(8)
HEADER_WORDS = 8


@njit(cache=True, nogil=True)
def write(hdr, t, y, ts, ys):
    """Append ``ts``/``ys`` (float64[n], seconds / values); return the new committed count.

    A batch longer than the ring keeps its newest ``capacity`` samples; the older ones
    still take sequence numbers, so readers count them as lost.
    """
    cap = t.shape[0]
    mask = cap - 1
    n = ts.shape[0]
    start = load_acquire(hdr, COMMITTED)
    end = start + np.uint64(n)
    skip = n - cap if n > cap else 0
    store_release(hdr, RESERVED, end)
    fence_release()  # reserved is visible before any slot changes
    for i in range(skip, n):
        slot = (start + np.uint64(i)) & np.uint64(mask)
        t[slot] = ts[i]
        y[slot] = ys[i]
    store_release(hdr, COMMITTED, end)
    return end


@njit(cache=True, nogil=True)
def plot(hdr, t, y, ts, ys):
    """Replace the signal's content with ``ts``/``ys``; return the new committed count.

    Written like a batch, but under the seqlock and with SNAPSHOT moved to the first
    sample of the new content, so snapshot readers never see old and new mixed.
    """
    cap = t.shape[0]
    n = ts.shape[0]
    lock = load_acquire(hdr, SEQLOCK)
    store_release(hdr, SEQLOCK, lock + np.uint64(1))  # odd: replacing
    fence_release()
    start = load_acquire(hdr, COMMITTED)
    skip = n - cap if n > cap else 0
    # the marker goes first: a reader that sees the new samples (committed, acquire) also
    # sees where they start; one that sees the marker early finds it beyond its batch
    store_release(hdr, SNAPSHOT, start + np.uint64(skip))
    end = write(hdr, t, y, ts, ys)
    store_release(hdr, SEQLOCK, lock + np.uint64(2))  # even: stable
    return end


@njit(cache=True, nogil=True)
def read(hdr, t, y, cursor, out_t, out_y):
    """Copy samples from sequence ``cursor`` on into ``out_t``/``out_y`` (float64[m]).

    Returns ``(first, offset, count, stop)``: the valid samples are sequence numbers
    ``first .. first+count`` and sit in ``out[offset:offset+count]``; the next cursor is
    ``stop``. ``first - cursor`` samples were lost (overwritten before they were read).
    At most ``m`` samples are read, oldest first.
    """
    cap = t.shape[0]
    mask = cap - 1
    end = load_acquire(hdr, COMMITTED)
    start = cursor
    if end > np.uint64(cap) and end - np.uint64(cap) > start:
        start = end - np.uint64(cap)
    if start > end:  # cursor ahead of the ring (a fresh ring with an old cursor)
        start = end
    count = end - start
    if count > np.uint64(out_t.shape[0]):
        count = np.uint64(out_t.shape[0])
    for i in range(count):
        slot = (start + np.uint64(i)) & np.uint64(mask)
        out_t[i] = t[slot]
        out_y[i] = y[slot]
    fence_acquire()  # the copies complete before reserved is loaded
    reserved = load_acquire(hdr, RESERVED)
    stop = start + count
    first = start
    if reserved > np.uint64(cap) and reserved - np.uint64(cap) > first:
        first = reserved - np.uint64(cap)  # older slots may be torn: drop them
    if first > stop:
        first = stop
    return first, first - start, stop - first, stop


@njit(cache=True, nogil=True)
def snapshot_bounds(hdr):
    """``(seqlock, snapshot start, committed)``, read consistently (retries while odd)."""
    while True:
        lock = load_acquire(hdr, SEQLOCK)
        if lock & np.uint64(1):
            continue
        snap = load_acquire(hdr, SNAPSHOT)
        end = load_acquire(hdr, COMMITTED)
        fence_acquire()
        if load_acquire(hdr, SEQLOCK) == lock:
            return lock, snap, end


@njit(cache=True, nogil=True)
def seqlock_unchanged(hdr, lock):
    """True when no replace began since ``lock`` was read (call after copying)."""
    fence_acquire()
    return load_acquire(hdr, SEQLOCK) == lock
