"""Shared fixtures of the micro benchmarks, and a samples-per-second summary at the end.

pytest-benchmark reports seconds per round; the targets are in samples per second, so each
benchmark records how many samples one round moves (``rate(benchmark, samples)``), and the
summary prints (and writes to ``bench/results/micro.json``) samples/s from the median and
the best round.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(__file__).resolve().parent / "results"
_rates: list[dict[str, Any]] = []


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A fresh folder in /dev/shm for rings (removed afterwards; not named ``rtoc-*``)."""
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="rtocbench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def rate(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``rate(benchmark, samples, note="")``: record samples/s of the finished benchmark."""

    def record(benchmark: Any, samples: int, note: str = "") -> None:
        meta = getattr(benchmark, "stats", None)
        stats = getattr(meta, "stats", None)
        benchmark.extra_info["samples_per_round"] = samples
        if stats is None:  # --benchmark-disable: nothing was timed
            return
        row = {"name": request.node.name, "group": getattr(meta, "group", None) or "",
               "samples_per_round": samples, "rounds": stats.rounds,
               "median_s": stats.median, "min_s": stats.min,
               "median_samples_per_s": samples / stats.median if stats.median else None,
               "best_samples_per_s": samples / stats.min if stats.min else None, "note": note}
        benchmark.extra_info["median_samples_per_s"] = row["median_samples_per_s"]
        _rates.append(row)

    return record


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:7.2f} {unit}"
    return f"{v:7.2f}  "


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _rates:
        return
    tr = terminalreporter
    tr.section("samples per second (median round / best round)")
    width = max(len(r["name"]) for r in _rates)
    for r in _rates:
        tr.write_line(f"{r['name']:<{width}}  {_fmt(r['median_samples_per_s'])}S/s   "
                      f"{_fmt(r['best_samples_per_s'])}S/s   {r['note']}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "micro.json"
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S"),
                               "machine": {"cpus": _cpus(), "python": platform.python_version(),
                                           "platform": platform.platform()},
                               "results": _rates}, indent=2))
    tr.write_line(f"written to {out}")


def _cpus() -> int:
    return len(os.sched_getaffinity(0))
