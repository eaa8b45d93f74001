"""The RTOC JSON protocol core against an in-memory instance (ws_world.MemoryWorld)."""

from __future__ import annotations

import asyncio
import json
import logging
import math

import numpy as np
import pytest
from rtoc.frontends.websocket.auth import rtoc_token
from rtoc.frontends.websocket.json_protocol.protocol import INTERNAL, TABLE
from ws_world import PASSWORDS, protocol, session


def run(coro):
    return asyncio.run(coro)


def ask(proto, s, msg, now: float = 2000.0) -> list[dict]:
    text = msg if isinstance(msg, str | bytes) else json.dumps(msg)
    return run(proto.handle(s, text, now))


def test_one_message_carries_several_commands_and_one_reply_starts_with_error_false() -> None:
    proto, _ = protocol()
    (reply,) = ask(proto, session(), {"getSignalList": True, "getLatest": ["Generator.Sine"]})
    assert list(reply)[0] == "error" and reply["error"] is False
    assert reply["signalList"] == [["Generator", "Sine"]]
    t, y, unit = reply["latest"]["Generator.Sine"]
    assert (t, unit) == (1999.0, "V") and y == pytest.approx(math.sin(1999.0))


def test_authorize_with_rtoc_token_answers_separately() -> None:
    proto, _ = protocol(anonymous="none")
    s = session("none")
    reply, auth = ask(proto, s, {"authorize": rtoc_token(PASSWORDS["writer"])})
    assert reply["error"] is False and auth == {"authorized": True, "role": "write"}
    assert (s.user, s.role) == ("writer", "write")
    _, auth = ask(proto, session("none"), {"authorize": rtoc_token("wrong")})
    assert auth == {"authorized": False, "role": "none"}


def test_authorize_true_only_without_a_password() -> None:
    assert ask(*protocol(anonymous="admin")[:1], session("admin"), {"authorize": True})[1] == {
        "authorized": True, "role": "admin"}
    proto, _ = protocol(anonymous="none")
    assert ask(proto, session("none"), {"authorize": True})[1] == {"authorized": False, "role": "none"}


def test_a_client_that_got_less_than_it_asked_for_is_told_so() -> None:
    """Issue 16: RTOC's client asks for everything; a read-only login (or anonymous read)
    answered ``authorized: true`` and its writes then failed one by one."""
    proto, _ = protocol(anonymous="none")
    _, auth = ask(proto, session("none"), {"authorize": rtoc_token(PASSWORDS["reader"])})
    assert auth == {"authorized": False, "role": "read", "message": "logged in read-only"}
    _, auth = ask(*protocol(anonymous="read")[:1], session("read"), {"authorize": True})
    assert auth == {"authorized": False, "role": "read", "message": "logged in read-only"}


def test_login_by_name_and_throttling_after_failures() -> None:
    proto, _ = protocol(anonymous="none")
    s = session("none", "10.1.1.1")
    for _ in range(5):
        (r,) = ask(proto, s, {"login": {"user": "boss", "password": "nope"}})
        assert r["login"]["authorized"] is False
    (r,) = ask(proto, s, {"login": {"user": "boss", "password": PASSWORDS["boss"]}})
    assert r["error"] is True and "too many failed logins" in r["errors"]["login"]
    other = session("none", "10.1.1.2")  # per address and per user: boss is locked anywhere
    (r,) = ask(proto, other, {"login": {"user": "boss", "password": PASSWORDS["boss"]}})
    assert "too many failed logins" in r["errors"]["login"]
    (r,) = ask(proto, other, {"login": {"user": "writer", "password": PASSWORDS["writer"]}})
    assert r["login"] == {"authorized": True, "user": "writer", "role": "write"}


def test_push_plot_false_writes_one_sample_per_name_at_now_when_x_is_missing() -> None:
    proto, world = protocol(anonymous="write")
    (r,) = ask(proto, session("write"), {"y": [1.5, 2.5, 3.5], "sname": ["a", "b", "a"],
                                         "dname": "Dev", "unit": ["V", "A", "V"]}, now=5000.0)
    assert r == {"error": False, "sent": True}
    t, y = world.samples["Dev.a"]
    assert t.tolist() == [5000.0, 5000.0] and y.tolist() == [1.5, 3.5]
    assert world.samples["Dev.b"][1].tolist() == [2.5] and world.units["Dev.b"] == "A"


def test_push_plot_true_replaces_the_signal_and_wrong_length_x_means_now() -> None:
    proto, world = protocol(anonymous="write")
    s = session("write")
    ask(proto, s, {"y": [1, 2], "x": [10, 11], "sname": ["p"], "dname": "D", "plot": True})
    ask(proto, s, {"y": [7, 8, 9], "x": [1, 2, 3], "sname": ["p"], "dname": "D", "plot": True})
    assert world.samples["D.p"][0].tolist() == [1, 2, 3]
    ask(proto, s, {"y": [4.0], "x": [1, 2], "sname": ["q"], "dname": "D"}, now=77.0)
    assert world.samples["D.q"][0].tolist() == [77.0]


@pytest.mark.parametrize("bad", [
    {"y": [1, "2"], "sname": ["a", "b"], "dname": "D"},
    {"y": [1, 2], "sname": ["a"], "dname": "D"},
    {"y": [1], "sname": ["a/b"], "dname": "D"},
    {"y": [1], "sname": ["a"], "dname": 5},
    {"y": [True], "sname": ["a"], "dname": "D"},
    {"y": [1], "sname": ["a"], "dname": "D", "plot": "yes"},
    {"y": [[1]], "sname": ["a"], "dname": "D"},
    {"y": [1, 2], "sname": ["a", "b"], "dname": "D", "unit": ["V"]},
])
def test_a_bad_push_is_refused_whole_and_stores_nothing(bad) -> None:
    proto, world = protocol(anonymous="write")
    before = dict(world.samples)
    (r,) = ask(proto, session("write"), {**bad, "getSignalList": True})
    assert r["error"] is True and "y" in r["errors"] and r["signalList"]  # the rest still ran
    assert world.samples.keys() == before.keys()


def test_pushing_a_drivers_signal_is_refused_with_the_reason() -> None:
    proto, world = protocol(anonymous="write")
    (r,) = ask(proto, session("write"), {"y": [1], "sname": ["Sine"], "dname": "Generator"})
    assert r["error"] and "written by Generator" in r["errors"]["y"]
    assert len(world.samples["Generator.Sine"][0]) == 1000


def test_event_positional_and_dict_forms() -> None:
    proto, world = protocol(anonymous="write")
    s = session("write")
    ask(proto, s, {"event": ["too hot", "T", "Oven", 123.0, 2, "hot", 99.5]})
    ask(proto, s, {"event": {"text": "note", "priority": 0}}, now=50.0)
    a, b = world.events
    assert (a["text"], a["signal"], a["device"], a["time"], a["priority"], a["id"], a["value"]) == \
        ("too hot", "T", "Oven", 123.0, 2, "hot", 99.5)
    assert (b["time"], b["device"], b["signal"]) == (50.0, "", "")
    (r,) = ask(proto, s, {"event": ["x", "T", "Oven", None, 7]})
    assert r["error"] and "priority" in r["errors"]["event"] and len(world.events) == 2


def test_an_event_is_answered_without_an_event_key() -> None:
    """Regression (issue 16): the reply ``{"error": false, "event": true}`` reached RTOC 3.0's
    client's ``handle_event(True)`` as if it were an event push; RTOC answered nothing."""
    proto, world = protocol(anonymous="write")
    assert ask(proto, session("write"), {"event": ["note", "T", "Oven"]}) == [{"error": False}]
    assert len(world.events) == 1


def test_event_list_and_get_event_shapes() -> None:
    proto, world = protocol(anonymous="write")
    s = session("write")
    for i in range(3):
        ask(proto, s, {"event": [f"e{i}", "S" if i else "T", "D", float(i), 1, f"id{i}", i]})
    (r,) = ask(proto, s, {"getEventList": True})
    assert r["events"]["0"] == ["D", "T", 0, "e0", 0.0, 0, 1, "id0"]
    assert len(r["events"]) == 3
    (r,) = ask(proto, s, {"getEvent": ["D.S"]})
    assert sorted(r["events"]) == ["1", "2"]


def test_get_signal_plain_range_and_max_n_decimation() -> None:
    proto, _ = protocol()
    s = session()
    (r,) = ask(proto, s, {"getSignal": ["Generator.Sine"]})
    x, y, unit, sig_id, xmin, xmax = r["signals"]["Generator.Sine"]
    assert len(x) == 1000 and unit == "V" and (xmin, xmax) == (1000.0, 1999.0) and sig_id == 1
    (r,) = ask(proto, s, {"getSignal": {"dname": "Generator", "sname": "Sine", "xmin": 1500,
                                         "xmax": 1600, "maxN": 10}})
    x, y = r["signals"]["Generator.Sine"][:2]
    assert len(x) <= 10 and all(1500 <= v <= 1600 for v in x)
    ys = np.sin(np.arange(1500.0, 1601.0))
    assert max(y) == pytest.approx(ys.max()) and min(y) == pytest.approx(ys.min())  # min/max kept
    (r,) = ask(proto, s, {"getSignal": ["No.Such"]})
    assert r["error"] and "No.Such" in r["errors"]["getSignal"]


def test_subscriptions_signal_device_and_all() -> None:
    proto, _ = protocol()
    s = session()
    ask(proto, s, {"subscribe": ["signal", "A.x"]})
    ask(proto, s, {"subscribe": ["device", "B"]})
    assert s.wants_signal("A.x") and s.wants_signal("B.y") and not s.wants_signal("C.z")
    ask(proto, s, {"unsubscribe": ["device", "B"]})
    assert not s.wants_signal("B.y")
    ask(proto, s, {"subscribeAll": "signal"})
    assert s.wants_signal("C.z")  # RTOC's subscribeAll never matched; here it does
    ask(proto, s, {"unsubscribeAll": "signal"})
    assert not s.wants_signal("A.x")
    (r,) = ask(proto, s, {"subscribe": ["planet", "x"]})
    assert r["error"] and "subscribe" in r["errors"]


def test_plugin_start_stop_get_set_and_call() -> None:
    proto, world = protocol(anonymous="write")
    (r,) = ask(proto, session("write"), {"plugin": {"Generator": {
        "start": False, "get": "samplerate", "samplerate": 20, "setFrequency()": [3]}}})
    res = r["plugin"]["Generator"]
    assert res == {"start": "stopped", "get": 10.0, "samplerate": 20.0, "setFrequency()": 3}
    assert world.drivers["Generator"]["calls"] == [("setFrequency", [3])]
    (r,) = ask(proto, session("write"), {"plugin": {"Nope": {"start": True}}})
    assert r["error"] and "Nope" in r["errors"]["plugin"]


def test_the_read_role_may_get_a_parameter_but_not_set_one() -> None:
    """Issue 16: the read role could not ``plugin get`` (the whole command needed write)."""
    proto, world = protocol(anonymous="read")
    (r,) = ask(proto, session("read"), {"plugin": {"Generator": {"get": "samplerate"}}})
    assert r["error"] is False and r["plugin"]["Generator"] == {"get": 10.0}
    (r,) = ask(proto, session("read"), {"plugin": {"Generator": {"get": "samplerate", "samplerate": 5}}})
    assert r["error"] and "needs the write role" in r["errors"]["plugin"]


def test_rtoc_shapes_partial_latest_push_without_device_and_logger_info_null() -> None:
    """Issue 16: ``getLatest`` with one known and one unknown name answered "exceptions must
    derive from BaseException"; a push without ``dname`` was refused (RTOC: ``noDevice``);
    ``logger {"info": null}`` answered ``{}``."""
    proto, world = protocol(anonymous="write")
    (r,) = ask(proto, session("write"), {"getLatest": ["Generator.Sine", "No.Such"]})
    assert r["error"] is False and list(r["latest"]) == ["Generator.Sine"]
    (r,) = ask(proto, session("write"), {"getLatest": ["No.Such"]})
    assert "no samples of No.Such" in r["errors"]["getLatest"]
    (r,) = ask(proto, session("write"), {"y": [1.5], "sname": ["T"]})
    assert r["error"] is False and "noDevice.T" in world.samples
    (r,) = ask(proto, session("write"), {"logger": {"info": None}})
    assert r["error"] is False and r["logger"]["info"]["version"] == "test"


def test_automation_maps_rtoc_keys_and_refuses_scripts() -> None:
    proto, world = protocol(anonymous="write")
    s = session("write")
    (r,) = ask(proto, s, {"automation": {"setEvent": {
        "name": "hot", "cond": "Oven.T > 100", "text": "hot", "priority": 1, "sname": "T",
        "dname": "Oven", "trigger": "rising", "retur": False}}})
    assert r["automation"]["events"]["hot"]["signal"] == "T"
    (r,) = ask(proto, s, {"automation": {"setAction": {"name": "a", "listenID": "hot",
                                                       "script": "import os"}}})
    assert r["error"] and "never run" in r["errors"]["automation"]
    assert "a" not in world.rules["action"]
    (r,) = ask(proto, s, {"automation": {"removeEvent": "hot"}})
    assert r["automation"]["events"] == {}


@pytest.mark.parametrize("key", sorted(TABLE))
def test_every_key_is_refused_below_its_role(key: str) -> None:
    need = TABLE[key].role
    if need == "none":
        return
    proto, _ = protocol(anonymous="none")
    lower = {"read": "none", "write": "read", "admin": "write"}[need]
    (r,) = ask(proto, session(lower), {key: True})
    assert r["error"] and f"needs the {need} role" in r["errors"][key]


def test_unknown_keys_and_bad_json_are_named_and_nothing_else_breaks() -> None:
    proto, _ = protocol()
    s = session()
    (r,) = ask(proto, s, {"getSignalList": True, "frobnicate": 1})
    assert r["errors"] == {"frobnicate": "unknown key 'frobnicate'"} and r["signalList"]
    (r,) = ask(proto, s, '{"getSignalList": tru')
    assert r["error"] and "invalid JSON" in r["message"]
    (r,) = ask(proto, s, "[" * 5000 + "]" * 5000)
    assert r["error"] and "nesting" in r["message"]
    (r,) = ask(proto, s, b"\xff\xfe{}")
    assert r["error"] and "UTF-8" in r["message"]
    (r,) = ask(proto, s, '{"y": [' + "9" * 5000 + '], "sname": ["a"], "dname": "D"}')
    assert r["error"] and "number" in r["message"]


def test_remove_takes_pushed_signals_only_and_no_events() -> None:
    proto, world = protocol(anonymous="write")
    s = session("write")
    ask(proto, s, {"y": [1.0, 2.0], "sname": ["a", "b"], "dname": "Dev"})
    ids = {n: i for n, i in (ask(proto, s, {"getSignalInfo": True})[0]["signalInfo"].items())}
    (r,) = ask(proto, s, {"remove": [[ids["Dev.a"]["id"], "Dev.b"], []]})
    assert r == {"error": False, "remove": [2, 0]} and set(world.samples) == {"Generator.Sine"}
    (r,) = ask(proto, s, {"remove": [["Generator.Sine"], []]})
    assert r["error"] and "only pushed signals" in r["errors"]["remove"]
    (r,) = ask(proto, s, {"remove": [[], [3]]})
    assert r["error"] and "events are not removed" in r["errors"]["remove"]


def test_logger_clear_empties_pushed_signals_only_and_needs_write() -> None:
    proto, world = protocol()
    s = session("write")
    ask(proto, s, {"y": [1.0, 2.0], "sname": ["a", "b"], "dname": "Dev"})
    (r,) = ask(proto, s, {"logger": {"clear": ["Dev.a"]}})
    assert r == {"error": False, "logger": {"clear": ["Dev.a"]}}
    assert len(world.samples["Dev.a"][0]) == 0 and len(world.samples["Dev.b"][0]) == 1
    (r,) = ask(proto, s, {"logger": {"clear": "all", "info": True}})
    assert r["logger"]["clear"] == ["Dev.a", "Dev.b"] and r["logger"]["info"]["signals"] == 3
    assert len(world.samples["Generator.Sine"][0]) == 1000  # a driver's signal stays
    (r,) = ask(proto, s, {"logger": {"clear": ["Generator.Sine"]}})
    assert r["error"] and "only pushed signals" in r["errors"]["logger"]
    (r,) = ask(proto, s, {"logger": {"clear": "events"}})
    assert r["error"] and "event list is a log" in r["errors"]["logger"]
    (r,) = ask(proto, session("read"), {"logger": {"clear": "all"}})
    assert r["error"] and "needs the write role" in r["errors"]["logger"]
    (r,) = ask(proto, s, {"logger": {"resize": 10}})
    assert r["error"] and "rtoc.toml" in r["errors"]["logger"]


def test_a_bug_of_ours_is_logged_and_answered_internal_not_as_the_clients_mistake(caplog) -> None:
    proto, world = protocol()

    async def broken(op: str, **fields):
        return {"ok": True}  # no "signals": a KeyError in our own command

    world.request = broken
    with caplog.at_level(logging.ERROR, "rtoc.frontends.websocket.json_protocol.protocol"):
        (reply,) = ask(proto, session(), {"getSignalList": True, "subscribe": ["signal", "A.x"]})
    assert reply["error"] is True and reply["errors"] == {"getSignalList": INTERNAL}
    assert reply["subscription"]["signals"] == ["A.x"]  # the other keys still run
    assert caplog.records[-1].exc_info[0] is KeyError and "getSignalList" in caplog.records[-1].message
    # a client's bad request is still its own error, with its message
    proto, _ = protocol()
    (reply,) = ask(proto, session(), {"getSignal": {"dname": "A", "sname": "x", "maxN": 2}})
    assert reply["errors"] == {"getSignal": "maxN must be an integer 4..2000000"}


def test_json_names_follow_the_binary_roads_rule() -> None:
    proto, world = protocol(anonymous="write")
    s = session("write")
    (reply,) = ask(proto, s, {"y": [1.0], "sname": ["s" * 1023], "dname": "D"})
    assert reply["error"] is True and "longer than 1024 characters" in reply["errors"]["y"]
    assert not any(n.startswith("D.") for n in world.samples)
    (reply,) = ask(proto, s, {"y": [1.0], "sname": ["s" * 1022], "dname": "D"})
    assert reply["error"] is False
    (reply,) = ask(proto, s, {"subscribe": ["signal", "D./x"], "getLatest": ["D." + "s" * 1023]})
    assert set(reply["errors"]) == {"subscribe", "getLatest"}
