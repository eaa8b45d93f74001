"""The fast road of the data push gives exactly what the full road gives, message by message."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rtoc.frontends.websocket.json_protocol.fastpush import SENT, PushGather
from rtoc.frontends.websocket.json_protocol.guard import Limits
from ws_world import protocol, session

NOW = 5000.0


def plain(i: int, name: str = "S", device: str = "D") -> bytes:
    return json.dumps({"y": [float(i)], "x": [1000.0 + i], "sname": [name], "dname": device}).encode()


numbers = st.one_of(st.integers(-10, 10), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.just("1"), st.integers(2**63, 2**70))
names = st.sampled_from(["S", "S", "S", "T", "bad.name", "", "Sine"])


@st.composite
def pushes(draw) -> dict:
    n = draw(st.sampled_from([1, 2, 0, 3]))
    msg: dict = {"y": draw(st.lists(numbers, min_size=n, max_size=n)),
                 "sname": draw(st.lists(names, min_size=n, max_size=n))}
    # hypothesis favours small draws: the common shapes come from 0, the odd ones from 4
    if draw(st.integers(0, 5)) < 5:
        msg["dname"] = draw(st.sampled_from(["D", "D", "D", "E", "Generator", 7]))
    if draw(st.integers(0, 3)) < 3:
        k = draw(st.sampled_from([n, 2, 0, 1, 4]))
        msg["x"] = draw(st.one_of(st.lists(numbers, min_size=k, max_size=k), numbers))
    if draw(st.integers(0, 4)) == 4:
        msg["unit"] = draw(st.one_of(st.just("V"), st.lists(st.just("V"), max_size=3)))
    if draw(st.integers(0, 4)) == 4:
        msg["plot"] = draw(st.sampled_from([True, False, 1]))
    if draw(st.integers(0, 6)) == 6:
        msg[draw(st.sampled_from(["getLatest", "bogus"]))] = True
    if draw(st.integers(0, 4)) == 4:  # RTOC's one-value form
        msg["y"], msg["sname"] = (msg["y"][:1] or [1.0])[0], "S"
    return msg


def encoded(msg: dict, how: int) -> bytes:
    text = json.dumps(msg).encode()  # NaN/Infinity as bare tokens, as Python clients send them
    if how == 1:
        return text[:-3]  # truncated
    if how == 2:
        return text.replace(b'"D"', b'"\xff"')  # invalid UTF-8
    if how == 3:
        return text.replace(b"1000.", b"1" * 70 + b".")  # a number past the length limit
    return text


commands = st.sampled_from([
    {"getSignal": ["D.S"]}, {"getLatest": True}, {"remove": [["D.S"], []]}, {"logout": True},
    {"signalList": 1}, {"getSignalList": True},
])
messages = st.lists(st.one_of(
    st.builds(encoded, pushes(), st.sampled_from([0, 0, 0, 0, 1, 2, 3])),
    st.builds(lambda i, n: plain(i, n), st.integers(0, 100), st.sampled_from(["S", "T"])),
    commands.map(lambda c: json.dumps(c).encode()),
), max_size=25)


def same_samples(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    return all(np.array_equal(a[k][0], b[k][0], equal_nan=True)
               and np.array_equal(a[k][1], b[k][1], equal_nan=True) for k in a)


def tricky(*msgs: dict | bytes) -> list[bytes]:
    return [m if isinstance(m, bytes) else json.dumps(m).encode() for m in msgs]


# Each of these differs from a plain push in one way the fast road must notice.
TRICKY = tricky(
    {"y": [1.0], "sname": ["S"], "dname": "D", "x": [True, 1.0]},
    {"y": [1.0], "sname": ["S"], "dname": "D", "x": [1.0, 2.0]},
    {"y": [1.0, 2.0], "sname": ["S", "T"], "dname": "D", "x": [3.0]},
    {"y": [1.0, 2.0], "sname": ["S", "T"], "dname": "D", "x": [3.0, "4"]},
    {"y": [1.0], "sname": [""], "dname": "D"}, {"y": [1.0], "sname": ["x/y"], "dname": "D"},
    {"y": [1.0, 2.0], "sname": ["S", ""], "dname": "D"},
    {"y": [1.0, 2.0], "sname": ["S", "New"], "dname": "D"},
    {"y": [True], "sname": ["S"], "dname": "D"}, {"y": ["1"], "sname": ["S"], "dname": "D"},
    {"y": [1.0, False], "sname": ["S", "T"], "dname": "D"},
    {"y": [1.0], "sname": ["Sine"], "dname": "Generator"}, {"y": [1.0], "sname": "S", "dname": "D"},
    {"y": 1.0, "sname": ["S"], "dname": "D"}, {"y": [1.0], "sname": ["S"], "dname": "D", "x": 5.0},
    {"y": [1.0], "sname": ["S"], "dname": "D", "plot": True},
    {"y": [1.0], "sname": ["S"], "dname": "D", "plot": 0},
    {"y": [1.0], "sname": ["S"], "dname": "D", "unit": ["V"]},
    {"y": [1.0], "sname": ["S"], "dname": "D", "unit": ["V", "V"]},
    {"y": [1.0], "sname": ["S"], "dname": "D", "unit": []},
    {"y": [1.0], "sname": ["S"], "dname": "D", "unit": [1]},
    {"y": [1.0], "sname": ["S"], "dname": "D", "unit": None},
    {"y": [1.0, 2.0], "sname": ["S", "T"], "dname": "D", "unit": ["V"]},
    {"y": [1.0, 2.0], "sname": ["S", "T"], "dname": "D", "unit": ["V", 2]},
    {"y": [1.0, 2.0], "sname": ["S", "T"], "dname": "D", "unit": ["V", "A"], "x": 7.0},
    {"y": [1.0, 2.0], "sname": ["S", "T"], "dname": "D", "x": True},
    {"y": 1.0, "sname": ["S", "T"], "dname": "D"}, {"y": [1.0], "sname": "S", "dname": "D"},
    {"y": 1.0, "sname": ["S"], "dname": "D", "x": 3.0},
    {"y": [1.0], "sname": ["S"], "dname": "D", "x": None},
    {"y": [1.0], "sname": ["S"], "dname": "D", "x": False},
    {"y": [1.0], "sname": ["S"], "dname": "D", "x": "3"},
    {"y": [1.0], "sname": [], "dname": "D"}, {"y": [], "sname": [], "dname": "D"},
    {"y": [[1.0]], "sname": ["S"], "dname": "D"},
    {"y": [1.0], "sname": ["S"], "dname": "D", "getLatest": True},
    {"y": [2**64], "sname": ["S"], "dname": "D"}, {"y": [1.0], "sname": ["S"]},
    b'{"y": [NaN], "sname": ["S"], "dname": "D"}', b'{"y": [1.0], "sname": ["S"], "dname": "\xff"}',
    b'{"y": [1.0], "sname": ["S"], "dname": "D", "x": [' + b"1" * 70 + b"]}",
    b'{"y": [1.0], "sname": ["S"], "dname": "D"', b"[1]",
)


@settings(max_examples=600, deadline=None)
@example(msgs=TRICKY, cuts=[], role="write")
@example(msgs=TRICKY, cuts=[3, 9, 17], role="admin")
@example(msgs=[m for t in TRICKY for m in (t, plain(1))], cuts=[], role="write")
@given(msgs=messages, cuts=st.lists(st.integers(0, 27), max_size=4),
       role=st.sampled_from(["read", "write", "admin"]))
def test_batches_answer_and_store_what_message_by_message_does(msgs, cuts, role):
    one, world_one = protocol(anonymous=role)
    many, world_many = protocol(anonymous=role)
    s_one, s_many = session(role), session(role)
    msgs = [plain(0, "S"), plain(0, "T"), *msgs]  # known signals: their pushes may go fast
    bounds = [0, *sorted({min(c, len(msgs)) for c in cuts}), len(msgs)]
    expected, got = [], []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        for m in msgs[lo:hi]:
            expected += asyncio.run(one.handle(s_one, m, NOW + lo))
        got += asyncio.run(many.handle_batch(s_many, msgs[lo:hi], NOW + lo))
    assert json.dumps(got) == json.dumps(expected)  # NaN in replies: equal as text, never as floats
    assert same_samples(world_many.samples, world_one.samples)
    assert (s_many.role, s_many.user) == (s_one.role, s_one.user)


def test_plain_pushes_of_known_signals_take_the_fast_road_and_are_written_once_per_signal():
    proto, world = protocol(anonymous="write")
    s = session("write")
    writes: list[tuple[str, int]] = []
    real = world.push

    async def counting(device, signal, unit, t, y, replace, client=""):
        writes.append((f"{device}.{signal}", len(t)))
        await real(device, signal, unit, t, y, replace, client)

    world.push = counting
    asyncio.run(proto.handle_batch(s, [plain(0), plain(0, "T")], NOW))  # claims: full road
    writes.clear()
    batch = [plain(i, "ST"[i % 2]) for i in range(1, 1001)]
    replies = asyncio.run(proto.handle_batch(s, batch, NOW))
    assert all(r is SENT for r in replies) and len(replies) == 1000
    assert sorted(writes) == [("D.S", 500), ("D.T", 500)]
    t, y = world.samples["D.S"]
    assert y.tolist() == [0.0, *map(float, range(2, 1001, 2))]
    assert t.tolist() == [1000.0, *(1000.0 + i for i in range(2, 1001, 2))]


def test_a_command_between_pushes_sees_the_pushes_before_it():
    proto, _ = protocol(anonymous="write")
    s = session("write")
    asyncio.run(proto.handle_batch(s, [plain(0)], NOW))
    batch = [plain(1), plain(2), json.dumps({"getSignal": ["D.S"]}).encode(), plain(3)]
    replies = asyncio.run(proto.handle_batch(s, batch, NOW))
    assert replies[2]["signals"]["D.S"][1] == [0.0, 1.0, 2.0]
    assert replies[3] is SENT


def test_the_first_push_of_a_signal_and_a_pending_drop_report_take_the_full_road():
    proto, _ = protocol(anonymous="write")
    s = session("write")
    (first,) = asyncio.run(proto.handle_batch(s, [plain(0, "New")], NOW))
    assert first == SENT and first is not SENT
    s.dropped = 3
    (reply,) = asyncio.run(proto.handle_batch(s, [plain(1, "New")], NOW))
    assert reply == {"error": False, "sent": True, "dropped": 3}


def test_limits_that_leave_no_room_turn_the_fast_road_off():
    assert PushGather(Limits(max_depth=1)).take([plain(0)], 0, NOW, lambda n: True, 0) == 0
    tight = PushGather(Limits(max_bytes=40))
    assert tight.take([plain(0)], 0, NOW, lambda n: True, 0) == 0
    loose = PushGather(Limits())
    assert loose.take([plain(0), plain(1), b"{}"], 0, NOW, lambda n: True, 0) == 2


# Every plain push shape RTOC documents (docs/PROTOCOL.md "Data push"): unit text, a list
# or absent; x present (a list or a number), of another length, or absent; one signal or
# several in one message; RTOC's one-value form.
SHAPES = {
    "unit text": lambda i: {"y": [i], "sname": ["S"], "dname": "D", "unit": "V"},
    "unit list": lambda i: {"y": [i], "sname": ["S"], "dname": "D", "unit": ["V"]},
    "no unit": lambda i: {"y": [i], "sname": ["S"], "dname": "D"},
    "x": lambda i: {"y": [i], "x": [1000.0 + i], "sname": ["S"], "dname": "D", "unit": ["V"]},
    "x number": lambda i: {"y": [i], "x": 1000.0 + i, "sname": ["S"], "dname": "D"},
    "x of another length": lambda i: {"y": [i], "x": [1.0, 2.0], "sname": ["S"], "dname": "D"},
    "x null": lambda i: {"y": [i], "x": None, "sname": ["S"], "dname": "D", "unit": "V"},
    "one value": lambda i: {"y": float(i), "sname": "S", "dname": "D", "unit": "V"},
    "several signals": lambda i: {"y": [i, -i, 2 * i], "sname": ["S", "T", "U"], "dname": "D",
                                  "unit": ["V", "A", "W"]},
    "several, x": lambda i: {"y": [i, -i], "x": [1000.0 + i, 2000.0 + i], "sname": ["T", "S"],
                             "dname": "D", "unit": "V"},
    "several, one signal": lambda i: {"y": [i, i + 0.5], "sname": ["S", "S"], "dname": "D",
                                      "unit": ["V", "V"]},
    "several, plot false": lambda i: {"y": [i, -i], "sname": ["S", "T"], "dname": "D",
                                      "plot": False},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_documented_push_shape_takes_the_fast_road_and_stores_what_the_full_road_does(shape):
    make = SHAPES[shape]
    claims = [json.dumps({"y": [0.0], "x": [1.0], "sname": [n], "dname": "D"}).encode()
              for n in "STU"]
    batch = [json.dumps(make(i)).encode() for i in range(1, 201)]
    fast, world_fast = protocol(anonymous="write")
    full, world_full = protocol(anonymous="write")
    s_fast, s_full = session("write"), session("write")
    asyncio.run(fast.handle_batch(s_fast, claims, NOW))
    for m in claims:
        asyncio.run(full.handle(s_full, m, NOW))
    gather = PushGather(Limits())
    assert gather.take(batch, 0, NOW, world_fast.writes, 0) == len(batch)  # all of them
    replies = asyncio.run(fast.handle_batch(s_fast, batch, NOW))
    assert all(r is SENT for r in replies) and len(replies) == len(batch)
    expected = [r for m in batch for r in asyncio.run(full.handle(s_full, m, NOW))]
    assert expected == replies
    assert same_samples(world_fast.samples, world_full.samples)
    assert world_fast.units == world_full.units
