#!/usr/bin/env python
"""Memory of the websocket process under clients that never read (issue 12).

A real ``rtoc run`` (Generator at 20 kHz, so a ``getSignal`` reply is megabytes of JSON);
``--clients`` raw websocket clients (asyncio streams, a 4 KiB receive buffer, no library
reading for them) connect from loopback and, for ``--seconds``, send requests as fast as the
server takes them and never read a byte: ``getsignal`` mode sends ``{"getSignal":
["Generator.Sine"]}``, ``big`` mode messages of 1 MiB (``getSession`` with padding, just under ``max_message``). The
websocket process's RSS (pid from the ``status`` op, /proc) is sampled every 50 ms: the
baseline before, the peak during, the value 3 s after the clients left; plus what
``/metrics`` says then (clients, slots held, clients closed for not reading).

``--old`` leaves out the config keys older code does not know (to measure it the same
way: ``PYTHONPATH=<worktree of the old commit>``). Prints the figures and writes
``bench/results/ws-attack-memory-latest.json``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import time
from pathlib import Path

from rtoc.frontends.websocket.json_protocol.framing import encode_masked

from rtoc.app.harness import Instance

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def frame(payload: bytes) -> bytes:
    """A client's text frame (mask key 0)."""
    return encode_masked(payload, b"\0\0\0\0")


async def attacker(host: str, port: int, payload: bytes, seconds: float) -> int:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return -1
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        writer.transport.abort()
        return -1
    if not head.startswith(b"HTTP/1.1 101"):
        writer.transport.abort()
        return -1
    data, sent, end = frame(payload) * 8, 0, time.monotonic() + seconds
    while time.monotonic() < end:
        writer.write(data)
        try:
            await asyncio.wait_for(writer.drain(), max(0.01, end - time.monotonic()))
        except (TimeoutError, OSError):
            break
        sent += 8
    writer.transport.abort()
    return sent


def run(clients: int, seconds: float, mode: str, old: bool, extra: list[str], env: dict[str, str]) -> dict:
    config = '[[drivers]]\nname = "Generator"\ndriver = "generator"\n[drivers.params]\nsamplerate = 20000.0\n'
    config += "[websocket]\nport = 0\nmax_clients = 512\n"
    if not old:
        config += "max_clients_per_address = 0\n"
    config += "".join(f"{kv}\n" for kv in extra)
    payload = (b'{"getSignal": ["Generator.Sine"]}' if mode == "getsignal"
               else b'{"getSession": true, "pad": "' + b"x" * ((1 << 20) - 64) + b'"}')
    with Instance.start(config, ("Generator.Sine",), env=env or None) as inst:
        host, port = inst.ws_url().split("//")[1].rstrip("/").rsplit(":", 1)
        inst.metrics()
        time.sleep(5)  # 100 k samples in the ring: a getSignal reply is ~4 MB of JSON
        pid = {p["name"]: p for p in inst.client.request("status")["processes"]}["websocket"]["pid"]
        base = rss_mib(pid)
        peak = base
        samples: list[tuple[float, float]] = []

        async def go() -> list[int]:
            nonlocal peak
            start = time.monotonic()

            async def watch() -> None:
                nonlocal peak
                while True:
                    r = rss_mib(pid)
                    peak = max(peak, r)
                    samples.append((round(time.monotonic() - start, 2), round(r, 1)))
                    await asyncio.sleep(0.05)

            w = asyncio.create_task(watch())
            sent = await asyncio.gather(*(attacker(host, int(port), payload, seconds) for _ in range(clients)))
            await asyncio.sleep(3)
            w.cancel()
            return sent

        sent = asyncio.run(go())
        after = rss_mib(pid)
        m = inst.metrics()
    return {"mode": mode, "settings": extra, "env": env, "clients": clients, "seconds": seconds, "connected": sum(s >= 0 for s in sent),
            "messages_sent": sum(s for s in sent if s > 0), "rss_base_mib": round(base, 1),
            "rss_peak_mib": round(peak, 1), "growth_peak_mib": round(peak - base, 1),
            "rss_after_mib": round(after, 1),
            "metrics_after": {k: v for k, v in m.items() if k.startswith(("rtoc_ws_clients", "rtoc_ws_connections_open",
                                                                          "rtoc_ws_slow_closed", "rtoc_ws_send_queue"))},
            "rss_series": samples[:: max(1, len(samples) // 60)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--mode", choices=("getsignal", "big"), action="append")
    ap.add_argument("--old", action="store_true", help="no config keys the old code does not know")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a [websocket] setting, e.g. --set max_big_replies=2")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment of the instance, e.g. --env MALLOC_ARENA_MAX=2")
    args = ap.parse_args()
    env = dict(kv.split("=", 1) for kv in args.env)
    out = [run(args.clients, args.seconds, mode, args.old, args.set, env) for mode in (args.mode or ["getsignal", "big"])]
    for r in out:
        print(f"{r['mode']:>9}: {r['connected']}/{r['clients']} clients, {r['messages_sent']} messages; RSS "
              f"{r['rss_base_mib']} -> peak {r['rss_peak_mib']} MiB (+{r['growth_peak_mib']}), "
              f"{r['rss_after_mib']} MiB 3 s after they left; {r['metrics_after']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ws-attack-memory-latest.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
