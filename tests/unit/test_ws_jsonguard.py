"""Unit tests of rtoc.frontends.websocket.json_protocol.guard: limits checked before json.loads."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtoc.frontends.websocket.json_protocol.guard import Limits, MessageRejected, loads

from rtoc.errors import RtocError

DEFAULT = Limits()
WIDE = Limits(max_depth=500)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
messages = st.dictionaries(st.text(), json_values, max_size=6)


def _rejected(data: str | bytes, limits: Limits = DEFAULT) -> MessageRejected:
    with pytest.raises(MessageRejected) as info:
        loads(data, limits)
    return info.value


def test_message_rejected_is_an_rtoc_value_error_with_a_code() -> None:
    assert issubclass(MessageRejected, RtocError) and issubclass(MessageRejected, ValueError)
    assert MessageRejected.code == "bad_message"


@settings(max_examples=150, deadline=None)
@given(messages, st.booleans(), st.sampled_from([None, 0, 2]), st.booleans())
def test_valid_json_round_trips_like_json_loads(
    obj: dict, ensure_ascii: bool, indent: int | None, as_bytes: bool
) -> None:
    text = json.dumps(obj, ensure_ascii=ensure_ascii, indent=indent)
    data: str | bytes = text.encode("utf-8") if as_bytes else text
    assert loads(data, WIDE) == json.loads(text)


def _measure(obj: Any, depth: int = 1) -> tuple[int, int, int, int]:
    """(depth, items, string chars as written, number chars as written) of a JSON value."""
    if isinstance(obj, dict):
        parts = [_measure(v, depth + 1) for v in obj.values()]
        keys = [len(json.dumps(k)) - 2 for k in obj]
        return (max([depth] + [p[0] for p in parts]), max([len(obj)] + [p[1] for p in parts]),
                max([0] + keys + [p[2] for p in parts]), max([0] + [p[3] for p in parts]))
    if isinstance(obj, list):
        parts = [_measure(v, depth + 1) for v in obj]
        return (max([depth] + [p[0] for p in parts]), max([len(obj)] + [p[1] for p in parts]),
                max([0] + [p[2] for p in parts]), max([0] + [p[3] for p in parts]))
    if isinstance(obj, str):
        return (0, 0, len(json.dumps(obj)) - 2, 0)
    if isinstance(obj, bool) or obj is None:
        return (0, 0, 0, 0)
    if isinstance(obj, float) and not math.isfinite(obj):
        return (0, 0, 0, 0)  # NaN, Infinity: fixed tokens (at most 9 characters), not digit runs
    return (0, 0, 0, len(json.dumps(obj)))


@settings(max_examples=200, deadline=None)
@given(messages, st.integers(1, 8), st.integers(1, 6), st.integers(1, 40), st.integers(1, 30))
def test_accepts_exactly_the_messages_within_the_limits(
    obj: dict, max_depth: int, max_items: int, max_string: int, max_number: int
) -> None:
    limits = Limits(max_depth=max_depth, max_items=max_items, max_string_chars=max_string,
                    max_number_chars=max_number)
    text = json.dumps(obj)
    depth, items, string, number = _measure(obj)
    if depth <= max_depth and items <= max_items and string <= max_string and number <= max_number:
        assert loads(text, limits) == obj
    else:
        err = _rejected(text, limits)
        assert err.limit in {"max_depth", "max_items", "max_string_chars", "max_number_chars"}


@pytest.mark.parametrize("opener", ["[", "{\"k\":"])
def test_deep_nesting_under_the_size_limit_is_refused_not_recursion_error(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = '{"a":' + opener * 10_000 + "1" + closer * 10_000 + "}"
    assert len(text.encode()) < DEFAULT.max_bytes
    err = _rejected(text)
    assert err.limit == "max_depth"
    # the top-level object is depth 1, so the 32nd opener after it is the 33rd level
    assert err.position == 5 + 31 * len(opener)
    assert str(err) == f"nesting deeper than 32 at character {err.position}"


def test_unclosed_deep_nesting_is_refused() -> None:
    assert _rejected('{"a":' + "[" * 10_000).limit == "max_depth"
    assert _rejected("[" * 10_000).limit == "max_depth"


def test_depth_limit_is_inclusive() -> None:
    ok = '{"a":' + "[" * 31 + "]" * 31 + "}"
    assert loads(ok, DEFAULT) == json.loads(ok)
    assert _rejected('{"a":' + "[" * 32 + "]" * 32 + "}").limit == "max_depth"


def test_many_shallow_containers_are_fine() -> None:
    obj = {"a": [{"b": [1, 2], "c": {"d": "[[[["}} for _ in range(5000)]}
    assert loads(json.dumps(obj), DEFAULT) == obj


def test_huge_number_is_refused_before_conversion() -> None:
    err = _rejected('{"a": ' + "7" * 5000 + "}")
    assert err.limit == "max_number_chars" and err.position == 6
    assert "number longer than 64 characters at character 6" in str(err)


def test_number_length_limit_is_inclusive_and_ignores_strings() -> None:
    assert loads('{"a": ' + "1" * 64 + "}", DEFAULT) == {"a": int("1" * 64)}
    assert _rejected('{"a": ' + "1" * 65 + "}").limit == "max_number_chars"
    assert _rejected('{"a": -1.' + "5" * 70 + "e-3}").limit == "max_number_chars"
    digits = "9" * 5000
    assert loads(json.dumps({"id": digits}), DEFAULT) == {"id": digits}


@pytest.mark.parametrize("tricky", [
    "[" * 50, "]" * 50, "{" * 50, '\\"[[[[[[[[[[[[[', "\\\\", "\\\\\\\"[[[", '"' * 40,
    "\\u005b" * 40, "\\", "[{\"a\": 1}, 2, 3]" * 20,
])
def test_brackets_quotes_and_escapes_in_strings_do_not_count(tricky: str) -> None:
    value = json.loads(f'"{tricky}"') if _is_json_string(tricky) else tricky
    obj = {value: [value, {"k": value}], "x": [[[value]]]}
    limits = Limits(max_depth=4, max_items=3)
    assert loads(json.dumps(obj), limits) == obj


def _is_json_string(body: str) -> bool:
    try:
        json.loads(f'"{body}"')
    except ValueError:
        return False
    return True


def test_escaped_backslash_before_a_closing_quote_ends_the_string() -> None:
    text = '{"a": "x\\\\", "b": ' + "[" * 40 + "]" * 40 + "}"
    assert json.loads(text.replace("[" * 40 + "]" * 40, "0")) == {"a": "x\\", "b": 0}
    assert _rejected(text).limit == "max_depth"


def test_items_are_counted_per_container() -> None:
    limits = Limits(max_items=3)
    assert loads('{"a": [1, 2, 3], "b": [[1, 2, 3], [4, 5, 6], {"x": ",,,,"}]}', limits)
    err = _rejected('{"a": [1, 2, 3, 4]}', limits)
    assert err.limit == "max_items" and err.position == 14
    assert str(err) == "more than 3 items in one array or object at character 14"
    assert _rejected('{"a": 1, "b": 2, "c": 3, "d": 4}', limits).limit == "max_items"


def test_long_strings_are_refused_by_their_written_length() -> None:
    limits = Limits(max_string_chars=10)
    assert loads('{"a": "0123456789", "b": [' + "1," * 100 + "1]}", limits)["a"] == "0123456789"
    err = _rejected('{"a": "ok", "b": "0123456789A"}', limits)
    assert err.limit == "max_string_chars" and err.position == 17
    assert _rejected('{"a": "\\u00e9\\u00e9"}', limits).limit == "max_string_chars"
    assert _rejected('{"' + "k" * 11 + '": 1}', limits).limit == "max_string_chars"


def test_size_is_checked_in_utf8_bytes() -> None:
    limits = Limits(max_bytes=20)
    assert loads('{"a": "12345678901"}', limits) == {"a": "12345678901"}  # 20 bytes
    err = _rejected('{"a": "123456789012"}', limits)
    assert err.limit == "max_bytes" and "21 bytes" in str(err) and "limit of 20" in str(err)
    assert _rejected('{"a": "éééééééé"}', limits).limit == "max_bytes"  # 16 chars, 24 bytes
    assert _rejected(b'{"a": "123456789012"}', limits).limit == "max_bytes"
    assert _rejected("x" * 5000, limits).limit == "max_bytes"


def test_invalid_utf8_names_the_byte() -> None:
    err = _rejected(b'{"a": "\xff"}')
    assert str(err) == "invalid UTF-8 at byte 7" and err.limit == "utf8" and err.position == 7
    assert _rejected(b'{"a": "\xe2\x82"}').position == 7  # a sequence cut short
    assert loads('{"a": "€"}'.encode(), DEFAULT) == {"a": "€"}


@pytest.mark.parametrize("cut", range(1, 40))
def test_truncated_messages_name_line_and_column(cut: int) -> None:
    text = '{"a": [1, 2.5, {"b": "x\\"y"}],\n "c": null}'
    err = _rejected(text[:cut])
    assert err.limit == "json" and "line " in str(err) and "column " in str(err)


def test_syntax_error_position() -> None:
    err = _rejected('{"a": 1,\n "b" 2}')
    assert str(err).startswith("invalid JSON at line 2 column 6: ")


@pytest.mark.parametrize("text", ["[]", "1", '"s"', "null", "true", "[{}]"])
def test_top_level_must_be_an_object(text: str) -> None:
    err = _rejected(text)
    assert err.limit == "type" and str(err).startswith("a message must be a JSON object")


def test_nan_and_infinity_from_python_clients_are_floats() -> None:
    got = loads('{"a": NaN, "b": Infinity, "c": -Infinity, "d": [NaN]}', DEFAULT)
    assert math.isnan(got["a"]) and got["b"] == math.inf and got["c"] == -math.inf
    assert math.isnan(got["d"][0])


@pytest.mark.parametrize("kwargs", [
    {"max_depth": 0}, {"max_depth": 501}, {"max_bytes": 0}, {"max_items": -1},
    {"max_number_chars": 1.5}, {"max_string_chars": True},
])
def test_bad_limits_are_named(kwargs: dict) -> None:
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"Limits.{name}"):
        Limits(**kwargs)


JSONISH = st.text(alphabet='[]{}",:\\ 0123456789eE.-+ntrufalsNIiyu\u00e9\n', max_size=200)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), JSONISH,
                 JSONISH.map(lambda s: s.encode("utf-8"))),
       st.sampled_from([DEFAULT, Limits(max_depth=2, max_items=2, max_number_chars=3,
                                        max_string_chars=4, max_bytes=100)]))
def test_arbitrary_input_raises_nothing_but_message_rejected(
    data: str | bytes, limits: Limits
) -> None:
    try:
        got = loads(data, limits)
    except MessageRejected:
        return
    assert isinstance(got, dict)


@settings(max_examples=300, deadline=None)
@given(JSONISH.map(lambda s: "{" + s), st.integers(1, 5))
def test_accepted_jsonish_text_is_exactly_what_json_loads_gives(text: str, depth: int) -> None:
    try:
        got = loads(text, Limits(max_depth=depth))
    except MessageRejected:
        return
    assert json.dumps(got) == json.dumps(json.loads(text))
