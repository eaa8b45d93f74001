"""6. The DuckDB archive's write path against the raw bulk insert, in one process.

``run_archive.py`` compares the whole archiver (bus, batcher, writer thread, sharing the
cores with a driver and the engine) with the raw insert. This benchmark isolates the
backend: ``DuckBackend.write`` (signal registry, ledger check and rows, events, gaps, one
transaction) against ``raw_insert`` (the same samples as one Arrow ``INSERT``, nothing
else), both on a batch of 1 M samples in 16 chunks of 65 536 (the archiver's batches are
made of the engine's blocks), into files that grow round after round. The note of the
``write`` case gives the ratio of the medians.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import numpy as np
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, SignalKey
from rtoc.frontends.archive.duck import CONFIG, DuckBackend, create_tables, raw_insert

GROUP = "6 DuckDB archive write, 1 M samples in 16 chunks"
CHUNK, CHUNKS = 65_536, 16
_medians: dict[str, float] = {}


class Feed:
    """Batches of ``CHUNKS`` consecutive chunks of one signal, each batch new."""

    def __init__(self) -> None:
        self.key = SignalKey("Bench.Write", 1, "V")
        self.t = np.arange(CHUNK * CHUNKS, dtype=np.float64) / 1e6 + time.time()
        self.y = np.sin(np.arange(CHUNK * CHUNKS) / 100.0)
        self.number = 0

    def __call__(self) -> ArchiveBatch:
        n = self.number
        self.number += 1
        base = n * CHUNK * CHUNKS
        chunks = [Chunk(self.key, base + i * CHUNK, self.t[i * CHUNK:(i + 1) * CHUNK] + n,
                        self.y[i * CHUNK:(i + 1) * CHUNK]) for i in range(CHUNKS)]
        return ArchiveBatch(n, chunks)


def _run(benchmark, rate, name: str, write) -> None:
    feed = Feed()
    benchmark.group = GROUP
    benchmark.pedantic(write, setup=lambda: ((feed(),), {}), rounds=20, warmup_rounds=2)
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None:
        _medians[name] = stats.median
    note = ""
    if name == "write" and "raw" in _medians and "write" in _medians:
        note = f"{_medians['raw'] / _medians['write']:.2f}x the raw insert"
    rate(benchmark, CHUNK * CHUNKS, note)


def test_raw_insert(benchmark, rate, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "raw.duckdb"), config=dict(CONFIG))
    try:
        con.begin()
        create_tables(con)
        con.commit()
        _run(benchmark, rate, "raw", lambda b: raw_insert(con, b))
    finally:
        con.close()


def test_backend_write(benchmark, rate, tmp_path: Path) -> None:
    backend = DuckBackend(tmp_path / "archive.duckdb")
    backend.connect()
    try:
        _run(benchmark, rate, "write", backend.write)
    finally:
        backend.close()

