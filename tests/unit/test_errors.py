"""Unit tests of rtoc.errors: the tree, the builtins each error also is, control replies."""

from __future__ import annotations

import pytest

from rtoc.errors import (
    ConfigError,
    ControlError,
    ControlTimeout,
    DriverError,
    DriverNotFound,
    DriverNotRunning,
    EventError,
    FunctionNotFound,
    InstanceError,
    InstanceRunning,
    ParameterError,
    RingError,
    RingFormatError,
    RtocError,
    SampleError,
    ShmFull,
    SignalError,
    SignalNotFound,
    SignalOwned,
    error_reply,
    raise_for_reply,
)

# (class, the RTOC parent it must have, the builtin it must also be or None)
TREE: list[tuple[type[RtocError], type[Exception], type[Exception] | None]] = [
    (ConfigError, RtocError, ValueError),
    (DriverError, RtocError, None),
    (DriverNotFound, DriverError, LookupError),
    (FunctionNotFound, DriverError, LookupError),
    (ParameterError, DriverError, ValueError),
    (DriverNotRunning, DriverError, None),
    (SignalError, RtocError, None),
    (SignalNotFound, SignalError, LookupError),
    (SignalOwned, SignalError, None),
    (SampleError, SignalError, ValueError),
    (EventError, RtocError, ValueError),
    (RingError, RtocError, None),
    (RingFormatError, RingError, ValueError),
    (ShmFull, RingError, OSError),
    (InstanceError, RtocError, None),
    (InstanceRunning, InstanceError, None),
    (ControlError, RtocError, None),
    (ControlTimeout, ControlError, TimeoutError),
]


@pytest.mark.parametrize(("cls", "parent", "builtin"), TREE, ids=lambda v: getattr(v, "__name__", ""))
def test_each_error_inherits_its_parent_and_builtin(cls, parent, builtin) -> None:
    assert issubclass(cls, parent)
    assert issubclass(cls, RtocError)
    if builtin is not None:
        assert issubclass(cls, builtin)


def test_errors_without_a_builtin_meaning_are_not_value_or_lookup_errors() -> None:
    for cls in (DriverNotRunning, SignalOwned, InstanceRunning):
        assert not issubclass(cls, (ValueError, LookupError, OSError, TimeoutError))


def test_codes_are_unique_across_the_tree() -> None:
    codes = [cls.__dict__["code"] for cls, _, _ in TREE if "code" in cls.__dict__]
    assert len(codes) == len(set(codes))


def _instance(cls: type[RtocError], message: str) -> RtocError:
    if cls is ControlTimeout:
        return ControlTimeout(message)
    if cls is ControlError:
        return ControlError(message, "remote_code")
    return cls(message)


@pytest.mark.parametrize("cls", [c for c, _, _ in TREE], ids=lambda c: c.__name__)
def test_error_reply_carries_the_code_and_message(cls: type[RtocError]) -> None:
    exc = _instance(cls, "it broke")
    reply = error_reply(exc)
    assert reply["ok"] is False
    assert reply["error"]["code"] == exc.code
    assert "it broke" in reply["error"]["message"]


def test_error_reply_of_a_foreign_exception_is_internal() -> None:
    reply = error_reply(KeyError("x"))
    assert reply == {"ok": False, "error": {"code": "internal", "message": "'x'"}}


ROUND_TRIP = [DriverNotFound, FunctionNotFound, ParameterError, DriverNotRunning, SignalNotFound,
              SignalOwned, SampleError, RingFormatError, ShmFull, InstanceRunning, DriverError,
              SignalError, RingError, InstanceError, EventError]


@pytest.mark.parametrize("cls", ROUND_TRIP, ids=lambda c: c.__name__)
def test_raise_for_reply_raises_the_class_the_code_names(cls: type[RtocError]) -> None:
    reply = error_reply(cls("remote says no"))
    with pytest.raises(cls) as info:
        raise_for_reply(reply)
    assert type(info.value) is cls
    assert str(info.value) == "remote says no"
    assert info.value.code == cls.code


def test_raise_for_reply_keeps_the_builtin_meaning() -> None:
    with pytest.raises(LookupError):
        raise_for_reply(error_reply(FunctionNotFound("no such function")))
    with pytest.raises(ValueError):
        raise_for_reply(error_reply(ParameterError("bad value")))


def test_raise_for_reply_returns_an_ok_reply() -> None:
    reply = {"ok": True, "value": 3}
    assert raise_for_reply(reply) is reply


@pytest.mark.parametrize("code", ["no_such_code", "internal", "config", "error"])
def test_unknown_config_and_generic_codes_become_control_errors(code: str) -> None:
    with pytest.raises(ControlError) as info:
        raise_for_reply({"ok": False, "error": {"code": code, "message": "m"}})
    assert type(info.value) is ControlError
    assert info.value.code == code
    assert str(info.value) == "m"


def test_a_reply_without_an_error_body_is_a_control_error() -> None:
    with pytest.raises(ControlError) as info:
        raise_for_reply({"ok": False})
    assert info.value.code == "error"
    assert "unknown error" in str(info.value)


def test_control_timeout_is_a_timeout_with_code_timeout() -> None:
    exc = ControlTimeout("no reply in 2 s")
    assert exc.code == "timeout"
    assert isinstance(exc, TimeoutError)
    assert error_reply(exc)["error"]["code"] == "timeout"


def test_config_error_message_names_file_line_and_key() -> None:
    exc = ConfigError("must be > 0", "drivers[1].ring_seconds", 12, "/etc/rtoc.toml")
    assert str(exc) == "/etc/rtoc.toml:12: drivers[1].ring_seconds: must be > 0"
    assert (exc.key, exc.line, exc.file, exc.reason) == ("drivers[1].ring_seconds", 12,
                                                        "/etc/rtoc.toml", "must be > 0")


def test_config_error_without_line_or_file() -> None:
    assert str(ConfigError("bad", "engine.tick", None, "f.toml")) == "f.toml: engine.tick: bad"
    assert str(ConfigError("bad", "engine.tick")) == "engine.tick: bad"
    assert str(ConfigError("bad")) == "bad"


def test_errors_carry_their_fields() -> None:
    assert DriverNotFound("x", driver="Gen").driver == "Gen"
    assert SignalOwned("x", signal="Dev.S").signal == "Dev.S"
    assert DriverError("x").driver == ""


def test_raise_for_reply_gives_errors_their_fields() -> None:
    with pytest.raises(SignalOwned) as info:
        raise_for_reply(error_reply(SignalOwned("taken", signal="Dev.S")))
    assert info.value.signal == ""  # the reply carries code and message only
    with pytest.raises(DriverNotFound) as info2:
        raise_for_reply(error_reply(DriverNotFound("nope", driver="Gen")))
    assert info2.value.driver == ""


def test_event_error_round_trips() -> None:
    with pytest.raises(EventError) as info:
        raise_for_reply(error_reply(EventError("priority 7")))
    assert info.value.code == "bad_event" and str(info.value) == "priority 7"
