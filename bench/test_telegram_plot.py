"""14. The Telegram bot's history picture: ``render_png`` at 1280x720, PNG bytes out.

What one ``/plot`` costs the bot's worker thread: a Figure built from scratch, drawn by Agg
and encoded as PNG, with the data the bot asks the archive for (``points_for(1280)`` is
about 2 points per pixel column; 2,560 points per series is the upper end). Random walks
(``default_rng``) over one hour, event marks spread over it with priorities 0, 1, 2 in turn.

* ``one_series``: 1 series of 2,560 points + 20 marks.
* ``four_series``: 4 series of 2,560 points (two units: a twin y axis) + 200 marks.

The target is well under 300 ms per picture; the note gives the median in ms. The rate is
points drawn per second (the samples of ``rate``), for the summary of ``make bench``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from rtoc.frontends.telegram.plot import Mark, Series, render_png

pytestmark = pytest.mark.bench

GROUP = "14 telegram render_png 1280x720"
T0 = 1_767_225_600.0
T1 = T0 + 3600.0
POINTS = 2560


def _series(count: int) -> list[Series]:
    rng = np.random.default_rng(0)
    t = np.linspace(T0, T1, POINTS)
    units = ("V", "°C")
    return [Series(f"Generator.S{i}", units[i % 2], t, np.cumsum(rng.standard_normal(POINTS)))
            for i in range(count)]


def _marks(count: int) -> list[Mark]:
    times = np.linspace(T0, T1, count + 2)[1:-1]
    return [Mark(float(t), f"event {i}", i % 3) for i, t in enumerate(times)]


def _run(benchmark: Any, rate: Callable[..., None], series: list[Series],
         marks: list[Mark]) -> None:
    png = render_png(series, marks, t0=T0, t1=T1, title="bench")  # also loads the fonts
    assert png.startswith(b"\x89PNG") and int.from_bytes(png[16:20], "big") == 1280
    benchmark.group = GROUP
    benchmark.pedantic(render_png, args=(series, marks), rounds=15, warmup_rounds=1,
                       kwargs={"t0": T0, "t1": T1, "title": "bench"})
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    note = f"{stats.median * 1e3:.0f} ms per picture (target < 300)" if stats else ""
    rate(benchmark, POINTS * len(series), note)


def test_one_series(benchmark: Any, rate: Callable[..., None]) -> None:
    _run(benchmark, rate, _series(1), _marks(20))


def test_four_series(benchmark: Any, rate: Callable[..., None]) -> None:
    _run(benchmark, rate, _series(4), _marks(200))
