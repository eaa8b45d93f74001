#!/usr/bin/env python
"""Sustained archive rate (issue 4), DuckDB and PostgreSQL, against the raw bulk insert.

For each backend: a real ``rtoc run`` whose ``BlockWriter`` driver writes 64 k-sample blocks
at rising rates (``--rates``, M samples/s, each for ``--step-seconds``). A step is held when nothing was spooled or lost and the backlog (samples in the ring
not yet archived) grew by less than half a second of samples. The best step is then held
for ``--hold-seconds`` (60 by default). The raw insert of the same data (the
backend's own bulk path: Arrow into DuckDB, binary COPY into PostgreSQL, 1 M samples per
call, one signal, no ledger or dedup) is measured in this process, so the ratio is of two
figures from the same run. PostgreSQL is the CI machine's server (``RTOC_TEST_PG_DSN``,
default ``postgresql://postgres@127.0.0.1:5432/test``), in a fresh schema dropped at the end.

Prints a table and writes ``bench/results/archive-latest.json``. Targets are printed, not
asserted: the archiver should hold at least 0.75x the raw rate.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from rtoc.app.harness import Instance

BENCH = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p)}
DSN = os.environ.get("RTOC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def raw_rate(backend: str, samples: int = 5_000_000, chunk: int = 1_000_000) -> float:
    t = np.arange(chunk, dtype=np.float64) / 1e6 + time.time()
    y = np.sin(np.arange(chunk) / 100.0)
    if backend == "duckdb":
        import duckdb
        from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, SignalKey
        from rtoc.frontends.archive.duck import DuckBackend, raw_insert

        with tempfile.TemporaryDirectory() as tmp:
            b = DuckBackend(Path(tmp) / "raw.duckdb")
            b.connect()
            b.close()
            con = duckdb.connect(str(Path(tmp) / "raw.duckdb"))
            key = SignalKey("Bench.Raw", 1)
            t0 = time.perf_counter()
            for i in range(samples // chunk):
                raw_insert(con, ArchiveBatch(i, [Chunk(key, i * chunk, t + i, y)]))
            dt = time.perf_counter() - t0
            con.close()
        return samples / dt
    import psycopg
    from rtoc.frontends.archive.pg_binary import raw_copy
    from rtoc.frontends.archive.postgres import PostgresBackend

    schema = f"rtoc_b{uuid.uuid4().hex[:8]}"
    b = PostgresBackend(DSN, schema)
    b.connect()
    b.close()
    try:
        with psycopg.connect(DSN, autocommit=False) as con:
            t0 = time.perf_counter()
            for i in range(samples // chunk):
                raw_copy(con, schema, 1, 1, i * chunk, t + i, y)
                con.commit()
            dt = time.perf_counter() - t0
    finally:
        with psycopg.connect(DSN, autocommit=True) as con:
            con.execute(f"drop schema {schema} cascade")
    return samples / dt


def run_backend(backend: str, rates: list[float], step: float, hold: float) -> dict:
    schema = f"rtoc_b{uuid.uuid4().hex[:8]}"
    extra = f'\n[archive]\nbackend = "postgres"\ndsn = "{DSN}"\nschema = "{schema}"\n' \
        if backend == "postgres" else ""
    config = f'''
[[drivers]]
name = "W"
driver = "rtoc_bench_drivers:BlockWriter"
ring_seconds = 8.0
[drivers.params]
samplerate = {rates[0] * 1e6}
block_rate = 100.0
{extra}'''
    out: dict = {"backend": backend, "steps": []}
    try:
        with Instance.start(config, ("W.Block",), env=ENV) as inst:
            best = None
            for rate in rates:
                ok, got = measure(inst, rate, step)
                out["steps"].append({"rate": rate, "archived_rate": got, "held": ok})
                print(f"  {backend} {rate:6.2f} MS/s offered: archived {got / 1e6:6.2f} MS/s -> "
                      f"{'held' if ok else 'NOT held'}", flush=True)
                if not ok:
                    break
                best = rate
            if best is not None and hold > 0:
                ok, got = measure(inst, best, hold)
                out["hold"] = {"rate": best, "seconds": hold, "archived_rate": got, "held": ok}
                print(f"  {backend} hold {best} MS/s for {hold:g} s: archived {got / 1e6:.2f} MS/s "
                      f"-> {'held' if ok else 'NOT held'}", flush=True)
    finally:
        if backend == "postgres":
            import psycopg

            with psycopg.connect(DSN, autocommit=True) as con:
                con.execute(f"drop schema if exists {schema} cascade")
    return out


def measure(inst: Instance, rate: float, seconds: float) -> tuple[bool, float]:
    """Held: nothing spooled or lost, and the backlog (written to the ring, not yet
    archived) grew by less than half a second of samples over the window."""
    inst.client.request("set", driver="W", param="samplerate", value=rate * 1e6)
    time.sleep(2.0)  # settle at the new rate

    def sample():
        st = inst.client.request("archive_status", timeout=10.0)
        sig = {s["name"]: s for s in inst.client.request("signals")["signals"]}["W.Block"]
        return st, sig["written"], time.monotonic()

    s0, w0, t0 = sample()
    time.sleep(seconds)
    s1, w1, t1 = sample()
    got = (s1["written"] - s0["written"]) / (t1 - t0)
    growth = (w1 - s1["written"]) - (w0 - s0["written"])
    ok = growth < 0.5 * rate * 1e6 and s1["spool_batches"] == 0 and s1["lost"] == s0["lost"]
    return ok, got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="duckdb,postgres")
    ap.add_argument("--rates", default="0.5,1,2,4,8,12,16", help="M samples/s")
    ap.add_argument("--step-seconds", type=float, default=10.0)
    ap.add_argument("--hold-seconds", type=float, default=60.0)
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    results = []
    for backend in args.backends.split(","):
        raw = raw_rate(backend)
        print(f"[{backend}] raw bulk insert: {raw / 1e6:.2f} M samples/s", flush=True)
        r = run_backend(backend, rates, args.step_seconds, args.hold_seconds)
        r["raw_rate"] = raw
        held = r.get("hold", {})
        if held.get("held"):  # the offered rate it kept up with (archived also drains backlog)
            r["ratio"] = held["rate"] * 1e6 / raw
            print(f"[{backend}] held {held['rate']} MS/s for {held['seconds']:g} s = "
                  f"{r['ratio']:.2f}x the raw rate (target >= 0.75x)", flush=True)
        results.append(r)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "archive-latest.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
