"""What one message may cost the websocket process: bounded names, subscriptions and getSignal
work (issue 12, "One message must not take the server down")."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from rtoc.frontends.websocket import validate
from rtoc.frontends.websocket.binary_protocol import protocol as b
from rtoc.frontends.websocket.json_protocol import commands
from rtoc.frontends.websocket.json_protocol.guard import Limits
from rtoc.frontends.websocket.json_protocol.protocol import JsonProtocol, encode_replies
from rtoc.frontends.websocket.session import Session, SubscriptionLimit
from test_ws_binary import World as BinWorld
from test_ws_binary import ctl, handle, replies
from ws_world import MemoryWorld, protocol, session

from rtoc import wire
from rtoc.errors import BadRequest, SignalError

TOPIC_MAX = len(wire.VIEW_PREFIX) + validate.MAX_NAME + 1  # the longest topic a name can make


def ask(proto: JsonProtocol, s: Session, msg: dict) -> dict:
    return asyncio.run(proto.handle(s, json.dumps(msg), 2000.0))[0]


# -- names that become topics ------------------------------------------------------------------
@pytest.mark.parametrize("msg", [
    {"subscribe": ["device", "D" * 1_000_000]},
    {"subscribe": ["device", "D" * (validate.MAX_NAME + 1)]},
    {"subscribe": ["device", "D/x"]},
    {"subscribe": ["device", "D.x"]},
    {"subscribe": ["signal", "A." + "s" * 300_000]},
    {"subscribeView": ["A." + "s" * 300_000]},
], ids=["device-1MB", "device-1025", "device-slash", "device-dot", "signal-300kB", "view-300kB"])
def test_a_huge_or_bad_name_is_refused_and_subscribes_nothing(msg: dict) -> None:
    proto, _ = protocol()
    s = session()
    r = ask(proto, s, msg)
    key = next(iter(msg))
    assert r["error"] is True and key in r["errors"], r
    assert len(r["errors"][key]) < 300  # the message names the rule, not the name
    assert s.subscription_count() == 0 and not s.topics()


def test_device_names_follow_the_signal_names_device_rule() -> None:
    assert validate.device_name("D" * validate.MAX_NAME) == "D" * validate.MAX_NAME
    for bad in ("", " ", "D" * (validate.MAX_NAME + 1), "a/b", "a\x00", "a.b"):
        with pytest.raises(SignalError):
            validate.device_name(bad)
    with pytest.raises(BadRequest):
        validate.device_name(5)  # type: ignore[arg-type]
    assert validate.topic("data/", "Dev", device=True) == b"data/Dev."
    with pytest.raises(SignalError):
        validate.topic("view/", "A." + "s" * 5000)


def test_topics_never_carry_an_unchecked_name() -> None:
    """Even a name put into a session behind the protocol's back never becomes a topic."""
    s = session()
    s.signals |= {"A.ok", "A." + "s" * 100_000, "nodot"}
    s.devices |= {"Dev", "D" * 1_000_000}
    s.views |= {"A.v", "A/b.c"}
    assert s.topics() == {b"data/A.ok", b"data/Dev.", b"view/A.v"}
    assert all(len(t) <= TOPIC_MAX for t in s.topics())


def test_a_hundred_100kB_names_are_all_refused() -> None:
    """The memory case of the issue: 100 subscriptions of 100 kB names held 340 MB in the
    websocket process and 458 MB in the engine; now each is refused and nothing is kept."""
    proto, _ = protocol()
    s = session()
    for i in range(100):
        kind, name = ("device", f"{i}" + "D" * 100_000) if i % 2 else ("signal", f"A.{i}" + "s" * 100_000)
        r = ask(proto, s, {"subscribe": [kind, name]})
        assert r["error"] is True
    assert s.subscription_count() == 0 and s.topics() == set()


# -- how many subscriptions -------------------------------------------------------------------
def test_subscriptions_per_client_are_capped_with_a_clear_error() -> None:
    limit = SubscriptionLimit(per_client=3, total=100)
    proto = JsonProtocol(MemoryWorld(), Limits(), limit)
    s = session()
    for n in ("A.a", "A.b", "A.c", "A.a"):  # a repeat costs nothing
        assert ask(proto, s, {"subscribe": ["signal", n]})["error"] is False
    r = ask(proto, s, {"subscribe": ["device", "B"]})
    assert "at most 3 subscriptions per client" in r["errors"]["subscribe"]
    assert "max_subscriptions" in r["errors"]["subscribe"] and limit.refused == 1
    r = ask(proto, s, {"subscribeView": ["V.a", "V.b"]})
    assert r["error"] is True and s.views == set()
    ask(proto, s, {"unsubscribe": ["signal", "A.a"]})
    assert ask(proto, s, {"subscribeView": ["V.a"]})["error"] is False
    assert ask(proto, s, {"subscribeView": ["V.b"]})["error"] is False  # replaces V.a


def test_subscriptions_in_total_are_capped_across_clients_and_roads() -> None:
    limit = SubscriptionLimit(per_client=10, total=5)
    proto = JsonProtocol(MemoryWorld(), Limits(), limit)
    binary = b.BinaryProtocol(BinWorld())
    binary.subscriptions = limit
    one, two, three = session(), session(), b.BinSession("10.0.0.3", "read", "read")
    assert ask(proto, one, {"subscribeView": ["A.a", "A.b", "A.c"]})["error"] is False
    assert ask(proto, two, {"subscribe": ["signal", "A.d"]})["error"] is False
    (msg,) = replies(handle(binary, three, ctl("subscribe", signals=["B.a", "B.b"])))
    assert msg["ok"] is False and "max_subscriptions_total" in msg["error"]["message"]
    assert three.signals == set() and limit.used() == 4
    r = ask(proto, two, {"subscribe": ["device", "X"]})  # 5 of 5: still fits
    assert r["error"] is False
    r = ask(proto, two, {"subscribe": ["device", "Y"]})
    assert "at most 5 in all" in r["errors"]["subscribe"]
    limit.live([two, three])  # the first client left
    (msg,) = replies(handle(binary, three, ctl("subscribe", signals=["B.a", "B.b"])))
    assert msg["ok"] is True and limit.used() == 4


def test_binary_subscriptions_per_client_are_capped() -> None:
    binary = b.BinaryProtocol(BinWorld())
    binary.subscriptions = SubscriptionLimit(per_client=2, total=100)
    s = b.BinSession("10.0.0.3", "read", "read")
    (msg,) = replies(handle(binary, s, ctl("subscribe", signals=["A.a", "A.b", "A.c"])))
    assert msg["ok"] is False and "max_subscriptions" in msg["error"]["message"]
    (msg,) = replies(handle(binary, s, ctl("subscribe", signals=["A.a", "A.b"], mode="view")))
    assert msg["ok"] is True and s.views == {"A.a", "A.b"}


# -- getSignal's work --------------------------------------------------------------------------
class CountingWorld(MemoryWorld):
    def __init__(self, n: int = 1000) -> None:
        super().__init__()
        t = np.arange(n, dtype=np.float64)
        self.samples["Big.Ring"] = (t, np.sin(t))
        self.ring_reads = 0

    def ring(self, name: str):
        self.ring_reads += 1
        return super().ring(name)


def test_a_name_asked_ten_thousand_times_is_read_once() -> None:
    world = CountingWorld()
    proto = JsonProtocol(world, Limits(max_bytes=1 << 20))
    r = ask(proto, session(), {"getSignal": ["Generator.Sine"] * 10_000})
    assert r["error"] is False and list(r["signals"]) == ["Generator.Sine"]
    assert world.ring_reads == 1 and len(r["signals"]["Generator.Sine"][0]) == 1000


def test_points_of_one_reply_are_bounded_with_a_clear_error() -> None:
    world = CountingWorld()
    proto = JsonProtocol(world, Limits(), reply_points=1000)
    r = ask(proto, session(), {"getSignal": {"dname": "Big", "sname": "Ring", "maxN": 2_000_000}})
    assert "at most 1000 in one message" in r["errors"]["getSignal"]
    assert "max_reply_points" in r["errors"]["getSignal"] and world.ring_reads == 0
    assert proto.replies_refused == 1  # counted (/metrics: rtoc_ws_replies_refused_total)
    both = [{"dname": "Big", "sname": "Ring", "maxN": 600},
            {"dname": "Generator", "sname": "Sine", "maxN": 600}]
    assert ask(proto, session(), {"getSignal": both})["error"] is True
    # without maxN, each signal gets its share of the budget
    r = ask(proto, session(), {"getSignal": "all"})
    assert r["error"] is False
    assert sum(len(v[0]) for v in r["signals"].values()) <= 1000
    assert {n: len(v[0]) for n, v in r["signals"].items()} == {"Big.Ring": 500, "Generator.Sine": 500}


def test_big_replies_are_made_and_encoded_off_the_event_loop() -> None:
    world = CountingWorld(n=4 << 20)
    proto = JsonProtocol(world, Limits(), reply_points=400_000)
    s = session()

    async def go() -> tuple[list[dict], bytes]:
        out = await proto.handle(s, json.dumps({"getSignal": {"dname": "Big", "sname": "Ring",
                                                              "maxN": 400_000}}), 1.0)
        return out, await proto.encode(out)

    out, frames = asyncio.run(go())
    assert type(out[0]["signals"]) is commands.Heavy
    assert len(out[0]["signals"]["Big.Ring"][0]) == 400_000
    assert frames == encode_replies(out)
    text = json.loads(frames[frames.index(b"{"):])
    assert text["signals"]["Big.Ring"][:2] == [a.tolist() for a in out[0]["signals"]["Big.Ring"][:2]]
    small = ask(proto, s, {"getSignal": ["Generator.Sine"]})
    assert type(small["signals"]) is dict


@pytest.mark.parametrize("n", [0, 1, commands.CHUNK, commands.CHUNK + 1, 3 * commands.CHUNK - 1])
def test_arrays_are_encoded_in_chunks_as_one_json_list(n: int) -> None:
    a = np.arange(n, dtype=np.float64) / 3
    if n:
        a[n // 2] = np.nan
    got = json.loads(commands.json_array(a))
    assert got == [None if np.isnan(v) else v for v in a.tolist()]


def test_topics_are_computed_again_only_after_a_change() -> None:
    proto, _ = protocol()
    s = session()
    ask(proto, s, {"subscribe": ["signal", "A.a"]})
    first = s.topics()
    assert s.topics() is first  # cached: the server asks after every batch
    ask(proto, s, {"subscribeView": ["A.b"]})
    assert s.topics() == {b"data/A.a", b"view/A.b"}
    binary, bs = b.BinaryProtocol(BinWorld()), b.BinSession("10.0.0.3", "read", "read")
    handle(binary, bs, ctl("subscribe", signals=["B.a"]))
    assert bs.topics() == {b"data/B.a"}
    handle(binary, bs, ctl("unsubscribe", signals=["B.a"]))
    assert bs.topics() == set()
