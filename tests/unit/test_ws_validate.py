"""One rule for names, numbers and limits on both websocket roads (validate.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from rtoc.frontends.websocket import validate
from rtoc.frontends.websocket.binary_protocol import protocol as b
from test_ws_binary import World as BinWorld
from ws_world import protocol, session

from rtoc.client import frames as bf
from rtoc.errors import BadRequest, SignalError

LONG = "D." + "s" * (validate.MAX_NAME - 2)  # exactly the limit

NAMES = [("D.S", True), ("Dev.Sig.with.dots", True), (LONG, True), (LONG + "s", False),
         ("D." + "s" * 5000, False), ("NoDot", False), ("D./x", False), ("/D.x", False),
         ("D.x\x00", False), (" .x", False), ("D. ", False), (".x", False), ("D.", False)]


@pytest.mark.parametrize(("name", "ok"), NAMES, ids=lambda v: repr(v)[:20])
def test_signal_name_rule(name: str, ok: bool) -> None:
    if ok:
        assert validate.signal_name(name) == tuple(name.split(".", 1))
    else:
        with pytest.raises(SignalError):
            validate.signal_name(name)


def _json_push_ok(name: str) -> bool:
    proto, world = protocol(anonymous="write")
    device, _, signal = name.partition(".")
    msg = json.dumps({"y": [1.0], "sname": [signal], "dname": device})
    (reply,) = asyncio.run(proto.handle(session("write"), msg, 1.0))
    return reply["error"] is False and name in world.samples


def _json_subscribe_ok(name: str) -> bool:
    proto, _ = protocol()
    (reply,) = asyncio.run(proto.handle(session(), json.dumps({"subscribe": ["signal", name]}), 1.0))
    return reply["error"] is False


def _binary_push_ok(name: str) -> bool:
    proto = b.BinaryProtocol(BinWorld())
    s = b.BinSession("10.0.0.1", "write", "write")
    try:
        frame = bf.encode_data({"sig": name}, [1.0], [1.0])
    except bf.FrameError:
        return False  # the codec refuses it already
    out = asyncio.run(proto.handle(s, frame, 1.0))
    return s.refused == 0 and not out.frames


def _binary_subscribe_ok(name: str) -> bool:
    proto = b.BinaryProtocol(BinWorld())
    out = asyncio.run(proto.handle(b.BinSession("10.0.0.1", "read", "read"),
                                   bf.encode_control({"op": "subscribe", "signals": [name]}), 1.0))
    return bf.decode(out.frames[0]).msg["ok"]


@pytest.mark.parametrize(("name", "ok"), [n for n in NAMES if "\x00" not in n[0]],
                         ids=lambda v: repr(v)[:20])
def test_both_roads_accept_the_same_names(name: str, ok: bool) -> None:
    assert _json_push_ok(name) is ok
    assert _json_subscribe_ok(name) is ok
    assert _binary_push_ok(name) is ok
    assert _binary_subscribe_ok(name) is ok


def test_numbers_and_integers() -> None:
    assert validate.number(3, "x") == 3.0
    for bad in (True, "1", None, [1]):
        with pytest.raises(BadRequest, match="x must be a number"):
            validate.number(bad, "x")
    with pytest.raises(BadRequest, match=r"from must be a number \(unix seconds\)"):
        validate.number(float("nan"), "from", "unix seconds", nan=False)
    with pytest.raises(BadRequest, match="too large for a float64"):
        validate.number(10 ** 400, "x")
    assert validate.integer(4, "maxN", 4, 10) == 4
    for bad in (3, 11, 4.0, False):
        with pytest.raises(BadRequest, match="maxN must be an integer 4..10"):
            validate.integer(bad, "maxN", 4, 10)
