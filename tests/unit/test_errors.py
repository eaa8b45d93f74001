"""Unit tests of rtoc.errors: the tree, the builtins each error also is, control replies."""

from __future__ import annotations

import gc
import importlib
import pkgutil

import pytest

from rtoc.errors import (
    BadRequest,
    ConfigError,
    ControlError,
    ControlTimeout,
    DriverError,
    DriverNotFound,
    DriverNotRunning,
    EngineUnavailable,
    EventError,
    Forbidden,
    FunctionNotFound,
    InstanceError,
    InstanceRunning,
    LoginFailed,
    ParameterError,
    RingError,
    RingFormatError,
    RtocError,
    SampleError,
    ShmFull,
    SignalError,
    SignalNotFound,
    SignalOwned,
    error_class,
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


# -- the registry: every subclass, wherever it is defined -------------------------------------
ROOTS = ("rtoc", "rtoc.pipeline", "rtoc.drivers", "rtoc.frontends")  # pyproject's package-dir


def _every_module() -> list[str]:
    names: set[str] = set()
    for root in ROOTS:
        pkg = importlib.import_module(root)
        names.update(m.name for m in pkgutil.walk_packages(pkg.__path__, root + ".")
                     if not m.name.endswith("__main__"))
    return sorted(names)


def _every_subclass() -> list[type[RtocError]]:
    for name in _every_module():
        importlib.import_module(name)
    out, todo = [], [RtocError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in out:
                out.append(sub)
                todo.append(sub)
    return [cls for cls in out if cls.__module__.startswith("rtoc.")]  # not the tests' own


def test_every_subclass_in_the_tree_has_a_unique_code_that_maps_back_to_it() -> None:
    classes = _every_subclass()
    assert len(classes) > 30  # the walk found the frontends' and the client's errors too
    own = [cls for cls in classes if "code" in cls.__dict__]
    codes = [cls.__dict__["code"] for cls in own]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    for cls in own:
        assert error_class(cls.code) is cls, cls
    for cls in classes:  # a class without its own code shares its parent's (FrameRefused)
        assert issubclass(cls, error_class(cls.code)), cls
    assert {"bad_request", "bad_frame", "bad_message", "forbidden", "login_failed",
            "archive_unavailable", "query_refused", "bad_password_hash"} <= set(codes)


def test_a_second_class_with_a_taken_code_is_refused_when_it_is_created() -> None:
    with pytest.raises(TypeError, match="'signal_owned'.*already rtoc.errors.SignalOwned"):
        type("Impostor", (RtocError,), {"code": "signal_owned"})
    gc.collect()  # the half-made class
    assert error_class("signal_owned") is SignalOwned


def test_every_registered_class_comes_back_from_its_reply_or_is_a_control_error() -> None:
    for cls in _every_subclass():
        if "code" not in cls.__dict__:
            continue
        reply = {"ok": False, "error": {"code": cls.code, "message": "from afar"}}
        with pytest.raises(RtocError) as info:
            raise_for_reply(reply)
        got = info.value
        assert str(got) == "from afar" and got.code == cls.code
        if cls.blames_request or issubclass(cls, (ConfigError, ControlError)):
            assert type(got) is ControlError, cls
        else:
            assert type(got) is cls, cls


def test_replies_that_blame_the_request_stay_control_errors() -> None:
    for code in ("bad_request", "bad_frame"):
        with pytest.raises(ControlError) as info:
            raise_for_reply({"ok": False, "error": {"code": code, "message": "m"}})
        assert type(info.value) is ControlError and info.value.code == code
    with pytest.raises(Forbidden):
        raise_for_reply(error_reply(Forbidden("read only")))
    with pytest.raises(LoginFailed):
        raise_for_reply(error_reply(LoginFailed("wrong user or password")))


def test_http_status_follows_the_type() -> None:
    for cls in _every_subclass():
        assert isinstance(cls.http_status, int) and 400 <= cls.http_status <= 599, cls
    assert (BadRequest.http_status, SignalError.http_status, SignalNotFound.http_status,
            Forbidden.http_status, LoginFailed.http_status, EngineUnavailable.http_status,
            ControlTimeout.http_status, RtocError.http_status) == (400, 400, 404, 403, 401, 503,
                                                                    504, 500)
