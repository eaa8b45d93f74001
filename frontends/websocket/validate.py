"""What both websocket roads accept: names, numbers and limits, checked by one set of rules.

The JSON protocol (``json_protocol``) and ``rtoc.bin.v1`` (``binary_protocol``) check a
client's values here, so a name or a number one road takes the other takes too. A value of
the wrong shape is a :class:`BadRequest` (code ``bad_request``): the client's mistake,
answered, and the connection lives on. A name that breaks the naming rule is a SignalError
(code ``signal``), as everywhere in RTOC (``rtoc.model``).

Signal names are ``"Device.Signal"``: at most :data:`MAX_NAME` characters in all (the
binary frame header's limit), device and signal non-empty, neither containing ``/`` or NUL
(a name becomes a bus topic). A device name alone (``subscribe ["device", name]``) follows
the same rule (:func:`device_name`), and :func:`topic` is the only way a client's name
becomes a ZeroMQ subscription: libzmq keeps topics in a trie it walks recursively, so an
unchecked 1 MB name crashed the process (SIGSEGV) when it was unsubscribed.
"""

from __future__ import annotations

import math
from typing import Any

from rtoc.client.frames import MAX_NAME
from rtoc.errors import BadRequest, SignalError
from rtoc.model import check_part, split_name

__all__ = ["BadRequest", "MAX_NAME", "MAX_NAMES", "MAX_PASSWORD", "MAX_POINTS", "MAX_UNIT",
           "MAX_USER", "need", "signal_name", "device_name", "push_name", "names", "number",
           "integer", "topic"]

MAX_NAMES = 10_000          # names in one list (subscribe, getLatest, getSignal ...)
MAX_PASSWORD = 1024         # characters of a password or an authorize token
MAX_USER = 64               # characters of a user name in an encrypting hello
MAX_UNIT = 64               # characters of a unit in a binary push header
MAX_POINTS = 2_000_000      # points of one history / getSignal reply at most


def need(ok: bool, text: str) -> None:
    """Raise BadRequest(``text``) unless ``ok``."""
    if not ok:
        raise BadRequest(text)


def signal_name(name: str) -> tuple[str, str]:
    """``"Device.Signal"`` -> ``(device, signal)`` when the name follows the rule (module
    text); else a SignalError."""
    if len(name) > MAX_NAME:
        raise SignalError(f"signal name {name[:40]!r}... is longer than {MAX_NAME} characters",
                          name[:MAX_NAME])
    device, signal = split_name(name)
    check_part("device", device)
    check_part("signal", signal)
    return device, signal


def device_name(name: str) -> str:
    """A device name alone (what ``subscribe ["device", name]`` names): the device part of
    :func:`signal_name`'s rule, at most :data:`MAX_NAME` characters."""
    if not isinstance(name, str):
        raise BadRequest("a device name must be text")
    if len(name) > MAX_NAME:
        raise SignalError(f"device name {name[:40]!r}... is longer than {MAX_NAME} characters",
                          name[:MAX_NAME])
    check_part("device", name)
    if "." in name:
        raise SignalError(f"device name {name[:40]!r} must not contain '.'", name)
    return name


def topic(prefix: str, name: str, device: bool = False) -> bytes:
    """The bus topic ``prefix + name`` of a client's signal name (``device``: of a device's
    signals, ``prefix + name + "."``), so no client string reaches a ZeroMQ SUBSCRIBE
    unchecked. The names were checked in full when subscribed; this check runs for every
    name whenever the server's topics are recomputed, so it is only what keeps libzmq safe
    and the topic exact: at most :data:`MAX_NAME` characters, no ``/`` or NUL, a dot in a
    signal name and none in a device name (else a SignalError)."""
    if not (0 < len(name) <= MAX_NAME and "/" not in name and "\x00" not in name
            and ("." not in name if device else "." in name[1:-1])):
        raise SignalError(f"{'device' if device else 'signal'} name {name[:40]!r} cannot be "
                          f"a bus topic", name[:MAX_NAME])
    return f"{prefix}{name}{'.' if device else ''}".encode()


def push_name(device: str, signal: str) -> str:
    """The name of pushed samples, checked as :func:`signal_name` does from its parts (a
    push names device and signal apart: the JSON ``dname``/``sname``)."""
    check_part("device", device)
    check_part("signal", signal)
    name = f"{device}.{signal}"
    if len(name) > MAX_NAME:
        raise SignalError(f"signal name {name[:40]!r}... is longer than {MAX_NAME} characters",
                          name[:MAX_NAME])
    return name


def names(value: Any, what: str, alternative: str = "") -> list[str]:
    """A list of at most :data:`MAX_NAMES` signal names, each checked by
    :func:`signal_name`. ``alternative`` is added to the message (``' or "*"'``)."""
    need(isinstance(value, list) and len(value) <= MAX_NAMES
         and all(isinstance(v, str) for v in value),
         f"{what} must be a list of \"Device.Signal\" names (at most {MAX_NAMES}){alternative}")
    for v in value:
        signal_name(v)
    return value


def number(v: Any, what: str, unit: str = "", nan: bool = True) -> float:
    """A JSON/msgpack number (not a boolean) as a float; NaN refused unless ``nan``.
    ``unit`` is named in the message (``"unix seconds"``)."""
    ok = isinstance(v, int | float) and not isinstance(v, bool)
    need(ok and (nan or not (isinstance(v, float) and math.isnan(v))),
         f"{what} must be a number{f' ({unit})' if unit else ''}")
    try:
        return float(v)
    except OverflowError:
        raise BadRequest(f"{what} is too large for a float64") from None


def integer(v: Any, what: str, lo: int, hi: int) -> int:
    """An integer (not a boolean) in ``lo..hi``."""
    need(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi,
         f"{what} must be an integer {lo}..{hi}")
    return v
