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
    sent it.

    RTOC's plugins could send more than text (``telegram_send_photo``/``_document``/
    ``_plot``): ``file`` (bytes, at most :data:`MAX_ATTACHMENT`) named ``file_name``, of
    ``file_kind`` "photo" or "document"; or ``plot``, the data of a picture the Telegram
    bot draws (:func:`plot_payload`). ``permission``: the Telegram role a user needs to get
    it ("" or "read": every listening user; "write", "admin")."""

    time: float
    text: str
    priority: int = 0
    source: str = ""
    permission: str = ""
    file: bytes | None = None
    file_name: str = ""
    file_kind: str = ""
    plot: dict | None = None

    def __post_init__(self):
        if self.priority not in PRIORITIES:
            raise EventError(f"notification priority must be 0, 1 or 2, got {self.priority!r}")
        if not isinstance(self.text, str):
            raise EventError(f"notification text must be a string, got {type(self.text).__name__}")
        if self.permission not in NOTIFY_PERMISSIONS:
            raise EventError(f"notification permission must be one of {', '.join(NOTIFY_PERMISSIONS[1:])}, "
                             f"got {self.permission!r}")
        if self.file is not None:
            if not isinstance(self.file, bytes) or self.file_kind not in ("photo", "document"):
                raise EventError("a notification's file must be bytes of kind 'photo' or 'document'")
            if len(self.file) > MAX_ATTACHMENT:
                raise EventError(f"a notification's file may have {MAX_ATTACHMENT} bytes at most, "
                                 f"{self.file_name or 'this one'} has {len(self.file)}")
        if self.plot is not None and not isinstance(self.plot, dict):
            raise EventError("a notification's plot must be a map")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: v for k, v in d.items() if v not in (None, "") or k in ("text", "source")}

    @classmethod
    def from_dict(cls, d: dict) -> Notification:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


NOTIFY_PERMISSIONS = ("", "read", "write", "admin")
MAX_ATTACHMENT = 10 << 20  # bytes: Telegram's limit for a photo sent by upload
MAX_PLOT_POINTS = 100_000  # points of all series of a plot notification together
MAX_PLOT_SERIES = 16       # series in one plot notification


def plot_payload(signals: dict, title: str = "", events: Any = ()) -> dict:
    """RTOC's ``telegram_send_plot`` arguments as a notification's ``plot``: ``signals``
    ``{name: [x, y]}`` (x unix s), ``events`` ``[[x, text], ...]``. Series are float64
    bytes; over :data:`MAX_PLOT_POINTS` points in all, each is thinned evenly (a warning
    belongs in the caller's log, the picture still goes). Raises EventError naming what is
    wrong."""
    if not isinstance(signals, dict) or not signals:
        raise EventError("telegram_send_plot needs signals as {name: [x, y]}")
    if len(signals) > MAX_PLOT_SERIES:
        raise EventError(f"telegram_send_plot takes at most {MAX_PLOT_SERIES} signals, got {len(signals)}")
    series = []
    for name, xy in signals.items():
        try:
            x, y = xy
            t, v = as_batch(x, y, str(name))
        except (TypeError, ValueError, SampleError) as exc:
            raise EventError(f"telegram_send_plot: signal {name!r} must be [x, y] of numbers of one length ({exc})") from None
        series.append([str(name)[:100], t, v])
    total = sum(len(t) for _, t, _ in series)
    if total > MAX_PLOT_POINTS:
        for s in series:
            step = int(np.ceil(total / MAX_PLOT_POINTS))
            s[1], s[2] = s[1][::step], s[2][::step]
    marks = []
    for e in events or ():
        try:
            marks.append([float(e[0]), str(e[1])[:200] if len(e) > 1 else ""])
        except (TypeError, ValueError, IndexError):
            raise EventError(f"telegram_send_plot: an event must be [x, text], got {e!r}") from None
    return {"title": str(title)[:200], "series": [{"name": n, "t": t.tobytes(), "y": v.tobytes()} for n, t, v in series],
            "events": marks[:1000]}


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
