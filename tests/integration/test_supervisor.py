"""The supervisor with real processes, rings and sockets (through rtoc.app.harness)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from rtoc import wire
from rtoc.app.harness import Instance
from rtoc.errors import (
    ControlError,
    DriverNotFound,
    FunctionNotFound,
    ParameterError,
    SampleError,
    SignalOwned,
)
from rtoc.paths import instance_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from waiting import wait_until  # noqa: E402

HERE = Path(__file__).parent
ENV = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
COUNTER = '''
[[drivers]]
name = "C"
driver = "test_drivers:Counter"
[[drivers]]
name = "G"
driver = "generator"
[drivers.params]
samplerate = 1000.0
'''


def _status(inst: Instance) -> dict:
    return inst.client.request("status")


def _proc(inst: Instance, name: str) -> dict:
    return next(p for p in _status(inst)["processes"] if p["name"] == name)


def _signal(inst: Instance, name: str) -> dict:
    return next(s for s in inst.client.request("signals")["signals"] if s["name"] == name)


@pytest.fixture
def inst():
    with Instance.start(COUNTER, ready_signals=("C.Count", "G.Sine"), env=ENV) as i:
        yield i


def test_sigint_stops_everything_in_time_leaving_nothing(inst: Instance) -> None:
    pids = [p["pid"] for p in _status(inst)["processes"]] + [inst.proc.pid]
    assert all(pids)
    took = inst.stop(signal.SIGINT)
    assert inst.proc.returncode == 0, inst.log()
    assert took < 5.0
    assert not instance_dir(inst.name).exists()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    log = inst.log()
    assert log.index("drivers stopped (2)") < log.index("engine stopped after draining")


def test_sigterm_stops_too(inst: Instance) -> None:
    took = inst.stop(signal.SIGTERM)
    assert inst.proc.returncode == 0 and took < 5.0
    assert not instance_dir(inst.name).exists()


def test_kill_9_driver_restarts_and_sequence_continues(inst: Instance) -> None:
    before = _proc(inst, "C")
    written = inst.wait_for(lambda: _signal(inst, "C.Count")["written"] > 20 and _signal(inst, "C.Count")["written"])
    os.kill(before["pid"], signal.SIGKILL)
    after = inst.wait_for(lambda: (p := _proc(inst, "C"))["state"] == "running" and p["restarts"] == 1 and p)
    assert after["pid"] != before["pid"]
    with inst.subscriber(["C.Count"]) as sub:
        batch = sub.recv(timeout=10)
        assert batch is not None and batch.seq >= written  # the ring survived: seq continues
    assert _signal(inst, "C.Count")["written"] > written
    assert "exited (signal 9)" in inst.log()


def test_driver_that_keeps_crashing_is_given_up_on_the_rest_runs_on() -> None:
    # the defaults ([supervisor] untouched): they never gave up before (issue 13 C), as the
    # back-off delays outgrew the 10-s window the starts were counted in
    cfg = COUNTER + '''
[[drivers]]
name = "X"
driver = "test_drivers:Crashy"
'''
    with Instance.start(cfg, ready_signals=("C.Count",), env=ENV) as inst:
        x = inst.wait_for(lambda: (p := _proc(inst, "X"))["state"] == "failed" and p, timeout=60)
        assert x["restarts"] == 4  # 5 runs, each within 10 s of its start
        log = inst.log()
        assert "Crashy broke on purpose" in log and "driver X failed" in log
        w = _signal(inst, "C.Count")["written"]
        inst.wait_for(lambda: _signal(inst, "C.Count")["written"] > w)
        assert _proc(inst, "C")["restarts"] == 0
        inst.client.request("start", driver="X")  # an explicit start tries again
        inst.wait_for(lambda: _proc(inst, "X")["state"] in ("starting", "running", "backoff"))
        assert inst.client.request("stop", driver="X")["state"] == "stopped"
        assert _proc(inst, "X")["state"] == "stopped"


def test_control_errors_are_clear_and_harmless(inst: Instance) -> None:
    c = inst.client
    with pytest.raises(FunctionNotFound, match="no function 'nope'"):
        c.request("call", driver="C", function="nope")
    with pytest.raises(ParameterError, match="must be float"):
        c.request("set", driver="C", param="step", value="abc")
    with pytest.raises(ParameterError, match="no parameter"):
        c.request("set", driver="C", param="nope", value=1)
    with pytest.raises(ParameterError):
        c.request("call", driver="G", function="set_frequency", args=[1, 2, 3])
    with pytest.raises(DriverNotFound):
        c.request("call", driver="Nobody", function="x")
    with pytest.raises(ControlError, match="ValueError: boom on purpose"):
        c.request("call", driver="C", function="boom")
    assert c.request("call", driver="C", function="put", args=[1.5])["result"] == "ok"
    with pytest.raises(SampleError, match="C.Put: samples must be numbers, got str 'abc'"):
        c.request("call", driver="C", function="put", args=["abc"])
    inst.wait_for(lambda: _signal(inst, "C.Put")["written"] == 1)  # the accepted sample stays
    with pytest.raises(SignalOwned):
        c.request("create_signal", device="G", signal="Sine", owner="someone-else")
    with pytest.raises(SignalOwned, match="G.Sine is written by 'G'"):
        c.request("call", driver="C", function="steal", args=["G", "Sine"])
    with pytest.raises(ControlError) as err:
        c.request("frobnicate")
    assert err.value.code == "unknown_op"
    for bad in ({"seconds": float("inf")}, {"rate": float("nan")}, {"seconds": -1.0}, {"rate": "fast"}):
        with pytest.raises(ControlError) as err:
            c.request("create_signal", device="Ext", signal="Bad", **bad)
        assert err.value.code == "bad_request", bad
    c.sock.send(b"\xc1 not msgpack")  # garbage gets an error reply, not a crash
    assert c.sock.poll(5000) and wire.unpack(c.sock.recv())["error"]["code"] == "bad_request"
    # nothing was disturbed
    w = _signal(inst, "C.Count")["written"]
    inst.wait_for(lambda: _signal(inst, "C.Count")["written"] > w)
    assert all(p["state"] == "running" and p["restarts"] == 0 for p in _status(inst)["processes"])


def test_set_and_call_take_effect_and_parameters_persist_across_restart(inst: Instance) -> None:
    c = inst.client
    assert c.request("set", driver="C", param="step", value=5)["value"] == 5.0
    assert c.request("call", driver="G", function="set_frequency", args=[3])["result"] == 3.0
    drivers = {d["name"]: d for d in c.request("drivers")["drivers"]}
    params = {p["name"]: p for p in drivers["C"]["parameters"]}
    assert params["step"]["value"] == 5.0 and params["step"]["type"] == "float"
    assert any(f["name"] == "pid" for f in drivers["C"]["functions"])
    c.request("restart", driver="C")
    inst.wait_for(lambda: _proc(inst, "C")["state"] == "running")
    drivers = {d["name"]: d for d in c.request("drivers")["drivers"]}
    inst.wait_for(lambda: {p["name"]: p for p in {d["name"]: d for d in c.request("drivers")["drivers"]}["C"]["parameters"]}["step"]["value"] == 5.0)


def _next_named(sub, name: str):
    """The next message if it is a batch of ``name``, else None (others are skipped)."""
    msg = sub.recv(timeout=0.2)
    return msg if getattr(msg, "name", "") == name else None


def test_create_signal_gives_a_writable_ring(inst: Instance) -> None:
    from rtoc.pipeline.ring import Ring, RingWriter

    reply = inst.client.request("create_signal", device="Ext", signal="Pushed", unit="V", owner="ext")
    ring = Ring.open(reply["path"])
    try:
        with inst.subscriber(["Ext.Pushed", "G.Sine"]) as sub:
            # a G.Sine batch: the subscription has reached the engine (both topics went
            # out on one connection, Ext.Pushed first)
            wait_until(lambda: getattr(sub.recv(timeout=0.2), "name", "") == "G.Sine", 10,
                       "a G.Sine batch on the new subscription", interval=0)
            RingWriter(ring).write([time.time()] * 3, [1.0, 2.0, 3.0])
            batch = wait_until(lambda: _next_named(sub, "Ext.Pushed"), 5, "the Ext.Pushed batch",
                               interval=0)
            assert batch is not None and list(batch.y) == [1.0, 2.0, 3.0] and batch.seq == 0
    finally:
        ring.close()
    assert _signal(inst, "Ext.Pushed")["unit"] == "V"


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for init to reap it (the supervisor, its parent, is dead)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_supervisor_killed_children_follow_and_next_start_cleans_up(tmp_path: Path) -> None:
    name = f"k{os.getpid()}"
    inst = Instance.start(COUNTER, ready_signals=("C.Count",), env=ENV, name=name, folder=tmp_path)
    try:
        pids = [p["pid"] for p in _status(inst)["processes"]]
        os.kill(inst.proc.pid, signal.SIGKILL)
        inst.proc.wait(5)
        # each child drains and closes (the archiver writes its last batch): seconds when
        # the machine is busy (a CI run beside another instance's start took over 10 s)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        assert not [p for p in pids if _alive(p)], "children outlived the supervisor"
        assert instance_dir(name).exists()  # the dead instance's leftovers ...
    finally:
        inst.stop()
    again = Instance.start(COUNTER, ready_signals=("C.Count",), env=ENV, name=name, folder=tmp_path)
    try:
        assert "leftover file(s) of a dead instance" in again.log()  # ... are removed at start
    finally:
        again.cleanup()
    assert not instance_dir(name).exists()


def test_second_supervisor_of_one_instance_is_refused(inst: Instance) -> None:
    cfg = inst.folder / "rtoc.toml"
    r = subprocess.run([sys.executable, "-m", "rtoc", "--config", str(cfg), "run"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, **ENV})
    assert r.returncode == 1
    assert "already running" in r.stderr
    assert _proc(inst, "engine")["state"] == "running"


def test_hostile_clients_cannot_crash_or_wedge_the_supervisor(inst: Instance) -> None:
    import msgpack
    import zmq

    ctx = zmq.Context()
    ep = inst.endpoints["control"]
    try:
        # several frames from a DEALER: an error reply, not a dead supervisor
        d = ctx.socket(zmq.DEALER)
        d.connect(ep)
        d.send_multipart([b"extra", msgpack.packb({"op": "ping", "rid": 1})])
        assert d.poll(5000) and msgpack.unpackb(d.recv())["error"]["code"] == "bad_request"
        # a reply-shaped message with an unhashable `re`, and one without `rid`
        d.send(msgpack.packb({"re": [1]}))
        d.send(msgpack.packb({"op": "ping"}))
        assert d.poll(5000) and msgpack.unpackb(d.recv())["pong"] is True
        # a REQ socket (it adds an empty delimiter frame) is served
        r = ctx.socket(zmq.REQ)
        r.connect(ep)
        r.send(msgpack.packb({"op": "ping", "rid": "req"}))
        assert r.poll(5000) and msgpack.unpackb(r.recv())["re"] == "req"
        # a client that never reads its replies does not block anyone else
        hog = ctx.socket(zmq.DEALER)
        hog.setsockopt(zmq.RCVHWM, 1)
        hog.connect(ep)
        for _ in range(20000):
            hog.send(msgpack.packb({"op": "status", "rid": 0}))
        for _ in range(3):
            assert inst.client.request("ping", timeout=5)["pong"] is True
        assert inst.client.request("status")["dropped_replies"] > 0  # the hog's, counted
        # a client cannot claim (and so write) a driver's ring by naming the driver as owner
        with pytest.raises(SignalOwned):
            inst.client.request("create_signal", device="G", signal="Sine", owner="G")
        with pytest.raises(ParameterError):
            inst.client.request("call", driver="C", function="pid", args={"a": 1})
        for s in (d, r, hog):
            s.close(0)
    finally:
        ctx.term()
    assert inst.proc.poll() is None
    took = inst.stop(signal.SIGINT)  # and Ctrl-C still works
    assert inst.proc.returncode == 0 and took < 5.0


def test_awkward_driver_results_and_blocked_drivers(tmp_path: Path) -> None:
    cfg = '[[drivers]]\nname = "A"\ndriver = "test_drivers:Awkward"\n'
    with Instance.start(cfg, ready_signals=("A.Alive",), env=ENV) as inst:
        for _ in range(6):  # more than the restart budget, had it crashed the driver
            result = inst.client.request("call", driver="A", function="huge")["result"]
        assert result[0] == repr(2**70) and result[1].startswith("<object") and result[2] == {"k": [1, 2]}
        assert _proc(inst, "A")["restarts"] == 0
        pid = _proc(inst, "A")["pid"]
        blocked = tmp_path / "blocked"
        inst.client.sock.send(wire.pack({"op": "call", "rid": "slow", "driver": "A",
                                         "function": "block", "args": [60, str(blocked)]}))
        wait_until(blocked.exists, 10, "driver A blocked in block()", detail=inst.log)
        os.kill(inst.proc.pid, signal.SIGKILL)  # the supervisor dies while A is blocked
        inst.proc.wait(5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and psutil.pid_exists(pid) \
                and psutil.Process(pid).status() != "zombie":
            time.sleep(0.2)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", \
            "a blocked driver outlived its supervisor"


def test_a_failed_engine_stops_the_instance_with_status_1() -> None:
    cfg = COUNTER + '[supervisor]\nrestart_delay = 0.05\nburst_starts = 2\nburst_seconds = 30.0\n'
    with Instance.start(cfg, ready_signals=("C.Count",), env=ENV) as inst:
        first = _proc(inst, "engine")["pid"]
        os.kill(first, signal.SIGKILL)
        second = inst.wait_for(lambda: (p := _proc(inst, "engine")["pid"]) not in (None, first) and p)
        os.kill(second, signal.SIGKILL)  # the second start within the window: give up
        assert inst.proc.wait(15) == 1
        assert "engine failed" in inst.log()
        assert not instance_dir(inst.name).exists()


def test_an_engine_restart_is_counted_as_restart_not_as_a_bus_gap(inst: Instance) -> None:
    """Issue 13: after an engine restart, subscribers counted the interval it skipped as
    ``gap``, the field for high-water-mark drops. The engine now says where it resumed
    (meta ``engine_resumed``) and that part counts as ``restart``."""
    with inst.subscriber(["C.Count"]) as sub:
        assert sub.recv(timeout=10) is not None
        engine = _proc(inst, "engine")
        os.kill(engine["pid"], signal.SIGKILL)
        inst.wait_for(lambda: (p := _proc(inst, "engine"))["state"] == "running" and p["pid"] != engine["pid"],
                      timeout=30)
        written = _signal(inst, "C.Count")["written"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until data from the new engine arrived
            sub.recv(timeout=0.5)
            c = sub.counters.signals["C.Count"]
            if c.next_seq is not None and c.next_seq >= written:
                break
        c = sub.counters.signals["C.Count"]
        assert c.restart > 0 and c.gap == 0, c
