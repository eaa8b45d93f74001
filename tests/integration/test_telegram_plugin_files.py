"""A plugin's ``telegram_send_photo``/``_document``/``_plot`` on a real instance with the
bot (python-telegram-bot against tests/bot_api.py): the picture and the file arrive as they
are, the plot as a picture the bot drew, each only for the users at the plugin's
``permission``. Before, the bot sent a text naming the file."""

from __future__ import annotations

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
ADMIN, READER = 100, 300
PICTURE = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + struct.pack(">II", 2, 2) + b"rest of a picture"

PLUGIN = '''
import time
from rtoc import LoggerPlugin

DEVICENAME = "Cam"


class Plugin(LoggerPlugin):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setDeviceName(DEVICENAME)

    def snap(self, path):
        """Send the picture at path (write role), a CSV (read role) and a plot."""
        self.telegram_send_photo(path, priority=1, permission="write")
        self.telegram_send_document(path.replace(".png", ".csv"), priority=1, permission="read")
        now = time.time()
        xs = [now - 60 + i * 0.1 for i in range(600)]
        self.telegram_send_plot({"Temp": [xs, [20 + (i % 50) / 10 for i in range(600)]]},
                                title="Oven", text="the last minute", events=[[now - 30, "door"]],
                                priority=1)
        return True
'''


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.timeout(180)
def test_a_plugins_picture_file_and_plot_reach_the_chats_its_permission_names(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "camplugin.py").write_text(PLUGIN)
    (tmp_path / "cam.png").write_bytes(PICTURE)
    (tmp_path / "cam.csv").write_text("t,y\n1,2\n")
    with BotApiServer(token=TOKEN) as api:
        config = f'''
[[drivers]]
name = "Cam"
driver = "camplugin:Plugin"

[telegram]
token = "{TOKEN}"
base_url = "http://127.0.0.1:{api.port}"
'''
        with Instance.start(config, (), folder=tmp_path) as inst:
            api.wait_for(lambda s: s.sent("getUpdates"), 30)
            code = re.search(r"/pair (\w+)", inst.cli("telegram", "pair")).group(1)
            api.user_message(ADMIN, f"/pair {code}", first_name="Root")
            _text_to(api, ADMIN, "paired: you are an admin")
            api.user_message(READER, "/start", first_name="Rita")  # let in as read by the admin
            ask = _text_to(api, ADMIN, "Rita .* wants to use the bot")
            api.press(ADMIN, ask["message_id"], _button(ask, "let in as read"))
            _text_to(api, READER, r"you may use the bot now \(read\)")

            inst.client.request("call", driver="Cam", function="snap", args=[str(tmp_path / "cam.png")])
            photos = api.wait_sent("sendPhoto", ADMIN, count=2, timeout=30)
            pictures = [c.files["photo"][1] for c in photos]
            assert PICTURE in pictures  # the plugin's picture, byte for byte
            plot = next(p for p in pictures if p != PICTURE)
            assert _png_size(plot) == (1280, 720)  # the plot, drawn by the bot
            (doc,) = api.wait_sent("sendDocument", ADMIN, timeout=30)
            assert doc.files["document"] == ("cam.csv", b"t,y\n1,2\n")
            assert any("Cam: cam.png" in (m.get("caption") or "") for m in api.messages(ADMIN))
            # the reader gets the CSV (permission "read"), not the picture nor the plot
            # (permission "write": RTOC's default)
            api.wait_sent("sendDocument", READER, timeout=30)
            time.sleep(3.0)  # they would have come by now: one message a second per chat
            assert not api.sent("sendPhoto", READER)

def _text_to(api: BotApiServer, chat: int, pattern: str, timeout: float = 15.0) -> dict:
    def found(server: BotApiServer):
        return next((m for m in reversed(server.messages(chat))
                     if re.search(pattern, m.get("text") or m.get("caption") or "")), None)
    found.__name__ = f"a message to {chat} matching {pattern!r}"
    return api.wait_for(found, timeout)


def _button(message: dict, label: str) -> str:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return next(b["callback_data"] for row in rows for b in row if b["text"] == label)
