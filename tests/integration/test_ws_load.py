"""Load on the websocket server: 300 push devices and 5 watching dashboards; TLS.

Each simulated device is its own websocket connection that sends a few parameters of its
own at random intervals (RTOC's data push, as a remote device would); five clients
subscribed to everything watch. Every update must reach every watcher: none lost, none
twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import websockets

from rtoc.app.harness import Instance

DEVICES, PARAMS, WATCHERS, SECONDS = 300, 3, 5, 10.0
CONFIG = '''
[[drivers]]
name = "Generator"
driver = "generator"
[websocket]
port = 0
max_clients = 400
max_clients_per_address = 0  # 300 devices, all on loopback here
[supervisor]
shm_per_client = 0  # their 900 rings (1 MiB each) are charged to loopback's one address
'''


async def _device(url: str, i: int, pushed: set, start: asyncio.Event) -> None:
    rng = random.Random(i)
    async with websockets.connect(url) as ws:
        await start.wait()
        end = time.monotonic() + SECONDS
        k = 0
        while time.monotonic() < end:
            await asyncio.sleep(rng.uniform(0.2, 2.5))
            k += 1
            x = 1_700_000_000.0 + i + k * 1e-3
            names = [f"p{j}" for j in range(PARAMS)]
            values = [float(k * 10 + j) for j in range(PARAMS)]
            await ws.send(json.dumps({"y": values, "x": [x] * PARAMS, "sname": names,
                                      "dname": f"Dev{i}", "unit": "V"}))
            reply = json.loads(await ws.recv())
            while "error" not in reply:  # a push (RTOC's newconnected) comes first
                reply = json.loads(await ws.recv())
            assert reply == {"error": False, "sent": True}, reply
            pushed.update((f"Dev{i}.{n}", x, v) for n, v in zip(names, values, strict=True))


async def _watcher(url: str, seen: set, ready: asyncio.Event, done: asyncio.Event) -> None:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"subscribeAll": "signal"}))
        ready.set()
        while not done.is_set():
            try:
                m = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            assert "dropped" not in m, m
            s = m.get("signal")
            if s and s["dname"].startswith("Dev"):
                name = f"{s['dname']}.{s['sname']}"
                for x, y in zip(s["x"], s["y"], strict=True):
                    key = (name, x, y)
                    assert key not in seen, f"twice: {key}"
                    seen.add(key)


def test_300_push_devices_and_5_watchers_every_update_reaches_every_watcher() -> None:
    with Instance.start(CONFIG, ("Generator.Sine",)) as inst:
        url = inst.ws_url().replace("http://", "ws://")

        async def run() -> tuple[set, list[set]]:
            pushed: set = set()
            seen: list[set] = [set() for _ in range(WATCHERS)]
            ready = [asyncio.Event() for _ in range(WATCHERS)]
            done, start = asyncio.Event(), asyncio.Event()
            watchers = [asyncio.create_task(_watcher(url, seen[w], ready[w], done))
                        for w in range(WATCHERS)]
            for r in ready:
                await r.wait()
            devices = [asyncio.create_task(_device(url, i, pushed, start)) for i in range(DEVICES)]
            await asyncio.sleep(1.0)  # all connected (a device's first send waits for start)
            start.set()
            await asyncio.gather(*devices)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(len(s) < len(pushed) for s in seen):
                await asyncio.sleep(0.2)
            done.set()
            await asyncio.gather(*watchers)
            return pushed, seen

        pushed, seen = asyncio.run(run())
        assert len(pushed) > DEVICES * PARAMS * 5
        for w, got in enumerate(seen):
            assert got == pushed, (f"watcher {w}: {len(pushed - got)} updates missing, "
                                   f"{len(got - pushed)} unexpected")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls_serves_wss_and_https(tmp_path: Path) -> None:
    if subprocess.run(["which", "openssl"], capture_output=True).returncode:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is missing (.ci/run installs it)")
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    cert, key = _self_signed(tmp_path)
    cfg = CONFIG.replace("max_clients = 400", f'tls_cert = "{cert}"\ntls_key = "{key}"')
    with Instance.start(cfg, ("Generator.Sine",)) as inst:
        url = inst.ws_url()
        assert url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))

        async def run() -> dict:
            async with websockets.connect(url.replace("https://", "wss://"), ssl=ctx) as ws:
                await ws.send(json.dumps({"getSignalList": True}))
                return json.loads(await ws.recv())

        assert ["Generator", "Sine"] in asyncio.run(run())["signalList"]
        import urllib.request

        with urllib.request.urlopen(url + "metrics", context=ctx, timeout=10) as r:
            assert r.status == 200 and b"rtoc_ws_clients" in r.read()
        with pytest.raises(ssl.SSLError):  # an untrusting client refuses the certificate
            asyncio.run(websockets.connect(url.replace("https://", "wss://"),
                                           ssl=ssl.create_default_context()).__aenter__())
