"""The data model every layer shares: signal names and events."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rtoc.errors import EventError, SampleError, SignalError

PRIORITIES = (0, 1, 2)  # info, warning, error


def signal_name(device: str, signal: str) -> str:
    """The full name ``Device.Signal`` (RTOC's ``dname.sname``)."""
    return f"{device}.{signal}"


def split_name(name: str) -> tuple[str, str]:
    """``"Device.Signal"`` -> ``("Device", "Signal")``; the signal part may contain dots."""
    device, dot, signal = name.partition(".")
    if not dot or not device or not signal:
        raise SignalError(f"signal name {name!r} is not of the form Device.Signal", name)
    return device, signal


def check_part(kind: str, value: str) -> str:
    """A device or signal name: non-empty text without '/' (it becomes a bus topic)."""
    if not isinstance(value, str) or not value.strip():
        raise SignalError(f"{kind} name must be non-empty text, got {value!r}")
    if "/" in value or "\x00" in value:
        raise SignalError(f"{kind} name {value!r} must not contain '/' or NUL")
    return value


@dataclass(frozen=True)
class Event:
    """One event. ``time`` is unix seconds; ``priority`` 0 info, 1 warning, 2 error.

    ``device`` and ``signal`` may be empty: an event need not belong to a signal, and an
    event never creates one.
    """

    time: float
    text: str = ""
    device: str = ""
    signal: str = ""
    priority: int = 0
    id: str = ""
    value: object = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.priority not in PRIORITIES:
            raise EventError(f"event priority must be 0, 1 or 2, got {self.priority!r}")
        if not isinstance(self.text, str):
            raise EventError(f"event text must be a string, got {type(self.text).__name__}")
        if not self.id:
            # RTOC's default id, so actions that listen on it keep working
            digest = hashlib.sha1((self.signal + self.device + self.text).encode()).hexdigest()
            object.__setattr__(self, "id", digest)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Event:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class Notification:
    """A message for people (Telegram, the websocket, the dashboard) from an action or an
    automation: ``time`` unix s, ``priority`` 0 info, 1 warning, 2 error, ``source`` who
    sent it."""

    time: float
    text: str
    priority: int = 0
    source: str = ""

    def __post_init__(self):
        if self.priority not in PRIORITIES:
            raise EventError(f"notification priority must be 0, 1 or 2, got {self.priority!r}")
        if not isinstance(self.text, str):
            raise EventError(f"notification text must be a string, got {type(self.text).__name__}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Notification:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def as_batch(t: Any, y: Any, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``t``, ``y`` as contiguous float64[n] arrays; SampleError unless both are numeric
    (None, strings and objects are refused, not turned into NaN) and equally long."""
    if (t.__class__ is np.ndarray and y.__class__ is np.ndarray and t.dtype == np.float64
            and y.dtype == np.float64 and t.ndim == 1 and t.shape == y.shape
            and t.flags.c_contiguous and y.flags.c_contiguous):
        return t, y  # already right: the common case of a batch passed on
    where = f"{name}: " if name else ""
    try:
        ts, ys = np.asarray(t), np.asarray(y)
    except (TypeError, ValueError) as exc:  # ragged input
        raise SampleError(f"{where}samples must be numeric arrays: {exc}", name) from exc
    for label, arr in (("t", ts), ("y", ys)):
        if arr.dtype.kind not in "fiub":
            raise SampleError(f"{where}{label} must be numeric, got {arr.dtype} data", name)
    ts = np.ascontiguousarray(ts, dtype=np.float64).reshape(-1)
    ys = np.ascontiguousarray(ys, dtype=np.float64).reshape(-1)
    if ts.shape != ys.shape:
        raise SampleError(f"{where}t and y differ in length ({ts.shape[0]} != {ys.shape[0]})", name)
    return ts, ys
