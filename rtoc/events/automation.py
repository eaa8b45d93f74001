"""Trusted Python automation: the API of the files in the config folder's ``automations/``.

An automation file is ordinary Python, written by the machine's owner::

    from rtoc.events.automation import Edge, every, on_event

    hot = Edge()

    @every(10)
    def check(rtoc):
        if hot(rtoc.latest("Thermo.T", 0.0) > 30):    # true once, when it turns true
            rtoc.call("Heater", "off")
            rtoc.notify("too hot: heater off", priority=1)

    @on_event("door_open")
    def door(event, rtoc):
        rtoc.event("door opened while heating", priority=1, id="door_heating")

The decorators only mark functions (like ``rtoc.function``); nothing is registered
globally. :func:`load_folder` imports the files of one local folder with importlib, and
:class:`AutomationCore` holds the marked handlers of the loaded modules and calls them:
a pure core (``next_deadline()``, ``on_timer(now)``, ``on_event(event)``,
``on_data(name, t, y)``) without sockets or clock reads. The process around it is
``rtoc.frontends.automation.host``; it injects the :class:`Transport` (control plane and
engine inbox).

Trust: only files of the local folder are ever loaded. Nothing received over the network
or a chat is imported, evaluated or executed; remote clients can at most switch the
declarative events and actions of the config on and off.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import math
import os
import re
import stat
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

from rtoc.errors import DriverNotFound, EventError, ParameterError
from rtoc.model import PRIORITIES, Event

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

EVENT_MARK = "__rtoc_on_event__"   # frozenset of ids, or None for every event
EVERY_MARK = "__rtoc_every__"      # (period in s, call at start)
SOURCE_PREFIX = "automation:"      # Event.extra["source"] of events raised by automation
TRIGGERS = ("rising", "falling", "both")
FULL_TRACEBACKS = 3                # failures of one handler in a row logged with traceback
REPEAT_EVERY = 100                 # after those, one line per this many failures


# -- marking handlers ---------------------------------------------------------------------

def on_event(*ids: str | Callable) -> Any:
    """Mark ``fn(event, rtoc)`` to run for events with one of ``ids`` (none: every event).

    ``@on_event`` without parentheses also means every event. A handler for every event
    does not see events raised by automation files, so it cannot feed itself.
    """
    if len(ids) == 1 and callable(ids[0]):
        return on_event()(ids[0])
    for i in ids:
        if not isinstance(i, str) or not i:
            raise TypeError(f"on_event ids must be non-empty strings, got {i!r}")
    wanted = frozenset(ids) if ids else None

    def mark(fn: F) -> F:
        if getattr(fn, EVERY_MARK, None) is not None:
            raise TypeError(f"{fn.__name__} is already marked; a handler has one @every or "
                            "@on_event(...)")
        old = getattr(fn, EVENT_MARK, False)
        if old is not False:  # stacked @on_event: the union of ids
            wanted_all = None if old is None or wanted is None else old | wanted
            setattr(fn, EVENT_MARK, wanted_all)
        else:
            setattr(fn, EVENT_MARK, wanted)
        return fn

    return mark


def every(seconds: float, *, immediately: bool = False) -> Callable[[F], F]:
    """Mark ``fn(rtoc)`` to run every ``seconds`` (s, > 0); first after one period, or
    also right at start with ``immediately=True``. A late run is not repeated to catch up.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
            or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"every() needs a positive number of seconds, got {seconds!r}")

    def mark(fn: F) -> F:
        if getattr(fn, EVERY_MARK, None) is not None or getattr(fn, EVENT_MARK, False) is not False:
            raise TypeError(f"{fn.__name__} is already marked; a handler has one @every or "
                            "@on_event(...)")
        setattr(fn, EVERY_MARK, (float(seconds), bool(immediately)))
        return fn

    return mark


class Edge:
    """RTOC's ``trig COND:``: ``edge(cond)`` is True only when ``cond`` changes.

    ``trigger`` is ``"rising"`` (turns true; the first true counts, as in RTOC, since the
    previous state starts unknown), ``"falling"`` (true -> false) or ``"both"``.
    """

    def __init__(self, trigger: str = "rising"):
        if trigger not in TRIGGERS:
            raise ValueError(f"Edge trigger must be one of {', '.join(TRIGGERS)}, got {trigger!r}")
        self.trigger = trigger
        self.state: bool | None = None

    def __call__(self, condition: object) -> bool:
        now = bool(condition)
        before, self.state = self.state, now
        if now:
            return self.trigger != "falling" and before is not True
        return self.trigger != "rising" and before is True

    def reset(self) -> None:
        """Forget the previous state: the next true fires again."""
        self.state = None


# -- what a handler gets ------------------------------------------------------------------

class Transport(Protocol):
    """How an :class:`Api` reaches the instance; the process shell provides it."""

    def request(self, op: str, **fields: Any) -> dict:
        """A control-plane request; the reply, or raises an ``RtocError``."""
        ...

    def push(self, message: dict) -> None:
        """Send one message to the engine's inbox (``{"kind": "event" | "notify", ...}``)."""
        ...


class Api:
    """What every handler gets as ``rtoc``: latest values, control, events, a logger.

    One per automation file (its logger is ``rtoc.events.automation.<file>``); all share the
    latest values the core keeps and the transport.
    """

    def __init__(self, name: str, transport: Transport, clock: Callable[[], float],
                 values: dict[str, tuple[float, float]]):
        self.name = name
        self.log = logging.getLogger(f"rtoc.events.automation.{_identifier(name)}")
        self._transport, self._clock, self._values = transport, clock, values

    # values
    def latest(self, name: str, default: float | None = None) -> float | None:
        """The latest value of signal ``name`` (``"Device.Signal"``), or ``default``
        when none arrived since the automation started."""
        sample = self._values.get(name)
        return default if sample is None else sample[1]

    def latest_sample(self, name: str) -> tuple[float, float] | None:
        """``(t, y)`` of the latest sample (``t`` unix s), or None."""
        return self._values.get(name)

    def signals(self) -> list[str]:
        """Names of the signals with a latest value."""
        return sorted(self._values)

    def time(self) -> float:
        """The current time, unix seconds (the clock events are stamped with)."""
        return self._clock()

    # control plane
    def call(self, device: str, function: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call a driver function, e.g. ``call("Generator", "set_frequency", 2.0)``;
        returns its result; raises ``RtocError`` (e.g. ``FunctionNotFound``) on refusal."""
        reply = self._transport.request("call", driver=device, function=function,
                                        args=list(args), kwargs=dict(kwargs))
        return reply.get("result")

    def set(self, device: str, parameter: str, value: Any) -> Any:
        """Set a driver parameter; returns the value after validation (``2`` -> ``2.0``)."""
        return self._transport.request("set", driver=device, param=parameter, value=value).get("value")

    def get(self, device: str, parameter: str) -> Any:
        """A driver parameter's current value (asks the control plane)."""
        for d in self._transport.request("drivers").get("drivers", []):
            if d.get("name") == device:
                for p in d.get("parameters", []):
                    if p.get("name") == parameter:
                        return p.get("value")
                raise ParameterError(f"driver {device!r} has no parameter {parameter!r}", device)
        raise DriverNotFound(f"no driver {device!r}", device)

    def request(self, op: str, **fields: Any) -> dict:
        """Any other control-plane request (``start``/``stop`` a driver, ``status`` ...)."""
        return self._transport.request(op, **fields)

    # events and notifications
    def event(self, text: str, priority: int = 0, id: str = "", device: str = "",
              signal: str = "", value: Any = None) -> Event:
        """Raise an event (published on the bus like a driver's; actions and frontends see
        it). ``priority`` 0 info, 1 warning, 2 error."""
        ev = Event(time=self._clock(), text=text, device=device, signal=signal,
                   priority=priority, id=id, value=_plain(value),
                   extra={"source": SOURCE_PREFIX + self.name})
        self._transport.push({"kind": "event", "event": ev.to_dict()})
        return ev

    def notify(self, text: str, priority: int = 0) -> None:
        """Send a notification to the frontends (Telegram, websocket), not an event."""
        if priority not in PRIORITIES:
            raise EventError(f"notification priority must be 0, 1 or 2, got {priority!r}")
        self._transport.push({"kind": "notify", "notify": {
            "time": self._clock(), "text": str(text), "priority": priority,
            "source": SOURCE_PREFIX + self.name}})


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) and getattr(value, "shape", None) == () else value


# -- the core -----------------------------------------------------------------------------

@dataclass
class Handler:
    """One marked function of one file."""

    file: str
    name: str
    fn: Callable[..., Any]
    api: Api
    ids: frozenset[str] | None = None     # event handlers: ids, None = every event
    period: float | None = None           # timers: seconds
    deadline: float | None = None         # timers: next run (the core's clock)
    calls: int = 0
    failures: int = 0                      # in total
    streak: int = 0                        # in a row

    @property
    def label(self) -> str:
        return f"{self.file}: {self.name}()"


class AutomationCore:
    """The handlers of the loaded modules, called on timers, events and data.

    ``now`` is any monotonic clock in seconds (the shell uses ``time.monotonic()``);
    ``clock`` is the wall clock (unix s) events and notifications are stamped with. A
    handler that raises is logged with its file and name; the others run on.
    """

    def __init__(self, modules: Iterable[ModuleType], transport: Transport,
                 clock: Callable[[], float], now: float):
        self.transport, self.clock = transport, clock
        self.values: dict[str, tuple[float, float]] = {}
        self.timers: list[Handler] = []
        self.listeners: list[Handler] = []
        for module in modules:
            self.add(module, now)

    def add(self, module: ModuleType, now: float) -> int:
        """Take the marked functions defined in ``module``; returns how many."""
        file = Path(getattr(module, "__file__", None) or module.__name__).name
        api = Api(file, self.transport, self.clock, self.values)
        found = 0
        for name, fn in list(vars(module).items()):
            if not callable(fn) or getattr(fn, "__module__", None) != module.__name__:
                continue  # imported from elsewhere: its own file registers it
            ids = getattr(fn, EVENT_MARK, False)
            period = getattr(fn, EVERY_MARK, None)
            if ids is False and period is None:
                continue
            wanted = "(event, rtoc)" if ids is not False else "(rtoc)"
            if not _accepts(fn, 2 if ids is not False else 1):
                log.error("automation %s: %s() must take %s: skipped", file, name, wanted)
                continue
            if ids is not False:
                self.listeners.append(Handler(file, name, fn, api, ids=ids))
            else:
                seconds, immediately = period
                self.timers.append(Handler(file, name, fn, api, period=seconds,
                                           deadline=now if immediately else now + seconds))
            found += 1
        if not found:
            log.warning("automation %s defines no @every or @on_event handler", file)
        return found

    def next_deadline(self) -> float | None:
        """When ``on_timer`` next has work (the ``now`` clock), or None: no timers."""
        return min((h.deadline for h in self.timers if h.deadline is not None), default=None)

    def on_timer(self, now: float) -> int:
        """Run every timer due at ``now``; returns how many ran."""
        ran = 0
        for h in self.timers:
            if h.deadline is None or h.deadline > now:
                continue
            h.deadline += h.period
            if h.deadline <= now:  # late by a period or more: no burst to catch up
                h.deadline = now + h.period
            self._run(h, h.api)
            ran += 1
        return ran

    def on_event(self, event: Event) -> int:
        """Run the handlers of ``event``'s id; returns how many ran."""
        from_automation = str((event.extra or {}).get("source", "")).startswith(SOURCE_PREFIX)
        ran = 0
        for h in self.listeners:
            if h.ids is None:
                if from_automation:
                    continue  # a catch-all raising events would feed itself
            elif event.id not in h.ids:
                continue
            self._run(h, event, h.api)
            ran += 1
        return ran

    def on_data(self, name: str, t: Any, y: Any) -> None:
        """Keep the latest sample of a batch (``t``, ``y``: float64[n]; n may be 0)."""
        if len(t):
            self.values[name] = (float(t[-1]), float(y[-1]))

    @property
    def handlers(self) -> list[Handler]:
        return self.timers + self.listeners

    def _run(self, h: Handler, *args: Any) -> None:
        h.calls += 1
        try:
            h.fn(*args)
        except (Exception, SystemExit) as exc:
            h.failures += 1
            h.streak += 1
            if h.streak <= FULL_TRACEBACKS:
                log.error("automation %s failed: %s: %s\n%s", h.label, type(exc).__name__, exc,
                          _user_traceback(exc))
                log.debug("automation %s: the full traceback", h.label, exc_info=exc)
            elif h.streak % REPEAT_EVERY == 0:
                log.error("automation %s failed %d times in a row; last: %s: %s", h.label,
                          h.streak, type(exc).__name__, exc)
        else:
            if h.streak > FULL_TRACEBACKS:
                log.info("automation %s works again after %d failures", h.label, h.streak)
            h.streak = 0


# -- loading ------------------------------------------------------------------------------

def automation_files(folder: str | Path) -> list[Path]:
    """The files :func:`load_folder` would load: ``*.py`` not starting with ``_``, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_") and p.is_file())


def has_automations(folder: str | Path) -> bool:
    """Whether ``folder`` holds automation files (so an automation process is worth it)."""
    return bool(automation_files(folder))


def load_folder(folder: str | Path) -> list[ModuleType]:
    """Import each automation file of the local ``folder``; skip (and log) those that fail.

    Only local files are loaded, never anything received over a network. A file or folder
    that anyone may write to (world-writable) is refused: whoever can write it could run
    code as the instance's user.
    """
    folder = Path(folder)
    files = automation_files(folder)
    if not files:
        return []
    if _world_writable(folder):
        log.error("automation folder %s is writable by anyone: nothing loaded (chmod o-w it)",
                  folder)
        return []
    modules = []
    for path in files:
        if _world_writable(path):
            log.error("automation %s is writable by anyone: skipped (chmod o-w it)", path)
            continue
        module = _load_file(path)
        if module is not None:
            modules.append(module)
    return modules


def _load_file(path: Path) -> ModuleType | None:
    name = "rtoc_automation_" + _identifier(path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        log.error("automation %s cannot be loaded: skipped", path)
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        log.error("automation %s failed to load, skipped: %s: %s\n%s", path, type(exc).__name__,
                  exc, _user_traceback(exc))
        return None
    return module


def _accepts(fn: Callable[..., Any], n: int) -> bool:
    """Whether ``fn`` can be called with ``n`` positional arguments."""
    try:
        inspect.signature(fn).bind(*range(n))
    except TypeError:
        return False
    except ValueError:
        return True  # no signature to check (a builtin): the call will tell
    return True


def _user_traceback(exc: BaseException) -> str:
    """The traceback as far as it concerns an automation file's author: from the handler
    (or the file's top level) down to the ``rtoc.events.automation`` call it made, without the
    core's own frame, importlib's, or the control plane's inside the API."""
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # [0]: the core calling in
    shown = []
    for frame in frames:
        if frame.filename.startswith("<frozen "):
            continue
        shown.append(frame)
        if frame.filename == __file__:
            break  # into the API: what follows is rtoc's own business
    text = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
    if shown:
        text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(shown)) + text
    return text


def _world_writable(path: Path) -> bool:
    try:
        return os.name == "posix" and bool(path.stat().st_mode & stat.S_IWOTH)
    except OSError:
        return False


def _identifier(text: str) -> str:
    return re.sub(r"\W", "_", text.removesuffix(".py")) or "_"
