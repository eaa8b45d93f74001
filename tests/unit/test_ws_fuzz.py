"""Fuzzing the JSON protocol core: 10,000 generated messages, then random client sessions.

Every message must give a reply list whose first element is a JSON-encodable object with
an ``error`` key, within a second (a hang is a failure), and never raise, through
``handle_batch`` (as the server calls it) and ``handle``; and no message may be answered
as an internal error (whatever a client sends is its own mistake, never a bug of ours). The stateful
test drives authorize / login / subscribe / unsubscribe / push / call / disconnect in
random order and checks the core against a model of roles and subscriptions.
"""

from __future__ import annotations

import asyncio
import json

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from rtoc.frontends.websocket.auth import rtoc_token
from rtoc.frontends.websocket.json_protocol.fanout import dumps
from rtoc.frontends.websocket.json_protocol.protocol import INTERNAL, PUSH_KEYS, TABLE
from ws_world import PASSWORDS, ROLES, protocol, session

KEYS = sorted(TABLE) + list(PUSH_KEYS)
LOOP = asyncio.new_event_loop()


@pytest.fixture(scope="module", autouse=True)
def _close_loop():
    yield
    LOOP.close()

numbers = st.one_of(
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20),
                    st.sampled_from(["Generator.Sine", "D.S", "signal", "device", "all", "Generator"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS + ["x", "name", "start"]) | st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
messages = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), values, max_size=4)


def _text(msg: dict) -> str:
    return json.dumps(msg, allow_nan=True)


raw = st.one_of(
    messages.map(_text),
    messages.map(_text).flatmap(lambda t: st.integers(0, len(t)).map(lambda n: t[:n])),  # truncated
    st.binary(max_size=200),                                                           # invalid UTF-8 too
    st.integers(1, 3000).map(lambda d: '{"y": ' + "[" * d + "1" + "]" * d + "}"),         # deep nesting
    st.integers(60, 5000).map(lambda n: '{"getSignal": [' + "7" * n + "]}"),               # huge numbers
    st.integers(1, 50_000).map(lambda n: '{"y": [' + ",".join(["1.5"] * n) + '], "sname": ["a"], "dname": "D"}'),
    st.just('{"y": [NaN, Infinity, -Infinity], "sname": ["a", "b", "c"], "dname": "D"}'),
)


def _check(proto, s, data) -> None:
    """Through ``handle_batch`` as the server calls it (UTF-8 bytes), twice in one batch:
    a push that claims its signal the first time may take the fast road the second time."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    replies = LOOP.run_until_complete(asyncio.wait_for(proto.handle_batch(s, [raw, raw], 1e9), 1.0))
    assert len([r for r in replies if "error" in r]) == 2 and "error" in replies[0]
    for r in replies:
        assert INTERNAL not in dumps(r)  # sendable, and no bug of ours
    single = LOOP.run_until_complete(asyncio.wait_for(proto.handle(s, data, 1e9), 1.0))
    assert single and "error" in single[0] and INTERNAL not in dumps(single[0])


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=raw, role=st.sampled_from(["none", "read", "write", "admin"]))
def test_ten_thousand_generated_messages_never_crash_or_hang(data, role) -> None:
    proto, _ = protocol(anonymous=role)
    _check(proto, session(role), data)


class ClientSessions(RuleBasedStateMachine):
    """Several clients of one server; the model: each client's role and subscriptions."""

    @initialize()
    def start(self) -> None:
        self.proto, self.world = protocol(anonymous="read")
        self.clients = [session("read", f"10.0.0.{i}") for i in range(3)]
        self.model = [{"role": "read", "signals": set()} for _ in self.clients]
        self.pushed = 0

    def _ask(self, i: int, msg: dict) -> list[dict]:
        return LOOP.run_until_complete(
            self.proto.handle_batch(self.clients[i], [json.dumps(msg).encode()], 1e9))

    @rule(i=st.integers(0, 2), user=st.sampled_from(sorted(PASSWORDS)), right=st.booleans())
    def authorize(self, i, user, right) -> None:
        token = rtoc_token(PASSWORDS[user] if right else "wrong")
        reply, auth = self._ask(i, {"authorize": token})
        if "errors" in reply:  # throttled after repeated failures: nothing changed
            return
        full = right and ROLES[user] in ("write", "admin")  # read-only is told so
        assert auth["authorized"] is full and (auth["role"] == ROLES[user] if right else True)
        if right:
            self.model[i]["role"] = ROLES[user]

    @rule(i=st.integers(0, 2), name=st.sampled_from(["A.x", "A.y", "B.z"]))
    def subscribe(self, i, name) -> None:
        self._ask(i, {"subscribe": ["signal", name]})
        self.model[i]["signals"].add(name)

    @rule(i=st.integers(0, 2), name=st.sampled_from(["A.x", "A.y", "B.z"]))
    def unsubscribe(self, i, name) -> None:
        self._ask(i, {"unsubscribe": ["signal", name]})
        self.model[i]["signals"].discard(name)

    @rule(i=st.integers(0, 2), y=st.lists(st.floats(allow_nan=False), min_size=1, max_size=5))
    def push(self, i, y) -> None:
        (reply,) = self._ask(i, {"y": y, "sname": ["s"] * len(y), "dname": "Fuzz"})
        allowed = self.model[i]["role"] in ("write", "admin")
        assert reply["error"] is (not allowed)
        if allowed:
            self.pushed += len(y)

    @rule(i=st.integers(0, 2))
    def call(self, i) -> None:
        (reply,) = self._ask(i, {"plugin": {"Generator": {"setFrequency()": [2]}}})
        assert reply["error"] is (self.model[i]["role"] not in ("write", "admin"))

    @precondition(lambda self: len(self.clients) > 0)
    @rule(i=st.integers(0, 2))
    def disconnect(self, i) -> None:
        self.clients[i] = session("read", self.clients[i].address)  # a new connection
        self.model[i] = {"role": "read", "signals": set()}

    @invariant()
    def sessions_match_the_model(self) -> None:
        for s, m in zip(self.clients, self.model, strict=True):
            assert s.role == m["role"] and s.signals == m["signals"]

    @invariant()
    def only_allowed_pushes_were_stored(self) -> None:
        t, _ = self.world.samples.get("Fuzz.s", ((), ()))
        assert len(t) == self.pushed


TestClientSessions = ClientSessions.TestCase
TestClientSessions.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
