"""numba kernels of count-based decimation for history queries (``maxN``), each beside
its numpy reference: ``minmax_indices`` / ``m4_indices`` return the indices tsdownsample's
``MinMaxDownsampler`` / ``M4Downsampler`` would (docs/ARCHITECTURE.md, "Resampling").
"""

from __future__ import annotations

import numpy as np
from numba import njit

#
# Speed: per bin, blocks of BLOCK samples are reduced to (min, max) in a loop LLVM
# vectorises, and the index is then searched only in the first block holding the extreme
# (still in L1). LLVM vectorises a float min/max reduction only under no-NaN flags that
# numba's fastmath does not set where it looks, so the reduction runs on an
# order-preserving int64 image of the float bits (``_key``): integer min/max vectorise. NaN bits map beyond +-inf, so once a block's raw
# extreme is a NaN key, that block and all later ones are reduced with NaN masked (about
# 5 % slower). Unsigned loop indices keep numba's negative-index wraparound (which turns
# loads into gathers) out of the hot loops.

BLOCK = 64
_KEY_MAX = np.int64(0x7FFFFFFFFFFFFFFF)
_KEY_POS_INF = np.int64(0x7FF0000000000000)  # _key(+inf); _key(-inf) == -_KEY_POS_INF


@njit(cache=True, nogil=True, inline="always")
def _key(bits):
    """Order-preserving int64 image of float64 ``bits``; -0.0 and +0.0 share key 0."""
    k = bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))
    return k - (k >> 63)


@njit(cache=True, nogil=True)
def _block_keys(keys, start, stop):
    lo = _KEY_MAX
    hi = -_KEY_MAX - 1
    for i in range(np.uint64(start), np.uint64(stop)):
        k = _key(keys[i])
        lo = min(lo, k)
        hi = max(hi, k)
    return lo, hi


@njit(cache=True, nogil=True)
def _block_keys_masked(keys, start, stop):
    """As ``_block_keys`` but NaN never wins: keys below -inf's leave the min, keys above
    +inf's the max (a min above +inf's key then means: no number in the block)."""
    lo = _KEY_MAX
    hi = -_KEY_MAX - 1
    for i in range(np.uint64(start), np.uint64(stop)):
        k = _key(keys[i])
        lo = min(lo, k if k >= -_KEY_POS_INF else _KEY_MAX)
        hi = max(hi, k if k <= _KEY_POS_INF else -_KEY_MAX - 1)
    return lo, hi


@njit(cache=True, nogil=True)
def _find_key(keys, start, stop, key):
    """First position in ``[start, stop)`` whose key is ``key`` (``start`` if none)."""
    i = start
    while i + 32 <= stop:  # test 32 at a time (vectorised), then look inside
        hit = False
        for j in range(np.uint64(i), np.uint64(i + 32)):
            hit |= _key(keys[j]) == key
        if hit:
            break
        i += 32
    for j in range(i, stop):
        if _key(keys[j]) == key:
            return j
    return start


@njit(cache=True, nogil=True)
def _bin_argminmax(keys, start, stop, masked):
    """``(argmin, argmax, masked)`` of the floats behind ``keys[start:stop]`` (absolute
    positions, first occurrence, NaN skipped; ``(start, start)`` when all are NaN). Blocks
    are reduced raw until one holds a NaN, then (``masked``) with NaN masked."""
    lo = _KEY_MAX
    hi = -_KEY_MAX - 1
    at_lo = at_hi = start
    for b in range(start, stop, BLOCK):
        e = min(b + BLOCK, stop)
        if not masked:
            bl, bh = _block_keys(keys, b, e)
            masked = bl < -_KEY_POS_INF or bh > _KEY_POS_INF
        if masked:
            bl, bh = _block_keys_masked(keys, b, e)
        if bl < lo:
            lo, at_lo = bl, b
        if bh > hi:
            hi, at_hi = bh, b
    if lo > _KEY_POS_INF:
        return start, start, masked
    return (_find_key(keys, at_lo, min(at_lo + BLOCK, stop), lo),
            _find_key(keys, at_hi, min(at_hi + BLOCK, stop), hi), masked)


def minmax_indices(y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices (int64[n_out], or ``arange(n)`` when ``n <= n_out``) of the min and max of
    ``y`` (float64[n]; other dtypes and layouts are converted) in each of ``n_out // 2``
    equal-count bins, the pair in index order; as tsdownsample's
    ``MinMaxDownsampler().downsample(y, n_out=n_out)``.

    Bin ``i`` is ``[end(i-1), end(i))`` with ``end(i) = int((n - 1) / (n_out // 2) * (i + 1))
    + 1``. NaN is skipped; the first occurrence wins a tie; an all-NaN bin gives its first
    index twice (tsdownsample differs only for bins whose non-NaN values are all +inf or
    all -inf, where its answer depends on the CPU's SIMD width). ``n_out`` must be even.
    """
    if n_out <= 0 or n_out % 2:
        raise ValueError(f"n_out must be a positive even number, got {n_out}")
    return _minmax_indices(np.ascontiguousarray(y, np.float64), int(n_out))


@njit(cache=True, nogil=True)
def _minmax_indices(y, n_out):
    """``minmax_indices`` of C-contiguous float64 ``y`` (the bits are read as int64)."""
    n = y.shape[0]
    if n <= n_out:
        return np.arange(n)
    bins = n_out // 2
    size = (n - 1) / bins
    keys = y.view(np.int64)
    out = np.empty(n_out, np.int64)
    masked = False
    start = 0
    for i in range(bins):
        stop = int(size * (i + 1)) + 1
        a, b, masked = _bin_argminmax(keys, start, stop, masked)
        out[2 * i], out[2 * i + 1] = min(a, b), max(a, b)
        start = stop
    return out


def minmax_indices_reference(y: np.ndarray, n_out: int) -> np.ndarray:
    """numpy reference of ``minmax_indices``."""
    if n_out <= 0 or n_out % 2:
        raise ValueError(f"n_out must be a positive even number, got {n_out}")
    return _binned_reference(np.asarray(y, np.float64), n_out // 2, n_out, m4=False)


def m4_indices(y: np.ndarray, n_out: int) -> np.ndarray:
    """Sorted distinct indices (int64[<= n_out], or ``arange(n)`` when ``n <= n_out``) of the
    first, min, max and last sample of each of ``n_out // 4`` equal-count bins of ``y``
    (float64[n]); bins, NaN and ties as ``minmax_indices`` (tsdownsample's
    ``M4Downsampler`` returns the same indices without removing duplicates). ``n_out`` must
    be a multiple of 4."""
    if n_out <= 0 or n_out % 4:
        raise ValueError(f"n_out must be a positive multiple of 4, got {n_out}")
    return _m4_indices(np.ascontiguousarray(y, np.float64), int(n_out))


@njit(cache=True, nogil=True)
def _m4_indices(y, n_out):
    """``m4_indices`` of C-contiguous float64 ``y``."""
    n = y.shape[0]
    if n <= n_out:
        return np.arange(n)
    bins = n_out // 4
    size = (n - 1) / bins
    keys = y.view(np.int64)
    out = np.empty(n_out, np.int64)
    k = 0
    masked = False
    start = 0
    for i in range(bins):
        stop = int(size * (i + 1)) + 1
        a, b, masked = _bin_argminmax(keys, start, stop, masked)
        for j in (start, min(a, b), max(a, b), stop - 1):
            if k == 0 or out[k - 1] != j:
                out[k] = j
                k += 1
        start = stop
    return out[:k].copy()


def m4_indices_reference(y: np.ndarray, n_out: int) -> np.ndarray:
    """numpy reference of ``m4_indices``."""
    if n_out <= 0 or n_out % 4:
        raise ValueError(f"n_out must be a positive multiple of 4, got {n_out}")
    return _binned_reference(np.asarray(y, np.float64), n_out // 4, n_out, m4=True)


def _binned_reference(y: np.ndarray, bins: int, n_out: int, m4: bool) -> np.ndarray:
    n = y.size
    if n <= n_out:
        return np.arange(n)
    size = (n - 1) / bins
    out: list[int] = []
    start = 0
    for i in range(bins):
        stop = int(size * (i + 1)) + 1
        seg = y[start:stop]
        valid = np.flatnonzero(~np.isnan(seg))
        a = b = 0
        if valid.size:
            a, b = int(valid[np.argmin(seg[valid])]), int(valid[np.argmax(seg[valid])])
        picks = [min(a, b), max(a, b)]
        out += [start + p for p in ([0, *picks, stop - 1 - start] if m4 else picks)]
        start = stop
    idx = np.array(out, np.int64)
    return np.unique(idx) if m4 else idx
