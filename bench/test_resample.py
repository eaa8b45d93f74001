"""5. Resampling: history decimation, the live M4 view and the archive aggregates.

* ``minmax_indices`` vs tsdownsample's ``MinMaxDownsampler`` (``parallel=False``) on 10 M
  float64 samples (random walk, ``default_rng(0)``), n_out 2000 and 20 000, in the same
  process (target: at least 0.8x tsdownsample's throughput). tsdownsample runs first; the
  note of ``minmax_indices`` gives the ratio of the medians. Before timing, the indices are
  checked against tsdownsample's, also on random data with NaN and odd sizes.
* ``m4_indices`` on the same data, for reference.
* Streaming: batches of 65 536 samples at 1 MS/s (timestamps walking on through 32
  precomputed batches): ``Resampler.feed`` + ``view()`` with a 2000 points/s view
  (2 ms buckets); the kernels ``m4_feed`` and ``agg_feed`` alone; and ``Resampler`` with
  the view and the levels (1, 60, 3600) s, drained every batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from rtoc.pipeline import decimate_kernels as d
from rtoc.pipeline import resample_kernels as k
from rtoc.pipeline.resampler import Resampler, view_width_for

tsdownsample = pytest.importorskip("tsdownsample")

N = 10_000_000
BATCH = 65_536
BATCHES = 32
GROUP_DECIMATE = "5 minmax decimation of 10 M samples"
GROUP_STREAM = "5 resampling 64k batches"
_medians: dict[tuple[str, int], float] = {}


@pytest.fixture(scope="module")
def walk() -> np.ndarray:
    return np.cumsum(np.random.default_rng(0).standard_normal(N))


@pytest.fixture(scope="module")
def stream() -> tuple[np.ndarray, np.ndarray]:
    n = BATCH * BATCHES
    t = 1.7e9 + np.arange(n) * 1e-6
    y = np.cumsum(np.random.default_rng(1).standard_normal(n))
    return t, y


def _median(benchmark: Any) -> float | None:
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    return stats.median if stats is not None else None


def _check_against_tsdownsample() -> None:
    """Same indices as tsdownsample on random data with NaN, ties and odd sizes (bins whose
    non-NaN values are all +inf or all -inf are left out: there tsdownsample's answer
    depends on the CPU's SIMD width)."""
    ds = tsdownsample.MinMaxDownsampler()
    rng = np.random.default_rng(5)
    for i in range(300):
        n = int(rng.integers(1, 20_000))
        n_out = 2 * int(rng.integers(1, 200))
        y = rng.standard_normal(n).round(i % 3)
        y[rng.random(n) < (0.0, 0.2, 0.9)[i % 3]] = np.nan
        np.testing.assert_array_equal(d.minmax_indices(y, n_out), ds.downsample(y, n_out=n_out))


@pytest.mark.benchmark(group=GROUP_DECIMATE)
@pytest.mark.parametrize("n_out", [2000, 20000])
def test_tsdownsample_minmax(benchmark: Any, rate: Callable[..., None], walk: np.ndarray,
                             n_out: int) -> None:
    ds = tsdownsample.MinMaxDownsampler()
    benchmark(ds.downsample, walk, n_out=n_out, parallel=False)
    rate(benchmark, N, f"tsdownsample MinMaxDownsampler, n_out={n_out}")
    if (m := _median(benchmark)) is not None:
        _medians[("tsd", n_out)] = m


@pytest.mark.benchmark(group=GROUP_DECIMATE)
@pytest.mark.parametrize("n_out", [2000, 20000])
def test_minmax_indices(benchmark: Any, rate: Callable[..., None], walk: np.ndarray,
                        n_out: int) -> None:
    want = tsdownsample.MinMaxDownsampler().downsample(walk, n_out=n_out)
    np.testing.assert_array_equal(d.minmax_indices(walk, n_out), want)
    if n_out == 2000:
        _check_against_tsdownsample()
    benchmark(d.minmax_indices, walk, n_out)
    mine, theirs = _median(benchmark), _medians.get(("tsd", n_out))
    ratio = f"{theirs / mine:.2f}x tsdownsample's throughput" if mine and theirs else "-"
    benchmark.extra_info["ratio_to_tsdownsample"] = theirs / mine if mine and theirs else None
    rate(benchmark, N, f"minmax_indices, n_out={n_out}: {ratio} (target >= 0.8x)")


@pytest.mark.benchmark(group=GROUP_DECIMATE)
@pytest.mark.parametrize("n_out", [2000, 20000])
def test_m4_indices(benchmark: Any, rate: Callable[..., None], walk: np.ndarray,
                    n_out: int) -> None:
    want = np.unique(tsdownsample.M4Downsampler().downsample(walk, n_out=n_out))
    np.testing.assert_array_equal(d.m4_indices(walk, n_out), want)
    benchmark(d.m4_indices, walk, n_out)
    rate(benchmark, N, f"m4_indices, n_out={n_out}")


def _cycling(t: np.ndarray, y: np.ndarray, step: Callable[[np.ndarray, np.ndarray], None]
             ) -> Callable[[], None]:
    """A round: ``step`` on the next 64k batch (wrapping after BATCHES batches)."""
    pos = [0]

    def one() -> None:
        a = pos[0]
        step(t[a:a + BATCH], y[a:a + BATCH])
        pos[0] = (a + BATCH) % t.size

    return one


@pytest.mark.benchmark(group=GROUP_STREAM)
def test_resampler_view(benchmark: Any, rate: Callable[..., None],
                        stream: tuple[np.ndarray, np.ndarray]) -> None:
    r = Resampler(view_width_for(2000))

    def step(t: np.ndarray, y: np.ndarray) -> None:
        r.feed(t, y)
        r.view()

    benchmark(_cycling(*stream, step))
    rate(benchmark, BATCH, "Resampler.feed + view(), M4 with 2 ms buckets (1 MS/s)")
    assert r.skipped == 0


@pytest.mark.benchmark(group=GROUP_STREAM)
def test_m4_kernel(benchmark: Any, rate: Callable[..., None],
                   stream: tuple[np.ndarray, np.ndarray]) -> None:
    si, sf = k.m4_state()
    out_t, out_y = np.empty(4 * BATCH), np.empty(4 * BATCH)
    width = view_width_for(2000)

    def step(t: np.ndarray, y: np.ndarray) -> None:
        k.m4_feed(t, y, width, si, sf, out_t, out_y, 0)

    benchmark(_cycling(*stream, step))
    rate(benchmark, BATCH, "m4_feed kernel alone, 2 ms buckets")


@pytest.mark.benchmark(group=GROUP_STREAM)
def test_agg_kernel(benchmark: Any, rate: Callable[..., None],
                    stream: tuple[np.ndarray, np.ndarray]) -> None:
    si, sf = k.agg_state()
    ri, rf = np.empty((BATCH, 3), np.int64), np.empty((BATCH, 3))

    def step(t: np.ndarray, y: np.ndarray) -> None:
        k.agg_feed(t, y, 1.0, si, sf, ri, rf, 0)

    benchmark(_cycling(*stream, step))
    rate(benchmark, BATCH, "agg_feed kernel alone, 1 s level")


@pytest.mark.benchmark(group=GROUP_STREAM)
def test_resampler_view_and_levels(benchmark: Any, rate: Callable[..., None],
                                   stream: tuple[np.ndarray, np.ndarray]) -> None:
    r = Resampler(view_width_for(2000), (1.0, 60.0, 3600.0))

    def step(t: np.ndarray, y: np.ndarray) -> None:
        r.feed(t, y)
        r.view()
        r.aggregates()

    benchmark(_cycling(*stream, step))
    rate(benchmark, BATCH, "Resampler.feed + view() + aggregates(), levels 1/60/3600 s")
