"""Unit tests of rtoc.model: names, events and numeric batches."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtoc.errors import EventError, SampleError, SignalError
from rtoc.model import Event, as_batch, check_part, signal_name, split_name


def test_signal_name_joins_device_and_signal() -> None:
    assert signal_name("Generator", "Sine") == "Generator.Sine"


@pytest.mark.parametrize(("name", "parts"), [
    ("Generator.Sine", ("Generator", "Sine")),
    ("Dev.a.b.c", ("Dev", "a.b.c")),
    ("D.S ", ("D", "S ")),
])
def test_split_name(name: str, parts: tuple[str, str]) -> None:
    assert split_name(name) == parts


@pytest.mark.parametrize("name", ["", "NoDot", ".Signal", "Device.", "."])
def test_split_name_refuses_names_without_two_parts(name: str) -> None:
    with pytest.raises(SignalError) as info:
        split_name(name)
    assert info.value.signal == name
    assert "Device.Signal" in str(info.value)


@given(st.text(min_size=1).filter(lambda s: "." not in s), st.text(min_size=1))
def test_split_name_inverts_signal_name(device: str, signal: str) -> None:
    assert split_name(signal_name(device, signal)) == (device, signal)


@pytest.mark.parametrize("value", ["Sine", "a b", "Temp.1", "ü"])
def test_check_part_accepts_names(value: str) -> None:
    assert check_part("signal", value) == value


@pytest.mark.parametrize("value", ["", "   ", "a/b", "a\x00b", None, 3])
def test_check_part_refuses_bad_names(value: object) -> None:
    with pytest.raises(SignalError) as info:
        check_part("device", value)  # type: ignore[arg-type]
    assert "device name" in str(info.value)


def test_event_defaults() -> None:
    ev = Event(time=5.0)
    assert (ev.text, ev.device, ev.signal, ev.priority, ev.value, ev.extra) == ("", "", "", 0, None, {})


@pytest.mark.parametrize("priority", [0, 1, 2])
def test_event_accepts_priorities_0_1_2(priority: int) -> None:
    assert Event(time=0.0, priority=priority).priority == priority


@pytest.mark.parametrize("priority", [-1, 3, 10, None, "1"])
def test_event_refuses_other_priorities(priority: object) -> None:
    with pytest.raises(EventError, match="priority"):
        Event(time=0.0, priority=priority)  # type: ignore[arg-type]


def test_event_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Event(time=0.0, priority=5)


@pytest.mark.parametrize("text", [None, 3, b"bytes", ["a"]])
def test_event_text_must_be_a_string(text: object) -> None:
    with pytest.raises(EventError, match="text"):
        Event(time=0.0, text=text)  # type: ignore[arg-type]


@given(st.text(), st.text(), st.text())
def test_event_default_id_is_rtocs_sha1(text: str, device: str, signal: str) -> None:
    ev = Event(time=1.0, text=text, device=device, signal=signal)
    assert ev.id == hashlib.sha1((signal + device + text).encode()).hexdigest()


def test_event_default_id_known_value() -> None:
    ev = Event(time=1.0, text="too hot", device="Oven", signal="T")
    assert ev.id == hashlib.sha1(b"TOventoo hot").hexdigest()


def test_event_explicit_id_is_kept() -> None:
    assert Event(time=1.0, text="x", id="testID").id == "testID"


def test_event_with_empty_device_and_signal_is_valid() -> None:
    ev = Event(time=1.0, text="system started", device="", signal="")
    assert ev.device == "" and ev.signal == ""
    assert ev.id == hashlib.sha1(b"system started").hexdigest()


def test_event_is_frozen() -> None:
    ev = Event(time=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.text = "changed"  # type: ignore[misc]


def test_event_dict_round_trip_and_unknown_keys_ignored() -> None:
    ev = Event(time=2.5, text="t", device="D", signal="S", priority=2, value=3.5, extra={"k": 1})
    d = ev.to_dict()
    assert d["priority"] == 2 and d["id"] == ev.id
    assert Event.from_dict(d) == ev
    assert Event.from_dict({**d, "unknown": 1}) == ev


def test_event_from_dict_validates() -> None:
    with pytest.raises(EventError):
        Event.from_dict({"time": 1.0, "priority": 9})


def test_as_batch_gives_contiguous_float64() -> None:
    t, y = as_batch([1, 2, 3], np.array([True, False, True]))
    assert t.dtype == np.float64 and y.dtype == np.float64
    assert t.flags.c_contiguous and y.flags.c_contiguous
    np.testing.assert_array_equal(y, [1.0, 0.0, 1.0])
    t2, _ = as_batch(np.arange(10.0)[::2], np.zeros(5))
    assert t2.flags.c_contiguous
    np.testing.assert_array_equal(t2, [0, 2, 4, 6, 8])


def test_as_batch_scalars_become_one_sample() -> None:
    t, y = as_batch(1.0, 2)
    assert t.shape == (1,) and y.tolist() == [2.0]


@pytest.mark.parametrize(("t", "y"), [
    ([1.0, 2.0], ["a", "b"]),
    ([1.0, None], [1.0, 2.0]),
    ([1.0], [object()]),
    ([1.0, 2.0], [1.0, [2.0, 3.0]]),
])
def test_as_batch_refuses_non_numeric(t: object, y: object) -> None:
    with pytest.raises(SampleError) as info:
        as_batch(t, y, "Dev.S")
    assert info.value.signal == "Dev.S"
    assert "Dev.S" in str(info.value)


def test_as_batch_refuses_length_mismatch() -> None:
    with pytest.raises(SampleError, match="differ in length"):
        as_batch([1.0, 2.0], [1.0], "Dev.S")
