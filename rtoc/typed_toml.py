"""TOML decoded into frozen, typed dataclasses, and the line a key stands on.

:func:`decode` turns a parsed TOML table into a dataclass tree, checking every value
against its type hint (unions, Literal, tuples, lists, dicts, nested dataclasses, and types
that validate themselves with ``from_dict``); an unknown key, a missing one or a wrong type
raises :class:`ConfigError` naming the key path (``drivers[1].samplerate``).
:func:`line_of` finds the line of a key path in the TOML text, for the error message.
rtoc.config applies both to rtoc.toml.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from typing import Any

from rtoc.errors import ConfigError, RuleError


def decode(cls: type, raw: Any, path: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"must be a table, got {type(raw).__name__}", path or "<root>")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"unknown key (known: {', '.join(sorted(fields))})", key)
    values = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError("is required", key)
            continue
        values[name] = _value(hints[name], raw[name], key)
    return cls(**values)


def _value(tp: Any, raw: Any, key: str) -> Any:
    """``raw`` (as tomllib gives it) checked against the type hint ``tp``; a mismatch raises
    a ConfigError naming ``key``, the key the value belongs to, never its table."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return raw
    if hasattr(tp, "from_dict"):  # event rules and actions validate themselves
        try:
            return tp.from_dict(raw)
        except RuleError as exc:
            raise ConfigError(exc.reason, f"{key}.{exc.key}" if exc.key else key) from None
    if dataclasses.is_dataclass(tp):
        return decode(tp, raw, key)
    if origin in (typing.Union, types.UnionType):
        return _union(typing.get_args(tp), raw, key)
    if origin is typing.Literal:
        if not _shape_fits(tp, raw):
            raise ConfigError(f"must be {_type_name(tp)}, got {raw!r}", key)
        return raw
    if origin in (tuple, list):
        if not isinstance(raw, list):
            raise ConfigError(f"must be an array, got {type(raw).__name__}", key)
        args = typing.get_args(tp) or (Any, Ellipsis)
        if origin is list or args[-1] is Ellipsis:
            items = [_value(args[0], r, f"{key}[{i}]") for i, r in enumerate(raw)]
        elif len(raw) != len(args):
            raise ConfigError(f"must be an array of {len(args)} items, got {len(raw)}", key)
        else:
            items = [_value(t, r, f"{key}[{i}]") for i, (t, r) in enumerate(zip(args, raw, strict=True))]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(raw, dict):
            raise ConfigError(f"must be a table, got {type(raw).__name__}", key)
        item = (typing.get_args(tp) or (str, Any))[1]
        return {k: _value(item, v, f"{key}.{k}") for k, v in raw.items()}
    if tp is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if not _fits(tp, raw):
        raise ConfigError(f"must be {_type_name(tp)}, got {type(raw).__name__} {raw!r}", key)
    return raw


def _union(members: tuple, raw: Any, key: str) -> Any:
    """The first member of a union that ``raw`` decodes as: members of ``raw``'s own type
    first (``int | float`` keeps an int), then those it converts to; an error inside the
    only member of the right shape (a table for a dataclass) keeps its deeper key."""
    fitting = [m for m in members if _shape_fits(m, raw)]
    if not fitting:
        raise ConfigError(f"must be {_either(members)}, got {type(raw).__name__} {raw!r}", key)
    fitting.sort(key=lambda m: m is not type(raw))
    first: ConfigError | None = None
    for member in fitting:
        try:
            return _value(member, raw, key)
        except ConfigError as exc:
            first = first or exc
    assert first is not None
    raise first


def _fits(tp: Any, raw: Any) -> bool:
    """``raw`` is a ``tp`` as TOML means it: a bool is no int, an int is also a float."""
    if tp is type(None):
        return raw is None
    if tp is float:
        return isinstance(raw, (int, float)) and not isinstance(raw, bool)
    if tp is int:
        return isinstance(raw, int) and not isinstance(raw, bool)
    return isinstance(raw, tp)


def _shape_fits(tp: Any, raw: Any) -> bool:
    """``raw`` has the TOML shape ``tp`` wants (its items are checked later)."""
    origin = typing.get_origin(tp) or tp
    if tp is Any:
        return True
    if origin is typing.Literal:  # True is no 1
        return any(raw == v and type(raw) is type(v) for v in typing.get_args(tp))
    if origin in (tuple, list):
        return isinstance(raw, list)
    if origin is dict or dataclasses.is_dataclass(tp) or hasattr(tp, "from_dict"):
        return isinstance(raw, dict)
    return isinstance(origin, type) and _fits(origin, raw)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _either(typing.get_args(tp))
    if origin is typing.Literal:
        return " or ".join(repr(v) for v in typing.get_args(tp))
    if origin in (tuple, list):
        return "an array"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def _either(members: tuple) -> str:
    """``int, float or str``; None is left out (TOML has no null)."""
    names = [_type_name(m) for m in members if m is not type(None)]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def line_of(text: str, key: str, exact: bool = False) -> int | None:
    """The 1-based line of ``key`` (``drivers[1].params.frequency``) in TOML ``text``: the
    line its statement starts on, else (not ``exact``) the line of the nearest table or
    array it belongs in that the text has, else None.

    tomllib keeps no positions, so this asks tomllib itself: the key's line is the first
    line by which a valid prefix of the text holds it. That follows every way TOML can
    spell a key (headers with spaces or comments, dotted or quoted keys, inline tables,
    arrays of tables, multi-line strings) without a second parser to keep in step."""
    if not key:
        return None
    lines = text.split("\n")
    steps = re.findall(r"\[(\d+)\]|([^.\[\]]+)", key)
    path = [int(i) if i else name for i, name in steps]
    tried: dict[int, int] = {}

    def depth(n: int) -> int:
        """How much of ``path`` the longest valid prefix of at most ``n`` lines holds."""
        if n not in tried:
            for m in range(n, -1, -1):
                try:
                    doc = tomllib.loads("\n".join(lines[:m]))
                except tomllib.TOMLDecodeError:
                    continue
                tried[n] = _depth(doc, path)
                break
        return tried[n]

    found = depth(len(lines))
    if found == 0 or (exact and found < len(path)):
        return None
    low, high = 0, len(lines)  # depth(low) < found <= depth(high); depth grows with n
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if depth(mid) >= found else (mid, high)
    start = high  # the statement that ends on line ``high`` starts after the last valid prefix
    while start > 1:
        try:
            tomllib.loads("\n".join(lines[:start - 1]))
            break
        except tomllib.TOMLDecodeError:
            start -= 1
    return start


def _depth(doc: Any, path: list) -> int:
    """How many steps of ``path`` (names and indices) lead somewhere in ``doc``; a name
    with a dot in it (a quoted TOML key) spans several steps."""
    if not path:
        return 0
    if isinstance(path[0], int):
        if isinstance(doc, list) and path[0] < len(doc):
            return 1 + _depth(doc[path[0]], path[1:])
        return 0
    best = 0
    for end in range(1, len(path) + 1):
        if not isinstance(doc, dict) or not all(isinstance(p, str) for p in path[:end]):
            break
        name = ".".join(path[:end])
        if name in doc:
            best = max(best, end + _depth(doc[name], path[end:]))
    return best
