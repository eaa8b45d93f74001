"""RTOC's plugin API on top of :class:`rtoc.Driver`: what ``LoggerPlugin`` adds so an RTOC
plugin runs after changing only its import.

* Public attributes are remote parameters, as in RTOC: after ``__init__``, every public
  instance attribute holding a plain value (a number, a bool, a text, a list of those) that
  is not a declared :class:`~rtoc.Parameter` becomes a parameter typed by its value, with
  its doc from ``__doc_<name>__``. A value set remotely is validated by that type, persisted,
  and restored at the next start even when ``__init__`` assigns a default.
* Persistent variables (``initPersistentVariable``, ``loadPersistentVariable``,
  ``savePersistentVariable``, ``createPersistentVariable``) live in
  ``<data>/params/<driver>.variables.json``, replaced atomically.
* RTOC allowed ``/`` in names; it becomes U+2215 (looks the same). A bad value or name
  fails that ``stream``/``plot`` call alone (logged, False), never the whole tick.
* ``getDir``, ``setSamplerate``, ``setInterval``, ``updateInfo``, ``close()`` stopping the
  timer, ``telegram_send_*`` (notifications the Telegram bot delivers), ``stream()``
  returning True, any integer ``priority`` (clamped to 0-2), ``widget``/``smallGUI`` (None,
  False: GUI plugins start headless).

Nothing here evaluates text: values are type-checked data.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from rtoc.errors import EventError, ParameterError, SignalError
from rtoc.files import write_atomic
from rtoc.model import MAX_ATTACHMENT, plot_payload
from rtoc.params import Parameter

log = logging.getLogger(__name__)
# attributes of the base classes, never parameters (and Qt-only methods, never functions)
NOT_PARAMETERS = frozenset({"run", "logger", "widget", "smallGUI", "rejected_parameters",
                            "samplerate", "expose_public_methods", "AUTORUN"})
GUI_METHODS = frozenset({"loadGUI", "showGUI", "hideGUI", "closeEvent", "initGUI", "updateGUI"})
_PLAIN = (bool, int, float, str)


def slash(name: Any) -> Any:
    """RTOC's ``/`` in a device or signal name, as U+2215 (the bus uses ``/``)."""
    return name.replace("/", "\u2215") if isinstance(name, str) else name


def _plain_value(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return not (isinstance(value, float) and value != value)  # NaN has no type to check by
    return isinstance(value, list) and len(value) <= 10_000 and all(isinstance(v, _PLAIN) for v in value)


class PluginApi:
    """The mixin of ``LoggerPlugin`` (see the module docstring)."""

    widget = None
    smallGUI = False  # noqa: N815 - RTOC's name
    AUTORUN = False   # RTOC: start the timer when the plugin is loaded (else the plugin calls start())
    _dynamic: dict[str, Parameter]
    _describe_due = False

    # -- public attributes as parameters ---------------------------------------------------
    def adopt_attributes(self) -> None:
        """(the host, after ``__init__``) Public plain attributes become parameters; their
        persisted values (set remotely before a restart) replace what ``__init__`` assigned;
        the config's ``params`` set them too."""
        declared = type(self).parameter_specs()
        self._dynamic = {}
        for name, value in list(vars(self).items()):
            if name.startswith("_") or name in NOT_PARAMETERS or name in declared or not _plain_value(value):
                continue
            doc = getattr(self, f"__doc_{name}__", "")
            spec = Parameter(value, doc if isinstance(doc, str) else "", type=type(value))
            spec.name = name
            self._dynamic[name] = spec
        options = dict(self._ctx.options)
        unknown = sorted(set(options) - set(declared) - set(self._dynamic))
        if unknown:
            raise ParameterError(f"{self._ctx.name}: unknown parameter(s) {unknown}; known: "
                                 f"{sorted({*declared, *self._dynamic})}", self._ctx.name)
        self._apply_values(self._dynamic, options)  # as the declared ones (Driver)

    def instance_specs(self) -> dict[str, Parameter]:
        return {**type(self).parameter_specs(), **getattr(self, "_dynamic", {})}

    def set_parameter(self, name: str, value: Any) -> Any:
        spec = getattr(self, "_dynamic", {}).get(name)
        if spec is None:
            return super().set_parameter(name, value)
        value = spec.validate(value)
        old = self.__dict__.get(name)
        self.__dict__[name] = value
        if value != old:
            self._parameter_set(spec, value)
        return value

    # -- RTOC's plugin calls ---------------------------------------------------------------
    def stream(self, *args: Any, **kwargs: Any) -> bool:
        """RTOC's ``stream``: True when stored; a bad value or name fails this call alone
        (logged once per message, False), never the plugin's whole tick."""
        try:
            super().stream(*args, **kwargs)
        except SignalError as exc:
            self._complain(exc)
            return False
        return True

    def plot(self, *args: Any, **kwargs: Any) -> bool:
        try:
            super().plot(*args, **kwargs)
        except SignalError as exc:
            self._complain(exc)
            return False
        return True

    def _complain(self, exc: Exception) -> None:
        said = self.__dict__.setdefault("_complaints", set())
        if str(exc) not in said and len(said) < 100:
            said.add(str(exc))
            self.logger.error("%s: %s (this call is skipped; the plugin goes on)", self._ctx.name, exc)

    def _buffer(self, device: str, signal: str, unit: Any, content: str = "samples"):
        # RTOC allowed '/' in names; here it separates bus topics, so it is mapped one-to-one
        # to U+2215 (DIVISION SLASH), which looks the same
        return super()._buffer(slash(device), slash(signal), unit, content)

    def event(self, text: str = "", sname: str | None = None, dname: str | None = None,
              priority: int = 0, id: str | None = None, value: Any = None, x: float | None = None):
        if isinstance(priority, (int, float)) and not isinstance(priority, bool):
            priority = min(2, max(0, int(priority)))  # RTOC took any number; 0-2 mean something
        return super().event(text, slash(sname), slash(dname), priority, id, value, x)

    def getDir(self, dir: str | None = None) -> str:  # noqa: N802, A002 - RTOC's names
        """The folder of ``dir`` (a file, RTOC plugins pass ``__file__``), or of the
        plugin's module."""
        return str(Path(dir if dir is not None else inspect.getfile(type(self))).resolve().parent)

    def setSamplerate(self, rate: float) -> None:  # noqa: N802
        self.samplerate = float(rate)
        if self._timer is not None:
            self._timer.period = 1.0 / self.tick_rate()

    def setInterval(self, interval: float) -> None:  # noqa: N802
        self.setSamplerate(1.0 / float(interval))

    def updateInfo(self) -> None:  # noqa: N802
        """RTOC: tell the clients the plugin's functions and parameters changed."""
        self._describe_due = True

    def close(self) -> None:
        """RTOC's ``close()``: stops the timer too."""
        self.run = False

    # -- persistent variables --------------------------------------------------------------
    def _variables_path(self) -> Path | None:
        path = self._ctx.store.path
        return None if path is None else path.with_name(f"{self._ctx.name}.variables.json")

    def _variables(self) -> dict:
        cache = self.__dict__.get("_pv_cache")
        if cache is None:
            cache = {}
            path = self._variables_path()
            if path is not None and path.exists():
                try:
                    data = json.loads(path.read_text())
                    cache = data if isinstance(data, dict) else {}
                except (OSError, ValueError) as exc:
                    log.error("%s: persistent variables in %s unreadable (%s): starting empty",
                              self._ctx.name, path, exc)
            self.__dict__["_pv_cache"] = cache
        return cache

    def loadPersistentVariable(self, name: str, fallback: Any = None, dname: str | None = None) -> Any:  # noqa: N802
        return self._variables().get(dname or self._devicename, {}).get(name, fallback)

    def savePersistentVariable(self, name: str, value: Any, dname: str | None = None) -> None:  # noqa: N802
        data = self._variables()
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ParameterError(f"persistent variable {name!r}: {type(value).__name__} is not "
                                 "JSON data (numbers, texts, lists, maps)") from None
        data.setdefault(dname or self._devicename, {})[name] = value
        path = self._variables_path()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(data, indent=1))

    def initPersistentVariable(self, name: str, fallback: Any = None, dname: str | None = None) -> Any:  # noqa: N802
        """The saved value of ``name``, or ``fallback`` (RTOC plugins assign it:
        ``self.gain = self.initPersistentVariable("gain", 1)``)."""
        return self.loadPersistentVariable(name, fallback, dname)

    def createPersistentVariable(self, name: str, fallback: Any = None, dname: str | None = None,  # noqa: N802
                                 docs: str | None = None) -> None:
        """A property ``self.<name>`` that is saved on every assignment (RTOC's)."""
        value = self.loadPersistentVariable(name, fallback, dname)
        key, device = f"_pv_{name}", dname

        def get(obj: Any) -> Any:
            return obj.__dict__.get(key)

        def put(obj: Any, v: Any) -> None:
            obj.__dict__[key] = v
            obj.savePersistentVariable(name, v, device)

        setattr(type(self), name, property(get, put, doc=docs))
        self.__dict__[key] = value
        if docs:
            self.__dict__[f"__doc_{name}__"] = docs

    # -- Telegram ------------------------------------------------------------------------
    def telegram_send_message(self, text: str, priority: int = 0, permission: str = "write") -> None:
        """A notification for the Telegram bot's users (prefixed with the device name, as
        RTOC did); logged when no bot runs."""
        self._notify(f"{self._devicename}: {text}", priority, permission)

    def telegram_send_photo(self, path: str, priority: int = 0, permission: str = "write") -> None:
        """The picture at ``path`` to the bot's users (at most 10 MiB; read now)."""
        self._send_file(path, "photo", priority, permission)

    def telegram_send_document(self, path: str, priority: int = 0, permission: str = "write") -> None:
        """The file at ``path`` to the bot's users (at most 10 MiB; read now)."""
        self._send_file(path, "document", priority, permission)

    def telegram_send_plot(self, signals: dict | None = None, title: str = "", text: str = "",
                           events: list | None = None, dpi: int = 300, priority: int = 0,
                           permission: str = "write") -> None:
        """A picture of ``signals`` ``{name: [x, y]}`` (x unix s) with ``events``
        ``[[x, text], ...]``, drawn by the bot (``dpi`` is RTOC's; the bot draws 1280x720)."""
        try:
            plot = plot_payload(signals or {}, title, events or ())
        except EventError as exc:
            self._complain(exc)
            return
        self._notify(f"{self._devicename}: {text or title or 'plot'}", priority, permission, plot=plot)

    def _send_file(self, path: str, kind: str, priority: int, permission: str) -> None:
        p = Path(str(path))
        try:
            with open(p, "rb") as f:  # read at most the limit: a file may grow, /dev/zero never ends
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise EventError(f"telegram_send_{kind}: {p} is not a regular file")
                data = f.read(MAX_ATTACHMENT + 1)
            if len(data) > MAX_ATTACHMENT:
                raise EventError(f"telegram_send_{kind}: {p} is larger than {MAX_ATTACHMENT >> 20} MiB")
        except OSError as exc:
            self._complain(EventError(f"telegram_send_{kind}: cannot read {p}: {exc.strerror or exc}"))
            return
        except EventError as exc:
            self._complain(exc)
            return
        self._notify(f"{self._devicename}: {p.name}", priority, permission,
                     file=data, file_name=p.name, file_kind=kind)

    def _notify(self, text: str, priority: Any, permission: Any = "read", **attachment: Any) -> None:
        level = min(2, max(0, int(priority))) if isinstance(priority, (int, float)) else 0
        # RTOC's permission: the users at or above that role; "blocked"/"custom": every reader
        role = permission if permission in ("write", "admin") else "read"
        notify = getattr(self._sink, "notify", None)
        self.logger.info("telegram: %s%s", text, f" ({attachment.get('file_kind') or 'plot'})" if attachment else "")
        if notify is not None:
            notify(text, level, role, **attachment)
