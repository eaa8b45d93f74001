#!/usr/bin/env python
"""The binary websocket subprotocol (rtoc.bin.v1): ingest and subscribe rates.

* Ingest: one client (rtoc.client.Client) pushes 64 k-sample blocks for ``--seconds`` into
  a real ``rtoc run`` (no drivers), with a ``sync`` every 16 blocks (the signal's ring is
  sized by its first push: 64 blocks = 4 M samples); samples/s stored, and whether the
  engine and the archiver lost any. Clear and encrypted.
* Subscribe: a ``BlockWriter`` driver (bench/rtoc_bench_drivers.py) writes at each of
  ``--rates`` (M samples/s); one client subscribes raw to it for ``--seconds``: samples/s
  received, and the samples it missed (gaps, reported drops, ring losses). A rate is held
  when nothing was missed.

Prints the figures and writes ``bench/results/ws-binary-latest.json``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from rtoc.frontends.websocket.auth import hash_password

from rtoc.app.harness import Instance
from rtoc.client import Client

BENCH = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p)}
BLOCK = 1 << 16


def ingest(seconds: float, encrypt: bool) -> dict:
    config = "drivers = []\n"
    if encrypt:
        config += (f'[websocket]\nport = 0\n[[websocket.users]]\nname = "bench"\nrole = "write"\n'
                   f'password_hash = "{hash_password("bench")}"\n')
    t_block = np.arange(BLOCK, dtype=np.float64) * 1e-7
    y = np.sin(np.arange(BLOCK) / 100.0)
    with Instance.start(config) as inst:
        kw = {"user": "bench", "password": "bench", "encrypt": True} if encrypt else {}
        with Client(inst.ws_url(), **kw) as c:
            t0 = time.time()
            start = time.perf_counter()
            k = 0
            while time.perf_counter() - start < seconds:
                c.push("Bench.In", t0 + (k * BLOCK) * 1e-7 + t_block, y)
                k += 1
                if k % 16 == 0:
                    c.sync()
            stored = c.sync()
            took = time.perf_counter() - start
            time.sleep(2.0)  # the archiver's flush
            sig = {s["name"]: s for s in c.signals()}["Bench.In"]
            arch = inst.client.request("archive_status", timeout=10.0)
    out = {"encrypt": encrypt, "seconds": took, "samples": stored, "rate": stored / took,
           "engine_lost": sig["lost"], "archive_lost": arch["lost"], "archived": arch["written"]}
    print(f"ingest{' (encrypted)' if encrypt else ''}: {stored / took / 1e6:.2f} M samples/s "
          f"stored ({stored} in {took:.1f} s); engine lost {sig['lost']}, archive lost "
          f"{arch['lost']}", flush=True)
    return out


def subscribe(rates: list[float], seconds: float) -> list[dict]:
    config = f'''
[[drivers]]
name = "W"
driver = "rtoc_bench_drivers:BlockWriter"
ring_seconds = 4.0
[drivers.params]
samplerate = {rates[0] * 1e6}
block_rate = 200.0
[archive]
enabled = false
'''
    out = []
    with Instance.start(config, ("W.Block",), env=ENV) as inst, Client(inst.ws_url()) as c:
        c.subscribe(["W.Block"])
        for rate in rates:
            inst.client.request("set", driver="W", param="samplerate", value=rate * 1e6)
            time.sleep(1.0)
            c.drain()
            base = (c.received["W.Block"], c.gaps["W.Block"], c.lost["W.Block"], c.dropped_samples,
                    c.queue_dropped)
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                c.recv(timeout=0.2)
            took = time.perf_counter() - start
            got, gaps, lost, dropped, qdrop = (a - b for a, b in zip(
                (c.received["W.Block"], c.gaps["W.Block"], c.lost["W.Block"], c.dropped_samples,
                 c.queue_dropped), base, strict=True))
            held = gaps == 0 and lost == 0 and dropped == 0 and qdrop == 0
            out.append({"offered": rate * 1e6, "received_rate": got / took, "gaps": gaps,
                        "ring_lost": lost, "server_dropped": dropped, "client_dropped": qdrop,
                        "held": held})
            print(f"subscribe {rate:5.1f} MS/s offered: received {got / took / 1e6:6.2f} MS/s, "
                  f"gaps {gaps}, ring lost {lost}, server dropped {dropped} -> "
                  f"{'held' if held else 'NOT held'}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rates", default="1,2,5,10", help="M samples/s for the subscription")
    args = ap.parse_args()
    results = {"ingest": [ingest(args.seconds, False), ingest(args.seconds, True)],
               "subscribe": subscribe([float(r) for r in args.rates.split(",")], args.seconds)}
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "ws-binary-latest.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
