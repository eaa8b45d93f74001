"""The Telegram bot's pure core: pairing, newcomers, screens, typed input, the role matrix
of every command and button, forged and stale callbacks, notifications. No network: the
instance is an in-memory world (the core's port), time is an argument."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from rtoc.frontends.telegram import pairing
from rtoc.frontends.telegram.core import (
    COMMANDS,
    ROLE_OF,
    Answer,
    BotCore,
    Document,
    Edit,
    Photo,
    Send,
    parse_args,
    parse_rule,
    parse_value,
)
from rtoc.frontends.telegram.notify import Notifier
from rtoc.frontends.telegram.plot import points_for
from rtoc.frontends.telegram.users import ROLES, UserStore, rank

from rtoc.errors import DriverNotFound
from rtoc.model import Event

NOW = 1_800_000_000.0
ADMIN, ANN = 1, 2


class World:
    """An instance in memory: two signals, one driver, rules; records what was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.params = {"frequency": 1.0, "enabled": True}
        self.listing = {"events": [{"name": "hot", "cond": "Gen.Sine > 0.9", "active": True}],
                        "actions": []}

    def signals(self):
        return [{"name": "Gen.Sine", "unit": "V", "latest": {"t": NOW - 2, "y": 0.5}},
                {"name": "Gen.Square", "unit": "", "latest": {"t": NOW - 100, "y": 1.0}}]

    def drivers(self):
        return [{"name": "Gen", "state": "running",
                 "parameters": [{"name": "frequency", "type": "float", "value": self.params["frequency"],
                                 "min": 0.0, "doc": "Hz"},
                                {"name": "enabled", "type": "bool", "value": self.params["enabled"]}],
                 "functions": [{"name": "reset", "args": [], "signature": "reset()"},
                               {"name": "scale", "args": ["k", "mode"], "signature": "scale(k, mode)"}]}]

    def start(self, d):
        self._known(d)
        self.calls.append(("start", d))
        return "starting"

    def stop(self, d):
        self._known(d)
        self.calls.append(("stop", d))
        return "stopped"

    def _known(self, d):
        if d != "Gen":
            raise DriverNotFound(f"no driver named {d!r}", d)

    def set(self, d, p, v):
        self.calls.append(("set", d, p, v))
        self.params[p] = v

    def call(self, d, f, args):
        self.calls.append(("call", d, f, args))
        return 42

    def rules(self):
        return self.listing

    def rule_enable(self, kind, name, active):
        self.calls.append(("rule_enable", kind, name, active))

    def rule_put(self, kind, rule):
        self.calls.append(("rule_put", kind, rule))

    def events(self, min_priority, limit):
        return [{"time": NOW - 5, "text": "too hot", "device": "Gen", "signal": "Sine", "priority": 1}]

    def archive_events(self, t0, t1):
        return [{"time": NOW - 60, "text": "too hot", "device": "Gen", "signal": "Sine", "priority": 2}]

    def history(self, name, t0, t1, max_points):
        self.calls.append(("history", name, max_points))
        t = np.linspace(t0, t1, 100)
        return t, np.sin(t)


@pytest.fixture
def bot(tmp_path: Path) -> BotCore:
    counter = itertools.count()
    users = UserStore(tmp_path / "users.json", admins=(ADMIN,))
    return BotCore(World(), users, tmp_path, Notifier(), lambda: f"tok{next(counter)}", (640, 360))


def _buttons(actions) -> dict[str, str]:
    """label -> callback data of every button in ``actions``."""
    return {label: data for a in actions for row in getattr(a, "buttons", ()) for label, data in row}


def _texts(actions) -> str:
    return "\n".join(getattr(a, "text", "") or getattr(a, "caption", "") for a in actions)


def test_the_first_person_is_not_made_admin_a_pairing_code_does(bot: BotCore, tmp_path: Path) -> None:
    out = bot.message(ANN, "Ann", "/start", NOW)
    assert bot.users.get(ANN).role == "blocked"
    assert "admin must let you in" in _texts(out)
    asked = [m for _, m in bot.outgoing(NOW) if m.chat_id == ADMIN]  # rate-limited, as alarms
    assert asked and "let in as read" in _buttons(asked)
    code = pairing.new_code(tmp_path, NOW)
    assert "not right" in _texts(bot.message(ANN, "Ann", "/pair WRONGCODE1", NOW))
    out = bot.message(ANN, "Ann", f"/start {code.lower()}", NOW + 1)
    assert bot.users.get(ANN).role == "admin" and "paired" in _texts(out)
    assert "no valid code" in _texts(bot.message(3, "Bob", f"/pair {code}", NOW + 2))  # once only


def test_a_pairing_code_expires_and_a_chat_gets_five_tries(tmp_path: Path) -> None:
    code = pairing.new_code(tmp_path, NOW)
    assert [pairing.redeem(tmp_path, 7, "X", NOW) for _ in range(6)][-2:] == ["wrong", "locked"]
    assert pairing.redeem(tmp_path, 7, code, NOW) == "locked"
    assert pairing.redeem(tmp_path, 8, code, NOW + pairing.VALID + 1) == "expired"
    assert (tmp_path / "pair.json").exists() is False


def test_an_admin_lets_a_newcomer_in_with_a_button(bot: BotCore) -> None:
    bot.message(ANN, "Ann", "/start", NOW)
    data = _buttons([m for _, m in bot.outgoing(NOW) if m.chat_id == ADMIN])["let in as read"]
    out = bot.press(ADMIN, 10, "cb1", data, NOW + 5)
    assert out[0] == Answer("cb1", "")
    assert bot.users.get(ANN).role == "read"
    assert any(isinstance(a, Send) and a.chat_id == ANN and "may use the bot" in a.text for a in out)
    # Ann's second /start does not ask the admins again
    bot.users.set_role(ANN, "blocked")
    bot.message(ANN, "Ann", "/start", NOW)
    assert not bot.outgoing(NOW + 5)


def test_latest_values_refresh_in_place(bot: BotCore) -> None:
    out = bot.message(ADMIN, "Root", "/latest", NOW)
    assert isinstance(out[0], Send) and "Gen.Sine" in out[0].text and "0.5" in out[0].text
    assert "2 s" in out[0].text and "V" in out[0].text
    out = bot.press(ADMIN, 55, "cb", _buttons(out)["🔄 Refresh"], NOW + 10)
    assert isinstance(out[1], Edit) and out[1].message_id == 55 and "12 s" in out[1].text


def test_plot_command_sends_a_png_with_its_events_and_period(bot: BotCore) -> None:
    out = bot.message(ADMIN, "Root", "/plot Gen.Sine Gen.Square 2h", NOW)
    (photo,) = out
    assert isinstance(photo, Photo) and photo.png.startswith(b"\x89PNG")
    assert "last 2h" in photo.caption and "1 events" in photo.caption
    assert ("history", "Gen.Sine", points_for(640)) in bot.world.calls
    assert "CSV" in _buttons(out)
    doc = bot.press(ADMIN, 9, "cb", _buttons(out)["CSV"], NOW)[1]
    assert isinstance(doc, Document) and doc.filename.endswith(".csv") and b"Gen.Sine" in doc.data
    assert "no signal Nope.X" in _texts(bot.message(ADMIN, "Root", "/plot Nope.X", NOW))


def test_set_a_parameter_by_typed_input(bot: BotCore) -> None:
    bot.users.set_role(ANN, "write")
    out = bot.message(ANN, "Ann", "/devices", NOW)
    out = bot.press(ANN, 3, "c", _buttons(out)["🟢 Gen"], NOW)
    out = bot.press(ANN, 3, "c", _buttons(out)["set frequency"], NOW)
    assert "new value of" in _texts(out)
    out = bot.message(ANN, "Ann", "fast", NOW)
    assert "not a float" in _texts(out)  # asked again
    out = bot.message(ANN, "Ann", "2.5", NOW)
    assert ("set", "Gen", "frequency", 2.5) in bot.world.calls and "2.5" in _texts(out)
    assert "send /menu" in _texts(bot.message(ANN, "Ann", "3.0", NOW))  # no question pending


def test_stop_and_start_a_device_from_its_buttons(bot: BotCore) -> None:
    out = bot.press(ADMIN, 4, "c", _buttons(bot.message(ADMIN, "R", "/devices", NOW))["🟢 Gen"], NOW)
    bot.press(ADMIN, 4, "c", _buttons(out)["⏹ Stop"], NOW)
    bot.press(ADMIN, 4, "c", _buttons(out)["▶️ Start"], NOW)
    assert [c for c in bot.world.calls if c[0] in ("start", "stop")] == [("stop", "Gen"), ("start", "Gen")]


def test_a_function_with_arguments_takes_json_values_never_code(bot: BotCore) -> None:
    out = bot.press(ADMIN, 4, "c", _buttons(bot.message(ADMIN, "R", "/devices", NOW))["🟢 Gen"], NOW)
    out = bot.press(ADMIN, 4, "c", _buttons(out)["scale()"], NOW)
    assert "JSON values" in _texts(out)
    out = bot.message(ADMIN, "R", "__import__('os').system('true')", NOW)
    assert "must be JSON values" in _texts(out) and not [c for c in bot.world.calls if c[0] == "call"]
    out = bot.message(ADMIN, "R", '1.5, "on"', NOW)
    assert ("call", "Gen", "scale", [1.5, "on"]) in bot.world.calls and "42" in _texts(out)


def test_a_bad_condition_rule_is_answered_with_its_column(bot: BotCore) -> None:
    out = bot.press(ADMIN, 4, "c", _buttons(bot.message(ADMIN, "R", "/automation", NOW))
                    ["➕ add a condition rule"], NOW)
    out = bot.message(ADMIN, "R", "hot: Gen.Sine >> 3", NOW)
    assert "column" in _texts(out)
    out = bot.message(ADMIN, "R", "hot: Gen.Sine > 3 | too hot", NOW)
    assert ("rule_put", "event", {"name": "hot", "cond": "Gen.Sine > 3", "text": "too hot"}) in bot.world.calls


def test_forged_and_stale_callbacks_do_nothing(bot: BotCore) -> None:
    assert bot.press(ADMIN, 1, "c", "start:Gen", NOW) == [Answer("c", "expired: send /menu")]
    token = bot.button(ANN, "x", "stop", "Gen", now=NOW)[1]  # Ann's token, pressed by the admin
    assert bot.press(ADMIN, 1, "c", token, NOW)[0].text.startswith("expired")
    token = bot.button(ADMIN, "x", "stop", "Gen", now=NOW)[1]
    assert bot.press(ADMIN, 1, "c", token, NOW + 86401)[0].text.startswith("expired")
    assert not [c for c in bot.world.calls if c[0] == "stop"]


@pytest.mark.parametrize("role", ROLES)
def test_every_button_checks_the_role_when_pressed(bot: BotCore, role: str) -> None:
    """The matrix: every action x every role; a token minted for the chat (as if shown
    when the user had a higher role) works only when the role is enough now."""
    args = {"device_signals": ("Gen",), "signal": ("Gen.Sine",), "plot": (("Gen.Sine",), 600.0),
            "csv": (("Gen.Sine",), 600.0), "events": (0,), "event_plot": ("Gen.Sine", NOW - 60),
            "pin_signal": ("Gen.Sine",), "level": ("all",), "device": ("Gen",), "start": ("Gen",),
            "stop": ("Gen",), "param": ("Gen", "frequency"), "function": ("Gen", "reset"),
            "pin_function": ("Gen.reset",), "sc_function": ("Gen.reset",),
            "rule_toggle": ("event", "hot", False), "user": (ADMIN,), "role": (ANN, "read"),
            "unpin": ("signal", "Gen.Sine"), "sc_signal": ("Gen.Sine",)}
    bot.users.set_role(ANN, role)
    bot.users.get(ANN).signals.append("Gen.Sine")
    for action, needs in ROLE_OF.items():
        if action == "role":
            bot.users.set_role(ANN, role)  # an earlier press may have changed it
        token = bot.button(ANN, "x", action, *args.get(action, ()), now=NOW)[1]
        before = len(bot.world.calls)
        out = bot.press(ANN, 1, "c", token, NOW)
        allowed = rank(role) >= rank(needs)
        assert out[0] == Answer("c", "" if allowed else "not allowed"), (action, role, out)
        if not allowed:
            assert len(out) == 1 and len(bot.world.calls) == before, (action, role)


@pytest.mark.parametrize("role", ROLES)
def test_every_command_checks_the_role(bot: BotCore, role: str) -> None:
    bot.users.set_role(ANN, role)
    for command, action in COMMANDS.items():
        out = bot.message(ANN, "Ann", f"/{command}", NOW)
        refused = "not allowed" in _texts(out) or "has not let you in" in _texts(out)
        assert refused == (rank(role) < rank(ROLE_OF[action])), (command, role, _texts(out))


def test_notifications_go_by_level_and_role_with_a_plot_button(bot: BotCore) -> None:
    for chat, role, level in ((2, "read", "all"), (3, "read", "errors"), (4, "custom", "all"),
                              (5, "blocked", "all")):
        bot.users.set_role(chat, role)
        bot.users.get(chat).level = level
    bot.users.get(ADMIN).level = "none"
    bot.event(Event(NOW, "too hot", "Gen", "Sine", 1, value=0.93), NOW)
    assert set(bot.notifier.queues) == {2}
    ((out, message),) = bot.outgoing(NOW)
    assert "too hot" in out.text and "0.93" in out.text and "Gen.Sine" in out.text
    label, token = message.buttons[0][0]
    photo = bot.press(2, 1, "c", token, NOW)[1]
    assert isinstance(photo, Photo)


def test_users_persist_and_a_corrupt_file_is_kept_aside(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    store.set_role(9, "write")
    store.get(9).signals.append("A.b")
    store.save()
    again = UserStore(tmp_path / "users.json")
    assert again.get(9).role == "write" and again.get(9).signals == ["A.b"]
    (tmp_path / "users.json").write_text("{not json")
    broken = UserStore(tmp_path / "users.json", admins=(1,))
    assert broken.problem and "kept as" in broken.problem
    assert list(tmp_path.glob("users.json.corrupt-*"))
    assert broken.get(1).role == "admin" and broken.get(9) is None


def test_typed_values_are_parsed_by_type_not_evaluated() -> None:
    assert parse_value("2", "float") == 2.0 and parse_value("on", "bool") is True
    assert parse_value("[1, 2]", "list") == [1, 2] and parse_value(" x ", "str") == "x"
    for text, type_ in (("1.5", "int"), ("true", "float"), ("1+1", "int"), ("{}", "list")):
        with pytest.raises(ValueError):
            parse_value(text, type_)
    assert parse_args('1, "a", [2]') == [1, "a", [2]]
    with pytest.raises(ValueError):
        parse_args("os.system('x')")
    assert parse_rule("a: X.y > 1")["cond"] == "X.y > 1"
    with pytest.raises(ValueError):
        parse_rule("no colon here")


def test_the_user_file_is_json_of_plain_values(bot: BotCore, tmp_path: Path) -> None:
    bot.message(ANN, "Ann <script>", "/start", NOW)
    raw = json.loads((tmp_path / "users.json").read_text())
    assert raw["version"] == 1 and raw["users"][str(ANN)]["name"] == "Ann <script>"


def test_a_plugins_picture_file_and_plot_go_as_photo_or_document_to_the_roles_asked(bot: BotCore) -> None:
    """RTOC's telegram_send_photo/_document/_plot: the picture, the file and a drawn plot
    reach the users at or above the plugin's ``permission``; before, only a text naming them."""
    for chat, role in ((2, "read"), (3, "write")):
        bot.users.set_role(chat, role)
        bot.users.get(chat).level = "all"
    bot.users.get(ADMIN).level = "none"
    png = b"\x89PNG fake"
    bot.notification("Heater: cam.png", 0, "driver:Heater", NOW, "write", ("photo", "cam.png", png))
    assert set(bot.notifier.queues) == {3}  # the read-only user is not at "write"
    ((_, photo),) = bot.outgoing(NOW)
    assert photo == Photo(3, png, photo.caption) and "cam.png" in photo.caption
    bot.notification("Heater: log", 0, "driver:Heater", NOW + 2, "read", ("document", "log.csv", b"a,b\n"))
    docs = [m for _, m in bot.outgoing(NOW + 2)]
    assert sorted(d.chat_id for d in docs) == [2, 3] and all(
        isinstance(d, Document) and d.filename == "log.csv" and d.data == b"a,b\n" for d in docs)
    t = np.linspace(NOW - 60, NOW, 500)
    plot = {"title": "Sine", "series": [{"name": "Sine", "t": t.tobytes(), "y": np.sin(t).tobytes()}],
            "events": [[NOW - 30, "hot"]]}
    bot.notification("Heater: plot", 1, "driver:Heater", NOW + 4, "", None, plot)
    pics = [m for _, m in bot.outgoing(NOW + 4)]
    assert len(pics) == 2 and all(isinstance(p, Photo) and p.png.startswith(b"\x89PNG") for p in pics)
    bot.notification("Heater: bad", 1, "driver:Heater", NOW + 6, "", None, {"series": []})
    texts = [m for _, m in bot.outgoing(NOW + 6)]  # nothing to draw: the text still goes, saying so
    assert all(isinstance(m, Send) and "could not be drawn" in m.text for m in texts) and len(texts) == 2


def test_review_plot_times_not_in_seconds_and_emoji_captions_still_send(bot: BotCore) -> None:
    """Review: times in microseconds made matplotlib overflow, and the notification was
    lost, text and all; a caption of 900 emoji is 1800 UTF-16 units, over Telegram's 1024."""
    bot.users.set_role(2, "read")
    bot.users.get(2).level = "all"
    bot.users.get(ADMIN).level = "none"
    t = np.linspace(NOW, NOW + 60, 50) * 1e6
    plot = {"series": [{"name": "T", "t": t.tobytes(), "y": np.ones(50).tobytes()}]}
    bot.notification("oven: plot", 1, "driver:Oven", NOW, "", None, plot)
    ((_, sent),) = bot.outgoing(NOW)
    assert isinstance(sent, Send) and "could not be drawn" in sent.text
    bot.notification("🔥" * 900, 1, "driver:Oven", NOW + 2, "", ("photo", "a.png", b"\x89PNG"))
    ((_, photo),) = bot.outgoing(NOW + 2)
    assert len(photo.caption.encode("utf-16-le")) // 2 <= 1024
