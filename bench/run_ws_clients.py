#!/usr/bin/env python
"""JSON ingest with the library clients RTOC users run, beside those clients' own ceiling (issue 12).

Each client library sends single-sample RTOC pushes, one message per ``send`` from one
thread, while a second thread reads the replies (``recv``) and counts ``sent: true``;
messages/s = messages over the time from the first send to the last reply. Two targets:

* ``sink``: a tiny server in its own process that completes the handshake and answers
  every message with the same constant reply the server gives (``{"error":false,
  "sent":true}``), doing nothing else (RTOC's numba frame reader, one write per read): the
  client's own ceiling with the same request/reply pattern.
* ``server``: a real ``rtoc run`` (websocket only, the archiver on); after each run the
  samples are read back with ``getSignal`` (from the archive) and counted.

Clients: ``websockets`` (``websockets.sync.client.connect``) and ``websocket-client``
(``websocket.create_connection``), both with their defaults. Shapes (docs/PROTOCOL.md
"Data push"): ``text`` (``"unit": "V"``), ``list`` (``"unit": ["V"]``, as RTOC's client
sends), ``x`` (a list unit and ``"x": [t]``), ``several`` (three signals in one message,
``"sname": ["A", "B", "C"]``, a list unit: three samples per message).

CPU per message (server: all processes of the instance; client: the client process) is
printed beside the rates: on a machine shared with other work the rates swing, the CPU
figures much less. Prints a table (median of ``--rounds``) and writes ``bench/results/ws-clients-latest.json``;
nothing is asserted. Goal: server >= 0.9x the client's ceiling for every shape.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
REPLY = '{"error":false,"sent":true}'
SHAPES = ("text", "list", "x", "several")
CLIENTS = ("websockets", "websocket-client")
NAMES = {"several": ("A", "B", "C")}


def messages(shape: str, n: int, tag: str) -> tuple[list[str], int]:
    """``n`` message texts of ``shape`` for device ``tag``, and the samples each holds."""
    base = time.time()
    if shape == "text":
        return [f'{{"y": [{float(i)!r}], "sname": ["S"], "dname": "{tag}", "unit": "V"}}'
                for i in range(n)], 1
    if shape == "list":
        return [f'{{"y": [{float(i)!r}], "sname": ["S"], "dname": "{tag}", "unit": ["V"]}}'
                for i in range(n)], 1
    if shape == "x":
        return [f'{{"y": [{float(i)!r}], "x": [{base + i * 1e-6!r}], "sname": ["S"], '
                f'"dname": "{tag}", "unit": ["V"]}}' for i in range(n)], 1
    if shape == "several":
        return [f'{{"y": [{float(i)!r}, {i + 0.5!r}, {-float(i)!r}], "sname": ["A", "B", "C"], '
                f'"dname": "{tag}", "unit": ["V", "V", "V"]}}' for i in range(n)], 3
    raise ValueError(shape)


# -- the clients ------------------------------------------------------------------------------
def run_client(client: str, url: str, texts: list[str]) -> dict:
    """One connection of ``client``: a thread sends every text (one ``send`` each) while
    this one reads the replies."""
    if client == "websockets":
        from websockets.sync.client import connect
        with connect(url) as ws:
            return _exchange(ws.send, ws.recv, texts)
    if client == "websocket-client":
        import websocket
        ws = websocket.create_connection(url)
        try:
            return _exchange(ws.send, ws.recv, texts)
        finally:
            ws.close()
    raise ValueError(client)


def _exchange(send, recv, texts: list[str]) -> dict:
    n = len(texts)
    sent_ok = 0
    other: list[str] = []

    def sender() -> None:
        for text in texts:
            send(text)

    t0 = time.perf_counter()
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    for _ in range(n):
        r = recv()
        if r == REPLY or json.loads(r).get("sent") is True:
            sent_ok += 1
        elif len(other) < 3:
            other.append(r[:200])
    seconds = time.perf_counter() - t0
    th.join()
    return {"messages": n, "acknowledged": sent_ok, "seconds": seconds,
            "messages_per_s": n / seconds, "other_replies": other}


# -- the sink ---------------------------------------------------------------------------------
def _sink(ready: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    from rtoc.frontends.websocket.json_protocol.framing import CONTROL, FrameReader, encode, warm_up
    from websockets.utils import accept_key

    warm_up()
    reply = encode(REPLY.encode())

    class Sink(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.t = transport
            self.head = b""
            self.frames: FrameReader | None = None

        def data_received(self, data: bytes) -> None:
            if self.frames is None:
                self.head += data
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = self.head[:end].decode("latin-1").split("\r\n")
                key = next(v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
                           if k.strip().lower() == "sec-websocket-key")
                self.t.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_key(key)}"
                              "\r\n\r\n").encode())
                self.frames = FrameReader(None)
                data, self.head = self.head[end + 4:], b""
                if not data:
                    return
            n = 0
            for opcode, payload in self.frames.feed(data):
                if opcode < CONTROL:
                    n += 1
                elif opcode == 9:
                    self.t.write(encode(payload, 10))
                elif opcode == 8:
                    if n:
                        self.t.write(reply * n)
                    self.t.write(encode(payload[:2], 8))
                    self.t.close()
                    return
            if n:
                self.t.write(reply * n)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Sink, "127.0.0.1", 0)
        ready.put(server.sockets[0].getsockname()[1])
        while not stop.is_set():
            await asyncio.sleep(0.1)
        server.close()

    asyncio.run(main())


class SinkProcess:
    def __enter__(self) -> str:
        ctx = multiprocessing.get_context("spawn")
        q, self.stop = ctx.Queue(), ctx.Event()
        self.proc = ctx.Process(target=_sink, args=(q, self.stop), daemon=True)
        self.proc.start()
        return f"ws://127.0.0.1:{q.get(timeout=60)}/"

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# -- reading back ---------------------------------------------------------------------------
def _cpu(procs: list) -> float:
    total = 0.0
    for p in procs:
        try:
            c = p.cpu_times()
            total += c.user + c.system
        except psutil.Error:
            pass
    return total


async def _stored(url: str, device: str, names: tuple[str, ...], xmin: float, xmax: float,
                  want: int, timeout: float = 20.0) -> int:
    """Samples of the device's signals in [xmin, xmax] once the archive has them all
    (or ``timeout`` s passed)."""
    import websockets

    end = time.monotonic() + timeout
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        while True:
            await ws.send(json.dumps({"getSignal": [
                {"dname": device, "sname": n, "maxN": 2_000_000 // len(names), "xmin": xmin,
                 "xmax": xmax} for n in names]}))  # max_reply_points is 2,000,000 in all
            while "error" not in (got := json.loads(await ws.recv())):
                pass
            count = sum(len(v[0]) for v in got.get("signals", {}).values())
            if count >= want or time.monotonic() > end:
                return count
            await asyncio.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000, help="messages per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--client", action="append", choices=CLIENTS)
    ap.add_argument("--shape", action="append", choices=SHAPES)
    ap.add_argument("--no-check", action="store_true", help="do not read the samples back")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: the instance is cleaned up
    clients, shapes = args.client or list(CLIENTS), args.shape or list(SHAPES)
    from rtoc.app.harness import Instance

    runs: dict[str, dict[str, dict[str, list]]] = {}
    # max_reply_points: the read-back asks for every sample (300,000 with three signals)
    cfg = "[websocket]\nport = 0\nmax_clients = 64\nmax_reply_points = 2000000\n"
    with SinkProcess() as sink_url, Instance.start(cfg) as inst:
        url = inst.ws_url().replace("http://", "ws://")
        top = psutil.Process(inst.proc.pid)
        procs = [top, *top.children(recursive=True)]
        for r in range(args.rounds):
            for client in clients:
                for shape in shapes:
                    cell = runs.setdefault(client, {}).setdefault(shape, {"sink": [], "server": [],
                                                                           "stored": []})
                    texts, per = messages(shape, args.messages, "Warm")
                    run_client(client, sink_url, texts[:2000])
                    cell["sink"].append(run_client(client, sink_url, texts))
                    tag = f"B{r}{shape}{client.replace('-', '')}"
                    run_client(client, url, messages(shape, 2000, f"W{tag}")[0])  # as the sink's
                    texts, per = messages(shape, args.messages, tag)
                    t0 = time.time()
                    cpu0, own0 = _cpu(procs), time.process_time()
                    res = run_client(client, url, texts)
                    # CPU per message: the load of other work on the machine moves the
                    # rates; these move much less (server: every process of the instance)
                    res["server_cpu_us"] = (_cpu(procs) - cpu0) / args.messages * 1e6
                    res["client_cpu_us"] = (time.process_time() - own0) / args.messages * 1e6
                    res["samples_per_s"] = res["acknowledged"] * per / res["seconds"]
                    cell["server"].append(res)
                    if not args.no_check:
                        names = NAMES.get(shape, ("S",))
                        cell["stored"].append(asyncio.run(_stored(
                            url, tag, names, t0 - 5, time.time() + 5, args.messages * per)))
                    print(f"round {r + 1} {client:17s} {shape:8s} sink "
                          f"{cell['sink'][-1]['messages_per_s'] / 1e3:6.1f} k msg/s, server "
                          f"{res['messages_per_s'] / 1e3:6.1f} k msg/s, CPU per message: server "
                          f"{res['server_cpu_us']:.1f} us, client {res['client_cpu_us']:.1f} us "
                          f"({res['acknowledged']} acknowledged"
                          + (f", {cell['stored'][-1]} samples stored)" if cell["stored"] else ")"),
                          flush=True)
    print(f"\n{'client':17s} {'shape':8s} {'ceiling k msg/s':>16s} {'server k msg/s':>15s} "
          f"{'ratio':>6s} {'k samples/s':>12s} {'server us/msg':>14s} {'client us/msg':>14s}")
    summary: dict = {}
    for client, by_shape in runs.items():
        for shape, cell in by_shape.items():
            ceil = statistics.median(x["messages_per_s"] for x in cell["sink"])
            srv = statistics.median(x["messages_per_s"] for x in cell["server"])
            sps = statistics.median(x["samples_per_s"] for x in cell["server"])
            cpu = statistics.median(x["server_cpu_us"] for x in cell["server"])
            own = statistics.median(x["client_cpu_us"] for x in cell["server"])
            summary[f"{client}/{shape}"] = {"ceiling_msg_s": ceil, "server_msg_s": srv,
                                            "ratio": srv / ceil, "server_samples_s": sps,
                                            "server_cpu_us_per_msg": cpu,
                                            "client_cpu_us_per_msg": own,
                                            "stored": cell["stored"]}
            print(f"{client:17s} {shape:8s} {ceil / 1e3:16.1f} {srv / 1e3:15.1f} "
                  f"{srv / ceil:6.2f} {sps / 1e3:12.1f} {cpu:14.1f} {own:14.1f}")
    res_dir = BENCH / "results"
    res_dir.mkdir(exist_ok=True)
    (res_dir / "ws-clients-latest.json").write_text(json.dumps({"summary": summary, "runs": runs},
                                                               indent=1))
    print("goal: server >= 0.9x the client's ceiling for every shape")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
