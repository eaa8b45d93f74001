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
  long non-empty lists of numbers and names (or, for one sample, a number and a name),
  ``dname`` is text, ``unit`` is absent, text, or a list of text as long as ``y``, ``x`` is
  absent, null, a number or a list of numbers (of another length than ``y``: the samples
  are stamped ``now``, as RTOC did);
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
        last = None  # (device, name) of the entry used last: a stream repeats it
        entry: tuple = ()
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
            y, names, device = d.get("y"), d.get("sname"), d.get("dname")
            if type(device) is not str:
                break
            # one sample: y a number or [number], sname a name or [name] (RTOC's forms)
            if type(y) is list:
                if len(y) != 1:
                    if not self._take_several(d, y, names, device, now, writes, reply + j - first):
                        break
                    last = None
                    continue
                v = y[0]
            else:
                v = y
            n = names[0] if type(names) is list and len(names) == 1 else names
            if type(v) not in _NUMBER or type(n) is not str:
                break
            unit = d.get("unit", "")
            if type(unit) is not str:
                if type(unit) is not list or len(unit) != 1 or type(unit[0]) is not str:
                    break
                unit = unit[0]
            x = d.get("x")
            if x is None:
                t = now
            elif type(x) is list:
                if len(x) == 1 and type(x[0]) in _NUMBER:
                    t = x[0]
                elif all(type(e) in _NUMBER for e in x):
                    t = now
                else:
                    break
            elif type(x) in _NUMBER:
                t = x
            else:
                break
            if last is None or n != last[1] or device != last[0]:
                last = (device, n)
                entry = pending.get(last)
                if entry is None:
                    if not writes(f"{device}.{n}"):
                        break
                    entry = pending[last] = ([], [], unit, [])
            entry[0].append(t)
            entry[1].append(v)
            entry[3].append(reply + j - first)
        else:
            return len(messages) - first
        return j - first

    def _take_several(self, d: dict, y: list, names: object, device: str, now: float,
                      writes: Callable[[str], bool], reply: int) -> bool:
        """A message of several samples, of one signal or several (``sname[i]`` is the
        signal of ``y[i]``)."""
        k = len(y)
        if k == 0 or type(names) is not list or len(names) != k:
            return False
        for v in y:
            if type(v) not in _NUMBER:
                return False
        unit = d.get("unit", "")
        if type(unit) is str:
            units = None
        elif type(unit) is list and len(unit) == k:
            for u in unit:
                if type(u) is not str:
                    return False
            units = unit
        else:
            return False
        x = d.get("x")
        if x is not None:
            if type(x) is list:
                for v in x:
                    if type(v) not in _NUMBER:
                        return False
            elif type(x) not in _NUMBER:
                return False
        if type(x) is not list or len(x) != k:
            x = [now] * k
        pending = self.pending
        for n in names:
            if type(n) is not str or ((device, n) not in pending and not writes(f"{device}.{n}")):
                return False
        for i, (n, t, v) in enumerate(zip(names, x, y, strict=True)):
            entry = pending.get((device, n))
            if entry is None:
                entry = pending[(device, n)] = ([], [], unit if units is None else units[i], [])
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
