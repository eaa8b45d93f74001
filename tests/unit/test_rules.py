"""Unit tests of rtoc.events.rules: rule validation, what an action plans, how texts render."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from rtoc.errors import RtocError, RuleError
from rtoc.events.rules import MAX_ARGS, ActionRule, ActionStep, Effect, EventRule, plan, render
from rtoc.model import Event

BASE_EVENT = {"name": "hot", "cond": "Thermo.T > 30"}
CALL = {"call": "Pump.stop", "args": [1, "{value}"], "kwargs": {"why": "{value}", "n": 2}}
BASE_ACTION = {"name": "act", "listen": ["hot"], "steps": [CALL]}


def _event(**changes: Any) -> dict:
    raw = {**BASE_EVENT, **changes}
    return {k: v for k, v in raw.items() if v is not _DROP}


def _action(**changes: Any) -> dict:
    raw = {**BASE_ACTION, **changes}
    return {k: v for k, v in raw.items() if v is not _DROP}


_DROP = object()  # a key to leave out


# -- round trips --------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    BASE_EVENT,
    {"name": "all", "cond": "0 < A.x < 1 and not `B c`.`d.e`", "trigger": "falling",
     "hold": 1.5, "cooldown": 10.0, "text": "{name}: {value}", "priority": 2, "id": "alarm",
     "device": "Dev", "signal": "Sig", "active": False},
    {"name": "nowhere", "cond": "A.x > 1", "device": "", "signal": ""},
    *({"name": f"t-{t}", "cond": "A.x > 1", "trigger": t} for t in ("rising", "falling", "both", "true", "false")),
])
def test_event_rule_round_trips(raw: dict) -> None:
    rule = EventRule.from_dict(raw)
    again = EventRule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert again == rule
    assert again.to_dict() == rule.to_dict()
    for key, value in raw.items():
        assert getattr(rule, key) == value


def test_event_rule_defaults_and_int_seconds() -> None:
    rule = EventRule.from_dict({**BASE_EVENT, "hold": 2, "cooldown": 0})
    assert (rule.trigger, rule.text, rule.priority, rule.id, rule.device, rule.signal, rule.active) \
        == ("rising", "", 0, "", None, None, True)
    assert rule.hold == 2.0 and isinstance(rule.hold, float)
    assert isinstance(rule.cooldown, float)
    assert rule.event_id == "hot"
    assert EventRule.from_dict({**BASE_EVENT, "id": "x"}).event_id == "x"
    assert "device" not in rule.to_dict() and "signal" not in rule.to_dict()


@pytest.mark.parametrize("steps", [
    [CALL],
    [{"call": "Pump.stop"}],
    [{"set": "Pump.speed", "value": "{value}"}, {"set": "Pump.mode", "value": "auto"}],
    [{"write": "Calc.Alarm", "value": 1.5}, {"write": "Calc.Sub.Level", "value": "{value}"},
     {"write": "Calc.Int", "value": 3}],
    [{"notify": "{name} at {value}", "priority": 2}, {"notify": "plain"}],
])
def test_action_rule_round_trips(steps: list) -> None:
    rule = ActionRule.from_dict({"name": "act", "listen": ["a", "b"], "steps": steps, "active": False})
    again = ActionRule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert again == rule
    assert again.to_dict() == rule.to_dict()
    assert [s.kind for s in rule.steps] == [next(iter(raw)) for raw in steps]


@pytest.mark.parametrize("raw", [
    {"set": "D.p", "value": 1, "args": [2]},
    {"call": "D.f", "value": 5},
    {"write": "D.s", "value": 1, "kwargs": {"a": 1}},
])
def test_a_step_is_refused_or_round_trips(raw: dict) -> None:
    try:
        step = ActionStep.from_dict(raw)
    except RuleError:
        return  # refusing a field the kind does not use is a fix too
    assert ActionStep.from_dict(json.loads(json.dumps(step.to_dict()))) == step


def test_action_rule_accepts_one_listen_id_and_built_steps() -> None:
    step = ActionStep.from_dict({"notify": "hi"})
    rule = ActionRule.from_dict({"name": "a", "listen": "hot", "steps": [step]})
    assert rule.listen == ("hot",)
    assert rule.steps == (step,)
    assert rule.active is True


def test_action_step_args_become_a_tuple() -> None:
    step = ActionStep.from_dict(CALL)
    assert step.args == (1, "{value}")
    assert step.kind == "call"
    assert ActionStep.from_dict({"call": "D.f", "args": list(range(MAX_ARGS))}).args == tuple(range(MAX_ARGS))


# -- refusals -----------------------------------------------------------------------------

BAD_EVENTS = [
    ({"colour": "red"}, "colour"),
    ({"name": _DROP}, "name"),
    ({"cond": _DROP}, "cond"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "a/b"}, "name"),
    ({"name": "a\x01b"}, "name"),
    ({"name": "x" * 81}, "name"),
    ({"name": 5}, "name"),
    ({"cond": ""}, "cond"),
    ({"cond": "   "}, "cond"),
    ({"cond": 5}, "cond"),
    ({"trigger": "up"}, "trigger"),
    ({"trigger": 1}, "trigger"),
    ({"text": 5}, "text"),
    ({"text": None}, "text"),
    ({"text": "a\x00b"}, "text"),
    ({"text": "x" * 2001}, "text"),
    ({"id": 5}, "id"),
    ({"device": "a/b"}, "device"),
    ({"signal": "a/b"}, "signal"),
    ({"device": 5}, "device"),
    ({"signal": ["x"]}, "signal"),
    ({"active": "yes"}, "active"),
    ({"active": 1}, "active"),
    *(({key: value}, key) for key in ("hold", "cooldown")
      for value in (-1, -0.5, math.nan, math.inf, -math.inf, "1", True, None)),
    *(({"priority": value}, "priority") for value in (3, -1, True, False, "1", 1.0, None)),
]


@pytest.mark.parametrize(("changes", "key"), BAD_EVENTS)
def test_event_rule_refuses_bad_fields(changes: dict, key: str) -> None:
    with pytest.raises(RuleError) as info:
        EventRule.from_dict(_event(**changes))
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")
    assert info.value.reason
    assert isinstance(info.value, ValueError) and isinstance(info.value, RtocError)


@pytest.mark.parametrize(("cond", "column", "words"), [
    ("A.x > foo", 7, "not a signal"),
    ("A.x > 'hot'", 7, "string"),
    ("__import__('os').system('x')", 1, "not allowed"),
    ("A.x // 2 > 1", 1, "'//'"),
])
def test_event_rule_bad_condition_names_the_error_and_column(cond: str, column: int, words: str) -> None:
    with pytest.raises(RuleError) as info:
        EventRule.from_dict(_event(cond=cond))
    assert info.value.key == "cond"
    assert f"column {column}" in info.value.reason
    assert words in info.value.reason


@pytest.mark.parametrize("raw", ["A.x > 1", None, 3, ["name"]])
def test_event_rule_refuses_non_tables(raw: Any) -> None:
    with pytest.raises(RuleError, match="must be a table") as info:
        EventRule.from_dict(raw)
    assert info.value.key == ""


def test_event_rule_refuses_a_name_with_a_trailing_newline() -> None:
    with pytest.raises(RuleError) as info:
        EventRule.from_dict(_event(name="hot\n"))
    assert info.value.key == "name"


@pytest.mark.parametrize("key", ["hold", "cooldown"])
def test_event_rule_refuses_huge_integer_seconds(key: str) -> None:
    with pytest.raises(RuleError) as info:
        EventRule.from_dict(_event(**{key: 10**400}))
    assert info.value.key == key


BAD_ACTIONS = [
    ({"colour": 1}, "colour"),
    ({"name": _DROP}, "name"),
    ({"name": "a/b"}, "name"),
    ({"active": "no"}, "active"),
    ({"listen": _DROP}, "listen"),
    ({"listen": []}, "listen"),
    ({"listen": ""}, "listen"),
    ({"listen": [""]}, "listen"),
    ({"listen": ["a", 1]}, "listen"),
    ({"listen": {"a": 1}}, "listen"),
    ({"steps": _DROP}, "steps"),
    ({"steps": []}, "steps"),
    ({"steps": "call"}, "steps"),
    ({"steps": [{}]}, "steps[0]"),
    ({"steps": [{"args": [1]}]}, "steps[0]"),
    ({"steps": [{"call": ""}]}, "steps[0]"),
    ({"steps": [{"call": "D.f", "notify": "hi"}]}, "steps[0]"),
    ({"steps": [{"set": "D.p", "write": "D.s", "value": 1}]}, "steps[0]"),
    ({"steps": [CALL, 5]}, "steps[1]"),
    ({"steps": [CALL, "notify"]}, "steps[1]"),
    ({"steps": [{"call": "nodot"}]}, "steps[0].call"),
    ({"steps": [{"call": "D."}]}, "steps[0].call"),
    ({"steps": [{"call": ".f"}]}, "steps[0].call"),
    ({"steps": [{"call": 5}]}, "steps[0].call"),
    ({"steps": [{"set": "nodot", "value": 1}]}, "steps[0].set"),
    ({"steps": [{"write": "nodot", "value": 1}]}, "steps[0].write"),
    ({"steps": [{"notify": "   "}]}, "steps[0].notify"),
    ({"steps": [{"notify": "a\x00"}]}, "steps[0].notify"),
    ({"steps": [CALL, {"set": "D.p"}]}, "steps[1].value"),
    ({"steps": [{"write": "D.s"}]}, "steps[0].value"),
    ({"steps": [{"write": "D.s", "value": None}]}, "steps[0].value"),
    ({"steps": [{"write": "D.s", "value": "1"}]}, "steps[0].value"),
    ({"steps": [{"write": "D.s", "value": "{value} "}]}, "steps[0].value"),
    ({"steps": [{"write": "D.s", "value": "{VALUE}"}]}, "steps[0].value"),
    ({"steps": [{"write": "D.s", "value": True}]}, "steps[0].value"),
    ({"steps": [{"write": "D.s", "value": [1]}]}, "steps[0].value"),
    ({"steps": [{"call": "D.f", "args": list(range(MAX_ARGS + 1))}]}, "steps[0].args"),
    ({"steps": [{"call": "D.f", "kwargs": {f"k{i}": i for i in range(MAX_ARGS + 1)}}]}, "steps[0].kwargs"),
    ({"steps": [{"call": "D.f", "args": "1"}]}, "steps[0].args"),
    ({"steps": [{"call": "D.f", "kwargs": [1]}]}, "steps[0].kwargs"),
    ({"steps": [{"call": "D.f", "delay": 1}]}, "steps[0].delay"),
    ({"steps": [{"notify": "hi", "priority": 3}]}, "steps[0].priority"),
    ({"steps": [{"notify": "hi", "priority": True}]}, "steps[0].priority"),
    ({"steps": [{"notify": "hi", "priority": "1"}]}, "steps[0].priority"),
]


@pytest.mark.parametrize(("changes", "key"), BAD_ACTIONS)
def test_action_rule_refuses_bad_fields(changes: dict, key: str) -> None:
    with pytest.raises(RuleError) as info:
        ActionRule.from_dict(_action(**changes))
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


@pytest.mark.parametrize("raw", [None, "act", [BASE_ACTION]])
def test_action_rule_refuses_non_tables(raw: Any) -> None:
    with pytest.raises(RuleError, match="must be a table") as info:
        ActionRule.from_dict(raw)
    assert info.value.key == ""


def test_step_error_says_which_kinds_were_given() -> None:
    with pytest.raises(RuleError, match="got call, notify"):
        ActionRule.from_dict(_action(steps=[{"call": "D.f", "notify": "x"}]))
    with pytest.raises(RuleError, match="got none"):
        ActionRule.from_dict(_action(steps=[{}]))


# -- plan ---------------------------------------------------------------------------------

def _fired(id: str = "hot", value: object = 42.5, **kw: Any) -> Event:
    return Event(time=100.0, text=kw.pop("text", "hot!"), device="Thermo", signal="T", id=id,
                 value=value, extra={"rule": "hot-rule", "source": "Thermo.T"}, **kw)


def _act(name: str, listen: Any, steps: list, active: bool = True) -> ActionRule:
    return ActionRule.from_dict({"name": name, "listen": listen, "steps": steps, "active": active})


def test_plan_runs_active_listeners_steps_in_order() -> None:
    actions = [
        _act("first", ["hot"], [
            {"call": "Pump.stop", "args": ["{value}", 1, "{value} C"],
             "kwargs": {"at": "{value}", "why": "lit"}},
            {"set": "Pump.speed", "value": "{value}"},
            {"write": "Calc.Sub.Level", "value": 3.0},
            {"notify": "{id}: {value} on {signal}", "priority": 2},
        ]),
        _act("inactive", ["hot"], [{"notify": "never"}], active=False),
        _act("other", ["cold"], [{"notify": "never"}]),
        _act("second", ["cold", "hot"], [{"write": "Calc.Copy", "value": "{value}"}]),
    ]
    effects = plan(actions, _fired())
    assert effects == [
        Effect("first", "call", "Pump", "stop", (42.5, 1, "{value} C"), {"at": 42.5, "why": "lit"}),
        Effect("first", "set", "Pump", "speed", value=42.5),
        Effect("first", "write", "Calc", "Sub.Level", value=3.0),
        Effect("first", "notify", text="hot: 42.5 on Thermo.T", priority=2),
        Effect("second", "write", "Calc", "Copy", value=42.5),
    ]


def test_plan_substitutes_the_value_itself_not_its_text() -> None:
    actions = [_act("a", "hot", [{"set": "D.p", "value": "{value}"}, {"call": "D.f", "args": ["{value}"]}])]
    for value in (7, "on", None, [1, 2]):
        effects = plan(actions, _fired(value=value))
        assert effects[0].value == value and effects[1].args == (value,)


def test_plan_without_listeners_is_empty() -> None:
    actions = [_act("a", ["cold"], [{"notify": "x"}]), _act("b", ["hot"], [{"notify": "x"}], active=False)]
    assert plan(actions, _fired()) == []
    assert plan([], _fired()) == []
    assert plan((), _fired()) == []


def test_plan_notify_renders_a_name() -> None:
    (effect,) = plan([_act("act", "hot", [{"notify": "[{name}]"}])], _fired())
    assert effect.text in ("[hot-rule]", "[act]")


# -- render -------------------------------------------------------------------------------

def test_render_fills_every_placeholder() -> None:
    ev = _fired(value=1.23456789)
    text = render("{name}|{id}|{value}|{signal}|{device}|{text}", ev, "rule")
    assert text == "rule|hot|1.23457|Thermo.T|Thermo|hot!"


@pytest.mark.parametrize(("value", "shown"), [
    (None, ""), (3, "3"), (0.1 + 0.2, "0.3"), (1e-9, "1e-09"), (math.nan, "nan"),
    (-math.inf, "-inf"), ("on", "on"), (True, "True"),
])
def test_render_formats_values(value: object, shown: str) -> None:
    assert render("{value}", _fired(value=value)) == shown


def test_render_signal_falls_back_to_the_event_device_and_signal() -> None:
    assert render("{signal}", Event(time=0.0, device="D", signal="S.x")) == "D.S.x"
    assert render("{signal}|{device}", Event(time=0.0)) == "|"
    assert render("{name}", Event(time=0.0)) == ""


@pytest.mark.parametrize("template", [
    "{foo}", "{VALUE}", "{ value }", "{value", "value}", "{}", "{0}", "{value!r}", "{value.__class__}",
    "{value.__class__.__mro__}", "{value:>10}", "{value[0]}", "{id.upper}", "%(value)s", "$value",
])
def test_render_leaves_other_braces_alone(template: str) -> None:
    ev = _fired(value=2.0)
    assert render(template, ev, "r") == template
    assert render(f"a {template} {{value}} b", ev, "r") == f"a {template} 2 b"


def test_render_does_not_expand_placeholders_inside_values() -> None:
    ev = Event(time=0.0, text="{value}", device="{id}", id="{name}", value="{text}")
    assert render("{value} {device} {id} {text} {name}", ev, "{value}") == \
        "{text} {id} {name} {value} {value}"
