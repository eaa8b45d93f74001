"""The bot's pure core: an update in, actions out; the role check of every command and button.

``BotCore.message(chat_id, name, text, now)`` and ``BotCore.press(chat_id, message_id,
callback_id, data, now)`` return the actions to perform (:class:`Send`, :class:`Edit`,
:class:`Answer`, :class:`Photo`, :class:`Document`); ``event(ev, now)`` queues
notifications in :attr:`notifier`. The instance is reached through a ``world`` (the shell's
:class:`.world.ControlWorld`, a plain object in the tests), so the core has no sockets, no
clock and no Telegram library.

Callback data is never trusted: a button carries only a random token, which maps, per chat,
to the action and arguments the bot offered. A token the chat was not given is "expired";
an action is checked against the user's role when pressed, not when shown (a demoted user's
old buttons do nothing). Typed input (a parameter's value, a function's arguments, a rule)
is parsed as JSON or by the condition language, never evaluated.
"""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtoc.errors import RtocError
from rtoc.events.rules import EventRule
from rtoc.model import MAX_PLOT_POINTS, MAX_PLOT_SERIES, Event

from . import pairing, screens
from .notify import Note, Notifier, Outgoing
from .plot import Mark, Series, points_for, render_csv, render_png
from .users import LEVELS, ROLES, User, UserStore, rank

log = logging.getLogger(__name__)
MAX_CAPTION = 900  # UTF-16 units of a notification's text under its picture (Telegram: 1024)
Buttons = tuple[tuple[tuple[str, str], ...], ...]  # rows of (label, callback data)
TOKEN_TTL = 86400.0   # s a button works
INPUT_TTL = 600.0     # s the bot waits for typed input
MAX_TOKENS = 512      # per chat; the oldest go first
MAX_INPUT = 2000      # characters of typed input
USERS_PAGE = 30       # users on one page of the Users menu
INT64 = 1 << 63       # the control plane carries 64-bit integers


@dataclass(frozen=True)
class Send:
    chat_id: int
    text: str
    buttons: Buttons = ()


@dataclass(frozen=True)
class Edit:
    chat_id: int
    message_id: int
    text: str
    buttons: Buttons = ()


@dataclass(frozen=True)
class Answer:
    callback_id: str
    text: str = ""


@dataclass(frozen=True)
class Photo:
    chat_id: int
    png: bytes
    caption: str = ""
    buttons: Buttons = ()


@dataclass(frozen=True)
class Document:
    chat_id: int
    data: bytes
    filename: str
    caption: str = ""


Action = Send | Edit | Answer | Photo | Document


@dataclass
class Reply:
    """Where a screen goes: edited into the pressed message, or sent new."""
    chat_id: int
    message_id: int | None = None
    actions: list = field(default_factory=list)

    def show(self, text: str, buttons: Buttons = ()) -> None:
        self.actions.append(Edit(self.chat_id, self.message_id, text, buttons)
                            if self.message_id is not None else Send(self.chat_id, text, buttons))


# command -> (role it needs, the action it runs); every command is a button too
COMMANDS = {"menu": "menu", "latest": "latest", "signals": "signals", "plot": "plot",
            "csv": "csv", "events": "events", "devices": "devices", "automation": "automation",
            "shortcuts": "shortcuts", "settings": "settings", "users": "users"}
ROLE_OF = {  # every action and the role it needs
    "menu": "custom", "shortcuts": "custom", "sc_signal": "custom", "unpin": "custom",
    "latest": "read", "signals": "read", "device_signals": "read", "signal": "read",
    "plot": "read", "csv": "read", "events": "read", "event_plot": "read", "pin_signal": "read",
    "settings": "read", "level": "read",
    "devices": "write", "device": "write", "start": "write", "stop": "write", "param": "write",
    "function": "write", "pin_function": "write", "sc_function": "write",
    "automation": "write", "rule_toggle": "write", "rule_add": "write",
    "users": "admin", "user": "admin", "role": "admin",
}


class BotCore:
    def __init__(self, world: Any, users: UserStore, folder: Path, notifier: Notifier,
                 new_token: Callable[[], str], plot_size: tuple[int, int] = (1280, 720)):
        self.world, self.users, self.folder, self.notifier = world, users, folder, notifier
        self.new_token, self.plot_size = new_token, plot_size
        self.tokens: dict[int, OrderedDict[str, tuple[str, tuple, float]]] = {}
        self.pending: dict[int, tuple[str, tuple, float]] = {}  # typed input awaited
        self.stats = {"updates": 0, "refused": 0, "expired": 0, "errors": 0}

    # -- callback tokens -------------------------------------------------------------------
    def button(self, chat_id: int, label: str, action: str, *args: Any, now: float) -> tuple[str, str]:
        assert action in ROLE_OF, action
        table = self.tokens.setdefault(chat_id, OrderedDict())
        token = self.new_token()
        table[token] = (action, args, now)
        while len(table) > MAX_TOKENS:
            table.popitem(last=False)
        return label, token

    def _buttons(self, chat_id: int, now: float, rows: list[list[tuple]]) -> Buttons:
        """``rows`` of (label, action, *args) -> rows of (label, token)."""
        return tuple(tuple(self.button(chat_id, label, action, *args, now=now)
                           for label, action, *args in row) for row in rows if row)

    # -- updates ---------------------------------------------------------------------------
    def message(self, chat_id: int, name: str, text: str, now: float) -> list[Action]:
        self.stats["updates"] += 1
        user = self.users.join(chat_id, name)
        out = Reply(chat_id)
        if len(text) > MAX_INPUT:  # refused whole: a value cut short is not what was sent
            out.show(f"❌ that is {len(text)} characters; at most {MAX_INPUT}")
            return out.actions
        word, _, rest = text.strip().partition(" ")
        command = word[1:].split("@")[0].lower() if word.startswith("/") else ""
        try:
            if command in ("start", "pair"):
                self._start(user, rest.strip(), command, now, out)
            elif command == "help":
                out.show(screens.HELP)
            elif command in COMMANDS:
                self.pending.pop(chat_id, None)
                self._run(user, COMMANDS[command], self._command_args(command, rest), now, out)
            elif command:
                out.show(f"unknown command /{screens.esc(command)}; /help lists them")
            elif chat_id in self.pending:
                self._typed(user, text, now, out)
            else:
                out.show("send /menu for the menu, /help for the commands")
        except (RtocError, ValueError, ArithmeticError) as exc:
            self.stats["errors"] += 1
            out.show(f"❌ {screens.esc(screens.cut(exc, 1000))}")
        except Exception:  # our bug: logged, answered, and the bot goes on
            log.exception("telegram: the message %r of chat %d failed", text[:80], chat_id)
            self.stats["errors"] += 1
            out.show("❌ internal error (logged)")
        return out.actions

    def press(self, chat_id: int, message_id: int, callback_id: str, data: str, now: float) -> list[Action]:
        self.stats["updates"] += 1
        user = self.users.get(chat_id)
        entry = self.tokens.get(chat_id, {}).get(data)
        if user is None or entry is None or now - entry[2] > TOKEN_TTL:
            self.stats["expired"] += 1
            return [Answer(callback_id, "expired: send /menu")]
        action, args, _ = entry
        out = Reply(chat_id, message_id)
        self.pending.pop(chat_id, None)  # a button leaves any question asked before
        try:
            allowed = self._run(user, action, args, now, out)
        except (RtocError, ValueError, ArithmeticError) as exc:
            self.stats["errors"] += 1
            out.actions.append(Send(chat_id, f"❌ {screens.esc(screens.cut(exc, 1000))}"))
            allowed = True
        except Exception:  # our bug: logged, answered, and the bot goes on
            log.exception("telegram: the button %s of chat %d failed", action, chat_id)
            self.stats["errors"] += 1
            out.actions.append(Send(chat_id, "❌ internal error (logged)"))
            allowed = True
        return [Answer(callback_id, "" if allowed else "not allowed"), *out.actions]

    def _run(self, user: User, action: str, args: tuple, now: float, out: Reply) -> bool:
        if not user.may(ROLE_OF[action]):
            self.stats["refused"] += 1
            if out.message_id is None:
                out.show("not allowed" if user.role != "blocked" else
                         "an admin has not let you in yet")
            return False
        getattr(self, f"_do_{action}")(user, args, now, out)
        return True

    @staticmethod
    def _command_args(command: str, rest: str) -> tuple:
        words = rest.split()
        if command in ("plot", "csv"):
            period = 3600.0
            if words and screens.looks_like_period(words[-1]):
                period = screens.duration(words.pop())  # ValueError names the range
            return (tuple(words), period)
        return ()

    # -- start, pairing, newcomers ---------------------------------------------------------
    def _start(self, user: User, code: str, command: str, now: float, out: Reply) -> None:
        if code:
            result = pairing.redeem(self.folder, user.chat_id, code, now)
            if result == "ok":
                self.users.set_role(user.chat_id, "admin")
                log.info("telegram: chat %d paired as admin", user.chat_id)
                out.show("✅ paired: you are an admin of this instance")
                self._do_menu(user, (), now, out)
                return
            out.show({"wrong": "that code is not right", "expired": "no valid code: run "
                      "<code>rtoc telegram pair</code> on the machine for a new one",
                      "locked": "too many wrong codes from this chat"}[result])
            return
        if command == "pair":
            out.show("send /pair CODE with the code <code>rtoc telegram pair</code> prints")
        elif user.role == "blocked":
            out.show(f"Hello {screens.esc(screens.cut(user.name, 64))}. An admin must let you in "
                     "first; they have been asked.")
            if not user.asked and self.users.admin_ids():  # asked once there is an admin
                user.asked = True
                self.users.save()
                self._ask_admins(user)
        else:
            self._do_menu(user, (), now, out)

    def _ask_admins(self, newcomer: User) -> None:
        """Through the notification queue: a crowd of strangers is rate-limited and
        coalesced like any burst (the Users menu lists them all)."""
        rows = ((*(("let in as " + r, "role", newcomer.chat_id, r) for r in ("read", "write")),),
                (("keep blocked", "role", newcomer.chat_id, "blocked"),))
        text = f"👤 {screens.esc(screens.cut(newcomer.name, 64))} (chat {newcomer.chat_id}) wants to use the bot"
        for admin in self.users.admin_ids():
            self.notifier.push(admin, Note(text, 1, "newcomers", buttons=rows))

    # -- menus -----------------------------------------------------------------------------
    def _do_menu(self, user: User, args: tuple, now: float, out: Reply) -> None:
        rows = [[("⭐ Shortcuts", "shortcuts")]]
        if user.may("read"):
            rows += [[("📋 Latest values", "latest"), ("📈 Signals", "signals")],
                     [("🔔 Events", "events", 0), ("⚙️ Settings", "settings")]]
        if user.may("write"):
            rows.append([("🔌 Devices", "devices"), ("🤖 Automation", "automation")])
        if user.may("admin"):
            rows.append([("👥 Users", "users")])
        out.show(f"<b>RTOC</b> – {screens.esc(user.name or user.chat_id)} ({user.role})",
                 self._buttons(user.chat_id, now, rows))

    def _back(self, *rows: list) -> list[list]:
        return [*rows, [("« Menu", "menu")]]

    def _do_latest(self, user: User, args: tuple, now: float, out: Reply) -> None:
        signals = self.world.signals()
        if user.signals:
            signals = [s for s in signals if s["name"] in user.signals]
        out.show(screens.latest_table(signals, now),
                 self._buttons(user.chat_id, now, self._back([("🔄 Refresh", "latest")])))

    def _do_signals(self, user: User, args: tuple, now: float, out: Reply) -> None:
        devices = sorted({s["name"].split(".", 1)[0] for s in self.world.signals()})
        rows = [[(d, "device_signals", d)] for d in devices[:screens.MAX_ROWS]]
        out.show("<b>Signals</b>: choose a device", self._buttons(user.chat_id, now, self._back(*rows)))

    def _do_device_signals(self, user: User, args: tuple, now: float, out: Reply) -> None:
        (device,) = args
        names = sorted(s["name"] for s in self.world.signals() if s["name"].split(".", 1)[0] == device)
        rows = [[(n.split(".", 1)[1], "signal", n)] for n in names[:screens.MAX_ROWS]]
        out.show(f"<b>{screens.esc(device)}</b>: choose a signal",
                 self._buttons(user.chat_id, now, self._back(*rows)))

    def _do_signal(self, user: User, args: tuple, now: float, out: Reply) -> None:
        (name,) = args
        latest = next((s for s in self.world.signals() if s["name"] == name), None)
        if latest is None:
            out.show(f"no signal {screens.esc(name)}")
            return
        periods = [(p, "plot", (name,), s) for p, s in screens.PERIODS.items()]
        rows = [periods, [("CSV 1h", "csv", (name,), 3600.0), ("CSV 24h", "csv", (name,), 86400.0)],
                [("⭐ Pin", "pin_signal", name)]]
        out.show(screens.latest_table([latest], now) + "\nplot the last:",
                 self._buttons(user.chat_id, now, self._back(*rows)))

    def _history(self, names: tuple, period: float, now: float) -> list[Series]:
        width = self.plot_size[0]
        out = []
        units = {s["name"]: s.get("unit") or "" for s in self.world.signals()}
        for name in names:
            t, y = self.world.history(name, now - period, now, points_for(width))
            out.append(Series(name, units.get(name, ""), t, y))
        return out

    def _names(self, user: User, names: tuple) -> tuple:
        if not names:
            names = tuple(user.signals[:1])
        if not names:
            raise _Refusal("name a signal: /plot Device.Signal 2h")
        known = {s["name"] for s in self.world.signals()}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise _Refusal(f"no signal {', '.join(unknown)}; /signals lists them")
        return names[:8]

    def _do_plot(self, user: User, args: tuple, now: float, out: Reply) -> None:
        names, period = args
        names = self._names(user, names)
        series = self._history(names, period, now)
        devices = {n.split(".", 1)[0] for n in names}
        marks = [Mark(e["time"], e.get("text", ""), int(e.get("priority", 0)))
                 for e in self.world.archive_events(now - period, now)
                 if e.get("device") in devices or f"{e.get('device')}.{e.get('signal')}" in names]
        png = render_png(series, marks, t0=now - period, t1=now, width=self.plot_size[0],
                         height=self.plot_size[1], title=", ".join(names))
        n = sum(len(s.t) for s in series)
        caption = f"{', '.join(names)}: last {screens.period_name(period)}, {n} points, {len(marks)} events"
        rows = [[(p, "plot", names, s) for p, s in screens.PERIODS.items()],
                [("CSV", "csv", names, period)]]
        out.actions.append(Photo(user.chat_id, png, screens.esc(caption),
                                 self._buttons(user.chat_id, now, rows)))

    def _do_csv(self, user: User, args: tuple, now: float, out: Reply) -> None:
        names, period = args
        names = self._names(user, names)
        data = render_csv(self._history(names, period, now))
        out.actions.append(Document(user.chat_id, data, f"{names[0]}-{screens.period_name(period)}.csv",
                                    screens.esc(f"{', '.join(names)}: last {screens.period_name(period)}")))

    def _do_events(self, user: User, args: tuple, now: float, out: Reply) -> None:
        min_priority = int(args[0]) if args else 0
        events = self.world.events(min_priority, 20)
        rows = [[("all", "events", 0), ("warnings", "events", 1), ("errors", "events", 2)]]
        out.show(screens.events_list(events, min_priority),
                 self._buttons(user.chat_id, now, self._back(*rows)))

    def _do_event_plot(self, user: User, args: tuple, now: float, out: Reply) -> None:
        name, t = args  # the 10 minutes around the event
        unit = next((s.get("unit") or "" for s in self.world.signals() if s["name"] == name), "")
        series = [Series(name, unit, *self.world.history(name, t - 300, t + 300, points_for(self.plot_size[0])))]
        marks = [Mark(e["time"], e.get("text", ""), int(e.get("priority", 0)))
                 for e in self.world.archive_events(t - 300, t + 300)
                 if e.get("device") == name.split(".", 1)[0]]
        png = render_png(series, marks, t0=t - 300, t1=t + 300, width=self.plot_size[0],
                         height=self.plot_size[1], title=name)
        out.actions.append(Photo(user.chat_id, png, screens.esc(f"{name} around {screens.clock(t)}")))

    def _do_pin_signal(self, user: User, args: tuple, now: float, out: Reply) -> None:
        self._pin(user, user.signals, args[0], out)

    def _do_pin_function(self, user: User, args: tuple, now: float, out: Reply) -> None:
        self._pin(user, user.functions, args[0], out)

    def _pin(self, user: User, pins: list, name: str, out: Reply) -> None:
        if name not in pins:
            if len(user.signals) + len(user.functions) >= 24:
                raise _Refusal("24 shortcuts at most: unpin one first")
            pins.append(name)
            self.users.save()
        out.actions.append(Send(user.chat_id, f"⭐ {screens.esc(name)} is in your shortcuts"))

    def _do_unpin(self, user: User, args: tuple, now: float, out: Reply) -> None:
        kind, name = args
        pins = user.signals if kind == "signal" else user.functions
        if name in pins:
            pins.remove(name)
            self.users.save()
        self._do_shortcuts(user, (), now, out)

    def _do_shortcuts(self, user: User, args: tuple, now: float, out: Reply) -> None:
        rows = [[(f"📈 {n}", "sc_signal", n), ("✖", "unpin", "signal", n)] for n in user.signals]
        if user.may("write"):
            rows += [[(f"ƒ {n}", "sc_function", n), ("✖", "unpin", "function", n)] for n in user.functions]
        text = "<b>Shortcuts</b>" + ("" if rows else "\nnone yet: pin signals and functions from their menus")
        out.show(text, self._buttons(user.chat_id, now, self._back(*rows)))

    def _do_sc_signal(self, user: User, args: tuple, now: float, out: Reply) -> None:
        (name,) = args
        if name not in user.signals:
            raise _Refusal("not one of your shortcuts")
        signals = [s for s in self.world.signals() if s["name"] == name]
        rows = [[(p, "plot", (name,), s) for p, s in screens.PERIODS.items()]] if user.may("read") else []
        out.actions.append(Send(user.chat_id, screens.latest_table(signals, now),
                                self._buttons(user.chat_id, now, rows)))

    def _do_sc_function(self, user: User, args: tuple, now: float, out: Reply) -> None:
        device, _, fn = args[0].partition(".")
        self._do_function(user, (device, fn), now, out)

    # -- devices ---------------------------------------------------------------------------
    def _driver(self, name: str) -> dict:
        d = next((d for d in self.world.drivers() if d["name"] == name), None)
        if d is None:
            raise _Refusal(f"no device {name}")
        return d

    def _do_devices(self, user: User, args: tuple, now: float, out: Reply) -> None:
        drivers = self.world.drivers()
        rows = [[(f"{'🟢' if d['state'] == 'running' else '⚪'} {d['name']}", "device", d["name"])]
                for d in drivers[:screens.MAX_ROWS]]
        out.show("<b>Devices</b>", self._buttons(user.chat_id, now, self._back(*rows)))

    def _do_device(self, user: User, args: tuple, now: float, out: Reply) -> None:
        d = self._driver(args[0])
        name = d["name"]
        rows = [[("▶️ Start", "start", name), ("⏹ Stop", "stop", name), ("🔄", "device", name)]]
        rows += [[(f"set {p['name']}", "param", name, p["name"])] for p in d.get("parameters", [])[:16]]
        rows += [[(f"{f['name']}()", "function", name, f["name"]),
                  ("⭐", "pin_function", f"{name}.{f['name']}")] for f in d.get("functions", [])[:16]]
        out.show(screens.device_text(d), self._buttons(user.chat_id, now, self._back(*rows)))

    def _do_start(self, user: User, args: tuple, now: float, out: Reply) -> None:
        state = self.world.start(args[0])
        log.info("telegram: %s (chat %d) started %s", user.name, user.chat_id, args[0])
        state = "starting" if state == "stopped" else state  # the supervisor starts it next turn
        out.actions.append(Send(user.chat_id, f"▶️ {screens.esc(args[0])}: {screens.esc(state)}"))

    def _do_stop(self, user: User, args: tuple, now: float, out: Reply) -> None:
        state = self.world.stop(args[0])
        log.info("telegram: %s (chat %d) stopped %s", user.name, user.chat_id, args[0])
        out.actions.append(Send(user.chat_id, f"⏹ {screens.esc(args[0])}: {screens.esc(state)}"))

    def _do_param(self, user: User, args: tuple, now: float, out: Reply) -> None:
        device, param = args
        p = next((p for p in self._driver(device).get("parameters", []) if p["name"] == param), None)
        if p is None:
            raise _Refusal(f"{device} has no parameter {param}")
        self.pending[user.chat_id] = ("param", (device, param, p.get("type", "str")), now)
        out.actions.append(Send(user.chat_id, f"send the new value of <b>{screens.esc(device)}.{screens.esc(param)}</b> "
                                f"({screens.esc(p.get('type', ''))}, now <code>{screens.esc(screens.value(p.get('value')))}</code>)"))

    def _do_function(self, user: User, args: tuple, now: float, out: Reply) -> None:
        device, fn = args
        f = next((f for f in self._driver(device).get("functions", []) if f["name"] == fn), None)
        if f is None:
            raise _Refusal(f"{device} has no function {fn}")
        if not f.get("args"):
            self._call(user, device, fn, [], out)
            return
        self.pending[user.chat_id] = ("call", (device, fn), now)
        out.actions.append(Send(user.chat_id, f"send the arguments of <code>{screens.esc(f.get('signature', fn))}</code> "
                                "as JSON values separated by commas, e.g. <code>1.5, \"on\"</code>"))

    def _call(self, user: User, device: str, fn: str, call_args: list, out: Reply) -> None:
        result = self.world.call(device, fn, call_args)
        log.info("telegram: %s (chat %d) called %s.%s", user.name, user.chat_id, device, fn)
        out.actions.append(Send(user.chat_id, f"✅ {screens.esc(device)}.{screens.esc(fn)}() returned "
                                f"<code>{screens.esc(repr(result)[:500])}</code>"))

    # -- typed input -----------------------------------------------------------------------
    def _typed(self, user: User, text: str, now: float, out: Reply) -> None:
        kind, args, since = self.pending.pop(user.chat_id)
        need = {"param": "write", "call": "write", "rule": "write"}[kind]
        if now - since > INPUT_TTL:
            out.show("that question has expired: start again from /menu")
            return
        if not user.may(need):
            self.stats["refused"] += 1
            out.show("not allowed")
            return
        try:
            if kind == "param":
                device, param, type_ = args
                value = parse_value(text, type_)
                self.world.set(device, param, value)
                out.show(f"✅ {screens.esc(device)}.{screens.esc(param)} = <code>{screens.esc(json.dumps(value))}</code>")
            elif kind == "call":
                self._call(user, *args, parse_args(text), out)
            else:
                rule = parse_rule(text)
                self.world.rule_put("event", rule)
                out.show(f"✅ rule <b>{screens.esc(rule['name'])}</b> added: <code>{screens.esc(rule['cond'])}</code>")
        except (ValueError, RtocError) as exc:
            self.pending[user.chat_id] = (kind, args, now)  # try again
            out.show(f"❌ {screens.esc(exc)}\nsend it again, or /menu to leave")

    # -- automation ------------------------------------------------------------------------
    def _do_automation(self, user: User, args: tuple, now: float, out: Reply) -> None:
        listing = self.world.rules()
        rows = [[(f"{'⏸ disable' if r.get('active', True) else '▶️ enable'} {r['name']}",
                  "rule_toggle", kind, r["name"], not r.get("active", True))]
                for kind in ("event", "action") for r in listing.get(kind + "s", [])[:16]]
        rows.append([("➕ add a condition rule", "rule_add")])
        out.show(screens.rules_text(listing), self._buttons(user.chat_id, now, self._back(*rows)))

    def _do_rule_toggle(self, user: User, args: tuple, now: float, out: Reply) -> None:
        kind, name, active = args
        self.world.rule_enable(kind, name, active)
        log.info("telegram: %s (chat %d) %s %s rule %s", user.name, user.chat_id,
                 "enabled" if active else "disabled", kind, name)
        self._do_automation(user, (), now, out)

    def _do_rule_add(self, user: User, args: tuple, now: float, out: Reply) -> None:
        self.pending[user.chat_id] = ("rule", (), now)
        out.actions.append(Send(user.chat_id, "send the rule as <code>name: condition</code>, "
                                "optionally <code>| text</code>, e.g.\n"
                                "<code>too hot: Heater.T > 80 | Heater above 80 °C</code>"))

    # -- settings and users ----------------------------------------------------------------
    def _do_settings(self, user: User, args: tuple, now: float, out: Reply) -> None:
        rows = [[(("● " if user.level == lv else "") + lv, "level", lv) for lv in LEVELS]]
        out.show(f"<b>Settings</b>\nnotifications: <b>{user.level}</b>",
                 self._buttons(user.chat_id, now, self._back(*rows)))

    def _do_level(self, user: User, args: tuple, now: float, out: Reply) -> None:
        if args[0] in LEVELS:
            user.level = args[0]
            self.users.save()
        self._do_settings(user, (), now, out)

    def _do_users(self, user: User, args: tuple, now: float, out: Reply) -> None:
        """Admins first, blocked last; ``USERS_PAGE`` a page."""
        start = int(args[0]) if args else 0
        people = sorted(self.users.users.values(), key=lambda u: (-rank(u.role), u.name, u.chat_id))
        rows = [[(f"{screens.cut(u.name or u.chat_id, 40)} ({u.role})", "user", u.chat_id)]
                for u in people[start:start + USERS_PAGE]]
        paging = [*([("« earlier", "users", max(0, start - USERS_PAGE))] if start else []),
                  *([("later »", "users", start + USERS_PAGE)] if start + USERS_PAGE < len(people) else [])]
        out.show(f"<b>Users</b> {start + 1}-{min(len(people), start + USERS_PAGE)} of {len(people)}",
                 self._buttons(user.chat_id, now, self._back(*rows, paging)))

    def _do_user(self, user: User, args: tuple, now: float, out: Reply) -> None:
        other = self.users.get(args[0])
        if other is None:
            raise _Refusal("no such user")
        rows = [[(("● " if other.role == r else "") + r, "role", other.chat_id, r) for r in ROLES[:3]],
                [(("● " if other.role == r else "") + r, "role", other.chat_id, r) for r in ROLES[3:]]]
        out.show(f"<b>{screens.esc(other.name)}</b> (chat {other.chat_id}): {other.role}, "
                 f"notifications {other.level}", self._buttons(user.chat_id, now, self._back(*rows)))

    def _do_role(self, user: User, args: tuple, now: float, out: Reply) -> None:
        chat, role = args
        if chat in self.users.admins and role != "admin":
            raise _Refusal("that chat is an admin by the config ([telegram] admins)")
        if role != "admin" and self.users.admin_ids() == [chat]:
            raise _Refusal("that is the last admin: make another user admin first")
        other = self.users.set_role(chat, role)
        log.info("telegram: %s (chat %d) gave chat %d the role %s", user.name, user.chat_id, chat, role)
        out.actions.append(Send(user.chat_id, f"✅ {screens.esc(other.name or chat)} is now {role}"))
        if role != "blocked":
            out.actions.append(Send(chat, f"you may use the bot now ({role}): /menu"))

    # -- notifications ---------------------------------------------------------------------
    def event(self, ev: Event, now: float) -> None:
        """Queue ``ev`` for every user whose level it reaches."""
        text = screens.event_text(ev)
        buttons = ()  # minted when sent: a coalesced burst mints no tokens
        if ev.signal and ev.device and math.isfinite(ev.time):
            buttons = ((("📈 plot around it", "event_plot", f"{ev.device}.{ev.signal}", ev.time),),)
        for user in self.users.listening(ev.priority):
            self.notifier.push(user.chat_id, Note(text, ev.priority, ev.device, buttons=buttons))

    def notification(self, text: str, priority: int, source: str, now: float, permission: str = "",
                     file: tuple[str, str, bytes] | None = None, plot: dict | None = None) -> None:
        """Queue a notification for every user whose level it reaches and whose role is at
        least ``permission``; with a ``file`` (kind, name, bytes) or a ``plot`` (the data of
        RTOC's ``telegram_send_plot``, drawn here once for all) it goes as a photo or a
        document with the text as its caption."""
        if plot is not None:
            try:
                file = ("photo", "plot.png", self._notification_plot(plot))
            except Exception as exc:  # noqa: BLE001 - data from a plugin: the text still goes
                log.warning("telegram: a plot from %s could not be drawn: %s: %s", source or "?",
                            type(exc).__name__, exc)
                text += " (the plot could not be drawn)"
        short = screens.cut_units(text, MAX_CAPTION) if file is not None else screens.cut(text, screens.MAX_NOTE)
        body = f"{screens.PRIORITY_ICONS.get(priority, '')} {screens.esc(short)}"
        for user in self.users.listening(priority):
            if user.may(permission or "read"):
                self.notifier.push(user.chat_id, Note(body, priority, source, file=file))

    def _notification_plot(self, plot: dict) -> bytes:
        """The PNG of a plugin's ``telegram_send_plot`` data (``rtoc.model.plot_payload``);
        bounded here too (it runs on the bot's one core thread): at most
        ``MAX_PLOT_SERIES`` series and ``MAX_PLOT_POINTS`` points, short names."""
        series, points = [], 0
        for s in (plot.get("series") or [])[:MAX_PLOT_SERIES]:
            t, y = np.frombuffer(s["t"], np.float64), np.frombuffer(s["y"], np.float64)
            points += len(t)
            if points > MAX_PLOT_POINTS:
                raise ValueError(f"more than {MAX_PLOT_POINTS} points")
            series.append(Series(screens.cut(s.get("name", ""), 100), "", t, y))
        finite = [s.t[np.isfinite(s.t)] for s in series]
        t0 = min((float(t.min()) for t in finite if len(t)), default=math.nan)
        t1 = max((float(t.max()) for t in finite if len(t)), default=math.nan)
        if not series or not math.isfinite(t0):
            raise ValueError("no points to draw")
        t1 = t1 if t1 > t0 else t0 + 1.0
        if t0 < -1e10 or t1 > 1e11:  # not unix seconds (ms? ns?): matplotlib overflows
            raise ValueError(f"times {t0:g} .. {t1:g} are not unix seconds")
        marks = [Mark(float(e[0]), screens.cut(e[1], 200), 0) for e in (plot.get("events") or [])[:1000]]
        return render_png(series, marks, t0=t0, t1=t1, width=self.plot_size[0], height=self.plot_size[1],
                          title=screens.cut(plot.get("title", ""), 200))

    def outgoing(self, now: float, wall: float | None = None) -> list[tuple[Outgoing, Action]]:
        """The notifications that may go at ``now`` (the notifier's clock), each with its
        message; buttons are minted now, valid from ``wall`` (unix s; default ``now``)."""
        wall = now if wall is None else wall
        return [(o, self._message(o, wall)) for o in self.notifier.due(now)]

    def _message(self, o: Outgoing, wall: float) -> Action:
        if o.file is not None:
            kind, name, data = o.file
            return Photo(o.chat_id, data, o.text) if kind == "photo" else Document(o.chat_id, data, name, o.text)
        return Send(o.chat_id, o.text, self._buttons(o.chat_id, wall, [list(r) for r in o.buttons]))

    def startup_report(self) -> list[Action]:
        """What the admins must hear when the bot starts (a user file set aside)."""
        if not self.users.problem:
            return []
        return [Send(a, f"⚠️ {screens.esc(self.users.problem)}") for a in self.users.admin_ids()]


class _Refusal(RtocError):
    """A request the bot cannot do as asked (answered with the message)."""

    code = "refused"


def parse_value(text: str, type_: str) -> Any:
    """A parameter's typed input: JSON for numbers, lists and booleans; text as it is."""
    text = text.strip()
    if type_ == "str":
        return text
    if type_ == "bool":
        low = text.lower()
        if low in ("true", "on", "yes", "1"):
            return True
        if low in ("false", "off", "no", "0"):
            return False
        raise ValueError(f"{text!r} is not true or false")
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a {type_} value") from None
    if type_ == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{text!r} is not a whole number")
    if type_ == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{text!r} is not a number")
    if type_ in ("list", "dict") and not isinstance(value, list if type_ == "list" else dict):
        raise ValueError(f"{text!r} is not a JSON {type_}")
    _check_ints(value)
    if type_ == "float":
        value = float(value)  # OverflowError for 1e400-sized integers: answered as a bad value
        if not math.isfinite(value):
            raise ValueError("the number is too large")
    return value


def _check_ints(value: Any) -> None:
    """Integers the control plane carries (64 bits), at any depth."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not -INT64 <= value < INT64:
        raise ValueError(f"{str(value)[:20]}… is too large (64-bit integers)")
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        _check_ints(item)


def parse_args(text: str) -> list:
    """A function's arguments: JSON values separated by commas (``1.5, "on"``)."""
    try:
        value = json.loads(f"[{text}]")
    except ValueError:
        raise ValueError("the arguments must be JSON values separated by commas, e.g. 1.5, \"on\"") from None
    _check_ints(value)
    return value


def parse_rule(text: str) -> dict:
    """``name: condition [| text]`` -> an event rule, validated as the config's are."""
    head, _, message = text.partition("|")
    name, sep, cond = head.partition(":")
    if not sep or not name.strip() or not cond.strip():
        raise ValueError("write the rule as name: condition (e.g. too hot: Heater.T > 80)")
    raw = {"name": name.strip(), "cond": cond.strip(), **({"text": message.strip()} if message.strip() else {})}
    EventRule.from_dict(raw)  # ConditionError (RtocError) with the column, as the config's
    return raw
