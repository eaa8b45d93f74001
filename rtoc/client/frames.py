"""The frames of the binary websocket subprotocol ``rtoc.bin.v1``: encode and decode.

The one codec of both ends: the server (:mod:`rtoc.frontends.websocket.binary_protocol.protocol`) and the
client (:mod:`rtoc.client`). Pure: no sockets, no clock.

Only BINARY websocket messages; byte 0 is the kind:

* ``0x01`` control: a msgpack map follows (requests, replies and pushes of control
  messages; the ops are described in the server's module).
* ``0x02`` data: ``len`` (4 bytes, little-endian) | msgpack header (``len`` bytes) |
  ``n`` float64 LE ``t`` | ``n`` float64 LE ``y``. Header ``{v: 1, sig: "Device.Signal",
  seq, n, lost, replace?}`` from the server (``seq``: ring sequence of the first sample, so a
  client sees every gap; ``lost``: samples the ring lost before the engine read them);
  ``{v: 1, sig, n, unit?, replace?, seq?, rate?}`` from a client (a push; ``seq`` is the
  client's own counter, echoed in errors; ``rate``, samples/s, sizes the ring of a signal
  the push creates). Encoders pad the header (a ``pad`` entry of zero bytes) so ``t``
  starts 8-byte aligned; decoders accept any alignment (an unaligned body is copied).
* ``0x03`` view data: same layout, header ``{v: 1, sig, n, width}`` (M4 points of buckets
  ``width`` s, server to client only).

Encrypted sessions seal whole frames (kind byte included) with :class:`rtoc.client.aead.Channel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from rtoc import wire
from rtoc.errors import RtocError

__all__ = ["SUBPROTOCOL", "VERSION", "CONTROL", "DATA", "VIEW", "MAX_HEADER", "MAX_NAME",
           "FrameError", "Control", "Data", "encode_control", "encode_data", "encode_view", "f8",
           "decode", "samples_in"]

SUBPROTOCOL = "rtoc.bin.v1"
VERSION = 1
CONTROL, DATA, VIEW = 0x01, 0x02, 0x03
MAX_HEADER = 1 << 16        # bytes of a data frame's msgpack header at most
MAX_NAME = 1024             # characters of a signal name
MAX_ITEMS = 1 << 16         # entries of one msgpack array or map in a control frame or header
MAX_TEXT = 1 << 20          # bytes of one msgpack string


class FrameError(RtocError, ValueError):
    """A frame that is not ``rtoc.bin.v1``; the message says what is wrong with it."""

    code = "bad_frame"
    http_status = 400
    blames_request = True  # a bad_frame reply blames the frame this side sent


@dataclass(frozen=True)
class Control:
    msg: dict


@dataclass(frozen=True)
class Data:
    """A data (or view) frame: ``t``/``y`` float64[n] (read-only views of the frame)."""

    name: str
    header: dict
    t: np.ndarray
    y: np.ndarray
    view: bool = False


def encode_control(msg: dict) -> bytes:
    """A control frame carrying ``msg`` (a map of msgpack-able values)."""
    return bytes((CONTROL,)) + wire.pack(msg)


def f8(a: Any) -> np.ndarray:
    """``a`` as a contiguous 1-d little-endian float64 array (no copy when it is one)."""
    return np.ascontiguousarray(a, dtype="<f8").reshape(-1)


def encode_data(header: dict, t: Any, y: Any, kind: int = DATA) -> bytes:
    """A data (or view, ``kind=VIEW``) frame: ``header`` gets ``v`` and ``n``; ``t``/``y``
    float64[n] (anything numpy turns into that). The header is padded so ``t`` is aligned."""
    ts, ys = f8(t), f8(y)
    if ts.shape != ys.shape:
        raise ValueError(f"t and y differ in length ({ts.shape[0]} != {ys.shape[0]})")
    head = {"v": VERSION, **header, "n": int(ts.shape[0])}
    packed = wire.pack(head)
    if (5 + len(packed)) % 8:
        pad = (-(5 + len(packed) + 6)) % 8  # "pad" key (4 bytes) + bin8 prefix (2) + pad
        for k in (pad, *range(8)):  # (a map past 15 entries grows by 2 bytes: then search)
            packed = wire.pack({**head, "pad": bytes(k)})
            if (5 + len(packed)) % 8 == 0:
                break
    return b"".join((bytes((kind,)), len(packed).to_bytes(4, "little"), packed,
                     ts.tobytes(), ys.tobytes()))


def encode_view(name: str, t: Any, y: Any, width: float) -> bytes:
    """A view frame: M4 points ``t``/``y`` float64[n] of buckets ``width`` s."""
    return encode_data({"sig": name, "width": float(width)}, t, y, VIEW)


def decode(frame: bytes | bytearray | memoryview) -> Control | Data:
    """The frame's content; raises FrameError (never anything else) when it is malformed."""
    size = len(frame)
    if size == 0:
        raise FrameError("empty frame")
    kind = frame[0]
    if kind == CONTROL:
        return Control(_unpack(frame[1:], "control frame"))
    if kind not in (DATA, VIEW):
        raise FrameError(f"unknown frame kind 0x{kind:02x} (0x01 control, 0x02 data, 0x03 view)")
    what = "data frame" if kind == DATA else "view frame"
    if size < 5:
        raise FrameError(f"truncated {what}: {size} bytes, the header length needs 5")
    hlen = int.from_bytes(frame[1:5], "little")
    if hlen > MAX_HEADER:
        raise FrameError(f"{what} header of {hlen} bytes (at most {MAX_HEADER})")
    if 5 + hlen > size:
        raise FrameError(f"truncated {what}: header of {hlen} bytes, {size - 5} follow")
    header = _unpack(frame[5:5 + hlen], f"{what} header")
    v = header.get("v", VERSION)
    if v != VERSION or isinstance(v, bool):
        raise FrameError(f"{what} version {v!r} (this end speaks {VERSION})")
    name = header.get("sig")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise FrameError(f"{what} header needs 'sig', a signal name (text of 1-{MAX_NAME} characters)")
    n = header.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise FrameError(f"{what} of {name}: header 'n' must be a sample count, got {n!r}")
    body = size - 5 - hlen
    if body != 16 * n:
        raise FrameError(f"{what} of {name}: header says n={n} ({16 * n} bytes of t and y), "
                         f"{body} bytes follow")
    off = 5 + hlen
    t = np.frombuffer(frame, "<f8", count=n, offset=off)
    y = np.frombuffer(frame, "<f8", count=n, offset=off + 8 * n)
    if n and not (t.flags.aligned and y.flags.aligned):
        t, y = t.copy(), y.copy()
    return Data(name, header, t, y, view=kind == VIEW)


def _unpack(data: Any, what: str) -> dict:
    """The msgpack map ``data`` holds. The websocket bounds the frame's size; the
    ``max_*_len`` bounds keep a small frame from claiming huge containers (msgpack
    otherwise sizes them by the whole buffer). Binary values (history's ``t``/``y``) may
    fill the frame."""
    raw = bytes(data)
    try:
        obj = msgpack.unpackb(raw, raw=False, strict_map_key=False, ext_hook=_no_ext,
                              timestamp=1, max_str_len=MAX_TEXT, max_bin_len=len(raw),
                              max_array_len=MAX_ITEMS, max_map_len=MAX_ITEMS)
    except Exception as exc:  # msgpack raises several unrelated types
        raise FrameError(f"{what}: not a msgpack message: {exc}") from None
    if not isinstance(obj, dict):
        raise FrameError(f"{what}: expected a msgpack map, got {type(obj).__name__}")
    return obj


def _no_ext(code: int, data: bytes) -> None:
    raise ValueError(f"msgpack extension type {code} is not accepted")


def samples_in(frame: bytes) -> int:
    """Samples a data/view frame carries (0 for control frames or garbage)."""
    try:
        f = decode(frame)
    except FrameError:
        return 0
    return len(f.t) if isinstance(f, Data) else 0
