"""RTOC 3.0's own websocket client against a real instance, as RTOC users have it.

A throw-away venv (once per module) gets ``rtoc==3.0`` and ``websocket-client==0.57.0``
from PyPI (without RTOC's GUI dependencies: its client needs only ``psutil``,
``pycryptodomex`` and ``six``; a ``sitecustomize.py`` gives Python 3.11 the
``collections.MutableMapping`` RTOC 3.0's modules expect). ``rtoc30_client.py`` runs IN that
venv and drives ``RTOC.RTLogger.RTWebsocketClient.RTWebsocketClient``: every request its
``send`` can make of the RTOC protocol, each reply through the client's own ``handle_*``
callbacks.

Hosts: RTOC's client encrypts (with a password) for every host but ``localhost`` and
``127.0.0.1``. ``127.0.0.2`` is such another host while it still reaches this machine, so
the instances listen on ``0.0.0.0`` (for the duration of a test) and are dialled at
``localhost`` (plain) and ``127.0.0.2`` (encrypted). The server cannot see the name the
client dialled (a connection to 127.0.0.2 arrives from 127.0.0.1): the first message's
shape tells it (docs/PROTOCOL.md, "RTOC 3.0's encryption").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rtoc.frontends.websocket import legacy_crypto as lc
from rtoc.frontends.websocket.auth import hash_password

from rtoc.app.harness import Instance

HERE = Path(__file__).resolve().parent
PASSWORD = "geheim"
SHIM = '''"""Python 3.10 removed collections' aliases of collections.abc; RTOC 3.0 uses them."""
import collections
import collections.abc

for _name in ("Callable", "Iterable", "Mapping", "MutableMapping", "MutableSequence",
              "MutableSet", "Sequence", "Set"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
'''
GENERATOR = '''
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 50.0
frequency = 1.0
'''


@pytest.fixture(scope="module")
def rtoc30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a venv with RTOC 3.0's client (built once for this module)."""
    venv = tmp_path_factory.mktemp("rtoc30") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--quiet",
                          "--disable-pip-version-check", "rtoc==3.0", "websocket-client==0.57.0",
                          "six", "psutil", "pycryptodomex"],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, f"pip could not install RTOC 3.0 from PyPI:\n{pip.stdout}\n{pip.stderr}"
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "sitecustomize.py").write_text(SHIM)
    (venv / "rtoc30_client.py").write_text((HERE / "rtoc30_client.py").read_text())
    check = subprocess.run([str(python), "-c", "import collections, websocket; "
                            "from RTOC.RTLogger import RTWebsocketClient; "
                            "print(websocket.__version__, collections.MutableMapping)"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout.startswith("0.57.0"), check.stderr
    return python


def run_client(python: Path, host: str, port: int, password: str | None, steps: list[dict],
               **extra) -> dict:
    """Run the plan in RTOC 3.0's venv; print and return what it saw."""
    plan = {"host": host, "port": port, "password": password, "steps": steps, **extra}
    r = subprocess.run([str(python), str(python.parent.parent / "rtoc30_client.py"), json.dumps(plan)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"\n=== RTOC 3.0 client -> {host}:{port}, password {'set' if password else 'none'}")
    for step in out["steps"]:
        print(f"  send {json.dumps(step['send'])[:150]}  (waited for {step['wait']!r}: "
              f"{'ok' if step['ok'] else 'TIMED OUT'})")
        for m in step["got"]:
            print(f"    <- {json.dumps(m)[:300]}")
        for h in step["handled"]:
            print(f"    client callback {json.dumps(h)[:200]}")
    print(f"  raw frames: {[str(x)[:80] for x in out['raw']]}\n  closed: {out['closed']}")
    out["stderr"] = r.stderr
    return out


def port_of(inst: Instance) -> int:
    return int(inst.ws_url().rstrip("/").rsplit(":", 1)[1])


def replies(step: dict) -> list[dict]:
    """The replies (not pushes) among what arrived during a step."""
    return [m for m in step["got"] if "error" in m]


def reply(step: dict) -> dict:
    assert step["ok"], step
    return replies(step)[0]


def callbacks(step: dict, name: str) -> list:
    return [h[1] if len(h) > 1 else None for h in step["handled"] if h[0] == name]


# Every request RTOC 3.0's protocol offers, as its client sends them (send(**kwargs)); the
# reply key each waits for. The client itself has no request methods: connect, send,
# sendWebsocketJSON, disconnect and the handle_*/on_* callbacks are its whole API.
def full_plan(sig_name: str) -> list[dict]:
    return [
        {"wait": "authorized"},  # on_open sends authorize by itself
        {"send": {"getSignalList": True}},
        {"send": {"getLatest": True}},
        {"send": {"getLatest": ["Generator.Sine", "Nowhere.Nothing"]}},
        {"send": {"getSignal": ["Generator.Sine"]}},
        {"send": {"getSignal": {"dname": "Generator", "sname": "Sine", "xmin": time.time() - 3600,
                                "xmax": time.time() + 3600, "database": False, "maxN": 10}}},
        {"send": {"getPluginList": True}},
        {"send": {"plugin": {"Generator": {"get": "samplerate"}}}},
        {"send": {"plugin": {"Generator": {"samplerate": 100, "get": ["samplerate"]}}}},
        {"send": {"plugin": {"Generator": {"setFrequency()": [2.0]}}}},
        {"send": {"plugin": {"Generator": {"start": False}}}},
        {"send": {"plugin": {"Generator": {"start": True}}}},
        {"send": {"y": [21.5, 40.0], "sname": [sig_name, "Hum"], "dname": "Lab", "unit": ["C", "%"]}},
        {"send": {"y": [1.0], "sname": ["Orphan"], "unit": ["V"]}},  # no dname: noDevice
        {"send": {"y": [5, 6, 7], "x": [1, 2, 3], "sname": ["Curve"], "dname": "Lab", "plot": True}},
        {"send": {"getLatest": [f"Lab.{sig_name}", "noDevice.Orphan"]}},
        {"send": {"subscribe": ["signal", "Generator.Sine"]}},
        {"wait": "signal"},  # a push: handle_signal
        {"send": {"unsubscribe": ["signal", "Generator.Sine"]}},
        {"send": {"subscribeAll": "signal"}},
        {"send": {"unsubscribeAll": "signal"}},
        # the reply, and the event's push (handle_event)
        {"send": {"event": ["hello from RTOC 3.0", sig_name, "Lab", time.time(), 1, "rtoc30", 1.5]},
         "wait": ["error", "event"]},
        {"send": {"getEventList": True}},
        {"send": {"getEvent": [f"Lab.{sig_name}"]}},
        {"send": {"logger": {"info": None}}},
        {"send": {"automation": {"setEvent": {
            "name": "rtoc30", "cond": f"Lab.{sig_name} > 100", "text": "hot", "priority": 1,
            "retur": None, "id": "hot", "trigger": "rising", "sname": sig_name, "dname": "Lab",
            "active": True}}}},
        {"send": {"automation": {"removeEvent": "rtoc30"}}},
        {"send": {"userAction": {"name": "Generator.setFrequency", "args": [1.0]}}},
        {"send": {"getSession": True}},
        {"second": True, "wait": "client"},  # another client connects: {"client": "newconnected"}
        {"send": {"remove": [["Lab.Curve"], []]}},
        # several at once, with the client's other sender
        {"json": {"getSignalList": True, "getLatest": True, "getPluginList": True}},
    ]


def check_full_run(out: dict, sig_name: str, role: str) -> None:
    """What a client with the write role (or more) gets for the full plan."""
    steps = {json.dumps(s["send"], sort_keys=True) if s["send"] else s["wait"]: s for s in out["steps"]}
    auth = out["steps"][0]
    assert auth["ok"] and {"authorized": True, "role": role} in auth["got"], auth
    assert callbacks(auth, "authorize") == [True] and callbacks(auth, "on_open") == [None]
    for s in out["steps"]:
        assert s["ok"], s
        if s["wait"] == "error":
            assert reply(s)["error"] is False, s
    by_send = {k: v for k, v in steps.items() if k.startswith("{")}

    def step(**send) -> dict:
        return by_send[json.dumps(send, sort_keys=True)]

    assert ["Generator", "Sine"] in callbacks(step(getSignalList=True), "signalList")[0]
    latest = callbacks(step(getLatest=True), "latest")[0]
    assert len(latest["Generator.Sine"]) == 3 and latest["Generator.Sine"][2] == ""
    assert list(callbacks(step(getLatest=["Generator.Sine", "Nowhere.Nothing"]), "latest")[0]) \
        == ["Generator.Sine"]
    x, y, unit, sig_id, xmin, xmax = callbacks(step(getSignal=["Generator.Sine"]), "signals")[0]["Generator.Sine"]
    assert len(x) == len(y) > 10 and isinstance(sig_id, int) and xmin <= xmax
    ranged = next(s for s in out["steps"] if isinstance((s["send"] or {}).get("getSignal"), dict))
    assert len(callbacks(ranged, "signals")[0]["Generator.Sine"][0]) <= 10
    plugins = callbacks(step(getPluginList=True), "pluginList")[0]
    assert "setFrequency" in [f[0] for f in plugins["Generator"]["functions"]]
    assert "samplerate" in [p[0] for p in plugins["Generator"]["parameters"]]
    assert callbacks(step(plugin={"Generator": {"get": "samplerate"}}), "plugin")[0] \
        == {"Generator": {"get": 50.0}}
    assert callbacks(step(plugin={"Generator": {"samplerate": 100, "get": ["samplerate"]}}), "plugin")[0] \
        == {"Generator": {"samplerate": 100.0, "get": [100.0]}}
    assert "setFrequency()" in callbacks(step(plugin={"Generator": {"setFrequency()": [2.0]}}), "plugin")[0]["Generator"]
    assert reply(step(y=[21.5, 40.0], sname=[sig_name, "Hum"], dname="Lab", unit=["C", "%"]))["sent"] is True
    assert reply(step(y=[1.0], sname=["Orphan"], unit=["V"]))["sent"] is True
    latest = callbacks(step(getLatest=[f"Lab.{sig_name}", "noDevice.Orphan"]), "latest")[0]
    assert latest[f"Lab.{sig_name}"][1:] == [21.5, "C"] and latest["noDevice.Orphan"][1:] == [1.0, "V"]
    push = callbacks(steps["signal"], "signal")[0]
    assert push["dname"] == "Generator" and push["sname"] == "Sine" and push["x"]
    sent_event = next(s for s in out["steps"] if "event" in (s["send"] or {}))
    assert sent_event["ok"] and reply(sent_event) == {"error": False}
    ev = callbacks(sent_event, "event")
    assert all(isinstance(e, dict) for e in ev), ev  # no handle_event(True) for the reply
    assert [(e["text"], e["dname"], e["sname"]) for e in ev] == [("hello from RTOC 3.0", "Lab", sig_name)]
    events = callbacks(step(getEventList=True), "events")[0]
    assert any(e[3] == "hello from RTOC 3.0" for e in events.values())
    info = callbacks(step(logger={"info": None}), "logger")[0]
    assert info["info"]["signals"] >= 1
    auto = next(s for s in out["steps"] if "setEvent" in (s["send"] or {}).get("automation", {}))
    assert "rtoc30" in callbacks(auto, "automation")[0]["events"]
    action = callbacks(step(userAction={"name": "Generator.setFrequency", "args": [1.0]}), "userAction")[0]
    assert action["name"] == "Generator.setFrequency" and action["success"] is True
    session = callbacks(step(getSession=True), "session")[0]
    assert session["role"] == role
    assert callbacks(steps["client"], "client") == ["newconnected"]
    assert reply(step(remove=[["Lab.Curve"], []]))["remove"] == [1, 0]
    several = step(getSignalList=True, getLatest=True, getPluginList=True)
    assert {"signalList", "latest", "pluginList"} <= {h[0] for h in several["handled"]}
    assert not [h for h in out["handled"] if h[0] == "RTOCError"], "the client saw an error"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.2"])
def test_without_a_password_every_call_works(rtoc30: Path, host: str) -> None:
    """RTOC without a password: its client sends plain JSON to any host and authorizes
    with ``true``; a server on all interfaces without users gives the write role here."""
    config = GENERATOR + '[websocket]\nport = 0\nhost = "0.0.0.0"\nanonymous = "write"\n'
    with Instance.start(config, ("Generator.Sine",)) as inst:
        out = run_client(rtoc30, host, port_of(inst), None, full_plan("Temp"))
    check_full_run(out, "Temp", "write")
    assert all(str(r).startswith("{") for r in out["raw"])  # plain JSON on the wire


def short_plan() -> list[dict]:
    return [{"wait": "authorized"}, {"send": {"getSignalList": True}},
            {"send": {"y": [3.0], "sname": ["Short"], "dname": "Lab", "unit": "V"}},
            {"send": {"plugin": {"Generator": {"get": "samplerate"}}}}]


def test_a_password_from_another_host_with_legacy_rtoc_encryption(rtoc30: Path) -> None:
    """The option on: RTOC's one password (from the environment) logs in with the write role;
    from 127.0.0.2 the client encrypts every message and decrypts every reply and push,
    from localhost it talks plain JSON with the same password; a wrong password cannot
    decrypt and is closed."""
    config = GENERATOR + ('[websocket]\nport = 0\nhost = "0.0.0.0"\nlegacy_rtoc_encryption = true\n'
                          'legacy_password_env = "RTOC_LEGACY_PW"\n')
    with Instance.start(config, ("Generator.Sine",), env={"RTOC_LEGACY_PW": PASSWORD}) as inst:
        port = port_of(inst)
        assert "legacy_rtoc_encryption is on" in inst.log() and "no integrity" in inst.log()
        out = run_client(rtoc30, "127.0.0.2", port, PASSWORD, full_plan("Enc"),
                         second_password=PASSWORD)
        check_full_run(out, "Enc", "write")
        for frame in out["raw"]:  # encrypted on the wire, as RTOC's server sent it
            assert not frame.startswith("{") and lc.looks_encrypted(frame)
            assert json.loads(lc.decrypt(lc.key_of(PASSWORD), frame))
        # the second client (encrypting too) was answered encrypted: its client decrypted it
        assert {"authorized": True, "role": "write"} in out["second"]
        plain = run_client(rtoc30, "localhost", port, PASSWORD, short_plan())
        assert {"authorized": True, "role": "write"} in plain["steps"][0]["got"]
        assert all(reply(s)["error"] is False for s in plain["steps"][1:])
        assert all(str(r).startswith("{") for r in plain["raw"])
        wrong = run_client(rtoc30, "127.0.0.2", port, "wrong", [{"wait": "closed"}])
        step = wrong["steps"][0]
        assert step["ok"] and wrong["closed"][0][0] == 1008, wrong
        assert wrong["closed"][0][1].startswith("cannot decrypt")
        assert callbacks(step, "RTOCError"), step  # RTOC's client: "Wrong password."
        assert "cannot decrypt" in step["got"][0]["raw"]
        metrics = inst.metrics()
        assert metrics["rtoc_ws_legacy_connections_total"] == 2  # the two encrypting clients
        assert metrics["rtoc_ws_legacy_failed_total"] == 1
        assert metrics["rtoc_ws_legacy_refused_total"] == 0


def test_legacy_rtoc_encryption_off_refuses_the_encrypted_client_and_users_log_in(rtoc30: Path) -> None:
    """The option off (the default): RTOC's client with a password from another host is
    closed with a message that names the option; from localhost the same password logs in
    as the configured user, and without a password the client is read-only and told so."""
    config = GENERATOR + ('[websocket]\nport = 0\nhost = "0.0.0.0"\n[[websocket.users]]\n'
                          f'name = "wes"\nrole = "write"\npassword_hash = "{hash_password(PASSWORD, n=1024)}"\n')
    with Instance.start(config, ("Generator.Sine",)) as inst:
        port = port_of(inst)
        refused = run_client(rtoc30, "127.0.0.2", port, PASSWORD, [{"wait": "closed"}])
        step = refused["steps"][0]
        assert step["ok"] and refused["closed"][0][0] == 1008, refused
        assert "legacy_rtoc_encryption" in refused["closed"][0][1]
        assert "legacy_rtoc_encryption = true" in step["got"][0]["raw"]  # plain: it cannot read it
        assert callbacks(step, "RTOCError")
        assert "legacy_rtoc_encryption = true" in inst.log()  # the server says why
        assert inst.metrics()["rtoc_ws_legacy_refused_total"] == 1
        out = run_client(rtoc30, "localhost", port, PASSWORD, full_plan("Plain"))
        check_full_run(out, "Plain", "write")
        anonymous = run_client(rtoc30, "localhost", port, None, short_plan())
        steps = anonymous["steps"]
        assert {"authorized": False, "role": "read", "message": "logged in read-only"} in steps[0]["got"]
        assert callbacks(steps[0], "authorize") == [False]
        assert reply(steps[1])["error"] is False and reply(steps[3])["error"] is False  # reads work
        assert "needs the write role" in reply(steps[2])["errors"]["y"]  # a write is refused
        assert callbacks(steps[2], "RTOCError")  # RTOC's client logs "Some error occured at the host"
