"""Event rules and actions: what they are, how they are checked, what an action does.

An :class:`EventRule` raises an event when its condition triggers; an :class:`ActionRule`
listens to event ids and runs declarative steps (:class:`ActionStep`): call a driver
function, set a driver parameter, write a value to a signal, or notify frontends. Rules
come from rtoc.toml (``[[events]]``, ``[[actions]]``) or from the control plane as plain
dicts; both go through ``from_dict``, which refuses anything it cannot use with a
:class:`RuleError` naming the field. Nothing here runs code: an action is data, and
:func:`plan` turns an event into the effects the engine then performs.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from rtoc.errors import ConditionError, RuleError
from rtoc.events.language import compile_condition
from rtoc.model import PRIORITIES, Event, split_name

TRIGGERS = ("rising", "falling", "both", "true", "false")
STEP_KINDS = ("call", "set", "write", "notify")
_NAME_RE = re.compile(r"[^\x00-\x1f/]{1,80}")
_PLACEHOLDER = re.compile(r"\{(value|signal|device|name|id|text)\}")
MAX_ARGS = 32
MAX_DEPTH = 8      # nesting of a step's values
MAX_ITEMS = 256    # items of one list or map in a step's values
_STEP_FIELDS = {"call": ("args", "kwargs"), "set": ("value",), "write": ("value",), "notify": ("priority",)}


@dataclass(frozen=True)
class EventRule:
    """``cond`` triggers an event. ``text`` may hold ``{value}`` (the value of the sample
    that fired), ``{signal}`` (its ``Device.Signal``), ``{device}``, ``{name}``, ``{id}``.
    ``device``/``signal`` attribute the event; None means the signal that fired, ""
    means none (an event need not belong to a signal and never creates one)."""

    name: str
    cond: str
    trigger: str = "rising"
    hold: float = 0.0          # s the condition must stay so before firing
    cooldown: float = 0.0      # s between two firings at least
    text: str = ""             # default: the rule's name
    priority: int = 0          # 0 info, 1 warning, 2 error
    id: str = ""               # default: the rule's name
    device: str | None = None
    signal: str | None = None
    active: bool = True

    @property
    def event_id(self) -> str:
        return self.id or self.name

    @classmethod
    def from_dict(cls, raw: Any) -> EventRule:
        rule = _build(cls, raw)
        _check_name(rule.name)
        _check_text(rule.cond, "cond")
        try:
            compile_condition(rule.cond)
        except ConditionError as exc:
            raise RuleError(str(exc), "cond") from None
        if rule.trigger not in TRIGGERS:
            raise RuleError(f"must be one of {', '.join(TRIGGERS)}, got {rule.trigger!r}", "trigger")
        for key in ("hold", "cooldown"):
            value = getattr(rule, key)
            if not math.isfinite(value) or value < 0:
                raise RuleError(f"must be a finite number of seconds >= 0, got {value!r}", key)
        if rule.priority not in PRIORITIES:
            raise RuleError(f"must be 0, 1 or 2, got {rule.priority!r}", "priority")
        for key in ("text", "id"):
            _check_text(getattr(rule, key), key, empty=True)
        for key in ("device", "signal"):
            value = getattr(rule, key)
            if value is not None:
                _check_text(value, key, empty=True)
                if "/" in value:
                    raise RuleError("must not contain '/'", key)
        return rule

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ActionStep:
    """One step; exactly one of ``call`` (``"Device.function"``, with ``args``/``kwargs``),
    ``set`` (``"Device.parameter"``, with ``value``), ``write`` (``"Device.Signal"``, with
    ``value``) or ``notify`` (the message text, with ``priority``). A value or argument
    that is exactly ``"{value}"`` is replaced by the event's value; texts may use the
    placeholders of :class:`EventRule`."""

    call: str = ""
    set: str = ""
    write: str = ""
    notify: str = ""
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    value: Any = None
    priority: int = 0

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k))

    @classmethod
    def from_dict(cls, raw: Any) -> ActionStep:
        if isinstance(raw, dict) and isinstance(raw.get("args"), list):
            raw = {**raw, "args": tuple(raw["args"])}
        step = _build(cls, raw)
        given = [k for k in STEP_KINDS if getattr(step, k)]
        if len(given) != 1:
            raise RuleError(f"a step needs exactly one of {', '.join(STEP_KINDS)}, got "
                            f"{', '.join(given) or 'none'}")
        kind = given[0]
        extra = sorted(set(raw) - {kind, *_STEP_FIELDS[kind]})
        if extra:
            raise RuleError(f"a {kind} step takes only {', '.join(_STEP_FIELDS[kind]) or 'its text'}"
                            f" besides {kind!r}", extra[0])
        target = getattr(step, kind)
        _check_text(target, kind)
        if kind in ("call", "set", "write"):
            try:
                split_name(target)
            except Exception:
                what = {"call": "function", "set": "parameter", "write": "Signal"}[kind]
                raise RuleError(f"must be Device.{what}, got {target!r}", kind) from None
        if kind in ("set", "write") and step.value is None:
            raise RuleError(f"a {kind} step needs a value", "value")
        if kind == "write" and not _is_number(step.value) and step.value != "{value}":
            raise RuleError(f"must be a number or \"{{value}}\", got {step.value!r}", "value")
        for key in ("args", "kwargs"):
            if len(getattr(step, key)) > MAX_ARGS:
                raise RuleError(f"at most {MAX_ARGS} arguments", key)
        for key in ("args", "kwargs", "value"):
            _check_plain(getattr(step, key), key)
        if step.priority not in PRIORITIES:
            raise RuleError(f"must be 0, 1 or 2, got {step.priority!r}", "priority")
        return step

    def to_dict(self) -> dict:
        d = {self.kind: getattr(self, self.kind)}
        if self.kind == "call":
            d.update(args=list(self.args), kwargs=dict(self.kwargs))
        elif self.kind == "notify":
            d["priority"] = self.priority
        else:
            d["value"] = self.value
        return d


@dataclass(frozen=True)
class ActionRule:
    """Runs ``steps`` when an event whose id is in ``listen`` happens."""

    name: str
    listen: tuple[str, ...]
    steps: tuple[ActionStep, ...]
    active: bool = True

    @classmethod
    def from_dict(cls, raw: Any) -> ActionRule:
        if not isinstance(raw, dict):
            raise RuleError(f"an action must be a table, got {type(raw).__name__}")
        raw = dict(raw)
        listen = raw.get("listen")
        if isinstance(listen, str):
            listen = [listen]
        if not isinstance(listen, (list, tuple)) or not listen or \
                not all(isinstance(i, str) and i for i in listen):
            raise RuleError("must be a non-empty list of event ids", "listen")
        raw["listen"] = tuple(listen)
        steps = raw.get("steps")
        if not isinstance(steps, (list, tuple)) or not steps:
            raise RuleError("must be a non-empty list of steps", "steps")
        parsed = []
        for i, s in enumerate(steps):
            try:
                parsed.append(s if isinstance(s, ActionStep) else ActionStep.from_dict(s))
            except RuleError as exc:
                raise RuleError(exc.reason, f"steps[{i}]" + (f".{exc.key}" if exc.key else "")) from None
        raw["steps"] = tuple(parsed)
        rule = _build(cls, raw)
        _check_name(rule.name)
        return rule

    def to_dict(self) -> dict:
        return {"name": self.name, "listen": list(self.listen), "active": self.active,
                "steps": [s.to_dict() for s in self.steps]}


@dataclass(frozen=True)
class Effect:
    """What an action asks the engine to do for one event."""

    action: str
    kind: str                  # call | set | write | notify
    device: str = ""           # call/set: the driver; write: the signal's device
    name: str = ""             # function, parameter or signal name
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    value: Any = None
    text: str = ""
    priority: int = 0


def plan(actions: list[ActionRule] | tuple[ActionRule, ...], event: Event) -> list[Effect]:
    """The effects of every active action listening to ``event.id``, in order."""
    out = []
    for action in actions:
        if not action.active or event.id not in action.listen:
            continue
        for step in action.steps:
            kind = step.kind
            if kind == "notify":
                rule = event.extra.get("rule", "") if event.extra else ""
                out.append(Effect(action.name, kind, text=render(step.notify, event, rule or action.name),
                                  priority=step.priority))
                continue
            device, name = split_name(getattr(step, kind))
            out.append(Effect(action.name, kind, device, name,
                              tuple(_subst(a, event) for a in step.args),
                              {k: _subst(v, event) for k, v in step.kwargs.items()},
                              _subst(step.value, event)))
    return out


def render(template: str, event: Event, rule_name: str = "") -> str:
    """Fill ``{value}``, ``{signal}``, ``{device}``, ``{name}``, ``{id}``, ``{text}``.

    A plain replacement of those names, never ``str.format`` (whose ``{value.__class__}``
    would reach into objects)."""
    signal = event.extra.get("source", "") if event.extra else ""

    def fill(m: re.Match) -> str:
        key = m.group(1)
        if key == "value":
            return format_value(event.value)
        if key == "signal":
            return signal or (f"{event.device}.{event.signal}" if event.signal else "")
        if key == "device":
            return event.device
        if key == "name":
            return rule_name
        return event.id if key == "id" else event.text

    return _PLACEHOLDER.sub(fill, template)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".6g")
    return "" if value is None else str(value)


def _subst(value: Any, event: Event) -> Any:
    return event.value if value == "{value}" else value


def _build(cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise RuleError(f"must be a table, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(k for k in raw if k not in fields)
    if unknown:
        raise RuleError(f"unknown key (known: {', '.join(fields)})", str(unknown[0]))
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RuleError("is required", name)
            continue
        _check_type(name, f.default if f.default is not dataclasses.MISSING else None, raw[name])
    values = dict(raw)
    for key in ("hold", "cooldown"):
        if key in values:
            try:
                values[key] = float(values[key])
            except OverflowError:
                raise RuleError(f"must be a finite number of seconds, got {values[key]!r}", key) from None
    return cls(**values)


def _check_type(name: str, default: Any, value: Any) -> None:
    expected = {"name": str, "cond": str, "trigger": str, "text": str, "id": str, "call": str,
                "set": str, "write": str, "notify": str, "active": bool, "priority": int,
                "hold": (int, float), "cooldown": (int, float), "device": (str, type(None)),
                "signal": (str, type(None)), "args": (tuple, list), "kwargs": dict}.get(name)
    if expected is None:
        return
    bad = not isinstance(value, expected) or (
        isinstance(value, bool) and expected in ((int, float), int))
    if bad:
        names = expected.__name__ if isinstance(expected, type) else \
            " or ".join(t.__name__ for t in expected if t is not type(None))
        raise RuleError(f"must be {names}, got {type(value).__name__} {value!r}", name)


def _check_plain(value: Any, key: str, depth: int = 0) -> None:
    """Values in steps are plain data (what JSON and msgpack carry), small and shallow."""
    if depth > MAX_DEPTH:
        raise RuleError(f"nested more than {MAX_DEPTH} levels", key)
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise RuleError("integer beyond 64 bits", key)
        if isinstance(value, str) and len(value) > 2000:
            raise RuleError("text longer than 2000 characters", key)
        return
    if isinstance(value, float):
        return
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_ITEMS:
            raise RuleError(f"more than {MAX_ITEMS} items", key)
        for v in value:
            _check_plain(v, key, depth + 1)
        return
    if isinstance(value, dict):
        if len(value) > MAX_ITEMS or not all(isinstance(k, str) for k in value):
            raise RuleError(f"a map needs text keys and at most {MAX_ITEMS} items", key)
        for v in value.values():
            _check_plain(v, key, depth + 1)
        return
    raise RuleError(f"must be plain data (number, text, bool, list, map), got {type(value).__name__}", key)


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name) or not name.strip():
        raise RuleError(f"must be 1-80 printable characters without '/', got {name!r}", "name")


def _check_text(value: str, key: str, empty: bool = False) -> None:
    if not empty and not value.strip():
        raise RuleError("must not be empty", key)
    if len(value) > 2000 or "\x00" in value:
        raise RuleError("must be at most 2000 characters without NUL", key)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
