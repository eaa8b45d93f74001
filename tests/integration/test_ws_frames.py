"""A real instance's websocket server at the frame level: the batch road's edge cases.

The client here speaks RFC 6455 over a plain socket (frames from ``framing.encode_masked``,
replies read with ``FrameReader(masked=False)``), so it can pipeline frames after the
handshake, fragment messages, interleave pings, break the rules and stop reading.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from rtoc.frontends.websocket.json_protocol.framing import CONTROL, FrameReader, encode_masked

from rtoc.app.harness import Instance

QUICK_PINGS = """
[websocket]
port = 0
ping_interval = 0.5
ping_timeout = 1.0
"""


def ws(inst: Instance) -> str:
    return inst.ws_url().replace("http://", "ws://")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with Instance.start() as inst:
        yield ws(inst)


def masked(payload: bytes | str, opcode: int = 1, fin: bool = True) -> bytes:
    frame = encode_masked(payload.encode() if isinstance(payload, str) else payload,
                          os.urandom(4), opcode)
    return frame if fin else bytes((frame[0] & 0x7F,)) + frame[1:]


def push(i: int, name: str = "S") -> bytes:
    return masked(json.dumps({"y": [float(i)], "x": [1e9 + i], "sname": [name], "dname": "Raw"}))


class Raw:
    """A websocket client over a plain socket; ``first`` goes out with the handshake."""

    def __init__(self, url: str, first: bytes = b""):
        u = urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=20)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET / HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          f"Sec-WebSocket-Version: 13\r\n\r\n".encode() + first)
        self.frames = FrameReader(None, masked=False)
        self.got: list[tuple[int, bytes]] = []
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def read(self, n: int, timeout: float = 20.0) -> list[tuple[int, bytes]]:
        """Until ``n`` frames (replies and control) came, or the server closed."""
        end = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                break
            if not chunk:
                break
            self.got += self.frames.feed(chunk)
        return self.got

    def replies(self) -> list[dict]:
        return [json.loads(p) for op, p in self.got if op < CONTROL]

    def close(self) -> None:
        self.sock.close()


def close_code(frame: bytes) -> int:
    return int.from_bytes(frame[2:4], "big")


def test_frames_pipelined_with_the_handshake_fragments_and_pings_all_come_through(url):
    raw = Raw(url, first=push(0) + push(1))  # sent before the server's 101 arrives
    try:
        text = json.dumps({"getSignal": ["Raw.S"]}).encode()
        raw.sock.sendall(push(2)
                         + masked(text[:5], fin=False) + masked(b"ping!", opcode=9)
                         + masked(text[5:12], opcode=0, fin=False)
                         + masked(text[12:], opcode=0))
        got = raw.read(5)
        assert (10, b"ping!") in [(op, p[2:]) for op, p in got if op == 10]  # the pong, unmasked
        replies = raw.replies()
        assert replies[:3] == [{"error": False, "sent": True}] * 3
        assert replies[3]["signals"]["Raw.S"][1] == [0.0, 1.0, 2.0]
    finally:
        raw.close()


@pytest.mark.parametrize(("frame", "code"), [
    (b"\x81\x05hello", 1002),                        # not masked
    (b"\xc1\x80abcd", 1002),                          # a reserved bit
    (masked(b"x" * 126, opcode=9), 1002),             # a control frame over 125 bytes
    (b"\x81\xff" + (1 << 40).to_bytes(8, "big"), 1009),  # larger than max_message
])
def test_a_broken_frame_fails_the_connection_with_its_close_code(url, frame, code):
    raw = Raw(url)
    try:
        raw.sock.sendall(push(0) + frame)
        got = raw.read(3, timeout=10)
        assert json.loads(got[0][1]) == {"error": False, "sent": True}  # answered, then closed
        closes = [p for op, p in got if op == CONTROL]
        assert closes and close_code(closes[0]) == code
        assert raw.sock.recv(1 << 16) == b""  # and the server closes the socket
    finally:
        raw.close()


def test_a_client_that_never_answers_pings_is_closed_after_the_timeout():
    with Instance.start(QUICK_PINGS) as inst:
        raw = Raw(ws(inst))
        try:
            t0 = time.monotonic()
            got = raw.read(10, timeout=15)  # pings arrive; this client never answers them
            assert any(op == 9 for op, _ in got)
            closes = [p for op, p in got if op == CONTROL]
            assert closes and close_code(closes[0]) == 1011, got  # keepalive ping timeout
            assert time.monotonic() - t0 < 10
        finally:
            raw.close()


def test_a_burst_the_server_cannot_take_at_once_is_paused_not_dropped(url):
    """60,000 pushes while the client reads nothing for 2 s: the server stops reading
    (TCP pushes back), then every push is acknowledged and stored."""
    n = 60_000
    raw = Raw(url)
    try:
        raw.sock.sendall(push(0, "Burst"))  # the first push claims the signal
        raw.read(1)
        sender = threading.Thread(target=raw.sock.sendall,
                                  args=(b"".join(push(i, "Burst") for i in range(1, n)),))
        sender.start()
        time.sleep(2.0)
        raw.read(n, timeout=60)
        sender.join(30)
        assert not sender.is_alive()
        assert raw.replies().count({"error": False, "sent": True}) == n
        raw.sock.sendall(masked(json.dumps({"getSignal": {"dname": "Raw", "sname": "Burst",
                                                          "maxN": n + 1}})))
        last = raw.read(n + 1)[-1][1]
        assert json.loads(last)["signals"]["Raw.Burst"][1] == [float(i) for i in range(n)]
    finally:
        raw.close()
