"""The Telegram bot on a real instance (`rtoc run` with a token and a local Bot API server):
python-telegram-bot 22 talks to tests/bot_api.py. Pairing, latest values, a plot with its
events, a device stopped and started from buttons, a notification for a generator event, a
newcomer let in by the admin, a 429 honoured, the server away for 20 s without losing a
queued notification, and the token in no log line, `rtoc config` or /metrics."""

from __future__ import annotations

import datetime as dt
import re
import struct
import sys
import time
from pathlib import Path

import pytest

from rtoc.app.harness import Instance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bot_api import BotApiServer  # noqa: E402

pytest.importorskip("telegram")
TOKEN = "123456:TESTtokenSECRETabcdefghijklmn"
ADMIN, NEWCOMER = 100, 200
CONFIG = '''
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 200.0
frequency = 0.5

[[events]]
name = "sine high"
cond = "Generator.Sine > 0.9"
trigger = "rising"
text = "{signal} high: {value}"
id = "sine-high"
priority = 1

[telegram]
token = "{token}"
base_url = "{base}"
'''


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _warning_pixels(png: bytes) -> int:
    """Pixels of the plot in the warning colour (an event line of priority 1)."""
    import io

    import numpy as np
    from PIL import Image
    from rtoc.frontends.telegram.plot import PRIORITY_COLOURS

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    want = np.array([int(PRIORITY_COLOURS[1][i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - want).sum(axis=2) < 30).sum())


def _text_to(api: BotApiServer, chat: int, pattern: str, timeout: float = 15.0) -> dict:
    """The bot's newest message in ``chat`` (sent or edited) matching ``pattern``."""
    def found(server: BotApiServer):
        return next((m for m in reversed(server.messages(chat))
                     if re.search(pattern, m.get("text") or m.get("caption") or "")), None)
    found.__name__ = f"a message to {chat} matching {pattern!r}"
    return api.wait_for(found, timeout)


def _button(message: dict, label: str) -> str:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return next(b["callback_data"] for row in rows for b in row if b["text"] == label)


def _driver_state(inst: Instance) -> str:
    return next(p["state"] for p in inst.client.request("status")["processes"] if p["name"] == "Generator")


@pytest.mark.timeout(240)
def test_a_paired_admin_watches_plots_controls_and_is_alarmed(tmp_path: Path) -> None:
    with BotApiServer(token=TOKEN) as api:
        config = CONFIG.replace("{token}", TOKEN).replace("{base}", f"http://127.0.0.1:{api.port}")
        with Instance.start(config, ("Generator.Sine",), folder=tmp_path) as inst:
            api.wait_sent("setMyCommands", timeout=30)
            api.wait_for(lambda s: s.sent("getUpdates"), 30)

            # pairing: the code `rtoc telegram pair` prints makes this chat an admin
            code = re.search(r"/pair (\w+)", inst.cli("telegram", "pair")).group(1)
            api.user_message(ADMIN, f"/pair {code}", first_name="Root")
            _text_to(api, ADMIN, "paired: you are an admin")

            # latest values, refreshed in place (the same message edited)
            api.user_message(ADMIN, "/latest")
            table = _text_to(api, ADMIN, "Latest values")
            assert "Generator.Sine" in table["text"]
            api.press(ADMIN, table["message_id"], _button(table, "🔄 Refresh"))
            api.wait_for(lambda s: s.sent("editMessageText", ADMIN, ok=True), 10)

            # a plot with the rule's events (the sine passes 0.9 once per 2 s)
            time.sleep(2.5)
            api.user_message(ADMIN, "/plot Generator.Sine 10m")
            (photo,) = api.wait_sent("sendPhoto", ADMIN, timeout=30)
            png = photo.files["photo"][1]
            assert _png_size(png) == (1280, 720)
            caption = _text_to(api, ADMIN, r"Generator\.Sine: last 10m")["caption"]
            assert int(re.search(r"(\d+) events", caption).group(1)) >= 1, caption
            assert _warning_pixels(png) >= 100  # the events' lines are drawn, in the warning colour

            # a device stopped and started from its buttons
            api.user_message(ADMIN, "/devices")
            devices = _text_to(api, ADMIN, "Devices")
            api.press(ADMIN, devices["message_id"], _button(devices, "🟢 Generator"))
            device = _text_to(api, ADMIN, "Generator</b>: running|Generator: running")
            api.press(ADMIN, device["message_id"], _button(device, "⏹ Stop"))
            inst.wait_for(lambda: _driver_state(inst) == "stopped", 20)
            api.press(ADMIN, device["message_id"], _button(device, "▶️ Start"))
            inst.wait_for(lambda: _driver_state(inst) == "running", 30)

            # a notification for the generator's event (warnings reach the default level)
            _text_to(api, ADMIN, "Generator.Sine high", timeout=20)

            # a newcomer is blocked until the admin lets them in, then may read, not write
            api.user_message(NEWCOMER, "/start", first_name="Bob")
            _text_to(api, NEWCOMER, "An admin must let you in")
            ask = _text_to(api, ADMIN, "Bob .* wants to use the bot")
            api.press(ADMIN, ask["message_id"], _button(ask, "let in as read"))
            _text_to(api, NEWCOMER, r"you may use the bot now \(read\)")
            api.user_message(NEWCOMER, "/devices")
            _text_to(api, NEWCOMER, "not allowed")

            # a 429 is honoured with its delay
            api.fail_next("sendMessage", 429, retry_after=2)
            api.user_message(ADMIN, "/help")
            _text_to(api, ADMIN, "RTOC bot")
            refused, sent = [c for c in api.sent("sendMessage", ADMIN) if "RTOC bot" in
                             str(c.params.get("text", ""))][-2:]
            assert not refused.ok and sent.ok and sent.time - refused.time >= 2.0

            # the Bot API away for 20 s: notifications wait and go out when it is back
            api.go_away()
            away_at = time.time()
            time.sleep(20)
            waiting = next(p for p in inst.client.request("status")["processes"]
                           if p["name"] == "telegram")["stats"]["notify_waiting"]
            api.come_back()
            assert waiting >= 1, "no notification was queued while Telegram was away"

            def events_of_the_outage(server: BotApiServer):
                """Notifications of events that happened while the server was away."""
                times = [dt.datetime.strptime(t, "%Y-%m-%d %H:%M:%S").timestamp()
                         for m in server.messages(ADMIN) if "high" in (m.get("text") or "")
                         for t in re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", m["text"])]
                return [t for t in times if away_at + 1 <= t <= away_at + 19]
            api.wait_for(events_of_the_outage, 60)

            # the token is nowhere: not in `rtoc config`, not in /metrics
            assert TOKEN not in inst.cli("config")
            metrics = inst.metrics()
            assert any(k.startswith('rtoc_frontend_stat{process="telegram"') for k in metrics)
            assert TOKEN not in str(metrics)
        log = inst.log()
    assert "telegram bot @rtoc_test_bot running" in log
    assert TOKEN not in log and TOKEN.split(":")[1] not in log
    assert log.count("the Bot API does not answer") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_webhook_mode_takes_updates_posted_with_the_secret_and_a_failed_set_my_commands_is_not_fatal(
        tmp_path: Path) -> None:
    import json
    import urllib.error
    import urllib.request

    pytest.importorskip("tornado")
    port = _free_port()
    with BotApiServer(token=TOKEN) as api:
        api.fail_next("setMyCommands", 400, retry_after=None, description="Bad Request: test")
        config = CONFIG.replace("{token}", TOKEN).replace("{base}", f"http://127.0.0.1:{api.port}") + f'''
mode = "webhook"
webhook_url = "https://rtoc.example/hook"
webhook_port = {port}
admins = [{ADMIN}]
'''
        with Instance.start(config, ("Generator.Sine",), folder=tmp_path) as inst:
            (hook,) = api.wait_sent("setWebhook", timeout=30)
            url, secret = hook.params["url"], hook.params["secret_token"]
            assert url.startswith("https://rtoc.example/hook/") and len(secret) >= 20
            path = url.removeprefix("https://rtoc.example/hook")
            update = {"update_id": 1, "message": {
                "message_id": 1, "date": int(time.time()), "text": "/latest",
                "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
                "chat": {"id": ADMIN, "type": "private"},
                "from": {"id": ADMIN, "is_bot": False, "first_name": "Root"}}}

            def post(token: str) -> int:
                req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(update).encode(),
                                             {"Content-Type": "application/json",
                                              "X-Telegram-Bot-Api-Secret-Token": token})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        return r.status
                except urllib.error.HTTPError as exc:
                    exc.close()
                    return exc.code

            inst.wait_for(lambda: "running (webhook)" in inst.log(), 20)
            assert post("forged") == 403  # an update without the secret is refused
            assert post(secret) == 200
            _text_to(api, ADMIN, "Latest values")
            assert not api.sent("getUpdates")
        log = inst.log()
    assert "the commands could not be registered (setMyCommands)" in log
    assert TOKEN not in log
