"""The websocket server of a real instance: RTOC clients, permissions, limits, HTTP.

Each test starts ``rtoc run`` (rtoc.app.harness) with the websocket server on a port of its own
and talks to it over loopback with the ``websockets`` client, as an RTOC client would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets
from rtoc.frontends.websocket.auth import hash_password, rtoc_token
from rtoc.frontends.websocket.json_protocol.protocol import TABLE
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rtoc.app.harness import Instance

PASSWORDS = {"ann": "ann-pw", "wes": "wes-pw", "ada": "ada-pw"}
ROLE_OF = {"ann": "read", "wes": "write", "ada": "admin"}
LEVEL = {"none": 0, "read": 1, "write": 2, "admin": 3}


def users_toml(anonymous: str) -> str:
    out = f'[websocket]\nport = 0\nanonymous = "{anonymous}"\n'
    for name, pw in PASSWORDS.items():
        out += (f'[[websocket.users]]\nname = "{name}"\nrole = "{ROLE_OF[name]}"\n'
                f'password_hash = "{hash_password(pw, n=1024)}"\n')
    return out


GENERATOR = '''
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 200.0
frequency = 1.0
'''


def ws_url(inst: Instance) -> str:
    return inst.ws_url().replace("http://", "ws://")


async def ask(ws, msg: dict) -> dict:
    """Send one message; return its reply (pushes arriving meanwhile are skipped)."""
    await ws.send(json.dumps(msg))
    while True:
        r = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if "error" in r:
            return r


def test_an_rtoc_client_authorizes_pushes_lists_reads_subscribes_and_controls_a_driver() -> None:
    with Instance.start(GENERATOR + users_toml("none"), ("Generator.Sine",)) as inst:
        url = ws_url(inst)

        async def client() -> None:
            async with websockets.connect(url) as ws:
                await ws.send(json.dumps({"authorize": rtoc_token(PASSWORDS["ada"])}))
                assert json.loads(await ws.recv())["error"] is False
                assert json.loads(await ws.recv()) == {"authorized": True, "role": "admin"}
                r = await ask(ws, {"y": [1.0, 2.0], "sname": ["Temp", "Hum"], "dname": "Lab",
                                   "unit": ["C", "%"]})
                assert r == {"error": False, "sent": True}
                r = await ask(ws, {"y": [5, 6, 7], "x": [1, 2, 3], "sname": ["Curve"],
                                   "dname": "Lab", "plot": True})
                assert r["sent"] is True
                r = await ask(ws, {"getSignalList": True, "getLatest": ["Lab.Temp"]})
                assert ["Lab", "Temp"] in r["signalList"] and ["Generator", "Sine"] in r["signalList"]
                assert r["latest"]["Lab.Temp"][1:] == [1.0, "C"]
                r = await ask(ws, {"getSignal": ["Lab.Curve"]})
                assert r["signals"]["Lab.Curve"][:3] == [[1.0, 2.0, 3.0], [5.0, 6.0, 7.0], ""]
                await ws.send(json.dumps({"subscribe": ["signal", "Generator.Sine"]}))
                pushes, seen_reply = [], False
                deadline = time.monotonic() + 10
                while len(pushes) < 5 and time.monotonic() < deadline:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    seen_reply |= "subscription" in m
                    if "signal" in m:
                        pushes.append(m["signal"])
                assert seen_reply and len(pushes) == 5
                xs = [x for p in pushes for x in p["x"]]
                assert xs == sorted(xs) and pushes[0]["dname"] == "Generator"
                gaps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
                assert max(gaps) < 0.0051 + 1e-6  # every sample at 200 Hz, none skipped
                r = await ask(ws, {"plugin": {"Generator": {"samplerate": 100, "get": "samplerate",
                                                            "setFrequency()": [2.0]}}})
                assert r["plugin"]["Generator"]["samplerate"] == 100.0, r
                assert r["plugin"]["Generator"]["get"] == 100.0
                r = await ask(ws, {"plugin": {"Generator": {"start": False}}})
                assert r["plugin"]["Generator"]["start"] == "stopped"
                r = await ask(ws, {"plugin": {"Generator": {"start": True}}})
                assert r["plugin"]["Generator"]["start"] in ("stopped", "starting", "running")

        asyncio.run(client())
        inst.wait_for(lambda: {d["name"]: d for d in inst.client.request("drivers")["drivers"]}
                      ["Generator"]["state"] == "running")
        signals = {s["name"]: s for s in inst.client.request("signals")["signals"]}
        assert signals["Lab.Temp"]["owner"] == "websocket" and signals["Lab.Temp"]["unit"] == "C"


def _sample_arg(key: str):
    return {"authorize": True, "login": {"user": "x", "password": "y"}, "logout": True,
            "event": ["text", "S", "D"], "plugin": {"Generator": {"get": "samplerate"}},
            "subscribe": ["signal", "Generator.Sine"], "unsubscribe": ["signal", "Generator.Sine"],
            "subscribeAll": "signal", "unsubscribeAll": "signal", "subscribeView": ["Generator.Sine"],
            "eventLevel": 1, "getLatest": True, "getSignalList": True, "getSignalInfo": True,
            "getEventList": True, "getEvent": ["Generator.Sine"], "getSignal": ["Generator.Sine"],
            "getPluginList": True, "getSession": True, "remove": [[1], []],
            "logger": {"info": True}, "automation": {"list": True},
            "userAction": "Generator.setFrequency"}[key]


def test_a_client_connecting_is_announced_to_the_others() -> None:
    """Issue 16: RTOC pushed ``{"client": "newconnected"}`` to its clients when someone
    connected; we did not."""
    with Instance.start(GENERATOR + users_toml("read"), ("Generator.Sine",)) as inst:
        url = ws_url(inst)

        async def clients() -> None:
            async with websockets.connect(url) as first:
                await ask(first, {"getSignalList": True})
                async with websockets.connect(url) as second:
                    await ask(second, {"getSignalList": True})
                    seen = json.loads(await asyncio.wait_for(first.recv(), 10))
                    assert seen == {"client": "newconnected"}

        asyncio.run(clients())


def test_every_op_for_anonymous_read_write_and_admin() -> None:
    """The whole matrix: a key is answered iff the role allows it (else a role error)."""
    with Instance.start(GENERATOR + users_toml("none"), ("Generator.Sine",)) as inst:
        url = ws_url(inst)

        async def matrix() -> list[str]:
            failures = []
            for who in ("anonymous", "ann", "wes", "ada"):
                role = "none" if who == "anonymous" else ROLE_OF[who]
                async with websockets.connect(url) as ws:
                    if who != "anonymous":
                        r = await ask(ws, {"login": {"user": who, "password": PASSWORDS[who]}})
                        assert r["login"]["role"] == role
                    cases = [(k, {k: _sample_arg(k)}) for k in sorted(TABLE) if k not in ("login", "logout", "y")]
                    cases.append(("y", {"y": [1.0], "sname": ["M"], "dname": "Matrix"}))
                    for key, msg in cases:
                        need = TABLE[key].role
                        r = await ask(ws, msg)
                        refused = "needs the" in r.get("errors", {}).get(key, "")
                        if refused != (LEVEL[role] < LEVEL[need]):
                            failures.append(f"{who}/{role} {key} (needs {need}): {r}")
            return failures

        assert asyncio.run(matrix()) == []


def test_limits_oversized_frames_close_with_1009_deep_nesting_is_answered() -> None:
    cfg = GENERATOR + "[websocket]\nport = 0\nmax_message = 65536\n"
    with Instance.start(cfg, ("Generator.Sine",)) as inst:
        url = ws_url(inst)

        async def go() -> int:
            async with websockets.connect(url, max_size=None) as ws:
                r = await ask(ws, {"getSignalList": True})
                assert r["error"] is False
                await ws.send("[" * 60000)
                r = json.loads(await ws.recv())
                assert r["error"] is True and "nesting" in r["message"]  # answered, still open
                r = await ask(ws, {"getSignalList": True})
                assert r["error"] is False
                await ws.send("x" * 70000)
                with pytest.raises(ConnectionClosed):
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                return ws.close_code

        assert asyncio.run(go()) == 1009


def test_foreign_origins_are_refused_and_the_client_limit_holds() -> None:
    cfg = GENERATOR + ('[websocket]\nport = 0\nmax_clients = 2\n'
                       'allowed_origins = ["https://dash.example"]\n')
    with Instance.start(cfg, ("Generator.Sine",)) as inst:
        url = ws_url(inst)
        host = url.split("//")[1].rstrip("/")

        async def go() -> None:
            with pytest.raises(InvalidStatus) as exc:
                async with websockets.connect(url, origin="http://evil.example"):
                    pass
            assert exc.value.response.status_code == 403
            async with websockets.connect(url, origin=f"http://{host}") as a, \
                    websockets.connect(url, origin="https://dash.example") as b:
                assert (await ask(a, {"getSignalList": True}))["error"] is False
                assert (await ask(b, {"getSignalList": True}))["error"] is False
                with pytest.raises(InvalidStatus) as exc:
                    async with websockets.connect(url):
                        pass
                assert exc.value.response.status_code == 503

        asyncio.run(go())


def test_a_client_that_does_not_read_loses_pushes_counted_and_slows_nobody() -> None:
    cfg = '''
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 20000.0
[websocket]
port = 0
send_queue = 4
'''
    with Instance.start(cfg, ("Generator.Sine",)) as inst:
        url = ws_url(inst)

        async def go() -> tuple[int, list[float]]:
            async with websockets.connect(url, max_queue=1) as slow, websockets.connect(url) as fast:
                await ask(slow, {"subscribeAll": "signal"})
                await ask(fast, {"subscribe": ["signal", "Generator.Sine"]})
                xs: list[float] = []
                t_end = time.monotonic() + 8
                while time.monotonic() < t_end:  # the slow one never reads meanwhile
                    m = json.loads(await asyncio.wait_for(fast.recv(), 5))
                    if "signal" in m:
                        xs.extend(m["signal"]["x"])
                dropped = 0
                t_end = time.monotonic() + 10
                while not dropped and time.monotonic() < t_end:
                    m = json.loads(await asyncio.wait_for(slow.recv(), 5))
                    dropped = m.get("dropped", 0)
                return dropped, xs

        dropped, xs = asyncio.run(go())
        assert dropped > 0  # counted and told to the slow client
        gaps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
        assert len(xs) > 100_000 and max(gaps) < 2 / 20000  # the other client missed nothing
        sig = {s["name"]: s for s in inst.client.request("signals")["signals"]}["Generator.Sine"]
        assert sig["lost"] == 0  # and the engine kept up


def test_http_dashboard_metrics_and_signal_api_with_basic_auth() -> None:
    with Instance.start(GENERATOR + users_toml("none"), ("Generator.Sine",)) as inst:
        base = inst.ws_url()

        def get(path: str, user: str | None = None) -> tuple[int, str, bytes]:
            req = urllib.request.Request(base + path.lstrip("/"))
            if user:
                cred = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
                req.add_header("Authorization", f"Basic {cred}")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.headers["Content-Type"], r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.headers["Content-Type"], e.read()

        assert get("/metrics")[0] == 401  # anonymous = none: /metrics lists signals and clients
        status, kind, body = get("/metrics", "ann")
        assert status == 200 and kind.startswith("text/plain")
        text = body.decode()
        assert 'rtoc_signal_rate{signal="Generator.Sine"}' in text and "rtoc_ws_clients" in text
        assert "# TYPE rtoc_process_restarts_total counter" in text
        assert get("/api/signals")[0] == 401  # anonymous = none
        status, kind, body = get("/api/signals", "ann")
        assert status == 200 and "Generator.Sine" in json.loads(body)
        status, kind, body = get("/api/signals/Generator.Sine?maxN=50&format=csv", "ann")
        lines = body.decode().splitlines()
        assert status == 200 and kind.startswith("text/csv") and lines[0] == "t,Generator.Sine"
        assert 2 <= len(lines) <= 51
        t_now = time.time()
        status, _, body = get(f"/api/signals/Generator.Sine?from={t_now - 1}&to={t_now}", "ann")
        data = json.loads(body)
        assert status == 200 and all(t_now - 1 <= t <= t_now for t in data["t"]) and data["t"]
        assert get("/api/signals/No.Such", "ann")[0] == 404
        assert get("/nothing")[0] == 404


def test_remove_and_clear_pushed_signals_but_never_a_drivers() -> None:
    with Instance.start(GENERATOR, ("Generator.Sine",)) as inst:
        url = ws_url(inst)

        async def go() -> None:
            async with websockets.connect(url) as ws:
                await ask(ws, {"y": [1.0], "sname": ["Gone"], "dname": "Lab"})
                info = (await ask(ws, {"getSignalInfo": True}))["signalInfo"]
                sig_id = info["Lab.Gone"]["id"]
                path = {s["name"]: s["path"] for s in inst.client.request("signals")["signals"]}["Lab.Gone"]
                r = await ask(ws, {"remove": [[sig_id], []]})
                assert r == {"error": False, "remove": [1, 0]}
                assert "Lab.Gone" not in {s["name"] for s in inst.client.request("signals")["signals"]}
                assert not Path(path).exists()
                r = await ask(ws, {"remove": [[info["Generator.Sine"]["id"]], []]})
                assert r["error"] and "only pushed signals" in r["errors"]["remove"]
                assert (await ask(ws, {"y": [5.0], "sname": ["Gone"], "dname": "Lab"}))["sent"]
                r = await ask(ws, {"getLatest": ["Lab.Gone"]})
                assert r["latest"]["Lab.Gone"][1] == 5.0  # pushed again: a new signal
                await ask(ws, {"y": [6.0], "sname": ["Gone"], "dname": "Lab"})
                r = await ask(ws, {"logger": {"clear": ["Lab.Gone"]}})  # RTOC's clearData
                assert r == {"error": False, "logger": {"clear": ["Lab.Gone"]}}
                r = await ask(ws, {"getSignal": ["Lab.Gone"]})
                assert r["signals"]["Lab.Gone"][:2] == [[], []]
                await ask(ws, {"y": [7.0], "sname": ["Gone"], "dname": "Lab"})
                r = await ask(ws, {"getSignal": ["Lab.Gone"]})
                assert r["signals"]["Lab.Gone"][1] == [7.0]

        asyncio.run(go())
