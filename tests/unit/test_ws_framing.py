"""The batch frame reader against the websockets library's own client frames."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtoc.frontends.websocket.json_protocol.framing import (
    BINARY,
    CONTROL,
    MESSAGE_TOO_BIG,
    PROTOCOL_ERROR,
    TEXT,
    FrameReader,
    encode,
    encode_masked,
)
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import Protocol, Side, State
from websockets.uri import parse_uri


def client() -> ClientProtocol:
    return ClientProtocol(parse_uri("ws://x/"), state=State.OPEN, max_size=None)


def wire(p: ClientProtocol) -> bytes:
    return b"".join(p.data_to_send())


def feed_in_pieces(reader: FrameReader, data: bytes, cuts: list[int]) -> list:
    out, last = [], 0
    for c in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
        out += reader.feed(data[last:c])
        last = c
    return out


message = st.one_of(
    st.tuples(st.just(TEXT), st.text(max_size=300).map(str.encode)),
    st.tuples(st.just(BINARY), st.binary(max_size=70_000)),
)


@settings(max_examples=150, deadline=None)
@given(msgs=st.lists(st.tuples(message, st.integers(1, 4), st.booleans()), max_size=12),
       cuts=st.lists(st.integers(0, 400_000), max_size=20))
def test_messages_fragments_and_pings_come_out_as_websockets_sent_them(msgs, cuts):
    p, expected = client(), []
    for (opcode, payload), pieces, ping in msgs:
        step = max(1, len(payload) // pieces + 1)
        chunks = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        for i, chunk in enumerate(chunks):
            fin = i == len(chunks) - 1
            if i == 0:
                (p.send_text if opcode == TEXT else p.send_binary)(chunk, fin=fin)
            else:
                p.send_continuation(chunk, fin=fin)
            if fin:
                expected.append((opcode, payload))
            if ping and i == 0:  # a control frame between fragments is allowed
                p.send_ping(b"pi")
                expected.append((9, None))
    got = feed_in_pieces(FrameReader(None), wire(p), cuts)
    assert [(op, None if op >= CONTROL else data) for op, data in got] == expected
    for op, raw in got:
        if op >= CONTROL:  # the raw frame goes back to websockets, which must read it
            server = Protocol(Side.SERVER, state=State.OPEN)
            server.receive_data(raw)
            assert server.events_received()[0].opcode is Opcode.PING


def test_a_large_frame_in_one_byte_pieces_is_not_rescanned_each_time():
    payload = os.urandom(300_000)
    data = encode_masked(payload, b"abcd", BINARY)
    r = FrameReader(None)
    out = []
    for i in range(0, len(data), 7):
        out += r.feed(data[i:i + 7])
    assert out == [(BINARY, payload)]


def test_server_frames_read_unmasked():
    data = encode(b'{"a": 1}') + encode(b"x" * 70_000, BINARY) + encode(b"y" * 300)
    assert FrameReader(None, masked=False).feed(data) == [
        (TEXT, b'{"a": 1}'), (BINARY, b"x" * 70_000), (TEXT, b"y" * 300)]


def test_a_close_frame_ends_reading():
    p = client()
    p.send_text(b"one")
    p.send_close(1000, "bye")
    r = FrameReader()
    got = r.feed(wire(p) + encode_masked(b"after", b"abcd"))
    assert [op for op, _ in got] == [TEXT, CONTROL] and r.closed
    assert r.feed(encode_masked(b"more", b"abcd")) == []


@pytest.mark.parametrize(("data", "code", "words"), [
    (encode(b"unmasked"), PROTOCOL_ERROR, "masking"),
    (bytes([0xC1, 0x80]) + b"abcd", PROTOCOL_ERROR, "reserved bits"),
    (bytes([0x83, 0x80]) + b"abcd", PROTOCOL_ERROR, "opcode"),
    (bytes([0x8B, 0x80]) + b"abcd", PROTOCOL_ERROR, "opcode"),
    (bytes([0x09, 0x80]) + b"abcd", PROTOCOL_ERROR, "control frame"),
    (encode_masked(b"p" * 126, b"abcd", 9), PROTOCOL_ERROR, "control frame"),
    (encode_masked(b"c", b"abcd", 0), PROTOCOL_ERROR, "continuation"),
    (bytes([0x01, 0x81]) + b"abcd" + b"x" + encode_masked(b"y", b"abcd"), PROTOCOL_ERROR,
     "expected a continuation"),
    (bytes([0x81, 0xFF]) + (1 << 63).to_bytes(8, "big"), MESSAGE_TOO_BIG, "larger"),
    (bytes([0x81, 0xFE, 0x04, 0x01]), MESSAGE_TOO_BIG, "1025 bytes"),
])
def test_faults_name_the_rule_and_stop_reading(data, code, words):
    r = FrameReader(1024)
    ok = encode_masked(b"fine", b"abcd")
    assert r.feed(ok + data) == [(TEXT, b"fine")]
    assert r.fault is not None and r.fault[0] == code and words in r.fault[1]
    assert r.feed(ok) == []


def test_fragments_over_the_limit_fail_with_1009():
    p = client()
    p.send_text(b"a" * 600, fin=False)
    p.send_continuation(b"b" * 600, fin=True)
    r = FrameReader(1000)
    assert r.feed(wire(p)) == [] and r.fault[0] == MESSAGE_TOO_BIG


def test_many_small_frames_in_one_read():
    msgs = [f'{{"y": [{i}], "sname": ["S"], "dname": "D"}}'.encode() for i in range(5000)]
    data = b"".join(encode_masked(m, os.urandom(4)) for m in msgs)
    assert FrameReader().feed(data) == [(TEXT, m) for m in msgs]
