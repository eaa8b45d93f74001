"""The resample kernels against their references (``<kernel>_reference``) on random input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rtoc.pipeline import decimate_kernels as d
from rtoc.pipeline import resample_kernels as k

NEG_NAN = np.copysign(np.nan, -1.0)  # NaN bits with the sign set: keys below -inf


def _data(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """float64[n] of one flavour: walk, ties, NaN-heavy, specials (+-inf, +-0, -NaN)."""
    if kind == "walk":
        return np.cumsum(rng.standard_normal(n))
    if kind == "ties":
        return rng.integers(-2, 3, n).astype(np.float64)
    if kind == "nan":
        y = rng.standard_normal(n)
        y[rng.random(n) < 0.6] = np.nan
        return y
    return rng.choice(np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, NEG_NAN]), n)


KINDS = ["walk", "ties", "nan", "specials"]


# --------------------------------------------------------------------------- minmax / m4 indices


@pytest.mark.parametrize("kind", KINDS)
def test_minmax_indices_matches_reference(kind: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(40):
        n = int(rng.integers(0, 3000))
        n_out = 2 * int(rng.integers(1, 60))
        y = _data(rng, n, kind)
        got = d.minmax_indices(y, n_out)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, d.minmax_indices_reference(y, n_out))


@pytest.mark.parametrize("kind", KINDS)
def test_m4_indices_matches_reference(kind: str) -> None:
    rng = np.random.default_rng(2)
    for _ in range(40):
        n = int(rng.integers(0, 3000))
        n_out = 4 * int(rng.integers(1, 30))
        y = _data(rng, n, kind)
        got = d.m4_indices(y, n_out)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, d.m4_indices_reference(y, n_out))


@pytest.mark.parametrize("n, n_out", [(0, 2), (1, 2), (2, 2), (3, 2), (5, 8), (8, 8), (9, 8),
                                      (1001, 10), (1000, 998), (7 * d.BLOCK + 3, 2),
                                      (7 * d.BLOCK + 3, 4), (20_003, 202)])
def test_indices_edge_sizes(n: int, n_out: int) -> None:
    y = _data(np.random.default_rng(n), n, "walk")
    np.testing.assert_array_equal(d.minmax_indices(y, n_out), d.minmax_indices_reference(y, n_out))
    n4 = 4 * max(1, n_out // 4)
    np.testing.assert_array_equal(d.m4_indices(y, n4), d.m4_indices_reference(y, n4))
    if n <= n_out:
        np.testing.assert_array_equal(d.minmax_indices(y, n_out), np.arange(n))


def test_minmax_indices_known_values() -> None:
    """tsdownsample's own example: arange(100), 5 bins."""
    y = np.arange(100, dtype=np.float64)
    np.testing.assert_array_equal(d.minmax_indices(y, 10), [0, 19, 20, 39, 40, 59, 60, 79, 80, 99])
    np.testing.assert_array_equal(d.minmax_indices(-y, 10), [0, 19, 20, 39, 40, 59, 60, 79, 80, 99])
    np.testing.assert_array_equal(d.m4_indices(y, 12), [0, 33, 34, 66, 67, 99])


def test_minmax_indices_nan_ties_and_zero() -> None:
    y = np.array([np.nan, 2.0, 0.0, -0.0, 2.0, np.nan, np.nan, np.nan, np.nan, 5.0])
    # bins [0, 5) and [5, 10): first occurrence of the extremes, NaN skipped; -0.0 == 0.0
    np.testing.assert_array_equal(d.minmax_indices(y, 4), [1, 2, 9, 9])
    y[5:] = np.nan
    np.testing.assert_array_equal(d.minmax_indices(y, 4), [1, 2, 5, 5])  # all NaN: first twice


def test_minmax_indices_extreme_in_a_later_block() -> None:
    """The searched block is the first holding the extreme, also with NaN in between."""
    n = 5 * d.BLOCK
    y = np.zeros(n)
    y[3 * d.BLOCK + 7] = -1.0
    y[4 * d.BLOCK + 1] = -1.0  # a later tie loses
    y[2 * d.BLOCK + 5] = 3.0
    y[d.BLOCK + 3] = np.nan
    y[4 * d.BLOCK] = NEG_NAN
    np.testing.assert_array_equal(d.minmax_indices(y, 2), [2 * d.BLOCK + 5, 3 * d.BLOCK + 7])


@pytest.mark.parametrize("n_out", [0, -2, 3])
def test_minmax_indices_rejects_bad_n_out(n_out: int) -> None:
    with pytest.raises(ValueError, match="even"):
        d.minmax_indices(np.zeros(10), n_out)
    with pytest.raises(ValueError, match="even"):
        d.minmax_indices_reference(np.zeros(10), n_out)


@pytest.mark.parametrize("n_out", [0, 2, 6])
def test_m4_indices_rejects_bad_n_out(n_out: int) -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        d.m4_indices(np.zeros(10), n_out)


@settings(max_examples=80, deadline=None, database=None)
@given(y=arrays(np.float64, st.integers(0, 700), elements=st.floats(width=64)),
       half=st.integers(1, 40))
def test_minmax_indices_any_floats(y: np.ndarray, half: int) -> None:
    np.testing.assert_array_equal(d.minmax_indices(y, 2 * half),
                                  d.minmax_indices_reference(y, 2 * half))
    np.testing.assert_array_equal(d.m4_indices(y, 4 * half), d.m4_indices_reference(y, 4 * half))


# --------------------------------------------------------------------------- streaming kernels


def _stream(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mostly forward time with repeats, jumps back, non-finite t; y with NaN and specials."""
    steps = rng.choice(np.array([0.0, 0.01, 0.05, 0.2, 1.0, -0.3]), n)
    t = 10.0 + np.cumsum(steps)
    t[rng.random(n) < 0.03] = np.nan
    t[rng.random(n) < 0.01] = np.inf
    y = rng.standard_normal(n).round(1)
    y[rng.random(n) < 0.2] = np.nan
    y[rng.random(n) < 0.02] = -np.inf
    return t, y


def _m4_all(t: np.ndarray, y: np.ndarray, width: float, room: int) -> tuple[np.ndarray, ...]:
    """The kernel over the whole stream with an output of ``room`` points, drained when full."""
    si, sf = k.m4_state()
    out_t, out_y = np.empty(room), np.empty(room)
    parts_t, parts_y, skipped, i = [], [], 0, 0
    while True:
        used, pos, s = k.m4_feed(t[i:], y[i:], width, si, sf, out_t, out_y, 0)
        parts_t.append(out_t[:pos].copy())
        parts_y.append(out_y[:pos].copy())
        skipped += s
        i += used
        if i == t.size:
            break
    pos = k.m4_close(width, si, sf, 0.0, 0.0, True, out_t, out_y, 0)
    parts_t.append(out_t[:pos].copy())
    parts_y.append(out_y[:pos].copy())
    return np.concatenate(parts_t), np.concatenate(parts_y), skipped


@pytest.mark.parametrize("room", [4, 5, 1000])
@pytest.mark.parametrize("width", [0.05, 0.25, 1.0])
def test_m4_feed_matches_reference(width: float, room: int) -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        t, y = _stream(rng, 500)
        got_t, got_y, skipped = _m4_all(t, y, width, room)
        ref_t, ref_y, ref_skipped = k.m4_feed_reference(t, y, width)
        np.testing.assert_array_equal(got_t, ref_t)
        np.testing.assert_array_equal(got_y, ref_y)
        assert skipped == ref_skipped


def test_m4_feed_reference_picks() -> None:
    t = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 1.0, 1.5, 2.0, 2.1, 2.2])
    y = np.array([5.0, 1.0, 9.0, 1.0, 4.0, 7.0, 7.0, np.nan, np.nan, np.nan])
    rt, ry, _ = k.m4_feed_reference(t, y, 1.0)
    # bucket 0: first, min (first of ties), max, last; bucket 1: first and last;
    # bucket 2 (all NaN): first and last
    np.testing.assert_array_equal(rt, [0.0, 0.1, 0.2, 0.4, 1.0, 1.5, 2.0, 2.2])
    got_t, got_y, _ = _m4_all(t, y, 1.0, 64)
    np.testing.assert_array_equal(got_t, rt)
    np.testing.assert_array_equal(got_y, ry)


def test_m4_feed_skips_huge_index() -> None:
    t = np.array([1.0, 1e300, -np.inf, 1.5])
    got_t, _, skipped = _m4_all(t, np.ones(4), 1e-3, 64)
    assert skipped == 2
    np.testing.assert_array_equal(got_t, [1.0, 1.5])


def _agg_all(t: np.ndarray, y: np.ndarray, width: float, room: int) -> tuple[np.ndarray, ...]:
    si, sf = k.agg_state()
    ri, rf = np.empty((room, 3), np.int64), np.empty((room, 3))
    parts_i, parts_f, skipped, i = [], [], 0, 0
    while True:
        used, pos, s = k.agg_feed(t[i:], y[i:], width, si, sf, ri, rf, 0)
        parts_i.append(ri[:pos].copy())
        parts_f.append(rf[:pos].copy())
        skipped += s
        i += used
        if i == t.size:
            break
    pos = k.agg_close(width, si, sf, 0.0, 0.0, True, ri, rf, 0)
    parts_i.append(ri[:pos].copy())
    parts_f.append(rf[:pos].copy())
    return np.concatenate(parts_i), np.concatenate(parts_f), skipped


def _combine_all(ri_in: np.ndarray, rf_in: np.ndarray, ratio: int, room: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    si, sf = k.agg_state()
    ri, rf = np.empty((room, 3), np.int64), np.empty((room, 3))
    parts_i, parts_f, i = [], [], 0
    while True:
        used, pos = k.agg_combine(ri_in[i:], rf_in[i:], ratio, si, sf, ri, rf, 0)
        parts_i.append(ri[:pos].copy())
        parts_f.append(rf[:pos].copy())
        i += used
        if i == ri_in.shape[0]:
            break
    pos = k.agg_close(1.0, si, sf, 0.0, 0.0, True, ri, rf, 0)
    parts_i.append(ri[:pos].copy())
    parts_f.append(rf[:pos].copy())
    return np.concatenate(parts_i), np.concatenate(parts_f)


@pytest.mark.parametrize("room", [1, 1000])
@pytest.mark.parametrize("width", [0.05, 0.25])
def test_agg_kernels_match_reference(width: float, room: int) -> None:
    rng = np.random.default_rng(4)
    for _ in range(5):
        t, y = _stream(rng, 500)
        ri, rf, skipped = _agg_all(t, y, width, room)
        ref_i, ref_f, ref_skipped = k.agg_feed_reference(t, y, width)
        np.testing.assert_array_equal(ri, ref_i)
        np.testing.assert_array_equal(rf, ref_f)
        assert skipped == ref_skipped
        for ratio in (2, 5):
            ci, cf = _combine_all(ri, rf, ratio, room)
            ref_ci, ref_cf = k.agg_combine_reference(ri, rf, ratio)
            np.testing.assert_array_equal(ci, ref_ci)
            np.testing.assert_array_equal(cf, ref_cf)


def test_agg_all_nan_bucket_is_kept() -> None:
    t = np.array([0.1, 0.2, 1.1, 1.2, 1.3])
    y = np.array([1.0, 3.0, np.nan, np.nan, np.nan])
    ri, rf, _ = _agg_all(t, y, 1.0, 8)
    np.testing.assert_array_equal(ri, [[0, 2, 2], [1, 0, 3]])
    np.testing.assert_array_equal(rf, [[2.0, 1.0, 3.0], [np.nan, np.nan, np.nan]])


def test_close_waits_for_the_grace() -> None:
    si, sf = k.m4_state()
    out_t, out_y = np.empty(8), np.empty(8)
    k.m4_feed(np.array([10.2, 10.4]), np.array([1.0, 2.0]), 1.0, si, sf, out_t, out_y, 0)
    assert k.m4_close(1.0, si, sf, 11.4, 0.5, False, out_t, out_y, 0) == 0  # ends 11 + 0.5
    assert k.m4_close(1.0, si, sf, 11.5, 0.5, False, out_t, out_y, 0) == 2
    np.testing.assert_array_equal(out_t[:2], [10.2, 10.4])
    assert k.m4_close(1.0, si, sf, 99.0, 0.0, True, out_t, out_y, 0) == 0  # nothing open


def test_indices_convert_other_dtypes_and_layouts() -> None:
    y = np.arange(200)[::-1]
    want = d.minmax_indices_reference(y.astype(np.float64), 10)
    np.testing.assert_array_equal(d.minmax_indices(y.astype(np.float32), 10), want)
    np.testing.assert_array_equal(d.minmax_indices(y, 10), want)
    strided = np.arange(400.0)[::2]
    np.testing.assert_array_equal(d.m4_indices(strided, 8), d.m4_indices_reference(strided, 8))
