"""RTOC's exceptions: one root, each also the builtin whose meaning matches.

::

    RtocError
    ├── ConfigError(RtocError, ValueError)        bad rtoc.toml: names the key path and line
    ├── DriverError(RtocError)
    │   ├── DriverNotFound(DriverError, LookupError)
    │   ├── FunctionNotFound(DriverError, LookupError)
    │   ├── ParameterError(DriverError, ValueError)
    │   └── DriverNotRunning(DriverError)
    ├── SignalError(RtocError)
    │   ├── SignalNotFound(SignalError, LookupError)
    │   ├── SignalOwned(SignalError)               a second writer claimed a signal
    │   └── SampleError(SignalError, ValueError)   non-numeric or mismatched samples
    ├── EventError(RtocError, ValueError)          an invalid event (priority, text)
    ├── ConditionError(RtocError, ValueError)      a condition outside the language
    ├── RuleError(RtocError, ValueError)           an invalid event rule or action
    │   └── RuleNotFound(RuleError, LookupError)
    ├── RingError(RtocError)
    │   ├── RingFormatError(RingError, ValueError) not a ring file, wrong version
    │   └── ShmFull(RingError, OSError)            /dev/shm has no room for a ring
    ├── InstanceError(RtocError)
    │   └── InstanceRunning(InstanceError)         another supervisor holds the instance
    ├── EngineUnavailable(RtocError)               the engine (or archiver) is (re)starting
    ├── ArchiveOff(RtocError)                      the archive is disabled in rtoc.toml
    ├── ImportFileError(RtocError, ValueError)     a file to import is malformed (names the line)
    ├── BadRequest(RtocError, ValueError)          a peer's request of the wrong shape
    └── ControlError(RtocError)                    an error reply from the control plane
        └── ControlTimeout(ControlError, TimeoutError)

Each error has a stable ``code`` (used in control-plane error replies) and carries the
fields it is about (``signal``, ``driver``, ``key`` ...), so callers need not parse text.
"""

from __future__ import annotations


class RtocError(Exception):
    """Root of all RTOC errors."""

    code = "error"


class ConfigError(RtocError, ValueError):
    """The configuration is invalid; ``key`` is its path (``drivers[1].samplerate``)."""

    code = "config"

    def __init__(self, message: str, key: str = "", line: int | None = None, file: str = ""):
        self.key, self.line, self.file, self.reason = key, line, file, message
        where = key
        if file:
            where = f"{file}:{line}: {key}" if line else f"{file}: {key}"
        super().__init__(f"{where}: {message}" if where else message)


class DriverError(RtocError):
    code = "driver"

    def __init__(self, message: str, driver: str = ""):
        self.driver = driver
        super().__init__(message)


class DriverNotFound(DriverError, LookupError):
    code = "driver_not_found"


class FunctionNotFound(DriverError, LookupError):
    code = "function_not_found"


class ParameterError(DriverError, ValueError):
    code = "bad_parameter"


class DriverNotRunning(DriverError):
    code = "driver_not_running"


class SignalError(RtocError):
    code = "signal"

    def __init__(self, message: str, signal: str = ""):
        self.signal = signal
        super().__init__(message)


class SignalNotFound(SignalError, LookupError):
    code = "signal_not_found"


class SignalOwned(SignalError):
    code = "signal_owned"


class SampleError(SignalError, ValueError):
    code = "bad_sample"


class EventError(RtocError, ValueError):
    code = "bad_event"


class ConditionError(RtocError, ValueError):
    """A condition that is not in the language; ``column`` (1-based) and ``part`` say where."""

    code = "bad_condition"

    def __init__(self, message: str, text: str = "", column: int | None = None, part: str = ""):
        self.text, self.column, self.part, self.reason = text, column, part, message
        where = f"column {column}: " if column else ""
        shown = f" ({part!r})" if part and part != text else ""
        super().__init__(f"{where}{message}{shown}")


class RuleError(RtocError, ValueError):
    """An event rule or action that cannot be used; ``key`` names the field."""

    code = "bad_rule"

    def __init__(self, message: str, key: str = ""):
        self.key, self.reason = key, message
        super().__init__(f"{key}: {message}" if key else message)


class RuleNotFound(RuleError, LookupError):
    code = "rule_not_found"


class RingError(RtocError):
    code = "ring"


class RingFormatError(RingError, ValueError):
    code = "ring_format"


class ShmFull(RingError, OSError):
    code = "shm_full"


class InstanceError(RtocError):
    code = "instance"


class InstanceRunning(InstanceError):
    code = "instance_running"


class EngineUnavailable(RtocError):
    code = "unavailable"


class ArchiveOff(RtocError):
    code = "archive_off"


class ImportFileError(RtocError, ValueError):
    code = "bad_import"


class BadRequest(RtocError, ValueError):
    """A request (control plane, websocket) of the wrong shape: the peer's mistake, answered
    with this error; the connection lives on. Not for our own bugs (those are "internal")."""

    code = "bad_request"


class ControlError(RtocError):
    """An ``{ok: false}`` reply; ``code`` is the remote error code."""

    def __init__(self, message: str, code: str = "error"):
        self.code = code
        super().__init__(message)


class ControlTimeout(ControlError, TimeoutError):
    def __init__(self, message: str):
        super().__init__(message, "timeout")


_BY_CODE: dict[str, type[RtocError]] = {}


def _collect(cls: type[RtocError]) -> None:
    for sub in cls.__subclasses__():
        if isinstance(sub.__dict__.get("code"), str):
            _BY_CODE[sub.code] = sub
        _collect(sub)


_collect(RtocError)


def error_reply(exc: BaseException) -> dict:
    """The control-plane form of an exception: ``{ok: False, error: {code, message}}``."""
    code = getattr(exc, "code", None) if isinstance(exc, RtocError) else None
    return {"ok": False, "error": {"code": code or "internal", "message": str(exc)}}


def raise_for_reply(reply: dict) -> dict:
    """Return ``reply`` when ok, else raise the RtocError subclass its code names."""
    if reply.get("ok"):
        return reply
    err = reply.get("error") or {}
    code, message = str(err.get("code", "error")), str(err.get("message", "unknown error"))
    cls = _BY_CODE.get(code)
    # a bad_request reply is about the request this side sent: a ControlError with its code
    if cls is None or cls is ControlTimeout or issubclass(cls, (ConfigError, ControlError, BadRequest)):
        raise ControlError(message, code)
    raise cls(message)  # every class but ConfigError/ControlError takes just a message
