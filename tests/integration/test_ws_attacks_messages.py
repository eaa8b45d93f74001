"""One anonymous message must not take the websocket server down (issue 12), against a real
instance: huge names in subscriptions (libzmq crashed unsubscribing them) and heavy getSignal
requests (they froze the event loop for every client)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
import urllib.request

import numpy as np
import websockets
from test_websocket import ask, ws_url

from rtoc.app.harness import Instance

CONFIG = '''
[websocket]
port = 0
anonymous = "read"
max_subscriptions = 50

[[drivers]]
name = "Generator"
driver = "generator"
ring_seconds = 60.0
[drivers.params]
samplerate = {rate}
frequency = 1.0
'''


def websocket_process(inst: Instance) -> dict:
    return next(p for p in inst.client.request("status")["processes"] if p["name"] == "websocket")


def test_huge_names_in_subscriptions_are_refused_and_the_server_stays_up() -> None:
    with Instance.start(CONFIG.format(rate=100.0), ("Generator.Sine",)) as inst:
        url = ws_url(inst)
        before = websocket_process(inst)

        async def attack() -> None:
            async with websockets.connect(url, max_size=None) as ws:
                for msg in ({"subscribe": ["device", "D" * 1_000_000]},
                            {"subscribe": ["signal", "A." + "s" * 300_000]},
                            {"subscribeView": ["A." + "s" * 300_000]},
                            {"subscribeView": ["A." + "s" * 1000 + str(i) for i in range(100)]}):
                    r = await ask(ws, msg)
                    assert r["error"] is True, str(r)[:200]
                for i in range(100):  # the memory case: 100 names of 100 kB
                    r = await ask(ws, {"subscribe": ["device", f"{i}" + "D" * 100_000]})
                    assert r["error"] is True
                r = await ask(ws, {"subscribe": ["device", "Generator"]})
                assert r["error"] is False and r["subscription"]["devices"] == ["Generator"]
                await ask(ws, {"unsubscribe": ["device", "Generator"]})
            # the attacker left: its topics were unsubscribed (where the huge one crashed)
            await asyncio.sleep(0.5)
            async with websockets.connect(url) as ws:
                r = await ask(ws, {"getLatest": ["Generator.Sine"]})
                assert r["error"] is False and "Generator.Sine" in r["latest"]

        asyncio.run(attack())
        with urllib.request.urlopen(inst.ws_url() + "metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert "rtoc_ws_subscriptions_refused_total 1.0" in metrics  # the 100 views > 50
        after = websocket_process(inst)
        assert after["state"] == "running"
        assert after.get("restarts", 0) == before.get("restarts", 0)
        assert after.get("pid", 0) == before.get("pid", 0)


HEAVY = ({"getSignal": ["Generator.Sine"] * 10_000},
         {"getSignal": {"dname": "Generator", "sname": "Sine", "maxN": 2_000_000}},
         {"getSignal": {"dname": "Generator", "sname": "Sine", "maxN": 200_000}})


def attacker(url: str, rounds: int, results: mp.Queue) -> None:
    """(a process of its own, so that parsing its big replies stalls nobody but itself) Send
    the heavy requests ``rounds`` times; put what came back, summed up, on ``results`` (the
    first round's replies parsed, later ones only their start, to spare the CPU)."""

    async def go() -> None:
        async with websockets.connect(url, max_size=None) as ws:
            for i in range(rounds):
                for msg in HEAVY:
                    await ws.send(json.dumps(msg))
                    raw = await asyncio.wait_for(ws.recv(decode=False), 30)
                    if i:
                        results.put({"error": not raw.startswith(b'{"error":false'), "bytes": len(raw)})
                        continue
                    r = json.loads(raw)
                    results.put({"error": r["error"], "errors": r.get("errors", {}), "bytes": len(raw),
                                 "signals": {n: len(v[0]) for n, v in r.get("signals", {}).items()}})
        results.put(None)

    asyncio.run(go())


async def round_trips(ws, seconds: float, alive=lambda: True) -> list[float]:
    """getLatest round trips (s) for ``seconds`` or while ``alive()``."""
    rtts = []
    end = time.monotonic() + seconds
    while alive() and time.monotonic() < end:
        t0 = time.perf_counter()
        r = await ask(ws, {"getLatest": ["Generator.Sine"]})
        rtts.append(time.perf_counter() - t0)
        assert r["error"] is False
        await asyncio.sleep(0.01)
    return rtts


def test_heavy_get_signal_requests_leave_other_clients_answered_within_50_ms() -> None:
    with Instance.start(CONFIG.format(rate=100_000.0), ("Generator.Sine",)) as inst:
        url = ws_url(inst)
        inst.wait_for(lambda: next(s for s in inst.client.request("signals")["signals"]
                                   if s["name"] == "Generator.Sine")["written"] > 300_000, 30)
        results: mp.Queue = mp.get_context("spawn").Queue()

        async def prober() -> tuple[list[float], list[float]]:
            async with websockets.connect(url) as ws:
                baseline = await round_trips(ws, 3.0)
                proc = mp.get_context("spawn").Process(target=attacker, args=(url, 4, results))
                proc.start()
                try:
                    rtts = await round_trips(ws, 60.0, proc.is_alive)
                finally:
                    proc.join(5)
                    if proc.is_alive():
                        proc.kill()
                        proc.join()
            return baseline, rtts

        baseline, rtts = asyncio.run(prober())
        answers = []
        while (a := results.get(timeout=5)) is not None:
            answers.append(a)
        assert len(answers) == 3 * 4
        dedup, too_many, bounded = answers[:3]
        assert dedup["error"] is False and list(dedup["signals"]) == ["Generator.Sine"]
        assert "max_reply_points" in too_many["errors"]["getSignal"]
        assert bounded["error"] is False and 4 <= bounded["signals"]["Generator.Sine"] <= 200_000
        assert [a["error"] for a in answers[3:]] == [False, True, False] * 3
        # the promise: under 50 ms at p99, over what this (shared, loaded) machine gives anyway
        p99, base = float(np.percentile(rtts, 99)), float(np.percentile(baseline, 99))
        print(f"getLatest round trips: {len(baseline)} before the attack, p99 {base * 1000:.1f} ms; "
              f"{len(rtts)} under it, median {np.median(rtts) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
              f"max {max(rtts) * 1000:.1f} ms; replies {[a['bytes'] for a in answers[:3]]} bytes")
        assert len(rtts) >= 50 and p99 < 0.050 + base, \
            f"p99 {p99 * 1000:.1f} ms over {len(rtts)} round trips (before: {base * 1000:.1f} ms)"
