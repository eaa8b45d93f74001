"""The data push's fast road: plain pushes of a batch gathered per signal, written once.

A device that streams sends one small message per sample, ``{"y": [v], "x": [t],
"sname": ["S"], "dname": "D"}``; the full protocol (the limit check, the parser, the key
table, the push command) costs about 11 us each, the ring write not counted. With
:class:`PushGather` a batch costs about 2 us per such message: ``orjson`` parses it, a
few type checks confirm the plain shape, and its samples join the signal's list; the
protocol writes each list into its ring once per batch (``JsonProtocol.handle_batch``).
(``pytest bench/test_ws_push.py --benchmark-only``: 10.8 vs 2.2 us median, 5.0x.)

It takes a message only when the full road would accept it and answer exactly
``{"error": false, "sent": true}``, so the two roads cannot differ:

* the message is short enough that no limit but the number length can be passed (nesting
  is 2 in the plain shape) and no run of number characters is longer than the limit;
* it parses with ``orjson`` (which refuses NaN/Infinity tokens, invalid UTF-8 and integers
  beyond 64 bits: those take the full road and its answers);
* the keys are push keys only, ``plot`` is absent or false, ``y`` and ``sname`` are equally
  long non-empty lists of numbers and names, ``dname`` and ``unit`` are text, ``x`` is absent
  or a list of numbers (of another length: the samples are stamped ``now``, as RTOC did);
* this process already writes every named signal (``World.writes``): the names were
  checked when the signal was claimed and the write cannot be refused.

Anything else, including the first push of a signal, takes the full road.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import orjson
from rtoc.frontends.websocket.json_protocol.guard import Limits, number_run_over

__all__ = ["SENT", "PushGather"]

#: The reply to an accepted push. Shared by every fast-road reply: never mutate it.
SENT = {"error": False, "sent": True}
FAST_MAX = 4096          # bytes of a message the fast road looks at
_KEYS = frozenset(("y", "x", "sname", "dname", "unit", "plot"))
_NUMBER = (float, int)   # exact types: bool is not a number here


class PushGather:
    """Samples of plain pushes per (device, signal), with the replies that promised them."""

    def __init__(self, limits: Limits):
        self.max_len = min(FAST_MAX, limits.max_bytes, limits.max_string_chars, limits.max_items)
        self.usable = limits.max_depth >= 2
        self.max_number = limits.max_number_chars
        #: (device, signal) -> (t values, y values, unit, indices of the replies)
        self.pending: dict[tuple[str, str], tuple[list, list, str, list[int]]] = {}

    def numbers_short(self, messages: list) -> bool:
        """False when some message of the batch may hold a number longer than the limit
        (one search over the whole batch; then each message is checked on its own)."""
        joined = b" ".join([m for m in messages if type(m) is bytes])
        return not number_run_over(joined, self.max_number)

    def take(self, messages: list, first: int, now: float, writes: Callable[[str], bool],
             reply: int, numbers_checked: bool = True) -> int:
        """Gather the plain pushes (see the module text) among ``messages[first:]`` up to
        the first that is not one; returns how many were taken. ``reply``: the index the
        first one's reply will have in the batch's replies (the others follow)."""
        if not self.usable:
            return 0
        loads, decode_error, max_len = orjson.loads, orjson.JSONDecodeError, self.max_len
        max_number = None if numbers_checked else self.max_number
        pending = self.pending
        j = first
        for j in range(first, len(messages)):  # noqa: B007 - j is the count taken
            raw = messages[j]
            if type(raw) is not bytes or len(raw) > max_len:
                break
            if max_number is not None and number_run_over(raw, max_number):
                break
            try:
                d = loads(raw)
            except decode_error:
                break
            if type(d) is not dict or not d.keys() <= _KEYS or d.get("plot", False) is not False:
                break
            y, names, device, unit = d.get("y"), d.get("sname"), d.get("dname"), d.get("unit", "")
            if (type(y) is not list or type(names) is not list or type(device) is not str
                    or type(unit) is not str or not y or len(names) != len(y)):
                break
            x = d.get("x")
            if len(y) == 1:  # one sample: the streaming device's message, kept short
                v, n = y[0], names[0]
                if type(v) not in _NUMBER or type(n) is not str:
                    break
                if x is None:
                    t = now
                elif type(x) is list and len(x) == 1 and type(x[0]) in _NUMBER:
                    t = x[0]
                elif type(x) is list and all(type(e) in _NUMBER for e in x):
                    t = now
                else:
                    break
                entry = pending.get((device, n))
                if entry is None:
                    if not writes(f"{device}.{n}"):
                        break
                    entry = pending[(device, n)] = ([], [], unit, [])
                entry[0].append(t)
                entry[1].append(v)
                entry[3].append(reply + j - first)
            elif not self._take_several(d, y, names, device, unit, x, now, writes,
                                        reply + j - first):
                break
        else:
            return len(messages) - first
        return j - first

    def _take_several(self, d: dict, y: list, names: list, device: str, unit: str,
                      x: list | None, now: float, writes: Callable[[str], bool],
                      reply: int) -> bool:
        for v in y:
            if type(v) not in _NUMBER:
                return False
        if x is not None:
            if type(x) is not list:
                return False
            for v in x:
                if type(v) not in _NUMBER:
                    return False
        if x is None or len(x) != len(y):
            x = [now] * len(y)
        pending = self.pending
        for n in names:
            if type(n) is not str or ((device, n) not in pending and not writes(f"{device}.{n}")):
                return False
        for n, t, v in zip(names, x, y, strict=True):
            entry = pending.get((device, n))
            if entry is None:
                entry = pending[(device, n)] = ([], [], unit, [])
            entry[0].append(t)
            entry[1].append(v)
            entry[3].append(reply)
        return True

    def drain(self) -> list[tuple[str, str, str, np.ndarray, np.ndarray, list[int]]]:
        """What was gathered, per signal: (device, signal, unit, t, y, reply indices)."""
        out = [(dev, sig, unit, np.array(t, np.float64), np.array(y, np.float64), idx)
               for (dev, sig), (t, y, unit, idx) in self.pending.items()]
        self.pending.clear()
        return out
