"""Wire formats of the bus and the control plane: msgpack headers, raw numpy frames.

Never pickle. Every header carries ``v`` (the format version). Data messages are
``[topic, header, t bytes, y bytes]`` with ``t``/``y`` little-endian float64.
"""

from __future__ import annotations

import msgpack
import numpy as np

VERSION = 1
DATA_PREFIX = "data/"
EVENT_TOPIC = "event"
META_TOPIC = "meta"
NOTIFY_TOPIC = "notify"

MAX_MESSAGE = 64 << 20  # bytes of one msgpack message at most


def pack(obj: dict) -> bytes:
    """msgpack-encode a control or bus message (numpy scalars become Python numbers)."""
    return msgpack.packb(obj, use_bin_type=True, default=_default)


def unpack(data: bytes) -> dict:
    """Decode one msgpack message; raises ValueError on garbage (never executes anything)."""
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_no_ext,
                              timestamp=1)  # the built-in timestamp ext -> float seconds
    except Exception as exc:  # msgpack raises several unrelated types
        raise ValueError(f"not a msgpack message: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"expected a msgpack map, got {type(obj).__name__}")
    return obj


def _no_ext(code: int, data: bytes):
    raise ValueError(f"msgpack extension type {code} is not accepted")


def _default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def data_topic(name: str) -> bytes:
    return (DATA_PREFIX + name).encode()


def data_frames(name: str, sig: int, seq: int, t: np.ndarray, y: np.ndarray,
                lost: int = 0, replace: bool = False) -> list:
    """The frames of one data message (``t``/``y``: float64[n], contiguous)."""
    header = {"v": VERSION, "sig": sig, "seq": seq, "n": int(t.shape[0]), "lost": lost}
    if replace:
        header["replace"] = True
    return [data_topic(name), pack(header), t, y]


def parse_data(frames: list) -> tuple[str, dict, np.ndarray, np.ndarray]:
    """``(name, header, t, y)`` of a data message; raises ValueError when malformed."""
    if len(frames) != 4:
        raise ValueError(f"data message has {len(frames)} frames, expected 4")
    topic = bytes(frames[0]).decode()
    if not topic.startswith(DATA_PREFIX):
        raise ValueError(f"not a data topic: {topic!r}")
    header = unpack(bytes(frames[1]))
    t = np.frombuffer(frames[2], dtype="<f8")
    y = np.frombuffer(frames[3], dtype="<f8")
    if t.shape != y.shape or header.get("n") != t.shape[0]:
        raise ValueError(f"data message {topic}: header n={header.get('n')} but {t.shape[0]}/{y.shape[0]} samples")
    return topic[len(DATA_PREFIX):], header, t, y
