"""Declared driver parameters and remotely callable functions.

A ``Parameter`` is a typed, documented class attribute; setting it (locally or through the
control plane) validates the value, persists it and calls the driver's
``parameter_changed(name, value)`` hook. ``@function`` marks a method as callable remotely.
Nothing here ever evaluates text: values arrive as msgpack data and are type-checked.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtoc.errors import ParameterError, SignalError
from rtoc.files import write_atomic
from rtoc.model import check_part

_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


class Parameter:
    """A driver parameter: ``frequency = Parameter(1.0, doc="Hz", min=0)``.

    ``type`` defaults to the default's type; ints are accepted for float parameters;
    ``choices`` restricts the value to a set; ``min``/``max`` bound numbers. A float must be
    finite (NaN passes every comparison, so it would slip past ``min``/``max``) unless
    ``finite=False``. ``name="signal"`` (or ``"device"``) makes a text parameter a signal
    (device) name, checked as :func:`rtoc.model.check_part` checks it; an empty text stays
    allowed (a driver's "use the default name").
    """

    def __init__(self, default: Any, doc: str = "", *, type: type | None = None,
                 choices: tuple | None = None, min: float | None = None,
                 max: float | None = None, persist: bool = True, finite: bool = True,
                 name: str | None = None):
        self.type = type or default.__class__
        if self.type not in _TYPES:
            raise TypeError(f"unsupported parameter type {self.type.__name__}")
        if name is not None and (self.type is not str or name not in ("signal", "device")):
            raise TypeError("name= is 'signal' or 'device', for a str parameter")
        self.doc, self.choices, self.min, self.max = doc, choices, min, max
        self.persist, self.finite, self.name_kind = persist, finite, name
        self.name = ""
        self.default = self.validate(default)

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return obj.__dict__.get(self.name, self.default)

    def __set__(self, obj, value) -> None:
        value = self.validate(value)
        old = obj.__dict__.get(self.name, self.default)
        obj.__dict__[self.name] = value
        hook = getattr(obj, "_parameter_set", None)
        if hook is not None and value != old:
            hook(self, value)

    def validate(self, value: Any) -> Any:
        t = self.type
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if t is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, t) or (t in (int, float) and isinstance(value, bool)):
            raise ParameterError(f"parameter {self.name!r} must be {_TYPES[t]}, got "
                                 f"{type(value).__name__} {value!r}")
        if t is float and self.finite and not math.isfinite(value):
            raise ParameterError(f"parameter {self.name!r} must be a finite number, got {value!r}")
        if self.name_kind is not None and value:
            try:
                check_part(self.name_kind, value)
            except SignalError as exc:
                raise ParameterError(f"parameter {self.name!r}: {exc}") from None
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"parameter {self.name!r} must be one of {list(self.choices)}, got {value!r}")
        if self.min is not None and value < self.min:
            raise ParameterError(f"parameter {self.name!r} must be >= {self.min}, got {value!r}")
        if self.max is not None and value > self.max:
            raise ParameterError(f"parameter {self.name!r} must be <= {self.max}, got {value!r}")
        return value

    def describe(self, value: Any) -> dict:
        d = {"name": self.name, "type": _TYPES[self.type], "value": value, "default": self.default,
             "doc": self.doc}
        for key in ("choices", "min", "max"):
            if getattr(self, key) is not None:
                d[key] = list(self.choices) if key == "choices" else getattr(self, key)
        return d


def function(fn: Callable) -> Callable:
    """Mark a driver method as callable through the control plane."""
    fn.__rtoc_function__ = True
    return fn


def describe_function(name: str, fn: Callable) -> dict:
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    return {
        "name": name,
        "signature": f"{name}{sig}".replace("(self, ", "(").replace("(self)", "()"),
        "args": [p.name for p in params],
        "doc": inspect.getdoc(fn) or "",
    }


class ParamStore:
    """Persisted parameter values of one driver: a JSON file, replaced atomically.

    Each entry remembers the config value it was set under: when rtoc.toml later names a
    different value, the config wins (an edited file should not be silently overridden).
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._data: dict[str, dict] = {}
        self.used: set[str] = set()  # names whose persisted value initial() handed out
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                data = {}
            self._data = data if isinstance(data, dict) else {}  # a damaged file is ignored

    def initial(self, name: str, config_value: Any, has_config: bool) -> tuple[bool, Any]:
        """``(found, value)``: the persisted value, unless the config changed since."""
        entry = self._data.get(name)
        if not isinstance(entry, dict) or "value" not in entry:
            return False, None
        if has_config and entry.get("config") != config_value:
            return False, None
        self.used.add(name)
        return True, entry["value"]

    @property
    def rejected_path(self) -> Path | None:
        return None if self.path is None else self.path.with_suffix(".rejected.json")

    def save(self, name: str, value: Any, config_value: Any) -> None:
        self._data[name] = {"value": value, "config": config_value}
        self._write()

    def set_aside(self, names: list[str] | set[str], reason: str, now: float) -> dict[str, Any]:
        """Move persisted values out of the file into ``NAME.rejected.json`` (with the
        reason and unix time ``now``), so that the next start uses the config or default;
        returns ``{name: value}`` of what was moved."""
        moved = {n: self._data.pop(n) for n in sorted(names) if n in self._data}
        self.used.difference_update(moved)
        if not moved or self.path is None:
            return {n: e.get("value") if isinstance(e, dict) else e for n, e in moved.items()}
        rejected: dict = {}
        try:
            old = json.loads(self.rejected_path.read_text())
            rejected = old if isinstance(old, dict) else {}
        except (OSError, ValueError):
            pass
        for n, entry in moved.items():
            rejected[n] = {**(entry if isinstance(entry, dict) else {"value": entry}),
                           "reason": reason, "time": now}
        write_atomic(self.rejected_path, json.dumps(rejected, indent=1, sort_keys=True))
        self._write()
        return {n: e.get("value") if isinstance(e, dict) else e for n, e in moved.items()}

    def without(self, names: set[str]) -> ParamStore:
        """The same file, minus ``names`` (not written until a value is saved)."""
        other = ParamStore(None)
        other.path, other._data = self.path, {k: v for k, v in self._data.items() if k not in names}
        return other

    def _write(self) -> None:
        if self.path is None:
            return
        write_atomic(self.path, json.dumps(self._data, indent=1, sort_keys=True))
