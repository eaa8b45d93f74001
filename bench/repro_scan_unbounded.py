#!/usr/bin/env python
"""Regression check: ``EngineCore.scan`` with a writer that keeps pace with its reads.

Before the fix (a scan now reads at most what was pending when it began, and at most
``MAX_READS`` batches per signal), one ``scan()`` never returned: nothing was published,
no heartbeat or control message was handled, and its list of publications grew by 16 bytes
per sample (measured: no return after 2000 reads, 2000 MiB held). Now it returns after the
batches that were pending; unit test: ``test_one_scan_is_bounded_even_when_the_writer_keeps_pace``.

    .venv/bin/python bench/repro_scan_unbounded.py [--reads 2000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rtoc.pipeline.engine import EngineCore
from rtoc.pipeline.ring import Ring, RingWriter, warm_up

from rtoc.config import EngineConfig


class Stop(Exception):
    pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reads", type=int, default=2000, help="give up after this many reads in one scan")
    args = ap.parse_args()
    warm_up()
    cfg = EngineConfig()
    n = cfg.max_batch
    folder = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="rtocbench-"))
    try:
        ring = Ring.create(folder / "1.ring", 1 << 22, 1)
        writer = RingWriter(ring)
        t = np.arange(n, dtype=np.float64)
        y = np.zeros(n)
        writer.write(t, y)
        core = EngineCore(cfg)
        track = core.add(1, "Repro.S", ring, from_start=True)
        reads = [0]
        read = track.reader.read

        def keeping_pace():  # the writer adds one max_batch before each read
            reads[0] += 1
            if reads[0] > args.reads:
                raise Stop
            writer.write(t + reads[0] * n, y)
            return read()

        track.reader.read = keeping_pace  # type: ignore[method-assign]
        t0 = time.perf_counter()
        try:
            pubs = core.scan(time.monotonic(), flush=True)
            print(f"scan() returned {len(pubs)} publications after {reads[0]} reads")
            return 0
        except Stop:
            dt = time.perf_counter() - t0
            print(f"scan() had not returned after {args.reads} reads ({dt:.2f} s): "
                  f"{track.published:,} samples ({track.published * 16 / 2**20:.0f} MiB) held "
                  "in its list, none published")
            return 1
        finally:
            for tr in list(core.tracks):
                core.remove(tr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
