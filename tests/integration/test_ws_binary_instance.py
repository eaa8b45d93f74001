"""The binary websocket subprotocol against a real instance: subscriptions, bulk pushes,
encryption, reconnects (rtoc.client on one side, the websocket process on the other)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import numpy as np
import pytest
from rtoc.frontends.websocket.auth import hash_password

from rtoc.app.harness import Instance
from rtoc.client import AsyncClient, Client, LoginFailed, encode_control
from rtoc.errors import ControlError

GENERATOR = '''
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 2000.0
'''

USERS = f'''
[websocket]
port = 0
anonymous = "none"
[[websocket.users]]
name = "writer"
role = "write"
password_hash = "{hash_password("w-pass")}"
'''


def _consecutive(batches) -> None:
    for a, b in zip(batches, batches[1:], strict=False):
        assert b.seq == a.seq + len(a.t), (a.seq, len(a.t), b.seq)
        assert b.gap == 0 and b.lost == 0
        assert b.t[0] > a.t[-1]


def test_raw_subscription_gets_every_sample_in_order() -> None:
    with Instance.start(GENERATOR, ("Generator.Sine",)) as inst, Client(inst.ws_url()) as c:
        reply = c.subscribe(["Generator.Sine"])
        assert reply["signals"] == ["Generator.Sine"]
        batches = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            b = c.recv(timeout=0.5)
            if b is not None:
                assert b.name == "Generator.Sine"
                batches.append(b)
        assert sum(len(b.t) for b in batches) > 3000
        _consecutive(batches)
        # the samples are the ring's: compare with a history read of the same range
        t = np.concatenate([b.t for b in batches])
        y = np.concatenate([b.y for b in batches])
        ht, hy = c.history("Generator.Sine", float(t[0]), float(t[-1]))
        assert np.array_equal(ht, t) and np.array_equal(hy, y)
        assert c.gaps["Generator.Sine"] == 0 and c.received["Generator.Sine"] == len(t)


def test_push_a_million_samples_and_read_them_back() -> None:
    n, block = 1 << 20, 1 << 16
    t = time.time() - 10.0 + np.arange(n) * 1e-6
    y = np.sin(np.arange(n) / 1000.0)
    with Instance.start("") as inst, Client(inst.ws_url()) as c:
        for i in range(0, n, block):
            c.push("Bulk.Wave", t[i:i + block], y[i:i + block], unit="V")
            if i % (4 * block) == 0:
                c.sync()  # now and then: the ring holds one block, the engine must keep up
        assert c.sync() == n

        def stored():
            try:
                ht, hy = c.history("Bulk.Wave")
            except ControlError as exc:  # the archiver still writing the million (a loaded machine)
                if exc.code != "timeout":
                    raise
                return None
            return (ht, hy) if len(ht) == n else None
        ht, hy = inst.wait_for(stored, timeout=60.0)
        assert np.array_equal(ht, t) and np.array_equal(hy, y)
        sig = {s["name"]: s for s in c.signals()}["Bulk.Wave"]
        assert sig["unit"] == "V" and sig["lost"] == 0 and sig["written"] == n


def test_refused_pushes_are_reported_by_sync() -> None:
    with Instance.start(GENERATOR, ("Generator.Sine",)) as inst, Client(inst.ws_url()) as c:
        c.push("Generator.Sine", [1.0], [2.0])  # a driver's signal
        c.push("Mine.Ok", [time.time()], [1.0])
        with pytest.raises(Exception, match="Generator.Sine") as info:
            c.sync()
        assert info.value.errors[0]["error"]["code"] == "signal_owned"
        assert c.sync() == 1


def test_encrypted_session() -> None:
    with Instance.start(USERS) as inst:
        url = inst.ws_url()
        with Client(url, "writer", "w-pass", encrypt=True) as c:
            assert c.role == "write"
            t = time.time() + np.arange(1000) * 1e-3
            c.push("Secret.Wave", t, np.cos(t))
            assert c.sync() == 1000
            def stored():
                ht, hy = c.history("Secret.Wave")
                return (ht, hy) if len(ht) == 1000 else None
            ht, hy = inst.wait_for(stored)
            assert np.array_equal(ht, t)
            assert np.array_equal(hy, np.cos(t))
        with pytest.raises(LoginFailed, match="wrong user or password"):
            Client(url, "writer", "wrong", encrypt=True).__enter__()
        with pytest.raises(LoginFailed):
            Client(url, "nobody", "w-pass", encrypt=True).__enter__()
        with Client(url) as anon, pytest.raises(Exception, match="needs the read role"):
            anon.signals()
        with Client(url, "writer", "w-pass") as plain:  # a clear login works as well
            assert plain.role == "write" and plain.signals()


def test_a_replayed_frame_closes_the_connection() -> None:
    async def main(url: str) -> int | None:
        c = AsyncClient(url, "writer", "w-pass", encrypt=True, reconnect=None)
        await c.connect()
        frame = c._channel.seal(encode_control({"op": "ping", "rid": 99}))
        ws = c._ws
        await ws.send(frame)
        await ws.send(frame)  # the same sealed frame again
        await asyncio.wait_for(ws.wait_closed(), 10.0)
        code = ws.close_code
        await c.close()
        return code

    with Instance.start(USERS) as inst:
        assert asyncio.run(main(inst.ws_url())) == 1008


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reconnects_after_the_server_restarts() -> None:
    config = GENERATOR.replace("2000.0", "200.0") + f"\n[websocket]\nport = {_free_port()}\n"
    with Instance.start(config, ("Generator.Sine",)) as inst, \
            Client(inst.ws_url(), reconnect=0.3) as c:
        c.subscribe(["Generator.Sine"])
        first = c.recv(timeout=5.0)
        assert first is not None
        pid = next(p["pid"] for p in inst.client.request("status")["processes"]
                   if p["name"] == "websocket")
        os.kill(pid, signal.SIGKILL)
        inst.wait_for(lambda: c.reconnects >= 1 and c.connected, timeout=30.0)
        c.drain()
        after = [b for b in (c.recv(timeout=5.0) for _ in range(3)) if b is not None]
        assert after and after[0].seq > first.seq  # subscribed again, by itself
        _consecutive(after)
        new_pid = next(p["pid"] for p in inst.client.request("status")["processes"]
                       if p["name"] == "websocket")
        assert new_pid != pid
