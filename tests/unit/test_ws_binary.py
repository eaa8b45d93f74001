"""Unit tests of the binary subprotocol: its frame codec (rtoc.client.frames), the protocol core
(frontends/websocket/binary_protocol/protocol.py) with the client's half of the encrypted handshake, the
fan-out (binary_fanout.py) and the send queue (binary_shell.SendQueue)."""

from __future__ import annotations

import asyncio
import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtoc.frontends.websocket.auth import Throttle, User, Users, hash_password
from rtoc.frontends.websocket.binary_protocol import protocol as b
from rtoc.frontends.websocket.binary_protocol.fanout import BinaryFanout, dropped_report
from rtoc.frontends.websocket.binary_protocol.shell import SendQueue

from rtoc import wire
from rtoc.client import frames as bf
from rtoc.client.aead import Channel, rtoc_token, session_key
from rtoc.errors import ArchiveOff, SignalOwned

PASSWORDS = {"reader": "r-pass", "writer": "w-pass"}
ROLES = {"reader": "read", "writer": "write"}
COST = {"n": 16, "r": 1, "p": 1}  # scrypt in microseconds


# -- a world in memory ------------------------------------------------------------------------
class World:
    def __init__(self, anonymous: str = "read", archive: bool = True):
        self.users = Users([User(n, ROLES[n], hash_password(p, **COST)) for n, p in PASSWORDS.items()],
                           anonymous)
        self.throttle = Throttle(max_failures=2)
        self.archive = archive
        self.samples: dict[str, tuple[np.ndarray, np.ndarray]] = {
            "Generator.Sine": (np.arange(10.0), np.arange(10.0) * 2)}
        self.requests: list[tuple[str, dict]] = []

    async def request(self, op: str, **f) -> dict:
        self.requests.append((op, f))
        if op == "signals":
            return {"ok": True, "signals": [{"name": n, "unit": "", "path": "/dev/shm/x"}
                                            for n in self.samples]}
        if op == "history":
            if not self.archive:
                raise ArchiveOff("the archive is off")
            t, y = self.samples[f["signal"]]
            return {"ok": True, "t": t.tobytes(), "y": y.tobytes()}
        if op == "call":
            return {"ok": True, "result": f["args"]}
        if op in ("start", "stop"):
            return {"ok": True, "state": "running" if op == "start" else "stopped"}
        if op == "set":
            return {"ok": True, "value": f["value"]}
        if op == "drivers":
            return {"ok": True, "drivers": [{"name": "Generator"}]}
        if op == "events":
            return {"ok": True, "events": [{"time": 5.0, "text": "hot", "priority": 1}][:f["limit"]]}
        if op == "create_signal":
            if f"{f['device']}.{f['signal']}" == "Generator.Sine":
                raise SignalOwned("owned by 'Generator'")
            return {"ok": True}
        raise AssertionError(op)

    async def push(self, device, signal, unit, t, y, replace, client="") -> None:
        name = f"{device}.{signal}"
        if name == "Generator.Sine":
            raise SignalOwned(f"{name} is written by Generator", name)
        old = self.samples.get(name, (np.empty(0), np.empty(0)))
        self.samples[name] = (t.copy(), y.copy()) if replace else \
            (np.concatenate([old[0], t]), np.concatenate([old[1], y]))

    def ring(self, name):
        return self.samples.get(name)

    async def login(self, user, secret, is_token, address, now):
        if self.throttle.begin(address, now, user) > 0:
            return 30.0
        found = self.users.login(user, secret, is_token=is_token)
        if found is None:
            self.throttle.failed(address, now, user)
            return None
        self.throttle.succeeded(address, now, found.name)
        return found.name, found.role


def session(role: str = "read") -> b.BinSession:
    return b.BinSession("10.0.0.1", role, role)


def run(coro):
    return asyncio.run(coro)


def ctl(op: str, **f) -> bytes:
    return bf.encode_control({"op": op, "rid": 1, **f})


def replies(out: b.Outcome) -> list[dict]:
    return [bf.decode(f).msg for f in out.frames]


def handle(proto: b.BinaryProtocol, s: b.BinSession, frame: bytes, now: float = 100.0) -> b.Outcome:
    return run(proto.handle(s, frame, now))


# -- the frame codec ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_data_frames_round_trip_aligned(n: int) -> None:
    t, y = np.arange(n) + 1e9, np.sin(np.arange(n))
    frame = bf.encode_data({"sig": "Dev.Sig.x", "seq": 5, "lost": 2, "replace": True}, t, y)
    hlen = int.from_bytes(frame[1:5], "little")
    assert frame[0] == bf.DATA and (5 + hlen) % 8 == 0  # t starts 8-byte aligned
    f = bf.decode(frame)
    assert isinstance(f, bf.Data) and not f.view and f.name == "Dev.Sig.x"
    assert f.header["seq"] == 5 and f.header["lost"] == 2 and f.header["replace"] is True
    assert f.header["n"] == n and f.header["v"] == 1
    assert np.array_equal(f.t, t) and np.array_equal(f.y, y) and f.t.dtype == np.float64
    v = bf.decode(bf.encode_view("A.B", t, y, 0.25))
    assert v.view and v.header["width"] == 0.25 and np.array_equal(v.y, y)


def test_unaligned_bodies_are_accepted_and_copied() -> None:
    head = wire.pack({"v": 1, "sig": "A.B", "n": 2})
    if (5 + len(head)) % 8 == 0:
        head = wire.pack({"v": 1, "sig": "A.BC", "n": 2})
    frame = bytes((2,)) + len(head).to_bytes(4, "little") + head + np.array([1.0, 2, 3, 4]).tobytes()
    f = bf.decode(frame)
    assert f.t.flags.aligned and list(f.t) == [1.0, 2.0] and list(f.y) == [3.0, 4.0]


def test_control_frames_round_trip() -> None:
    msg = {"op": "subscribe", "rid": 7, "signals": ["A.B"], "blob": b"\x00\xff", "x": math.inf}
    assert bf.decode(bf.encode_control(msg)).msg == msg


def test_the_client_speaks_the_servers_codec() -> None:
    from rtoc import client as c

    assert c.ProtocolError is bf.FrameError and c.SUBPROTOCOL == b.SUBPROTOCOL
    t, y = np.arange(5.0), np.arange(5.0) ** 2
    for header in ({"sig": "A.B"}, {"sig": "A.B", "seq": 3, "unit": "V", "replace": True},
                   {"sig": "Dev." + "x" * 300, "seq": 2**40}):
        frame = bf.encode_data(header, t, y)
        assert (5 + int.from_bytes(frame[1:5], "little")) % 8 == 0
        f = bf.decode(frame)
        assert {k: f.header[k] for k in header} == header and np.array_equal(f.y, y)


@pytest.mark.parametrize("frame, text", [
    (b"", "empty frame"),
    (b"\x07abc", "unknown frame kind 0x07"),
    (b"\x02\x01\x00", "truncated data frame: 3 bytes"),
    (b"\x02\xff\xff\xff\x00", "header of 16777215 bytes"),
    (b"\x02\x10\x00\x00\x00\x80", "truncated data frame: header of 16 bytes, 1 follow"),
    (b"\x01\xc1", "control frame: not a msgpack message"),
    (b"\x01\x93\x01\x02\x03", "expected a msgpack map, got list"),
    (b"\x03\x01\x00\x00\x00\x80", "view frame header needs 'sig'"),
])
def test_garbage_frames_raise_frame_error(frame: bytes, text: str) -> None:
    with pytest.raises(bf.FrameError, match=text):
        bf.decode(frame)


def test_frame_errors_name_the_mismatch() -> None:
    good = bf.encode_data({"sig": "A.B", "seq": 0}, np.arange(4.0), np.arange(4.0))
    with pytest.raises(bf.FrameError, match=r"A.B: header says n=4 \(64 bytes of t and y\), 56 bytes follow"):
        bf.decode(good[:-8])
    with pytest.raises(bf.FrameError, match="version 2"):
        bf.decode(bf.encode_data({"sig": "A.B", "v": 2}, [1.0], [1.0]).replace(b"\xa1v\x01", b"\xa1v\x02"))
    head = wire.pack({"sig": "A.B", "n": -1})
    with pytest.raises(bf.FrameError, match="'n' must be a sample count, got -1"):
        bf.decode(b"\x02" + len(head).to_bytes(4, "little") + head)
    for cut in range(len(good)):  # every truncation: a clear error, never another exception
        with pytest.raises(bf.FrameError):
            bf.decode(good[:cut])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"", b"\x01", b"\x02", b"\x03"]))
def test_any_bytes_decode_or_raise_frame_error(data: bytes, prefix: bytes) -> None:
    frame = prefix + data
    try:
        f = bf.decode(frame)
    except bf.FrameError:
        pass
    else:
        assert isinstance(f, bf.Control | bf.Data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=50),
       st.integers(0, 2**63 - 1), st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_data_round_trip_any_values(values: list[float], seq: int, dev: str, sig: str) -> None:
    name = f"{dev}.{sig}"
    t = np.arange(len(values), dtype=np.float64)
    y = np.array(values, dtype=np.float64)
    f = bf.decode(bf.encode_data({"sig": name, "seq": seq}, t, y))
    assert f.name == name and f.header["seq"] == seq
    assert f.y.tobytes() == y.tobytes() and f.t.tobytes() == t.tobytes()


def test_garbage_is_answered_and_the_connection_lives() -> None:
    proto, s = b.BinaryProtocol(World()), session()
    out = handle(proto, s, b"\x09garbage")
    assert out.close is None
    (msg,) = replies(out)
    assert msg["ok"] is False and msg["error"]["code"] == "bad_frame"
    assert replies(handle(proto, s, ctl("ping")))[0]["pong"] is True


# -- the protocol core --------------------------------------------------------------------------
def test_roles_are_checked() -> None:
    proto, s = b.BinaryProtocol(World()), session("read")
    (msg,) = replies(handle(proto, s, ctl("call", driver="Generator", function="f")))
    assert msg == {"re": 1, "op": "call", "ok": False, "error": {
        "code": "forbidden", "message": "call needs the write role (you have read; log in first)"}}
    (msg,) = replies(handle(proto, s, bf.encode_data({"sig": "Lab.T", "seq": 3}, [1.0], [2.0])))
    assert msg["op"] == "push" and msg["sig"] == "Lab.T" and msg["seq"] == 3
    assert msg["error"]["code"] == "forbidden" and s.refused == 1
    none = session("none")
    assert replies(handle(proto, none, ctl("signals")))[0]["error"]["code"] == "forbidden"
    assert replies(handle(proto, none, ctl("ping")))[0]["ok"] is True
    (msg,) = replies(handle(proto, s, ctl("frobnicate")))
    assert msg["error"]["code"] == "bad_request" and "unknown op 'frobnicate'" in msg["error"]["message"]
    (msg,) = replies(handle(proto, s, bf.encode_control({"op": "ping", "rid": [1]})))
    assert msg["error"]["message"] == "rid must be an integer or short text"


def test_login_and_pushes() -> None:
    world = World()
    proto, s = b.BinaryProtocol(world, ack_every=3), session("read")
    (msg,) = replies(handle(proto, s, ctl("login", user="writer", password="nope")))
    assert msg["error"]["code"] == "login_failed" and s.role == "read"
    (msg,) = replies(handle(proto, s, ctl("login", user="writer", password="w-pass")))
    assert msg == {"re": 1, "op": "login", "ok": True, "user": "writer", "role": "write"}
    outs = [handle(proto, s, bf.encode_data({"sig": "Lab.T", "seq": i, "unit": "K"},
                                           [float(i)], [i * 10.0])) for i in range(4)]
    assert [len(o.frames) for o in outs] == [0, 0, 1, 0]  # an ack every 3 frames
    assert replies(outs[2])[0] == {"op": "ack", "pushed": 3, "frames": 3, "seq": 2}
    assert list(world.samples["Lab.T"][1]) == [0.0, 10.0, 20.0, 30.0]
    claims = [f for op, f in world.requests if op == "create_signal"]
    assert claims == [{"device": "Lab", "signal": "T", "unit": "K", "owner": "websocket",
                       "rate": 6.4, "seconds": 10.0, "client": "user:writer"}]  # once, for 64 frames of this size
    (msg,) = replies(handle(proto, s, bf.encode_data({"sig": "Generator.Sine", "seq": 9}, [1.0], [1.0])))
    assert msg["error"]["code"] == "signal_owned" and msg["sig"] == "Generator.Sine" and msg["seq"] == 9
    assert "a client can only push signals no driver writes" in msg["error"]["message"]
    handle(proto, s, bf.encode_data({"sig": "Lab.Fast", "rate": 5e6}, np.zeros(64), np.zeros(64)))
    assert world.requests[-1][1]["rate"] == 5e6
    (msg,) = replies(handle(proto, s, bf.encode_data({"sig": "NoDot", "seq": 10}, [1.0], [1.0])))
    assert msg["error"]["code"] == "signal"
    handle(proto, s, bf.encode_data({"sig": "Lab.T", "replace": True}, [5.0], [50.0]))
    assert list(world.samples["Lab.T"][1]) == [50.0]
    (msg,) = replies(handle(proto, s, ctl("sync")))
    assert msg == {"re": 1, "op": "sync", "ok": True, "pushed": 69, "frames": 6, "refused": 2}


def test_subscriptions() -> None:
    proto, s = b.BinaryProtocol(World()), session()
    out = handle(proto, s, ctl("subscribe", signals=["A.B", "C.D"], mode="raw"))
    assert out.resubscribe and replies(out)[0]["signals"] == ["A.B", "C.D"]
    handle(proto, s, ctl("subscribe", signals=["A.B"], mode="view"))
    assert s.wants_signal("A.B") and s.views == {"A.B"}
    (msg,) = replies(handle(proto, s, ctl("unsubscribe", signals=["A.B"])))
    assert msg["signals"] == ["C.D"] and msg["views"] == []
    handle(proto, s, ctl("subscribe", signals="*"))
    assert s.all_signals and s.wants_signal("X.Y")
    handle(proto, s, ctl("unsubscribe"))
    assert not s.all_signals and not s.signals
    (msg,) = replies(handle(proto, s, ctl("subscribe", signals="*", mode="view")))
    assert msg["error"]["code"] == "bad_request"
    (msg,) = replies(handle(proto, s, ctl("subscribe", signals=["nodot"])))
    assert msg["ok"] is False


def test_reading_and_driver_ops() -> None:
    world = World()
    proto, s = b.BinaryProtocol(world), session("write")
    (msg,) = replies(handle(proto, s, ctl("signals")))
    assert msg["signals"] == [{"name": "Generator.Sine", "unit": ""}]  # ring paths stay inside
    (msg,) = replies(handle(proto, s, ctl("history", signal="Generator.Sine", max_points=100)))
    assert msg["n"] == 10 and np.frombuffer(msg["y"], "<f8")[3] == 6.0
    assert world.requests[-1] == ("history", {"signal": "Generator.Sine", "from": None, "to": None,
                                              "max_points": 100})
    world.archive = False  # the ring answers when the archive is off
    (msg,) = replies(handle(proto, s, ctl("history", signal="Generator.Sine", **{"from": 4, "to": 5})))
    assert list(np.frombuffer(msg["t"], "<f8")) == [4.0, 5.0]
    (msg,) = replies(handle(proto, s, ctl("history", signal="Generator.Sine", max_points=True)))
    assert msg["error"]["message"] == "max_points must be an integer 4..2000000"
    assert replies(handle(proto, s, ctl("call", driver="G", function="f", args=[1])))[0]["result"] == [1]
    assert replies(handle(proto, s, ctl("set", driver="G", param="p", value=2.5)))[0]["value"] == 2.5
    assert replies(handle(proto, s, ctl("stop", driver="G")))[0]["state"] == "stopped"
    assert replies(handle(proto, s, ctl("start")))[0]["error"]["message"] == "start needs driver (text)"


def test_events_are_read_with_number_filters_only() -> None:
    """The viewer's events panel over the network: the engine's events op, its filters
    checked (numbers), its limit capped."""
    world = World()
    proto, s = b.BinaryProtocol(world), session("read")
    (msg,) = replies(handle(proto, s, ctl("events", since=1.0, min_priority=1)))
    assert msg["ok"] and msg["events"] == [{"time": 5.0, "text": "hot", "priority": 1}]
    assert world.requests[-1] == ("events", {"since": 1.0, "min_priority": 1, "limit": 1000})
    handle(proto, s, ctl("events", limit=10**9))
    assert world.requests[-1][1]["limit"] == 10_000
    (msg,) = replies(handle(proto, s, ctl("events", since="yesterday")))
    assert msg["error"]["message"] == "'since' must be a number"
    assert replies(handle(proto, session("none"), ctl("events")))[0]["error"]["code"] == "forbidden"


# -- the encrypted handshake, with the client's half ---------------------------------------------
def _client_key(hello: dict, password: str) -> bytes:
    secret = hashlib.scrypt(rtoc_token(password).encode(), salt=hello["hash_salt"], n=hello["n"],
                            r=hello["r"], p=hello["p"], dklen=hello["dklen"])
    return session_key(secret, hello["salt"])


def _hello(proto: b.BinaryProtocol, s: b.BinSession, user: str) -> dict:
    out = handle(proto, s, ctl("hello", user=user, encrypt=True))
    assert out.clear and out.close is None
    (hello,) = replies(out)
    assert hello["ok"] and len(hello["salt"]) == 16
    return hello


def test_encrypted_session() -> None:
    world = World()
    proto, s = b.BinaryProtocol(world), session()
    hello = _hello(proto, s, "writer")
    assert (hello["n"], hello["r"], hello["p"], hello["dklen"]) == (16, 1, 1, 32)
    ch = Channel(_client_key(hello, "w-pass"), "client")
    out = handle(proto, s, ch.seal(bf.encode_control({"op": "login", "rid": 1, "user": "writer"})))
    assert not out.clear and out.close is None
    assert bf.decode(ch.open(s.channel.seal(out.frames[0]))).msg["role"] == "write"
    assert s.user == "writer" and s.may("write")
    (msg,) = replies(handle(proto, s, ch.seal(ctl("sync"))))
    assert msg["pushed"] == 0
    frame = ch.seal(bf.encode_data({"sig": "Lab.T"}, [1.0], [2.0]))
    assert handle(proto, s, frame).frames == []
    out = handle(proto, s, frame)  # replayed
    assert out.close == (1008, "replayed") and replies(out)[0]["error"]["code"] == "bad_frame"
    assert list(world.samples["Lab.T"][1]) == [2.0]


def test_encrypted_login_with_a_wrong_password_fails_and_counts() -> None:
    world = World()
    proto, s = b.BinaryProtocol(world), session()
    ch = Channel(_client_key(_hello(proto, s, "writer"), "wrong"), "client")
    out = handle(proto, s, ch.seal(bf.encode_control({"op": "login", "rid": 1, "user": "writer"})))
    assert out.clear and out.close == (1008, "login failed")
    assert replies(out)[0]["error"] == {"code": "login_failed", "message": "wrong user or password"}
    assert s.user is None and s.channel is None
    s2 = session()  # a second failure from this address: throttled (max_failures=2)
    ch = Channel(_client_key(_hello(proto, s2, "writer"), "wrong"), "client")
    handle(proto, s2, ch.seal(bf.encode_control({"op": "login", "user": "writer"})))
    out = handle(proto, session(), ctl("hello", user="writer", encrypt=True))
    assert out.close is not None and "too many failed logins" in replies(out)[0]["error"]["message"]


def test_unknown_users_get_a_plausible_hello() -> None:
    proto = b.BinaryProtocol(World())
    # each hello counts as an attempt until its login succeeds: separate addresses
    real, fake1, fake2 = (_hello(proto, b.BinSession(f"10.0.0.{i}", "read", "read"), u)
                          for i, u in enumerate(("writer", "ghost", "ghost"), 2))
    assert set(real) == set(fake1)
    assert (fake1["n"], fake1["r"], fake1["p"]) == (real["n"], real["r"], real["p"])
    assert fake1["hash_salt"] == fake2["hash_salt"] and fake1["salt"] != fake2["salt"]
    s = session()  # ghost's two hellos count against the name too: another unknown name
    ch = Channel(_client_key(_hello(proto, s, "phantom"), "anything"), "client")
    out = handle(proto, s, ch.seal(bf.encode_control({"op": "login", "user": "phantom"})))
    assert out.close == (1008, "login failed")


def test_encrypting_hello_must_come_first() -> None:
    proto, s = b.BinaryProtocol(World()), session()
    handle(proto, s, ctl("ping"))
    (msg,) = replies(handle(proto, s, ctl("hello", user="writer", encrypt=True)))
    assert msg["error"]["message"] == "an encrypting hello must be the connection's first frame"
    assert s.channel is None
    (msg,) = replies(handle(proto, s, ctl("hello")))
    assert msg["ok"] and msg["role"] == "read"


def test_the_first_sealed_frame_must_be_the_login() -> None:
    proto, s = b.BinaryProtocol(World()), session()
    ch = Channel(_client_key(_hello(proto, s, "writer"), "w-pass"), "client")
    out = handle(proto, s, ch.seal(ctl("ping")))
    assert out.close == (1008, "bad login frame") and s.user is None


# -- the fan-out --------------------------------------------------------------------------------
def _frames(fan: BinaryFanout, s: b.BinSession) -> list[bf.Data]:
    return [bf.decode(f) for f in fan.take(s)]


def test_fanout_concatenates_consecutive_batches() -> None:
    fan, s, other = BinaryFanout(), session(), session()
    s.signals.add("A.B")
    fan.add(s)
    fan.add(other)
    fan.data("A.B", 0, 0, np.arange(3.0), np.arange(3.0))
    fan.data("A.B", 3, 0, np.arange(3.0, 5), np.arange(3.0, 5))
    fan.data("A.B", 9, 0, np.arange(9.0, 10), np.arange(9.0, 10))       # a gap: new frame
    fan.data("A.B", 10, 4, np.arange(10.0, 11), np.arange(10.0, 11))    # lost: new frame
    fan.data("A.B", 11, 0, np.arange(11.0, 12), np.arange(1.0), replace=True)
    fan.data("X.Y", 0, 0, np.arange(3.0), np.arange(3.0))               # not subscribed
    got = _frames(fan, s)
    assert [(f.header["seq"], f.header["n"], f.header["lost"], f.header.get("replace", False))
            for f in got] == [(0, 5, 0, False), (9, 1, 0, False), (10, 1, 4, False), (11, 1, 0, True)]
    assert list(got[0].t) == [0, 1, 2, 3, 4]
    assert fan.take(s) == [] and fan.take(other) == []


def test_fanout_bounds_a_slow_session() -> None:
    fan, s = BinaryFanout(max_pending=10, max_frame=4), session()
    s.all_signals = True
    fan.add(s)
    for i in range(5):
        fan.data("A.B", 4 * i, 0, np.arange(4.0) + 4 * i, np.zeros(4))
    got = _frames(fan, s)
    assert s.dropped == 12  # the three oldest batches
    assert [(f.header["seq"], f.header["n"]) for f in got] == [(12, 4), (16, 4)]
    s.dropped_frames = 1
    assert bf.decode(dropped_report(s)).msg == {"op": "dropped", "frames": 1, "samples": 12}
    assert dropped_report(s) is None
    assert bf.samples_in(bf.encode_data({"sig": "A.B"}, [1.0, 2.0], [1.0, 2.0])) == 2
    assert bf.samples_in(b"\x01\x80") == 0


def test_fanout_views() -> None:
    fan, s = BinaryFanout(), session()
    s.views.add("A.B")
    fan.add(s)
    fan.view("A.B", np.arange(2.0), np.arange(2.0), 0.5)
    fan.view("A.B", np.arange(2.0, 4), np.arange(2.0, 4), 0.5)
    fan.view("C.D", np.arange(2.0), np.arange(2.0), 0.5)
    (v,) = _frames(fan, s)
    assert v.view and v.header["width"] == 0.5 and list(v.t) == [0, 1, 2, 3]
    fan.remove(s)
    fan.view("A.B", np.arange(2.0), np.arange(2.0), 0.5)
    assert fan.take(s) == [] and fan.sessions() == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=20), st.integers(1, 64))
def test_fanout_any_split_gives_the_stream(sizes: list[int], max_frame: int) -> None:
    fan, s = BinaryFanout(max_frame=max_frame), session()
    s.signals.add("A.B")
    fan.add(s)
    seq = 100
    for n in sizes:
        fan.data("A.B", seq, 0, np.arange(seq, seq + n, dtype=np.float64), np.zeros(n))
        seq += n
    got = _frames(fan, s)
    t = np.concatenate([f.t for f in got])
    assert list(t) == list(range(100, seq))
    assert [f.header["seq"] for f in got] == list(range(100, seq, max_frame))
    assert all(f.header["n"] <= max_frame for f in got)


# -- the send queue -----------------------------------------------------------------------------
def test_send_queue_drops_pushes_and_waits_for_replies() -> None:
    async def main() -> None:
        q = SendQueue(10)
        assert q.offer(b"x" * 20, None)      # a big frame goes when the queue is empty
        assert not q.offer(b"y", None)       # full: pushes are refused
        put = asyncio.create_task(q.put(b"z" * 5, None))
        await asyncio.sleep(0)
        assert not put.done()                # replies wait for room
        assert (await q.get())[0] == b"x" * 20
        q.done()
        await asyncio.wait_for(put, 1.0)
        assert (await q.get())[0] == b"zzzzz"
        q.done()
        await asyncio.wait_for(q.drained(), 1.0)
    run(main())


def test_the_pre_claim_is_the_hubs_own() -> None:
    from rtoc.frontends.websocket import hub

    assert b.OWNER == hub.OWNER


def test_select_subprotocol_keeps_json_clients() -> None:
    assert b.select_subprotocol(None, ["rtoc.bin.v1"]) == "rtoc.bin.v1"
    assert b.select_subprotocol(None, []) is None
    assert b.select_subprotocol(None, ["chat"]) is None


def test_a_bug_of_ours_is_logged_and_answered_internal(caplog) -> None:
    world = World()
    proto, s = b.BinaryProtocol(world), session("write")

    async def broken(op: str, **f) -> dict:
        return {"ok": True}  # no "drivers": a KeyError in our own op

    world.request = broken
    with caplog.at_level("ERROR", "rtoc.frontends.websocket.binary_protocol.protocol"):
        (msg,) = replies(handle(proto, s, ctl("drivers")))
    assert msg["ok"] is False and msg["error"]["code"] == "internal"
    assert msg["error"]["message"] == "internal error (KeyError; the server logged it)"
    assert caplog.records[-1].exc_info[0] is KeyError
    # the client's own mistakes keep their codes
    (msg,) = replies(handle(proto, s, ctl("history", signal="Generator.Sine", max_points=2)))
    assert msg["error"] == {"code": "bad_request", "message": "max_points must be an integer 4..2000000"}

    async def bad_push(*args, **kwargs) -> None:
        raise TypeError("a bug in the ring write")

    world.push = bad_push
    (msg,) = replies(handle(proto, s, bf.encode_data({"sig": "Lab.T", "seq": 3}, [1.0], [1.0])))
    assert (msg["op"], msg["sig"], msg["seq"], msg["error"]["code"]) == ("push", "Lab.T", 3, "internal")
    assert s.refused == 1


def test_history_from_the_ring_is_bounded_and_read_off_the_event_loop() -> None:
    """With the archive away, ``history`` answered from the ring copied every sample (4 Mi in
    a big ring: 64 MiB) into the reply, on the event loop; now at most ``max_points`` (else
    the archive's own 2,000,000), copied and decimated on a worker thread."""
    import threading

    world = World(archive=False)
    n = b.MAX_POINTS + 500_000
    t = np.arange(n, dtype=np.float64)
    world.samples["Generator.Sine"] = (t, np.sin(t / 1000.0))
    readers = []
    ring = world.ring

    def watched_ring(name: str):
        readers.append(threading.current_thread() is threading.main_thread())
        return ring(name)

    world.ring = watched_ring
    proto, s = b.BinaryProtocol(world, secret=b"k" * 32), session()
    (msg,) = replies(handle(proto, s, ctl("history", signal="Generator.Sine")))
    assert msg["ok"] and msg["n"] <= b.MAX_POINTS and readers == [False]
    (msg,) = replies(handle(proto, s, ctl("history", signal="Generator.Sine", max_points=1000,
                                          **{"from": 10.0, "to": 5000.0})))
    got = np.frombuffer(msg["t"], "<f8")
    assert msg["n"] == len(got) <= 1000 and got[0] >= 10.0 and got[-1] <= 5000.0
