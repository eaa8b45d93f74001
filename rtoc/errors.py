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
    │   ├── ShmFull(RingError, OSError)            /dev/shm has no room for a ring
    │   └── ShmBudgetExceeded(RingError)           a new ring would pass the rings' budget
    ├── InstanceError(RtocError)
    │   └── InstanceRunning(InstanceError)         another supervisor holds the instance
    ├── EngineUnavailable(RtocError)               the engine (or archiver) is (re)starting
    ├── ArchiveOff(RtocError)                      the archive is disabled in rtoc.toml
    ├── ArchiveError(RtocError)                    the archive failed
    │   ├── ArchiveUnavailable(.., ConnectionError) the database is away: batches spool
    │   └── QueryRefused(.., PermissionError)      `rtoc query` refused a statement
    ├── ImportFileError(RtocError, ValueError)     a file to import is malformed (names the line)
    ├── BadRequest(RtocError, ValueError)          a peer's request of the wrong shape
    ├── Forbidden(RtocError, PermissionError)      the peer's role does not allow it
    ├── LoginFailed(RtocError, PermissionError)    wrong user or password, or throttled
    └── ControlError(RtocError)                    an error reply from the control plane
        └── ControlTimeout(ControlError, TimeoutError)

Each error has a stable ``code`` (used in error replies) and carries the fields it is about
(``signal``, ``driver``, ``key`` ...), so callers need not parse text. Every subclass,
wherever it is defined (``FrameError``, ``ArchiveError``, ``MessageRejected`` ...), is
registered when its class is created: :func:`error_class` maps a reply's code back to the
class, and a second class with a code already taken is refused (TypeError) there and then. A
subclass that sets no code of its own shares its parent's (``FrameRefused`` is a
``bad_frame``) and is not registered under it. ``http_status`` is the HTTP status an error
gets where it answers an HTTP request: it follows the type, never the message.
"""

from __future__ import annotations

from typing import ClassVar

_BY_CODE: dict[str, type[RtocError]] = {}


class RtocError(Exception):
    """Root of all RTOC errors."""

    code = "error"
    #: the HTTP status of this error where it answers an HTTP request
    http_status: ClassVar[int] = 500
    #: True: the code says the request that got the reply was malformed (``bad_request``,
    #: ``bad_frame``), the caller's own bug: :func:`raise_for_reply` raises a ControlError
    #: with the code instead of this class
    blames_request: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if code is None:
            return  # shares its parent's code
        if not isinstance(code, str) or not code:
            raise TypeError(f"{cls.__qualname__}.code must be non-empty text, got {code!r}")
        other = _BY_CODE.get(code)
        if other is not None and (other.__module__, other.__qualname__) != (cls.__module__,
                                                                            cls.__qualname__):
            raise TypeError(f"error code {code!r} of {cls.__module__}.{cls.__qualname__} is "
                            f"already {other.__module__}.{other.__qualname__}'s")
        _BY_CODE[code] = cls  # (a module reloaded: the same class again replaces itself)

    @classmethod
    def from_reply(cls, message: str) -> RtocError:
        """The error a reply with this class's code and ``message`` stands for (a reply
        carries no fields). A class whose constructor needs more overrides this."""
        return cls(message)


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
    http_status = 404


class FunctionNotFound(DriverError, LookupError):
    code = "function_not_found"
    http_status = 404


class ParameterError(DriverError, ValueError):
    code = "bad_parameter"
    http_status = 400


class DriverNotRunning(DriverError):
    code = "driver_not_running"
    http_status = 409


class SignalError(RtocError):
    code = "signal"
    http_status = 400

    def __init__(self, message: str, signal: str = ""):
        self.signal = signal
        super().__init__(message)


class SignalNotFound(SignalError, LookupError):
    code = "signal_not_found"
    http_status = 404


class SignalOwned(SignalError):
    code = "signal_owned"
    http_status = 409


class SampleError(SignalError, ValueError):
    code = "bad_sample"


class EventError(RtocError, ValueError):
    code = "bad_event"
    http_status = 400


class ConditionError(RtocError, ValueError):
    """A condition that is not in the language; ``column`` (1-based) and ``part`` say where."""

    code = "bad_condition"
    http_status = 400

    def __init__(self, message: str, text: str = "", column: int | None = None, part: str = ""):
        self.text, self.column, self.part, self.reason = text, column, part, message
        where = f"column {column}: " if column else ""
        shown = f" ({part!r})" if part and part != text else ""
        super().__init__(f"{where}{message}{shown}")


class RuleError(RtocError, ValueError):
    """An event rule or action that cannot be used; ``key`` names the field."""

    code = "bad_rule"
    http_status = 400

    def __init__(self, message: str, key: str = ""):
        self.key, self.reason = key, message
        super().__init__(f"{key}: {message}" if key else message)


class RuleNotFound(RuleError, LookupError):
    code = "rule_not_found"
    http_status = 404


class RingError(RtocError):
    code = "ring"


class RingFormatError(RingError, ValueError):
    code = "ring_format"


class ShmFull(RingError, OSError):
    code = "shm_full"


class ShmBudgetExceeded(RingError):
    """A new ring would pass a budget of ``[supervisor]`` (``budget``: which one)."""

    code = "shm_budget"
    http_status = 507

    def __init__(self, message: str = "", owner: str = "", budget: str = ""):
        super().__init__(message)
        self.owner, self.budget = owner, budget


class InstanceError(RtocError):
    code = "instance"


class InstanceRunning(InstanceError):
    code = "instance_running"
    http_status = 409


class EngineUnavailable(RtocError):
    code = "unavailable"
    http_status = 503


class ArchiveOff(RtocError):
    code = "archive_off"
    http_status = 503


class ArchiveError(RtocError):
    """The archive failed (these cross processes: the archiver raises, clients map them back)."""

    code = "archive"


class ArchiveUnavailable(ArchiveError, ConnectionError):
    """The database cannot be reached or written (stopped server, disk full): spool."""

    code = "archive_unavailable"
    http_status = 503


class QueryRefused(ArchiveError, PermissionError):
    """``query`` refused a statement that could change the database or touch files."""

    code = "query_refused"
    http_status = 403


class ImportFileError(RtocError, ValueError):
    code = "bad_import"
    http_status = 400


class BadRequest(RtocError, ValueError):
    """A request (control plane, websocket) of the wrong shape: the peer's mistake, answered
    with this error; the connection lives on. Not for our own bugs (those are "internal")."""

    code = "bad_request"
    http_status = 400
    blames_request = True


class Forbidden(RtocError, PermissionError):
    """The peer's role does not allow the request (it may log in as a user who may)."""

    code = "forbidden"
    http_status = 403


class LoginFailed(RtocError, PermissionError):
    """Wrong user or password, or too many failed logins from the address."""

    code = "login_failed"
    http_status = 401


class ControlError(RtocError):
    """An ``{ok: false}`` reply; ``code`` is the remote error code (the class's own,
    ``control``, only names the class in the registry)."""

    code = "control"
    http_status = 502  # the part of the instance behind this one answered with an error

    def __init__(self, message: str, code: str = "error"):
        self.code = code
        super().__init__(message)


class ControlTimeout(ControlError, TimeoutError):
    code = "timeout"
    http_status = 504

    def __init__(self, message: str):
        super().__init__(message, "timeout")


def error_class(code: str) -> type[RtocError] | None:
    """The RtocError subclass registered under ``code``, or None (the root's ``error``, and
    codes no class of this process defines: ``internal``, ``unknown_op`` ...)."""
    return _BY_CODE.get(code)


def error_reply(exc: BaseException) -> dict:
    """The control-plane form of an exception: ``{ok: False, error: {code, message}}``."""
    code = getattr(exc, "code", None) if isinstance(exc, RtocError) else None
    return {"ok": False, "error": {"code": code or "internal", "message": str(exc)}}


def raise_for_reply(reply: dict) -> dict:
    """Return ``reply`` when ok, else raise the RtocError subclass its code names.

    A ControlError with the code instead when no class of this process has the code, for
    ``config`` (the reply lost the key and line), for codes that blame the request this side
    sent (``bad_request``, ``bad_frame``: its own bug) and for ``timeout`` (a ControlTimeout
    means that this side's own wait ran out).
    """
    if reply.get("ok"):
        return reply
    err = reply.get("error") or {}
    code, message = str(err.get("code", "error")), str(err.get("message", "unknown error"))
    cls = _BY_CODE.get(code)
    if cls is None or cls.blames_request or issubclass(cls, (ConfigError, ControlError)):
        raise ControlError(message, code)
    raise cls.from_reply(message)
