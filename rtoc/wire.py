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
VIEW_PREFIX = "view/"
AGG_PREFIX = "agg/"
AGG_COLUMNS = ("start", "mean", "min", "max", "count", "n")  # frames after the header

MAX_MESSAGE = 64 << 20  # bytes of one msgpack message at most


def pack(obj: dict) -> bytes:
    """msgpack-encode a control or bus message (numpy scalars become Python numbers)."""
    return msgpack.packb(obj, use_bin_type=True, default=_default)


def unpack(data: bytes, limit: int | None = MAX_MESSAGE) -> dict:
    """Decode one msgpack message; raises ValueError on garbage (never executes anything)
    and on messages longer than ``limit`` bytes (None: no limit, for transports that
    bound their messages themselves)."""
    if limit is not None and len(data) > limit:
        raise ValueError(f"message of {len(data)} bytes exceeds {limit}")
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
                lost: int = 0, replace: bool = False, resumed: int = 0) -> list:
    """The frames of one data message (``t``/``y``: float64[n], contiguous). ``resumed``:
    the engine restarted and went on at this seq (what lay before it was skipped)."""
    header = {"v": VERSION, "sig": sig, "seq": seq, "n": int(t.shape[0]), "lost": lost}
    if replace:
        header["replace"] = True
    if resumed:
        header["resumed"] = resumed
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


def view_frames(name: str, sig: int, t: np.ndarray, y: np.ndarray, width: float) -> list:
    """A ``view/<name>`` message: M4 points (``t``/``y`` float64[n]) of buckets ``width`` s."""
    header = {"v": VERSION, "sig": sig, "n": int(t.shape[0]), "width": width}
    return [(VIEW_PREFIX + name).encode(), pack(header), t, y]


def agg_frames(name: str, sig: int, width: float, columns: list[np.ndarray]) -> list:
    """An ``agg/<name>`` message: rows of one aggregate level, ``width`` s each; columns in
    the order of ``AGG_COLUMNS`` (start, mean, min, max: float64; count, n: int64)."""
    header = {"v": VERSION, "sig": sig, "n": int(columns[0].shape[0]), "width": width}
    return [(AGG_PREFIX + name).encode(), pack(header), *columns]


def parse_view(frames: list) -> tuple[str, dict, np.ndarray, np.ndarray]:
    """``(name, header, t, y)`` of a view message; raises ValueError when malformed."""
    if len(frames) != 4:
        raise ValueError(f"view message has {len(frames)} frames, expected 4")
    topic = bytes(frames[0]).decode()
    header = unpack(bytes(frames[1]))
    t, y = np.frombuffer(frames[2], dtype="<f8"), np.frombuffer(frames[3], dtype="<f8")
    if t.shape != y.shape or header.get("n") != t.shape[0]:
        raise ValueError(f"view message {topic}: header n={header.get('n')} but {t.shape[0]} points")
    return topic[len(VIEW_PREFIX):], header, t, y


def parse_agg(frames: list) -> tuple[str, dict, dict[str, np.ndarray]]:
    """``(name, header, {column: array})`` of an aggregate message."""
    if len(frames) != 2 + len(AGG_COLUMNS):
        raise ValueError(f"aggregate message has {len(frames)} frames, expected {2 + len(AGG_COLUMNS)}")
    topic = bytes(frames[0]).decode()
    header = unpack(bytes(frames[1]))
    cols = {c: np.frombuffer(f, dtype="<i8" if c in ("count", "n") else "<f8")
            for c, f in zip(AGG_COLUMNS, frames[2:], strict=True)}
    if any(a.shape[0] != header.get("n") for a in cols.values()):
        raise ValueError(f"aggregate message {topic}: columns differ from n={header.get('n')}")
    return topic[len(AGG_PREFIX):], header, cols
