"""Websocket frames in whole batches: split what the socket delivered, unmask, reassemble.

The ``websockets`` library parses one frame per generator step (about 5 us a frame on this
project's 2-core machines), which caps a JSON connection below 200 k messages/s before any
message is read. A client that streams single-sample pushes sends thousands of small frames
per TCP read, so :class:`FrameReader` handles a read at once: one numba kernel finds every
complete frame in it and unmasks the payloads in place, and a short Python loop turns them
into messages. It is a pure core (bytes in, messages out, no socket); the server's
connection class (``batch_conn.py``) feeds it and hands control frames (ping, pong, close)
back to ``websockets`` unchanged, so the handshake, keepalive and closing stay the library's.

RFC 6455 rules it enforces, naming the fault as ``websockets`` does: client frames masked
(server frames not), no reserved bits (no extension is negotiated), known opcodes, control
frames final and at most 125 bytes, continuations only inside a fragmented message, and a
message at most ``max_size`` bytes (close code 1009; everything else 1002). After a fault
the reader stops: the connection is failed.

Text payloads stay UTF-8 bytes: the protocol core checks the encoding and answers an
invalid message with an error (the connection stays open), as it answers bad JSON.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["CONTROL", "FrameReader", "encode", "encode_masked", "warm_up"]

CONTROL = 8           # opcodes >= 8 are control frames: close 8, ping 9, pong 10
TEXT, BINARY = 1, 2
PROTOCOL_ERROR, MESSAGE_TOO_BIG = 1002, 1009
_NEED_HEADER = -1


@njit(cache=True, nogil=True)
def _scan(buf, n, max_size, want_mask, meta):  # pragma: no cover - compiled
    """Find complete frames in ``buf[:n]``, unmask their payloads in place.

    Fills ``meta[k] = (first header byte, payload start, payload length, frame start,
    frame end)``. Returns (frames, bytes consumed, status, need): status 0 = ran out of
    data (``need``: bytes the next frame needs in all, or -1 while its header is short),
    1 = a frame larger than ``max_size`` (its header in ``meta[k]``), 2 = wrong masking.
    """
    pos = 0
    k = 0
    while k < meta.shape[0]:
        avail = n - pos
        if avail < 2:
            return k, pos, 0, _NEED_HEADER
        b0 = np.int64(buf[pos])
        b1 = np.int64(buf[pos + 1])
        masked = b1 >> 7
        length = b1 & 127
        head = 2
        if length == 126:
            if avail < 4:
                return k, pos, 0, _NEED_HEADER
            length = (np.int64(buf[pos + 2]) << 8) | np.int64(buf[pos + 3])
            head = 4
        elif length == 127:
            if avail < 10:
                return k, pos, 0, _NEED_HEADER
            length = 0
            for i in range(8):
                length = (length << 8) | np.int64(buf[pos + 2 + i])
            head = 10
        meta[k, 0] = b0
        meta[k, 3] = pos
        if masked != want_mask:
            return k, pos, 2, 0
        if length < 0 or length > max_size:  # a set top bit reads as negative: too big
            meta[k, 2] = length
            return k, pos, 1, 0
        if masked:
            head += 4
        total = head + length
        if avail < total:
            return k, pos, 0, total
        start = pos + head
        if masked:
            m = buf[start - 4:start]
            for i in range(length):
                buf[start + i] ^= m[i & 3]
        meta[k, 1] = start
        meta[k, 2] = length
        meta[k, 4] = pos + total
        pos += total
        k += 1
    return k, pos, 0, _NEED_HEADER


class FrameReader:
    """Reassembles the messages of one connection's byte stream.

    ``feed(data)`` returns what became complete, in order: ``(TEXT, payload)`` and
    ``(BINARY, payload)`` for data messages (fragments joined), ``(opcode, raw frame)`` for
    control frames (``opcode >= CONTROL``; the raw bytes as received, still masked). After a
    fault, :attr:`fault` is ``(close code, reason)`` and nothing more is read; after a close
    frame nothing more is read either.
    """

    def __init__(self, max_size: int | None = 1 << 20, *, masked: bool = True):
        self.max_size = (1 << 62) if max_size is None else int(max_size)
        self.masked = masked
        self.fault: tuple[int, str] | None = None
        self.closed = False
        self._rest: list[bytes] = []      # received, not yet a complete frame
        self._rest_len = 0
        self._need = 0                    # bytes the incomplete frame needs (0: unknown)
        self._parts: list[bytes] | None = None  # fragments of the message being assembled
        self._opcode = 0
        self._size = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return self._rest_len + self._size

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self.fault is not None or self.closed or not data:
            return []
        self._rest.append(data)
        self._rest_len += len(data)
        if self._rest_len < self._need:  # a large frame arriving in pieces: no rescans
            return []
        whole = self._rest[0] if len(self._rest) == 1 else b"".join(self._rest)
        buf = np.frombuffer(whole, np.uint8).copy()
        min_frame = 6 if self.masked else 2
        meta = np.empty((len(whole) // min_frame + 1, 5), np.int64)
        k, used, status, need = _scan(buf, len(whole), self.max_size, int(self.masked), meta)
        plain = buf[:used].tobytes() if self.masked else whole
        heads = meta[:k, 0]
        if self._parts is None and ((heads == 0x81) | (heads == 0x82)).all():
            # the common case: whole text/binary messages only, taken without a branch each
            out = [(op, plain[a:a + n]) for op, a, n in
                   zip((heads & 15).tolist(), meta[:k, 1].tolist(), meta[:k, 2].tolist(), strict=True)]
        else:
            out = self._messages(whole, plain, meta[:k].tolist())
        if status == 1 and self.fault is None:
            self._fail(MESSAGE_TOO_BIG, f"frame of {int(meta[k, 2])} bytes is larger than "
                                        f"the limit of {self.max_size} bytes")
        elif status == 2 and self.fault is None:
            self._fail(PROTOCOL_ERROR, "incorrect masking" if self.masked else "unexpected mask")
        rest = whole[used:] if used < len(whole) else b""
        self._rest = [rest] if rest else []
        self._rest_len = len(rest)
        self._need = need if need > 0 else 0
        return out

    def _messages(self, whole: bytes, plain: bytes, frames: list) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for b0, start, length, fstart, fend in frames:
            opcode = b0 & 15
            if b0 & 0x70:
                self._fail(PROTOCOL_ERROR, "reserved bits must be 0")
            elif opcode >= CONTROL:
                if opcode > 10:
                    self._fail(PROTOCOL_ERROR, f"invalid opcode: {opcode}")
                elif not b0 & 0x80 or length > 125:
                    self._fail(PROTOCOL_ERROR, "fragmented or oversized control frame")
                else:
                    out.append((opcode, whole[fstart:fend]))
                    self.closed = opcode == CONTROL
            elif opcode == 0:
                self._continue(plain[start:start + length], b0 & 0x80, out)
            elif opcode > BINARY:
                self._fail(PROTOCOL_ERROR, f"invalid opcode: {opcode}")
            elif self._parts is not None:
                self._fail(PROTOCOL_ERROR, "expected a continuation frame")
            elif b0 & 0x80:
                out.append((opcode, plain[start:start + length]))
            else:
                self._opcode, self._parts, self._size = opcode, [], 0
                self._continue(plain[start:start + length], 0, out)
            if self.fault is not None or self.closed:
                break
        return out

    def _continue(self, payload: bytes, final: int, out: list) -> None:
        if self._parts is None:
            self._fail(PROTOCOL_ERROR, "unexpected continuation frame")
            return
        self._size += len(payload)
        if self._size > self.max_size:
            self._fail(MESSAGE_TOO_BIG, f"message of over {self.max_size} bytes "
                                        f"is larger than the limit")
            return
        self._parts.append(payload)
        if final:
            out.append((self._opcode, b"".join(self._parts)))
            self._parts, self._size = None, 0

    def _fail(self, code: int, reason: str) -> None:
        self.fault = (code, reason)
        self._parts, self._size = None, 0


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernel now, not in the first client's read."""
    FrameReader().feed(encode_masked(b"{}", b"rtoc"))


def _header(first: int, n: int, mask_bit: int) -> bytes:
    if n < 126:
        return bytes((first, mask_bit | n))
    if n < 1 << 16:
        return bytes((first, mask_bit | 126)) + n.to_bytes(2, "big")
    return bytes((first, mask_bit | 127)) + n.to_bytes(8, "big")


def encode(payload: bytes, opcode: int = TEXT) -> bytes:
    """One final, unmasked frame (what a server sends)."""
    return _header(0x80 | opcode, len(payload), 0) + payload


def encode_masked(payload: bytes, mask: bytes, opcode: int = TEXT) -> bytes:
    """One final frame masked with ``mask`` (4 bytes; what a client sends)."""
    data = np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), len(payload))
    return _header(0x80 | opcode, len(payload), 0x80) + mask + data.tobytes()
