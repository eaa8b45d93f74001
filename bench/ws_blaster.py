"""A JSON websocket client that costs its process almost nothing per message.

For measuring the server's ingest: a client built on ``websockets`` spends 20-30 us per
``send`` on these machines, so it, not the server, would be the limit. This one encodes
every frame before the clock starts (RFC 6455 framing, each frame masked with its own
random key), writes them in blocks of ``block`` frames over a plain socket while at most
``window`` messages wait for their reply, and counts replies with the server's own frame
reader. Only the bench uses it.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from urllib.parse import urlsplit

import orjson
from rtoc.frontends.websocket.json_protocol.framing import FrameReader
from websockets.speedups import apply_mask

SENT = b'{"error":false,"sent":true}'


def frames(messages: list[bytes]) -> list[bytes]:
    keys = os.urandom(4 * len(messages))
    out = []
    for i, m in enumerate(messages):
        key = keys[4 * i:4 * i + 4]
        n = len(m)
        head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0xFE)) + n.to_bytes(2, "big")
        out.append(head + key + apply_mask(m, key))
    return out


def frames_of_close() -> bytes:
    key = os.urandom(4)
    return bytes((0x88, 0x82)) + key + apply_mask((1000).to_bytes(2, "big"), key)


def connect(url: str) -> socket.socket:
    u = urlsplit(url)
    s = socket.create_connection((u.hostname, u.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        status = head.split(b"\r\n", 1)[0]
        raise ConnectionError(f"handshake refused: {status!r}")
    return s


def blast(url: str, messages: list[bytes], window: int = 20_000, block: int = 500) -> dict:
    """Send ``messages`` (JSON texts); returns acknowledged (``sent: true`` replies),
    other replies, and the seconds from the first send to the last reply."""
    data = frames(messages)
    s = connect(url)
    done = threading.Condition()
    count = {"replies": 0, "sent": 0, "other": []}

    def reader() -> None:
        r = FrameReader(None, masked=False)
        while count["replies"] < len(data):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            sent = other = 0
            for _, payload in r.feed(chunk):
                if payload == SENT or orjson.loads(payload).get("sent") is True:
                    sent += 1
                elif len(count["other"]) < 5:
                    count["other"].append(payload[:200].decode(errors="replace"))
                    other += 1
                else:
                    other += 1
            with done:
                count["replies"] += sent + other
                count["sent"] += sent
                done.notify_all()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    t0 = time.perf_counter()
    for i in range(0, len(data), block):
        with done:
            done.wait_for(lambda i=i: i - count["replies"] <= window - block, timeout=30)
        s.sendall(b"".join(data[i:i + block]))
    th.join(timeout=120)
    seconds = time.perf_counter() - t0
    s.sendall(frames_of_close())
    s.close()
    return {"messages": len(data), "acknowledged": count["sent"], "replies": count["replies"],
            "other_replies": count["other"], "seconds": seconds}
