#!/usr/bin/env python
"""Websocket figures (issue 5): JSON ingest and fan-out latency, on a real ``rtoc run``.

* ``ingest``: one client sends single-sample RTOC messages (``{"y": [v], "x": [t],
  "sname": ["S"], "dname": "Bench"}``) as fast as the server answers, keeping up to
  ``--window`` messages in flight (a client that waits for each reply measures the loopback
  round trip, not the server). The client is ``ws_blaster`` (frames encoded before the clock
  starts), so the server is what is measured. Samples/s = messages whose ``sent: true``
  came back, over the time from the first send to the last reply; then the samples are
  read back with ``getSignal`` and counted (stored and readable). Target: at least 200 k
  samples/s. For comparison, the same messages from a client built on ``websockets``, and
  1000 samples per message.
* ``fanout``: ``--clients`` (100) clients subscribed to one Generator signal at 10 kHz; for
  each push, latency = arrival time - the timestamp of the newest sample in it (the
  generator stamps samples with the wall clock when it makes them). p50/p99 over
  ``--seconds``. Target: p99 <= 20 ms.

Prints a table and writes ``bench/results/websocket-latest.json``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import numpy as np
import websockets

from rtoc.app.harness import Instance

BENCH = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p)}


async def _reply(ws) -> dict:
    while True:
        m = json.loads(await ws.recv())
        if "error" in m:
            return m


def ingest(url: str, n: int, window: int, per: int = 1, name: str = "S") -> dict:
    """``n`` messages of ``per`` samples each (``per`` > 1: one signal, ``plot: false``),
    sent by :mod:`ws_blaster` (frames encoded before the clock starts)."""
    from ws_blaster import blast

    base = time.time()
    if per == 1:
        msgs = [f'{{"y": [{float(i)!r}], "x": [{base + i * 1e-6!r}], "sname": ["{name}"], '
                f'"dname": "Bench"}}'.encode() for i in range(n)]
    else:
        msgs = [json.dumps({"y": [float(k) for k in range(per)],
                            "x": [base + (i * per + k) * 1e-7 for k in range(per)],
                            "sname": [name] * per, "dname": "Bench"}).encode() for i in range(n)]
    r = blast(url, msgs, window=window, block=max(1, min(500, window // 4)))
    stored = asyncio.run(_stored(url, name, base - 1, base + n))
    return {**r, "samples_per_message": per, "samples_per_s": r["acknowledged"] * per / r["seconds"],
            "stored_and_readable": stored}


async def ingest_library_client(url: str, n: int, window: int = 256) -> dict:
    """The same single-sample messages from a client built on ``websockets`` (one ``send``
    per message, up to ``window`` in flight): what such a client reaches, for comparison."""
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        sem = asyncio.Semaphore(window)
        ok = 0

        async def reader() -> None:
            nonlocal ok
            for _ in range(n):
                ok += json.loads(await ws.recv()).get("sent") is True
                sem.release()

        task = asyncio.create_task(reader())
        t0, base = time.perf_counter(), time.time()
        for i in range(n):
            await sem.acquire()
            await ws.send(f'{{"y": [{float(i)!r}], "x": [{base + i * 1e-6!r}], "sname": ["L"], "dname": "Bench"}}')
        await task
        dt = time.perf_counter() - t0
    return {"messages": n, "acknowledged": ok, "seconds": dt, "samples_per_s": ok / dt}


async def _stored(url: str, name: str, xmin: float, xmax: float) -> int:
    await asyncio.sleep(2.0)  # the archiver's next flush
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"getSignal": {"dname": "Bench", "sname": name, "maxN": 2_000_000,
                                                "xmin": xmin, "xmax": xmax}}))
        got = await _reply(ws)
    return len(got["signals"][f"Bench.{name}"][0])


async def _watch(url: str, clients: int, seconds: float, name: str) -> tuple[list[float], int]:
    lat: list[float] = []
    samples = 0

    async def one() -> None:
        nonlocal samples
        async with websockets.connect(url, max_size=None, compression=None) as ws:
            await ws.send(json.dumps({"subscribe": ["signal", name]}))
            end = time.time() + seconds
            while time.time() < end:
                text = await ws.recv()
                now = time.time()
                # the measuring side parses only what it needs (x, the first key of the push):
                # json.loads of every push made the 100 clients, not the server, the limit
                if text.startswith('{"signal":{"x":['):
                    xs = text[16:text.index("]", 16)].split(",")
                    if xs[0]:
                        lat.append(now - float(xs[-1]))
                        samples += len(xs)

    await asyncio.gather(*(one() for _ in range(clients)))
    return lat, samples


def _watch_process(args: tuple[str, int, float, str]) -> tuple[list[float], int, float]:
    c0 = time.process_time()
    lat, n = asyncio.run(_watch(*args))
    return lat, n, (time.process_time() - c0) / args[2]


def fanout(url: str, clients: int, seconds: float, name: str, processes: int) -> dict:
    """``clients`` spread over ``processes`` client processes, so the measuring side is not
    what limits (one Python process decoding 100 clients' JSON is slower than the server)."""
    import multiprocessing

    per = [clients // processes + (i < clients % processes) for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_watch_process, [(url, k, seconds, name) for k in per])
    lat = [x for part, _, _ in parts for x in part[len(part) // 10:]]  # the first tenth: settling
    a = np.array(lat) * 1000
    return {"clients": clients, "client_processes": processes, "pushes": len(lat),
            "samples_per_client": sum(n for _, n, _ in parts) / clients,
            "client_cpu_percent": [round(100 * c) for _, _, c in parts],
            "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=("ingest", "fanout"))
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--window", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--client-processes", type=int, default=4)
    args = ap.parse_args()
    todo = args.only or ["ingest", "fanout"]
    out: dict = {}
    cfg = '''
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 10000.0
[websocket]
port = 0
max_clients = 512
'''
    with Instance.start(cfg, ("Generator.Sine",), env=ENV) as inst:
        url = inst.ws_url().replace("http://", "ws://")
        if "ingest" in todo:
            r = out["ingest"] = ingest(url, args.messages, args.window)
            print(f"JSON ingest, one client, single-sample messages: {r['samples_per_s'] / 1e3:.1f} k samples/s "
                  f"({r['acknowledged']} acknowledged in {r['seconds']:.2f} s; {r['stored_and_readable']} "
                  "read back with getSignal) -- target >= 200 k/s", flush=True)
            r = out["ingest_library_client"] = asyncio.run(ingest_library_client(url, 100_000))
            print(f"JSON ingest, a client built on websockets (one send per message): "
                  f"{r['samples_per_s'] / 1e3:.1f} k samples/s -- the client's limit", flush=True)
            r = out["ingest_1000"] = ingest(url, 1000, 16, per=1000, name="B")
            print(f"JSON ingest, one client, 1000 samples per message: {r['samples_per_s'] / 1e3:.1f} k samples/s "
                  f"({r['stored_and_readable']} read back)", flush=True)
        if "fanout" in todo:
            r = out["fanout"] = fanout(url, args.clients, args.seconds, "Generator.Sine", args.client_processes)
            print(f"fan-out, {r['clients']} clients x 10 kHz: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                  f"max {r['max_ms']:.1f} ms over {r['pushes']} pushes; {r['samples_per_client']:.0f} samples "
                  "per client -- target p99 <= 20 ms", flush=True)
    res = BENCH / "results"
    res.mkdir(exist_ok=True)
    (res / "websocket-latest.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
