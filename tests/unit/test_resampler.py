"""The Resampler: split invariance against the kernel references, close/flush/reset rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtoc.pipeline import resample_kernels as k
from rtoc.pipeline.resampler import AggRows, Resampler, level_ratios, view_width_for, warm_up

VIEW = 0.25
LEVELS = (0.1, 0.5, 2.0)  # ratios 5 and 4


class Drain:
    """Everything a Resampler emitted, concatenated over the drains."""

    def __init__(self, levels: int) -> None:
        self.t: list[np.ndarray] = []
        self.y: list[np.ndarray] = []
        self.rows: list[list[AggRows]] = [[] for _ in range(levels)]

    def take(self, r: Resampler) -> None:
        t, y = r.view()
        self.t.append(t)
        self.y.append(y)
        for rows in r.aggregates():
            assert rows.start.size > 0
            self.rows[rows.level].append(rows)

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.t), np.concatenate(self.y)

    def level(self, i: int) -> dict[str, np.ndarray]:
        got = self.rows[i]
        return {f: np.concatenate([getattr(g, f) for g in got]) if got else np.empty(0)
                for f in ("start", "mean", "min", "max", "count", "n")}


def _expected_levels(t: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    ri, rf, _ = k.agg_feed_reference(t, y, LEVELS[0])
    out = [(ri, rf)]
    for ratio in level_ratios(LEVELS)[1:]:
        ri, rf = k.agg_combine_reference(ri, rf, ratio)
        out.append((ri, rf))
    return out


def _assert_level(got: dict[str, np.ndarray], ri: np.ndarray, rf: np.ndarray, width: float) -> None:
    np.testing.assert_array_equal(got["start"], ri[:, k.ROW_INDEX] * width)
    np.testing.assert_array_equal(got["count"], ri[:, k.ROW_COUNT])
    np.testing.assert_array_equal(got["n"], ri[:, k.ROW_N])
    np.testing.assert_array_equal(got["mean"], rf[:, k.ROW_MEAN])
    np.testing.assert_array_equal(got["min"], rf[:, k.ROW_MIN])
    np.testing.assert_array_equal(got["max"], rf[:, k.ROW_MAX])


_T_STEPS = st.sampled_from([0.0, 0.003, 0.02, 0.07, 0.3, 1.1, -0.2, -3.0])
_T_ODD = st.sampled_from([np.nan, np.inf, -np.inf, 1e300])
_Y = st.one_of(st.floats(width=64), st.sampled_from([0.0, -0.0, 1.0, np.nan]))


@st.composite
def streams(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``(t, y, cuts)``: mostly forward time with repeats and jumps back, odd t, any y;
    sorted cut points (repeats give empty batches)."""
    n = draw(st.integers(0, 160))
    t = 5.0 + np.cumsum(np.array(draw(st.lists(_T_STEPS, min_size=n, max_size=n)), np.float64))
    for i in draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=4 if n else 0)):
        t[i] = draw(_T_ODD)
    y = np.array(draw(st.lists(_Y, min_size=n, max_size=n)), np.float64)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=10)))
    return t, y, cuts


@settings(max_examples=150, deadline=None, database=None)
@given(stream=streams(), drain_every=st.integers(1, 3))
def test_any_split_gives_the_reference(stream: tuple[np.ndarray, np.ndarray, list[int]],
                                       drain_every: int) -> None:
    t, y, cuts = stream
    r = Resampler(VIEW, LEVELS)
    d = Drain(len(LEVELS))
    bounds = [0, *cuts, t.size]
    for j, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        r.feed(t[a:b], y[a:b])
        if j % drain_every == 0:
            d.take(r)
    r.flush()
    d.take(r)

    ref_t, ref_y, skipped = k.m4_feed_reference(t, y, VIEW)
    got_t, got_y = d.view()
    np.testing.assert_array_equal(got_t, ref_t)
    np.testing.assert_array_equal(got_y, ref_y)
    assert (r.skipped, r.samples, r.view_points) == (skipped, t.size - skipped, ref_t.size)
    for i, (ri, rf) in enumerate(_expected_levels(t, y)):
        _assert_level(d.level(i), ri, rf, LEVELS[i])
    assert r.rows == tuple(ri.shape[0] for ri, _ in _expected_levels(t, y))
    assert r.next_deadline() is None


def _direct(t: np.ndarray, y: np.ndarray, level: int) -> dict[str, np.ndarray]:
    """Rows of ``level`` straight from the samples: bucket ``floor(floor(t/w0) / m)``."""
    m = int(np.prod(level_ratios(LEVELS)[1:level + 1]))
    with np.errstate(all="ignore"):
        q = np.floor(t / LEVELS[0])
    keep = np.abs(q) < k.INDEX_LIMIT
    index, y = q[keep].astype(np.int64) // m, y[keep]
    runs = np.split(np.arange(index.size), np.flatnonzero(np.diff(index) != 0) + 1)
    rows = []
    for run in runs if index.size else []:
        v = y[run][~np.isnan(y[run])]
        rows.append((index[run[0]] * LEVELS[level], v.mean() if v.size else np.nan,
                     v.min() if v.size else np.nan, v.max() if v.size else np.nan, v.size,
                     run.size))
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 6
    return dict(zip(("start", "mean", "min", "max", "count", "n"), map(np.array, cols),
                    strict=True))


@settings(max_examples=60, deadline=None, database=None)
@given(stream=streams(), seed=st.integers(0, 2**32 - 1))
def test_coarse_levels_equal_the_samples_directly(stream: tuple[np.ndarray, np.ndarray, list[int]],
                                                  seed: int) -> None:
    t, _, cuts = stream
    y = np.random.default_rng(seed).normal(0.0, 100.0, t.size)
    y[np.random.default_rng(seed + 1).random(t.size) < 0.2] = np.nan
    r = Resampler(VIEW, LEVELS)
    d = Drain(len(LEVELS))
    for a, b in zip([0, *cuts], [*cuts, t.size], strict=True):
        r.feed(t[a:b], y[a:b])
    r.flush()
    d.take(r)
    for level in range(len(LEVELS)):
        got, want = d.level(level), _direct(t, y, level)
        for f in ("start", "min", "max", "count", "n"):
            np.testing.assert_array_equal(got[f], want[f].astype(got[f].dtype), err_msg=f)
        np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-9, atol=1e-9)


def test_close_by_wall_clock_and_late_samples() -> None:
    r = Resampler(1.0, (1.0, 10.0))
    r.feed(np.array([100.1, 100.5, 100.9]), np.array([1.0, 3.0, 2.0]))
    assert r.next_deadline(0.5) == pytest.approx(101.5)
    r.close(101.4, 0.5)  # interval [100, 101) plus grace has not passed
    assert r.view()[0].size == 0 and r.aggregates() == []
    r.close(101.5, 0.5)
    np.testing.assert_array_equal(r.view()[0], [100.1, 100.5, 100.9])
    (rows,) = r.aggregates()
    assert (rows.level, rows.width, rows.start.tolist(), rows.count.tolist()) == (0, 1.0, [100.0], [3])
    assert r.next_deadline(0.5) == pytest.approx(110.5)  # the 10 s level is still open
    # a late sample of the closed interval opens a new bucket: a second group, a second row
    r.feed(np.array([100.95]), np.array([7.0]))
    r.feed(np.array([101.2]), np.array([0.0]))
    np.testing.assert_array_equal(r.view()[0], [100.95])
    (rows,) = r.aggregates()
    assert rows.start.tolist() == [100.0] and rows.mean.tolist() == [7.0]
    r.flush()
    np.testing.assert_array_equal(r.view()[0], [101.2])
    fine, coarse = r.aggregates()
    assert fine.start.tolist() == [101.0]
    assert (coarse.level, coarse.start.tolist(), coarse.count.tolist()) == (1, [100.0], [5])
    assert coarse.mean[0] == pytest.approx(13.0 / 5)
    assert r.rows == (3, 1) and r.view_points == 5


def test_reset_drops_open_buckets_only() -> None:
    r = Resampler(1.0, (1.0,))
    r.feed(np.array([0.1, 1.1, 1.2]), np.array([1.0, 2.0, 3.0]))
    r.reset()
    r.flush()
    np.testing.assert_array_equal(r.view()[0], [0.1])  # closed before the reset
    (rows,) = r.aggregates()
    assert rows.start.tolist() == [0.0]
    assert r.resets == 1 and r.next_deadline() is None


def test_all_nan_bucket() -> None:
    r = Resampler(1.0, (1.0,))
    r.feed(np.array([0.1, 0.2, 0.3]), np.full(3, np.nan))
    r.flush()
    t, y = r.view()
    np.testing.assert_array_equal(t, [0.1, 0.3])  # first and last only
    (rows,) = r.aggregates()
    assert rows.count.tolist() == [0] and rows.n.tolist() == [3] and np.isnan(rows.mean[0])


def test_big_batch_grows_the_buffers() -> None:
    t = np.arange(100_000) * 1e-3
    y = np.sin(t)
    r = Resampler(0.002, (0.01, 0.1))
    r.feed(t, y)
    r.flush()
    vt, _ = r.view()
    want_t, _, _ = k.m4_feed_reference(t, y, 0.002)
    np.testing.assert_array_equal(vt, want_t)
    fine, coarse = r.aggregates()
    assert fine.n.sum() == coarse.n.sum() == 100_000


def test_no_levels() -> None:
    r = Resampler(0.5)
    r.feed(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    r.flush()
    assert r.view()[0].tolist() == [1.0, 2.0]
    assert r.aggregates() == [] and r.rows == ()


def test_feed_checks_shapes() -> None:
    r = Resampler(1.0)
    with pytest.raises(ValueError, match="one length"):
        r.feed(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="one length"):
        r.feed(np.zeros((2, 2)), np.zeros((2, 2)))


@pytest.mark.parametrize("levels, match", [
    ((1.0, 90.0, 3000.0), r"levels\[2\] = 3000.0 s is not an integer multiple"),
    ((1.0, 1.5), r"levels\[1\]"),
    ((1.0, 1.0), r"levels\[1\]"),
    ((60.0, 1.0), r"levels\[1\]"),
    ((0.0,), r"levels\[0\] must be a finite width > 0"),
    ((float("nan"),), r"levels\[0\]"),
])
def test_levels_must_nest(levels: tuple[float, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Resampler(1.0, levels)


def test_level_ratios_and_view_width() -> None:
    assert level_ratios((1.0, 60.0, 3600.0)) == (1, 60, 60)
    assert level_ratios((0.1, 0.5, 2.0)) == (1, 5, 4)
    assert view_width_for(2000) == 0.002
    with pytest.raises(ValueError, match="points_per_second"):
        view_width_for(0)
    with pytest.raises(ValueError, match="view_width"):
        Resampler(0.0)


def test_warm_up_runs() -> None:
    warm_up()
