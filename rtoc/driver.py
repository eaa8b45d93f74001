"""``rtoc.Driver``: the class a driver author subclasses.

A driver streams samples (``stream``, ``write``), replaces signal content (``plot``), raises
events (``event``), runs a drift-free periodic timer (``poll`` or ``setPerpetualTimer`` at
``samplerate``), and declares parameters (:class:`rtoc.Parameter`) and functions
(:func:`rtoc.function`) that the control plane can set and call.

A driver never touches ZeroMQ, shared memory or logging set-up. It gets a
:class:`DriverContext` (name, logger, options, clock, a *sink*) from whoever hosts it: the
driver process (rings) or :mod:`rtoc.testing` (memory). The names RTOC plugin authors know
(``stream(y, snames, dname, unit, x)``, ``plot(x, y, sname, dname, unit)``, ``event(...)``,
``setPerpetualTimer``, ``samplerate``, ``setDeviceName``) work as they did.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rtoc.errors import DriverError, FunctionNotFound, ParameterError, SampleError
from rtoc.model import Event, as_batch, check_part
from rtoc.params import Parameter, ParamStore, describe_function
from rtoc.plugin_api import GUI_METHODS, PluginApi

FLUSH_SAMPLES = 4096  # a single-sample buffer is handed to the sink at this size

# Where a driver is in its life: setup() not run (yet, or again after close()), running
# now, completed, or raised.
_PENDING, _RUNNING, _DONE, _FAILED = "pending", "running", "done", "failed"


class SignalWriter(Protocol):
    """What a sink hands out per signal (a ring writer, or a list in memory)."""

    def write(self, t: np.ndarray, y: np.ndarray) -> int: ...
    def plot(self, t: np.ndarray, y: np.ndarray) -> int: ...


class Sink(Protocol):
    """Where a driver's output goes. ``claim`` raises SignalOwned for another's signal."""

    def claim(self, device: str, signal: str, unit: str, rate: float,
              content: str = "samples") -> SignalWriter: ...
    def event(self, event: Event) -> None: ...


@dataclass
class DriverContext:
    """What a host gives a driver: its name, options, clock, sink and parameter store."""

    name: str
    sink: Sink
    options: Mapping[str, Any] = field(default_factory=dict)   # the config's params table
    clock: Callable[[], float] = time.time
    store: ParamStore = field(default_factory=lambda: ParamStore(None))
    logger: logging.Logger | logging.LoggerAdapter | None = None


current_context: contextvars.ContextVar[DriverContext] = contextvars.ContextVar("rtoc_driver_context")


def construct(cls: type[Driver], ctx: DriverContext) -> Driver:
    """``cls()`` with ``ctx`` as its context: the way hosts build drivers, so a plugin whose
    ``__init__`` takes no ``context`` argument (older RTOC plugins) is built all the same."""
    token = current_context.set(ctx)
    try:
        return cls()
    finally:
        current_context.reset(token)


def _tracked_setup(fn: Callable) -> Callable:
    """``fn`` (a driver's ``setup``) recording that it ran, wherever it is called from (a
    host, ``ensure_setup``, the driver itself), so the base class never runs it again."""

    @functools.wraps(fn)
    def setup(self: Driver, *args: Any, **kwargs: Any) -> Any:
        if self._setup_state == _RUNNING:  # super().setup() inside a subclass's setup
            return fn(self, *args, **kwargs)
        self._setup_state, self._setup_error = _RUNNING, None
        try:
            result = fn(self, *args, **kwargs)
        except BaseException as exc:
            self._setup_state, self._setup_error = _FAILED, exc
            raise
        self._setup_state = _DONE
        return result

    setup.__rtoc_tracked__ = True
    return setup


def _tracked_close(fn: Callable) -> Callable:
    """``fn`` (a driver's ``close``) after which the next tick or function sets up again."""

    @functools.wraps(fn)
    def close(self: Driver, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        finally:
            self._setup_state, self._setup_error = _PENDING, None

    close.__rtoc_tracked__ = True
    return close


class _Buffer:
    __slots__ = ("writer", "t", "y", "name", "last_x")

    def __init__(self, writer: SignalWriter, name: str):
        self.writer, self.name, self.t, self.y = writer, name, [], []
        self.last_x: float | None = None  # newest x given to plot(), for hold="mergeX"


class _Timer:
    """A drift-free timer: ticks at ``start + k * period`` (computed, never accumulated:
    repeated float additions at unix-time magnitudes drift), never sleeps itself."""

    def __init__(self, fn: Callable[[], Any], period: float):
        self.fn = fn
        self._period = period
        self.start: float | None = None
        self.k = 0
        self.missed = 0

    @property
    def period(self) -> float:
        return self._period

    @period.setter
    def period(self, value: float) -> None:
        if self.start is not None:  # keep the next deadline, change the spacing after it
            self.start, self.k = self.next, 0
        self._period = value

    @property
    def next(self) -> float | None:
        return None if self.start is None else self.start + self.k * self._period

    def due(self, now: float) -> bool:
        if self.start is None:
            self.start = now
        return now >= self.next

    def advance(self, now: float) -> None:
        self.k += 1
        behind = int((now - self.next) / self._period)
        if behind >= 1:  # far behind: skip ahead instead of bursting
            self.k += behind
            self.missed += behind


class Driver:
    """Base class of all drivers. Subclass it, set ``samplerate``, write ``poll()``.

    Class attributes: ``samplerate`` (Hz of the timer; a Parameter), ``autostart``.
    Hooks: ``setup()`` (after parameters are applied, in the driver's process),
    ``poll()`` (each timer tick), ``close()`` (on stop), ``parameter_changed(name, value)``.

    The base class guarantees that ``setup()`` has completed, once, before it runs any of
    the driver's other code: a timer tick (``poll`` or the ``setPerpetualTimer`` function),
    ``parameter_changed``, a function called through ``call_function``. A host normally
    calls ``ensure_setup()`` before ``start()``; if it did not, the first tick or function
    call runs ``setup()`` first. A parameter set before ``setup()`` is only stored (setup
    reads it), without the hook. If ``setup()`` raised, none of that code runs: each later
    attempt raises :class:`DriverError` from the original error. ``close()`` ends the set-up
    life: a tick or function after it runs ``setup()`` again.
    """

    samplerate = Parameter(1.0, "Rate of the driver's timer (poll) in Hz", min=1e-6, max=1e7)
    expose_public_methods = False  # LoggerPlugin sets this: every public method is a function
    options_after_init = False     # LoggerPlugin: unknown params are checked after __init__
    start_on_launch = True         # the host starts the timer (LoggerPlugin: start() or AUTORUN)
    _setup_state = _PENDING   # per instance once setup() was called
    _setup_error: BaseException | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # getattr, not vars: a setup() from a mixin before Driver in the MRO counts too
        for name, track in (("setup", _tracked_setup), ("close", _tracked_close)):
            fn = getattr(cls, name)
            if not getattr(fn, "__rtoc_tracked__", False):
                setattr(cls, name, track(fn))

    def __init__(self, *args: Any, context: DriverContext | None = None, **kwargs: Any):
        ctx = context or current_context.get(None)
        if ctx is None:
            from rtoc.testing import MemorySink  # a driver made by hand records in memory

            ctx = DriverContext(name=type(self).__name__, sink=MemorySink())
        self._ctx = ctx
        self._devicename = check_part("device", ctx.name)
        self._clock = ctx.clock
        self._sink = ctx.sink
        self._lock = threading.Lock()
        self._buffers: dict[tuple[str, str], _Buffer] = {}
        self._own: dict[str, _Buffer] = {}  # signals of the default device, by signal name
        self._timer: _Timer | None = None
        self._log = deque(maxlen=100)
        self.logger = ctx.logger or logging.getLogger(f"rtoc.driver.{ctx.name}")
        self.run = False
        self.rejected_parameters: dict[str, dict] = {}  # persisted values set aside, and why
        self._load_parameters()
        if type(self).poll is not Driver.poll:
            self._timer = _Timer(self.poll, 1.0 / self.tick_rate())

    # -- lifecycle ---------------------------------------------------------------
    @_tracked_setup
    def setup(self) -> None:
        """Called once in the driver's process, after parameters are applied, before any
        tick, ``parameter_changed`` or function call."""

    def poll(self) -> None:
        """Called at ``samplerate`` Hz while running, when a subclass defines it."""

    @_tracked_close
    def close(self) -> None:
        """Called when the driver stops: release hardware here. It may run on a driver whose
        ``setup()`` never ran or raised, so release only what was acquired."""

    def ensure_setup(self) -> None:
        """Run ``setup()`` unless it has completed: hosts call this before ``start()``; the
        base class calls it before each tick and function call. A ``setup()`` that raised
        is not retried (until ``close()``): this raises :class:`DriverError` from its error.
        """
        state = self._setup_state
        if state == _DONE or state == _RUNNING:  # _RUNNING: setup() itself got here
            return
        if state == _FAILED:
            exc = self._setup_error
            raise DriverError(f"{self._ctx.name}: setup() failed, so the driver does not run: "
                              f"{type(exc).__name__}: {exc}", self._ctx.name) from exc
        self.setup()

    def tick_rate(self) -> float:
        """Rate of the timer in Hz; drivers that produce blocks override this."""
        return self.samplerate

    def start(self) -> None:
        """Start the timer (RTOC: ``start()``)."""
        self.run = True

    def stop(self) -> None:
        """Stop the timer; streaming by other means still works."""
        self.run = False

    cancel = stop

    def setPerpetualTimer(self, fun: Callable[[], Any], samplerate: float | None = None,  # noqa: N802
                          interval: float | None = None, old: bool = False) -> None:
        """RTOC's timer: call ``fun`` at ``samplerate`` Hz (or every ``interval`` s)."""
        if interval is not None:
            samplerate = 1.0 / interval
        if samplerate is not None:
            self.__dict__["samplerate"] = Driver.samplerate.validate(float(samplerate))
        self._timer = _Timer(fun, 1.0 / self.tick_rate())

    def setDeviceName(self, devicename: str = "noDevice") -> None:  # noqa: N802
        """RTOC's name for the default device of ``stream``/``plot``/``event``."""
        self.flush()
        self._devicename = check_part("device", devicename)
        self._own.clear()

    @property
    def devicename(self) -> str:
        return self._devicename

    # -- output ------------------------------------------------------------------
    def stream(self, y: Any = None, snames: Any = None, dname: str | None = None,
               unit: Any = None, x: Any = None, slist: list | None = None,
               sdict: dict | None = None) -> None:
        """Append one value to each of one or more signals (RTOC's ``stream``).

        ``stream(1.5, "T")``; ``stream([1, 2], ["A", "B"], unit=["V", "A"])``;
        ``slist=[[y, sname, unit], ...]``; ``sdict={dname: {sname: [y, unit]}}``.
        ``x`` defaults to now (unix seconds); a list ``x`` gives each value its own time.
        """
        if (snames.__class__ is str and (y.__class__ is float or y.__class__ is int)
                and dname is None and (x is None or x.__class__ is float)):
            buf = self._own.get(snames)
            if buf is not None:  # the hot path: one known signal, one number
                if x is None:
                    x = self._clock()
                with self._lock:
                    buf.t.append(x)
                    buf.y.append(y)
                    if len(buf.t) >= FLUSH_SAMPLES:
                        self._flush_buffer(buf)
                return
        if sdict is not None:
            for dev, signals in sdict.items():
                for sname, (value, u) in signals.items():
                    self.stream(value, sname, dev, u, x)
            return
        if slist is not None:
            for value, sname, *rest in slist:
                self.stream(value, sname, dname, rest[0] if rest else None, x)
            return
        ys = list(y) if isinstance(y, (list, tuple, np.ndarray)) else [y]
        names = list(snames) if isinstance(snames, (list, tuple)) else [snames]
        if snames is None:
            names = [f"Signal{i}" for i in range(len(ys))]
        if len(names) != len(ys):
            raise SampleError(f"stream got {len(ys)} values but {len(names)} signal names")
        units = list(unit) if isinstance(unit, (list, tuple)) else [unit] * len(ys)
        if len(units) > len(ys):
            raise SampleError(f"stream got {len(ys)} values but {len(units)} units")
        units += [None] * (len(ys) - len(units))  # RTOC: a missing unit is ""
        now = self._clock()
        xs = list(x) if isinstance(x, (list, tuple, np.ndarray)) and len(x) == len(ys) else None
        if xs is None:
            xs = [now if x is None or isinstance(x, (list, tuple, np.ndarray)) else x] * len(ys)
        device = dname or self._devicename
        for value, name, u, t in zip(ys, names, units, xs, strict=False):
            buf = self._buffer(device, name, u)
            value = _number(value, buf.name)
            t = _number(t, buf.name)
            with self._lock:
                buf.t.append(t)
                buf.y.append(value)
                if len(buf.t) >= FLUSH_SAMPLES:
                    self._flush_buffer(buf)

    def write(self, signal: str, t: Any, y: Any, unit: str | None = None,
              device: str | None = None) -> None:
        """Append a batch: ``t`` float64[n] unix seconds, ``y`` float64[n] values."""
        buf = self._buffer(device or self._devicename, signal, unit)
        ts, ys = as_batch(t, y, buf.name)
        with self._lock:
            self._flush_buffer(buf)  # keep order with single samples streamed before
            buf.writer.write(ts, ys)

    def plot(self, x: Any = (), y: Any = (), sname: str = "noName", dname: str | None = None,
             unit: str = "", hold: str = "off", autoResize: bool = False) -> None:  # noqa: N803
        """Replace a signal's content with ``x``/``y`` (RTOC's ``plot``).

        ``hold="on"`` appends instead; ``"mergeX"`` appends only samples newer than the last
        one plotted. With ``y`` empty, ``x`` is taken as ``y`` and ``x`` becomes 0..n-1.
        """
        if len(y) == 0:
            x, y = np.arange(len(x), dtype=np.float64), x
        buf = self._buffer(dname or self._devicename, sname, unit, "snapshot" if hold == "off" else "samples")
        ts, ys = as_batch(x, y, buf.name)
        if hold not in ("off", "on", "mergeX", "mergeY"):
            raise SampleError(f"plot hold must be 'off', 'on', 'mergeX' or 'mergeY', got {hold!r}", buf.name)
        with self._lock:
            self._flush_buffer(buf)
            if hold == "off":
                buf.writer.plot(ts, ys)
            else:
                if hold == "mergeX" and buf.last_x is not None:
                    keep = ts > buf.last_x
                    ts, ys = ts[keep], ys[keep]
                buf.writer.write(ts, ys)
            if len(ts):
                buf.last_x = float(ts.max()) if hold == "off" else max(buf.last_x or -np.inf, float(ts.max()))

    def event(self, text: str = "", sname: str | None = None, dname: str | None = None,
              priority: int = 0, id: str | None = None, value: Any = None,
              x: float | None = None) -> Event:
        """Raise an event; priority 0 info, 1 warning, 2 error. Creates no signal."""
        ev = Event(time=self._clock() if x is None else float(x), text=text,
                   device=self._devicename if dname is None else dname, signal=sname or "",
                   priority=priority, id=id or "", value=_plain(value))
        self._sink.event(ev)
        return ev

    def flush(self) -> None:
        """Hand every buffered single sample to the sink (the host calls this each tick)."""
        with self._lock:
            for buf in self._buffers.values():
                if buf.t:
                    self._flush_buffer(buf)

    def _flush_buffer(self, buf: _Buffer) -> None:
        if buf.t:
            t = np.array(buf.t, dtype=np.float64)
            y = np.array(buf.y, dtype=np.float64)
            buf.t.clear()
            buf.y.clear()
            buf.writer.write(t, y)

    def _buffer(self, device: str, signal: str, unit: Any, content: str = "samples") -> _Buffer:
        """The signal's buffer, claimed on first use: ``content`` "snapshot" for one a
        ``plot()`` creates (the archive keeps its contents as snapshots, not samples)."""
        key = (device, signal)
        buf = self._buffers.get(key)
        if buf is None:
            check_part("device", device)
            check_part("signal", signal)
            unit = "" if unit is None else str(unit)
            writer = self._sink.claim(device, signal, unit, self.samplerate, content) if content != "samples" \
                else self._sink.claim(device, signal, unit, self.samplerate)
            buf = self._buffers[key] = _Buffer(writer, f"{device}.{signal}")
            if device == self._devicename:
                self._own[signal] = buf
        return buf

    # -- timer (the host drives it: time is an argument) --------------------------
    def next_deadline(self) -> float | None:
        if not self.run or self._timer is None:
            return None
        return 0.0 if self._timer.next is None else self._timer.next  # never ticked: due now

    def on_timer(self, now: float) -> None:
        """Run the timer if it is due at ``now``, then flush buffered samples."""
        tm = self._timer
        if self.run and tm is not None and tm.due(now):
            try:
                if self._setup_state != _DONE:
                    self.ensure_setup()
                tm.fn()
            finally:  # a tick that raised is a tick: the next one comes on time, not at once
                tm.advance(now)
        self.flush()

    # -- parameters and functions -------------------------------------------------
    @classmethod
    def parameter_specs(cls) -> dict[str, Parameter]:
        specs: dict[str, Parameter] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Parameter):
                    specs[name] = value
        return specs

    @classmethod
    def function_table(cls) -> dict[str, Callable]:
        table: dict[str, Callable] = {}
        base = set(dir(Driver)) | set(dir(PluginApi))  # the base classes' own: not the plugin's
        for name in dir(cls):
            if name.startswith("_"):
                continue
            fn = getattr(cls, name, None)
            if not callable(fn) or isinstance(fn, type):
                continue
            if getattr(fn, "__rtoc_function__", False):
                table[name] = fn
            elif cls.expose_public_methods and name not in base and name not in GUI_METHODS \
                    and inspect.isfunction(fn):
                table[name] = fn
        return table

    def parameter_changed(self, name: str, value: Any) -> None:
        """Hook: a parameter was set (locally or remotely) to a new, validated value.
        Called only once ``setup()`` has completed; a value set before is just stored."""

    def instance_specs(self) -> dict[str, Parameter]:
        """This driver's parameters (a LoggerPlugin's public attributes among them)."""
        return self.parameter_specs()

    def set_parameter(self, name: str, value: Any) -> Any:
        spec = self.parameter_specs().get(name)
        if spec is None:
            raise ParameterError(f"{self._ctx.name} has no parameter {name!r}; it has "
                                 f"{sorted(self.instance_specs())}", self._ctx.name)
        setattr(self, name, value)
        return getattr(self, name)

    def call_function(self, name: str, args: list | None = None, kwargs: dict | None = None) -> Any:
        fn = self.function_table().get(name)
        if fn is None:
            raise FunctionNotFound(f"{self._ctx.name} has no function {name!r}; it has "
                                   f"{sorted(self.function_table())}", self._ctx.name)
        bound = getattr(self, name)
        try:
            inspect.signature(bound).bind(*(args or []), **(kwargs or {}))
        except TypeError as exc:
            raise ParameterError(f"{self._ctx.name}.{name}: {exc}", self._ctx.name) from exc
        self.ensure_setup()
        return _plain(bound(*(args or []), **(kwargs or {})))

    def describe(self) -> dict:
        """Parameters (value, type, doc) and functions (signature, doc) for the control plane."""
        return {
            # a persisted value set aside shows beside its parameter (as `rejected`)
            "parameters": [{**p.describe(_plain(getattr(self, n))),
                            **({"rejected": self.rejected_parameters[n]} if n in self.rejected_parameters else {})}
                           for n, p in self.instance_specs().items()],
            "functions": [describe_function(n, f) for n, f in self.function_table().items()],
            "running": self.run,
            "device": self._devicename,
        }

    def _load_parameters(self) -> None:
        options = dict(self._ctx.options)
        specs = self.parameter_specs()
        unknown = sorted(set(options) - set(specs))
        if unknown and not self.options_after_init:
            raise ParameterError(f"{self._ctx.name}: unknown parameter(s) {unknown}; "
                                 f"known: {sorted(specs)}", self._ctx.name)
        self._apply_values(specs, options)

    def _apply_values(self, specs: dict[str, Parameter], options: dict[str, Any]) -> None:
        """Each parameter's persisted value, else the config's (``options``), validated."""
        store = self._ctx.store
        for name, spec in specs.items():
            has_config = name in options
            persisted, value = store.initial(name, options.get(name), has_config)
            if persisted:
                try:
                    self.__dict__[name] = spec.validate(value)
                    continue
                except ParameterError as exc:
                    # a stale or damaged persisted value: set it aside, report it, and go on
                    # with the config's value or the default
                    store.set_aside({name}, str(exc), self._clock())
                    self.report_rejected(name, value, str(exc))
            if has_config:
                self.__dict__[name] = spec.validate(options[name])  # a config error raises

    def report_rejected(self, name: str, value: Any, reason: str) -> None:
        self.rejected_parameters[name] = {"value": _plain(value), "reason": reason}
        self.logger.error("%s: persisted parameter %s = %r set aside (in %s): %s", self._ctx.name,
                          name, value, self._ctx.store.rejected_path, reason)

    def _parameter_set(self, spec: Parameter, value: Any) -> None:
        if spec.persist:
            self._ctx.store.save(spec.name, value, dict(self._ctx.options).get(spec.name))
        if self._setup_state == _DONE:  # before (or during) setup() the value is only stored
            self.parameter_changed(spec.name, value)
        if self._timer is not None:  # tick_rate() may depend on any parameter
            period = 1.0 / self.tick_rate()
            if period != self._timer.period:
                self._timer.period = period

    # -- RTOC's plugin log --------------------------------------------------------
    def _say(self, level: int, msg: str) -> None:
        self._log.append([time.strftime("%Y-%m-%d %H:%M:%S"), logging.getLevelName(level), msg])
        self.logger.log(level, msg)

    def info(self, msg: str) -> None:
        self._say(logging.INFO, msg)

    def warning(self, msg: str) -> None:
        self._say(logging.WARNING, msg)

    def error(self, msg: str) -> None:
        self._say(logging.ERROR, msg)

    def debug(self, msg: str) -> None:
        self._say(logging.DEBUG, msg)


class LoggerPlugin(PluginApi, Driver):
    """RTOC's plugin base class: a ported plugin changes only its import.

    Every public method a plugin defines is callable remotely (Qt-only ones such as
    ``loadGUI`` aside), and its public attributes are parameters, as in RTOC; the rest of
    RTOC's plugin API is :class:`rtoc.plugin_api.PluginApi`'s.
    """

    expose_public_methods = True
    options_after_init = True  # params of rtoc.toml may name public attributes (adopt_attributes)


def _number(value: Any, name: str) -> float:
    if value.__class__ is float:
        return value
    if isinstance(value, (str, bytes)) or value is None:
        raise SampleError(f"{name}: samples must be numbers, got {type(value).__name__} {value!r}", name)
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise SampleError(f"{name}: samples must be numbers, got {type(value).__name__} {value!r}", name) from exc


def _plain(value: Any, depth: int = 0) -> Any:
    """A value msgpack can carry, all the way down: numpy values become Python ones,
    integers beyond 64 bits and any other object their repr."""
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, (bool, float, str, bytes)):
        return value
    if isinstance(value, int):
        return value if -(1 << 63) <= value < (1 << 64) else repr(value)
    if depth < 32 and isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if depth < 32 and isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    return repr(value)
