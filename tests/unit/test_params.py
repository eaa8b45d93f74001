"""Unit tests of rtoc.params: typed parameters, remote functions and the parameter store."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtoc.errors import ParameterError
from rtoc.params import Parameter, ParamStore, describe_function, function


class Holder:
    """A plain owner of parameters that records the hook calls."""

    rate = Parameter(1.0, "Hz", min=0.0, max=100.0)
    count = Parameter(3, "how many")
    mode = Parameter("a", "mode", choices=("a", "b"))
    enabled = Parameter(False, "on/off")
    tags = Parameter([], "tags", type=list)
    quiet = Parameter(1.0, persist=False)

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def _parameter_set(self, spec: Parameter, value: Any) -> None:
        self.calls.append((spec.name, value))


def test_type_defaults_to_the_defaults_type_and_names_come_from_the_class() -> None:
    assert Holder.rate.type is float and Holder.count.type is int and Holder.mode.type is str
    assert Holder.rate.name == "rate" and Holder.tags.name == "tags"
    assert Holder.quiet.persist is False and Holder.rate.persist is True


def test_get_returns_the_default_until_set() -> None:
    h = Holder()
    assert h.rate == 1.0 and h.count == 3
    h.rate = 5.0
    assert h.rate == 5.0
    assert Holder().rate == 1.0  # per instance


def test_int_is_accepted_for_float_and_converted() -> None:
    h = Holder()
    h.rate = 7
    assert h.rate == 7.0 and type(h.rate) is float


def test_integral_float_is_accepted_for_int() -> None:
    h = Holder()
    h.count = 4.0
    assert h.count == 4 and type(h.count) is int


@pytest.mark.parametrize(("name", "value"), [
    ("rate", True), ("rate", False), ("count", True), ("rate", "1.0"), ("count", "3"),
    ("count", 2.5), ("mode", 1), ("enabled", 1), ("enabled", "true"), ("tags", "a"),
    ("rate", None), ("count", [1]),
])
def test_wrong_types_are_refused(name: str, value: Any) -> None:
    h = Holder()
    before = getattr(h, name)
    with pytest.raises(ParameterError) as info:
        setattr(h, name, value)
    assert repr(name) in str(info.value)
    assert getattr(h, name) == before
    assert h.calls == []


def test_choices_min_and_max() -> None:
    h = Holder()
    h.mode = "b"
    with pytest.raises(ParameterError, match="one of"):
        h.mode = "c"
    with pytest.raises(ParameterError, match=">= 0.0"):
        h.rate = -0.5
    with pytest.raises(ParameterError, match="<= 100.0"):
        h.rate = 100.5
    h.rate = 0
    h.rate = 100
    assert h.mode == "b" and h.rate == 100.0


def test_the_hook_is_called_only_on_change() -> None:
    h = Holder()
    h.rate = 1.0  # the default: no change
    h.rate = 2.0
    h.rate = 2  # equal after conversion
    h.mode = "b"
    assert h.calls == [("rate", 2.0), ("mode", "b")]


def test_unsupported_type_and_invalid_default_are_refused_at_definition() -> None:
    with pytest.raises(TypeError):
        Parameter(None)
    with pytest.raises(TypeError):
        Parameter(1 + 2j)
    with pytest.raises(ParameterError):
        Parameter(5.0, min=10.0)
    with pytest.raises(ParameterError):
        Parameter("x", choices=("a", "b"))


def test_explicit_type_wins_over_the_default() -> None:
    p = Parameter(1, type=float)
    assert p.default == 1.0 and type(p.default) is float


def test_describe() -> None:
    h = Holder()
    assert Holder.rate.describe(h.rate) == {"name": "rate", "type": "float", "value": 1.0,
                                            "default": 1.0, "doc": "Hz", "min": 0.0, "max": 100.0}
    assert Holder.mode.describe("b") == {"name": "mode", "type": "str", "value": "b",
                                         "default": "a", "doc": "mode", "choices": ["a", "b"]}
    d = Holder.count.describe(4)
    assert d["type"] == "int" and "min" not in d and "choices" not in d


@given(st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6))
def test_accepted_numbers_lie_within_bounds(value: float) -> None:
    p = Parameter(0.0, min=-10.0, max=10.0)
    try:
        got = p.validate(value)
    except ParameterError:
        assert not -10.0 <= value <= 10.0
    else:
        assert -10.0 <= got <= 10.0 and got == value and type(got) is float


class WithFunctions:
    @function
    def reset(self, channel, hard=False):
        """Reset one channel."""

    def plain(self) -> None:
        pass

    @function
    def nothing(self):
        pass


def test_function_marks_and_returns_the_same_function() -> None:
    assert WithFunctions.reset.__rtoc_function__ is True
    assert not hasattr(WithFunctions.plain, "__rtoc_function__")


def test_describe_function() -> None:
    assert describe_function("reset", WithFunctions.reset) == {
        "name": "reset", "signature": "reset(channel, hard=False)", "args": ["channel", "hard"],
        "doc": "Reset one channel."}
    d = describe_function("nothing", WithFunctions.nothing)
    assert d["signature"] == "nothing()" and d["args"] == [] and d["doc"] == ""


def test_store_without_path_keeps_values_in_memory() -> None:
    store = ParamStore(None)
    assert store.initial("x", None, False) == (False, None)
    store.save("x", 2.0, None)
    assert store.initial("x", None, False) == (True, 2.0)


def test_store_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "Gen.json"
    ParamStore(path).save("frequency", 3.0, 2.0)
    ParamStore(path).save("frequency", 4.0, 2.0)  # a later store overwrites the file
    assert json.loads(path.read_text()) == {"frequency": {"value": 4.0, "config": 2.0}}
    assert not path.with_suffix(".tmp").exists()
    store = ParamStore(path)
    assert store.initial("frequency", 2.0, True) == (True, 4.0)
    assert store.initial("other", 2.0, True) == (False, None)


def test_store_config_wins_when_changed_since_persisted(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    ParamStore(path).save("frequency", 3.0, 2.0)  # set to 3 while the config said 2
    store = ParamStore(path)
    assert store.initial("frequency", 2.0, True) == (True, 3.0)     # config unchanged
    assert store.initial("frequency", 5.0, True) == (False, None)   # config edited: it wins
    assert store.initial("frequency", None, False) == (True, 3.0)   # no config value at all


def test_store_value_persisted_without_config_yields_to_a_new_config_value(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    ParamStore(path).save("mode", "b", None)
    assert ParamStore(path).initial("mode", None, False) == (True, "b")
    assert ParamStore(path).initial("mode", "a", True) == (False, None)


@pytest.mark.parametrize("content", ["{not json", "", '{"x": 5}', '{"x": {"config": 1}}'])
def test_store_ignores_corrupt_files_and_entries(tmp_path: Path, content: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    assert ParamStore(path).initial("x", None, False) == (False, None)


@pytest.mark.parametrize("content", ["null", "[1, 2]", "3"])
def test_store_ignores_json_that_is_not_an_object(tmp_path: Path, content: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    assert ParamStore(path).initial("x", None, False) == (False, None)


class Named:
    signal = Parameter("", "a signal name; empty: the default", name="signal")
    ratio = Parameter(1.0, "any float, NaN too", finite=False)
    rate = Parameter(1.0, "Hz", min=0.0, max=100.0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_unless_allowed(value: float) -> None:
    h = Named()
    with pytest.raises(ParameterError, match="'rate' must be a finite number"):
        h.rate = value  # NaN compares False with min and max: it used to pass
    assert h.rate == 1.0
    h.ratio = value
    assert h.ratio is value


@pytest.mark.parametrize("value", ["a/b", " ", "x\x00y"])
def test_a_signal_name_parameter_is_checked_as_a_name(value: str) -> None:
    h = Named()
    with pytest.raises(ParameterError, match="'signal'.*signal name"):
        h.signal = value
    h.signal = "Wave.Form"
    h.signal = ""  # empty: the driver's default name
    with pytest.raises(TypeError):
        Parameter(1.0, name="signal")


def test_set_aside_moves_entries_to_the_rejected_file(tmp_path: Path) -> None:
    path = tmp_path / "D.json"
    store = ParamStore(path)
    store.save("a", 1, None)
    store.save("b", 2, None)
    assert store.initial("a", None, False) == (True, 1) and store.used == {"a"}
    assert store.set_aside({"a", "zz"}, "broke", 5.0) == {"a": 1}
    assert json.loads(path.read_text()) == {"b": {"value": 2, "config": None}}
    assert json.loads(store.rejected_path.read_text()) == {
        "a": {"value": 1, "config": None, "reason": "broke", "time": 5.0}}
    assert store.used == set() and ParamStore(path).initial("a", None, False) == (False, None)
    store.set_aside({"b"}, "too", 6.0)  # a second one is added to the same file
    assert set(json.loads(store.rejected_path.read_text())) == {"a", "b"}
    other = ParamStore(path).without({"b"})
    assert other.initial("b", None, False) == (False, None)
