#!/usr/bin/env python
"""Diagnostic: ``EngineCore.scan`` returns only once a ring has fewer than ``max_batch``
samples pending, and keeps every publication in a list until then.

A writer that keeps pace with the engine's reads (here: ``max_batch`` new samples before
each read, deterministically, in one process) keeps one ``scan()`` call from ever
returning: nothing is published, no heartbeat or control message is handled, and the
list of publications grows by 16 bytes per sample. In a live instance the same happens
whenever the engine's read rate is only slightly above the writer's (seen at 20 MS/s on
a loaded 2-core machine: one scan of 1.7 s holding 575 batches, 600 MB).

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
