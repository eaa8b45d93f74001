"""tests/bot_api.py, the local Bot API, driven by the real python-telegram-bot.

The Telegram bot's tests are only as good as this fake is faithful, so it is checked here
with the library the bot uses: what PTB sends arrives decoded (JSON fields, multipart
uploads byte for byte), what the server answers parses into PTB's objects, and the errors
come out as the exceptions PTB raises against Telegram (BadRequest, RetryAfter,
InvalidToken, Conflict, NetworkError, TimedOut). Async code runs under ``asyncio.run``
inside plain test functions (pytest-asyncio is not a dependency).
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes
from telegram.warnings import PTBDeprecationWarning

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bot_api import THREAD_PREFIX, BotApiServer  # noqa: E402

pytestmark = pytest.mark.timeout(30)

TOKEN = "123:ABC"
CHAT = 4242
# a 1x1 PNG, with the CR LF, LF and 0x1A bytes that catch a text-mode multipart parser
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005fe02fea7d6"
    "a0f00000000049454e44ae426082")
CSV = b"time,value\r\n0.0,1.5\n1.0,-2\r\n\x00\xff end"
CSV_NAME = 'Messung "A" \u00e4.csv'  # quotes and UTF-8 in a multipart header

T = TypeVar("T")


@pytest.fixture
def api() -> Iterator[BotApiServer]:
    with BotApiServer(token=TOKEN) as server:
        yield server


def with_bot(api: BotApiServer, body: Callable[[Bot], Awaitable[T]], token: str = TOKEN) -> T:
    """Run ``body(bot)`` with an initialised real Bot pointed at ``api``."""
    async def main() -> T:
        async with Bot(token, base_url=api.base_url, base_file_url=api.base_file_url) as bot:
            return await body(bot)
    return asyncio.run(main())


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d.title(), callback_data=d)
                                  for d in data]])


def pending_poll(server: BotApiServer) -> bool:
    return any(c.method == "getUpdates" and c.status is None for c in server.calls)


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


# -- plain calls -------------------------------------------------------------------------


def test_get_me_and_urls(api: BotApiServer) -> None:
    me = with_bot(api, lambda bot: bot.get_me())
    assert (me.id, me.is_bot, me.username) == (123, True, "rtoc_test_bot")
    assert api.base_url == f"http://127.0.0.1:{api.port}/bot"
    assert api.base_file_url == f"http://127.0.0.1:{api.port}/file/bot"
    assert [c.method for c in api.sent(ok=True)] == ["getMe", "getMe"]  # initialize() + ours


def test_send_message_keeps_text_markup_and_entities(api: BotApiServer) -> None:
    async def body(bot: Bot) -> Any:
        return await bot.send_message(CHAT, "<b>Ring</b> &lt;full&gt; 1.5 kHz",
                                      parse_mode="HTML", reply_markup=keyboard("ack", "mute"))
    msg = with_bot(api, body)
    # PTB parsed the answer: Telegram returns plain text plus entities
    assert msg.text == "Ring <full> 1.5 kHz" and msg.chat.id == CHAT and msg.from_user.is_bot
    assert msg.entities[0].type == "bold" and (msg.entities[0].offset, msg.entities[0].length) \
        == (0, 4)
    assert msg.reply_markup.inline_keyboard[0][1].callback_data == "mute"

    [stored] = api.messages(CHAT)
    assert stored["message_id"] == msg.message_id and stored["text"] == "Ring <full> 1.5 kHz"
    assert stored["source"] == "<b>Ring</b> &lt;full&gt; 1.5 kHz" and stored["parse_mode"] == "HTML"
    assert stored["reply_markup"] == {"inline_keyboard": [[
        {"text": "Ack", "callback_data": "ack"}, {"text": "Mute", "callback_data": "mute"}]]}
    [call] = api.sent("sendMessage", chat_id=CHAT)
    assert call.params["chat_id"] == CHAT and isinstance(call.params["reply_markup"], dict)
    assert call["method"] == "sendMessage" and call.ok


def test_message_ids_count_up_per_chat_with_user_messages(api: BotApiServer) -> None:
    async def body(bot: Bot) -> list[int]:
        first = await bot.send_message(CHAT, "one")
        api.user_message(CHAT, "hello")
        second = await bot.send_message(CHAT, "two")
        other = await bot.send_message(CHAT + 1, "elsewhere")
        return [first.message_id, second.message_id, other.message_id]
    assert with_bot(api, body) == [1, 3, 1]
    assert [m["text"] for m in api.messages(CHAT)] == ["one", "two"]  # the bot's only


def test_edit_message_text_updates_the_stored_message(api: BotApiServer) -> None:
    async def body(bot: Bot) -> tuple[Any, Any]:
        sent = await bot.send_message(CHAT, "armed", reply_markup=keyboard("ack"))
        kept = await bot.edit_message_text("acknowledged", chat_id=CHAT,
                                           message_id=sent.message_id,
                                           reply_markup=keyboard("undo"))
        dropped = await bot.edit_message_text("done", chat_id=CHAT, message_id=sent.message_id)
        return kept, dropped
    kept, dropped = with_bot(api, body)
    assert kept.text == "acknowledged" and kept.edit_date is not None
    assert kept.reply_markup.inline_keyboard[0][0].callback_data == "undo"
    # as on Telegram: an edit without reply_markup takes the keyboard away
    assert dropped.text == "done" and dropped.reply_markup is None
    [stored] = api.messages(CHAT)
    assert (stored["text"], stored["reply_markup"], stored["edits"]) == ("done", None, 2)


def test_not_modified_edit_is_a_bad_request(api: BotApiServer) -> None:
    async def body(bot: Bot) -> None:
        sent = await bot.send_message(CHAT, "<i>same</i>", parse_mode="HTML",
                                      reply_markup=keyboard("a"))
        with pytest.raises(BadRequest, match="Message is not modified"):
            # same text after parsing, same entities, same keyboard
            await bot.edit_message_text("_same_", chat_id=CHAT, message_id=sent.message_id,
                                        parse_mode="MarkdownV2", reply_markup=keyboard("a"))
        with pytest.raises(BadRequest, match="Message to edit not found"):
            await bot.edit_message_text("x", chat_id=CHAT, message_id=99)
    with_bot(api, body)
    assert [c.status for c in api.sent("editMessageText")] == [400, 400]


def test_markup_errors_are_refused_like_telegram(api: BotApiServer) -> None:
    async def body(bot: Bot) -> None:
        with pytest.raises(BadRequest, match="Can't parse entities: unsupported start tag"):
            await bot.send_message(CHAT, "value <unit> too high", parse_mode="HTML")
        with pytest.raises(BadRequest, match="(?i)character '.' is reserved"):
            await bot.send_message(CHAT, "1.5 V", parse_mode="MarkdownV2")
        with pytest.raises(BadRequest, match="Button_data_invalid"):
            await bot.send_message(CHAT, "x", reply_markup=keyboard("d" * 65))
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(CHAT, "  ")
    with_bot(api, body)
    assert api.messages(CHAT) == []


def test_reply_markup_edit_delete_and_groups(api: BotApiServer) -> None:
    group = -1001234567890

    async def body(bot: Bot) -> None:
        sent = await bot.send_message(CHAT, "alarm", reply_markup=keyboard("ack"))
        edited = await bot.edit_message_reply_markup(CHAT, sent.message_id,
                                                     reply_markup=keyboard("undo"))
        assert edited.text == "alarm"
        assert edited.reply_markup.inline_keyboard[0][0].callback_data == "undo"
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await bot.edit_message_reply_markup(CHAT, sent.message_id,
                                                reply_markup=keyboard("undo"))
        reply = await bot.send_message(CHAT, "re", reply_to_message_id=sent.message_id)
        assert reply.reply_to_message.message_id == sent.message_id
        assert await bot.delete_message(CHAT, sent.message_id)
        with pytest.raises(BadRequest, match="Message to delete not found"):
            await bot.delete_message(CHAT, sent.message_id)
        api.user_message(group, "/status@rtoc_test_bot", user_id=7)
        [update] = await bot.get_updates()
        assert update.message.chat.type == "supergroup" and update.message.from_user.id == 7
        assert update.message.entities[0].length == len("/status@rtoc_test_bot")
        assert (await bot.send_message(group, "ok")).chat.id == group
    with_bot(api, body)
    assert [m["text"] for m in api.messages(CHAT)] == ["re"]


def test_unknown_chats_and_webhooks() -> None:
    with BotApiServer(token=TOKEN, known_chats_only=True) as server:
        async def body(bot: Bot) -> None:
            with pytest.raises(BadRequest, match="Chat not found"):
                await bot.send_message(CHAT, "nobody wrote to me")
            server.user_message(CHAT, "hi")
            assert (await bot.send_message(CHAT, "now I may")).text == "now I may"
            with pytest.raises(BadRequest, match="(?i)an https url must be provided"):
                await bot.set_webhook("http://example.org/hook")
            assert await bot.set_webhook("https://example.org/hook")
            assert (await bot.get_webhook_info()).pending_update_count == 1
            with pytest.raises(Conflict, match="webhook is active"):
                await bot.get_updates()
            assert await bot.delete_webhook(drop_pending_updates=True)
            assert await bot.get_updates() == ()
        with_bot(server, body)
        assert server.webhook_url == ""


# -- files and commands ------------------------------------------------------------------


def test_photo_and_document_arrive_intact(api: BotApiServer) -> None:
    async def body(bot: Bot) -> tuple[Any, Any, bytes]:
        photo = await bot.send_photo(CHAT, PNG, caption="<b>plot</b>", parse_mode="HTML",
                                     filename="plot.png")
        doc = await bot.send_document(CHAT, CSV, filename=CSV_NAME)
        file = await bot.get_file(doc.document.file_id)
        return photo, doc, bytes(await file.download_as_bytearray())
    photo, doc, downloaded = with_bot(api, body)
    assert photo.caption == "plot" and (photo.photo[-1].width, photo.photo[-1].height) == (1, 1)
    assert doc.document.file_name == CSV_NAME and doc.document.file_size == len(CSV)
    assert downloaded == CSV
    sent_photo, sent_doc = api.messages(CHAT)
    assert sent_photo["photo"] == PNG and sent_photo["filename"] == "plot.png"
    assert sent_doc["document"] == CSV and sent_doc["filename"] == CSV_NAME
    assert sent_doc["mime_type"] == "text/csv"
    [call] = api.sent("sendDocument")
    assert call.files == {"document": (CSV_NAME, CSV)} and call.params["chat_id"] == CHAT


def test_a_photo_that_is_no_image_is_refused(api: BotApiServer) -> None:
    async def body(bot: Bot) -> None:
        with pytest.raises(BadRequest, match="Image_process_failed"):
            await bot.send_photo(CHAT, CSV, filename="plot.png")
    with_bot(api, body)


def test_set_my_commands_is_recorded_decoded(api: BotApiServer) -> None:
    commands = [BotCommand("status", "What is running"), BotCommand("plot", "A signal")]

    async def body(bot: Bot) -> tuple[Any, ...]:
        assert await bot.set_my_commands(commands)
        with pytest.raises(BadRequest, match="Bot_command_invalid"):
            await bot.set_my_commands([BotCommand("Status", "capitals are refused")])
        return await bot.get_my_commands()
    assert with_bot(api, body) == tuple(commands)
    first = api.sent("setMyCommands")[0]
    assert first.params["commands"] == [{"command": "status", "description": "What is running"},
                                        {"command": "plot", "description": "A signal"}]
    assert api.commands() == first.params["commands"]


# -- updates -----------------------------------------------------------------------------


def test_long_poll_returns_an_update_fed_during_the_wait(api: BotApiServer) -> None:
    def user() -> None:
        api.wait_for(pending_poll, 5.0)  # the bot is inside its long poll now
        api.user_message(CHAT, "hello")

    async def body(bot: Bot) -> tuple[Any, float, Any]:
        feeder = threading.Thread(target=user)
        feeder.start()
        start = time.monotonic()
        updates = await bot.get_updates(timeout=10)
        waited = time.monotonic() - start
        feeder.join()
        again = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
        return updates, waited, again
    updates, waited, again = with_bot(api, body)
    assert waited < 5.0  # woken by the update, not by the 10 s timeout
    assert [u.message.text for u in updates] == ["hello"]
    assert updates[0].message.from_user.id == CHAT and updates[0].message.chat.type == "private"
    assert again == () and api.pending_updates() == []  # the offset confirmed it


def test_long_poll_times_out_empty(api: BotApiServer) -> None:
    async def body(bot: Bot) -> tuple[Any, float]:
        start = time.monotonic()
        return await bot.get_updates(timeout=0.3), time.monotonic() - start
    updates, waited = with_bot(api, body)
    assert updates == () and 0.25 <= waited < 2.0


def test_update_not_confirmed_is_delivered_again(api: BotApiServer) -> None:
    first = api.user_message(CHAT, "a")
    api.user_message(CHAT, "b")

    async def body(bot: Bot) -> list[list[int]]:
        ids = [[u.update_id for u in await bot.get_updates(limit=1)]]
        ids.append([u.update_id for u in await bot.get_updates()])
        ids.append([u.update_id for u in await bot.get_updates(offset=first + 1)])
        return ids
    assert with_bot(api, body) == [[first], [first, first + 1], [first + 1]]


def test_a_slash_message_is_a_command_for_ptb(api: BotApiServer) -> None:
    api.user_message(CHAT, "/start abc", first_name="Bo", username="bo")
    raw = api.pending_updates()[0]
    offline = Update.de_json(raw, None)
    assert offline.message.text == "/start abc"
    assert offline.message.entities[0].type == "bot_command"
    assert offline.message.entities[0].length == len("/start")

    async def body(bot: Bot) -> Any:
        [update] = await bot.get_updates()
        return CommandHandler("start", lambda u, c: None).check_update(update)
    args = with_bot(api, body)
    assert args is not None and args is not False and list(args[0]) == ["abc"]


def test_press_gives_a_callback_query_that_can_be_answered_once(api: BotApiServer) -> None:
    async def body(bot: Bot) -> Any:
        sent = await bot.send_message(CHAT, "alarm", reply_markup=keyboard("ack"))
        with pytest.raises(ValueError, match="no button"):
            api.press(CHAT, sent.message_id, "nope")
        api.press(CHAT, sent.message_id, "ack")
        [update] = await bot.get_updates()
        query = update.callback_query
        assert await query.answer("Acknowledged")
        with pytest.raises(BadRequest, match="Query is too old"):
            await query.answer()
        return query
    query = with_bot(api, body)
    assert query.data == "ack" and query.from_user.id == CHAT and query.id
    assert query.message.text == "alarm" and query.message.chat.id == CHAT
    [answer] = api.answered_callbacks()
    assert answer["text"] == "Acknowledged" and answer["data"] == "ack"
    assert answer["callback_query_id"] == query.id


def test_an_application_answers_a_command_end_to_end(api: BotApiServer) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text(f"started {context.args}")

    async def main() -> None:
        app = (ApplicationBuilder().token(TOKEN).base_url(api.base_url)
               .base_file_url(api.base_file_url).build())
        app.add_handler(CommandHandler("start", start))
        async with app:
            await app.start()
            await app.updater.start_polling(timeout=1)
            api.user_message(CHAT, "/start now")
            await asyncio.to_thread(api.wait_sent, "sendMessage", CHAT)
            await app.updater.stop()
            await app.stop()
    asyncio.run(main())
    assert [m["text"] for m in api.messages(CHAT)] == ["started ['now']"]
    assert api.pending_updates() == []  # the updater confirmed it on stop


def test_a_second_long_poll_terminates_the_first_with_conflict(api: BotApiServer) -> None:
    async def body(bot: Bot) -> None:
        first = asyncio.create_task(bot.get_updates(timeout=10))
        await asyncio.to_thread(api.wait_for, pending_poll, 5.0)
        async with Bot(TOKEN, base_url=api.base_url) as other:
            assert await other.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates"):
            await first
    with_bot(api, body)


# -- faults ------------------------------------------------------------------------------


def test_fail_next_429_raises_retry_after(api: BotApiServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    api.fail_next("sendMessage", 429, retry_after=5, times=2)

    async def body(bot: Bot) -> None:
        # PTB 22.8 keeps a timedelta. Without PTB_TIMEDELTA=true, RetryAfter's own
        # __init__ reads .retry_after and warns (PTBDeprecationWarning), so under
        # filterwarnings=error the warning, not RetryAfter, comes out of send_message.
        monkeypatch.setenv("PTB_TIMEDELTA", "true")
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(CHAT, "flood")
        assert info.value.retry_after == dtm.timedelta(seconds=5)
        monkeypatch.delenv("PTB_TIMEDELTA")
        with pytest.warns(PTBDeprecationWarning, match="PTB_TIMEDELTA"):
            with pytest.raises(RetryAfter) as info:
                await bot.send_message(CHAT, "flood")
            assert info.value.retry_after == 5  # an int (with the warning)
        await bot.send_message(CHAT, "flood")  # the third goes through
    with_bot(api, body)
    assert [c.status for c in api.sent("sendMessage")] == [429, 429, 200]
    assert [m["text"] for m in api.messages(CHAT)] == ["flood"]


def test_fail_next_other_statuses(api: BotApiServer) -> None:
    api.fail_next("sendMessage", 502, body="<html><body>502 Bad Gateway</body></html>")
    api.fail_next("sendMessage", 400, description="Bad Request: chat not found")

    async def body(bot: Bot) -> None:
        # "*": any method (set here: initialize() has made its getMe by now)
        api.fail_next("*", 403, description="Forbidden: bot was kicked from the group chat")
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(CHAT, "x")
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(CHAT, "x")
        with pytest.raises(Forbidden, match="kicked"):
            await bot.get_me()
        api.block_chat(CHAT)
        with pytest.raises(Forbidden, match="blocked by the user"):
            await bot.send_message(CHAT, "x")
    with_bot(api, body)


def test_dropped_and_delayed_answers(api: BotApiServer) -> None:
    api.drop_next("sendMessage")
    api.drop_next("sendMessage", processed=True)
    api.delay_next("sendMessage", 0.6)

    async def body(bot: Bot) -> None:
        with pytest.raises(NetworkError):
            await bot.send_message(CHAT, "lost request")
        with pytest.raises(NetworkError):
            await bot.send_message(CHAT, "lost answer")
        with pytest.raises(TimedOut):
            await bot.send_message(CHAT, "slow", read_timeout=0.2)
    with_bot(api, body)
    api.wait_sent("sendMessage", CHAT)  # the slow one is sent after all, as on Telegram
    assert [m["text"] for m in api.messages(CHAT)] == ["lost answer", "slow"]


def test_wrong_token_and_unknown_method(api: BotApiServer) -> None:
    async def wrong(bot: Bot) -> None:
        raise AssertionError("initialize() must fail")
    with pytest.raises(InvalidToken, match="rejected by the server"):
        with_bot(api, wrong, token="999:WRONG")
    assert api.sent("getMe")[0].status == 401

    async def unknown(bot: Bot) -> None:
        with pytest.raises(EndPointNotFound):
            await bot.do_api_request("noSuchMethod")
    with_bot(api, unknown)

    with httpx.Client() as client:
        reply = client.post(f"{api.base_url}999:WRONG/getMe")
        assert (reply.status_code, reply.json()) == (
            401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        reply = client.post(f"{api.base_url}{TOKEN}/noSuchMethod")
        assert (reply.status_code, reply.json()) == (
            404, {"ok": False, "error_code": 404, "description": "Not Found"})


def test_json_form_and_get_requests_are_understood(api: BotApiServer) -> None:
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    with httpx.Client() as client:
        url = f"{api.base_url}{TOKEN}"
        as_json = client.post(f"{url}/sendMessage",
                              json={"chat_id": CHAT, "text": "42", "reply_markup": markup})
        as_form = client.post(f"{url}/sendMessage",
                              data={"chat_id": str(CHAT), "text": "[1]",
                                    "reply_markup": '{"inline_keyboard": []}'})
        as_get = client.get(f"{url}/SENDMESSAGE", params={"chat_id": CHAT, "text": "get"})
    assert [r.json()["ok"] for r in (as_json, as_form, as_get)] == [True, True, True]
    assert as_json.json()["result"]["reply_markup"] == markup
    texts = [c.params["text"] for c in api.sent("sendMessage")]
    assert texts == ["42", "[1]", "get"]  # texts stay texts even when they look like JSON
    assert api.sent("sendMessage")[1].params["reply_markup"] == {"inline_keyboard": []}
    assert api.sent("sendmessage")[2].method == "sendMessage"  # names are case-insensitive


def test_wait_for_times_out_with_a_summary(api: BotApiServer) -> None:
    with_bot(api, lambda bot: bot.send_message(CHAT, "only this"))
    with pytest.raises(TimeoutError, match="(?s)two_messages.*sendMessage -> 200"):
        def two_messages(server: BotApiServer) -> bool:
            return len(server.messages(CHAT)) >= 2
        api.wait_for(two_messages, 0.2)


# -- outages and clean-up ----------------------------------------------------------------


def test_go_away_and_come_back_on_the_same_port(api: BotApiServer) -> None:
    base_url, port = api.base_url, api.port

    async def body(bot: Bot) -> None:
        poll = asyncio.create_task(bot.get_updates(timeout=10))
        await asyncio.to_thread(api.wait_for, pending_poll, 5.0)
        start = time.monotonic()
        await asyncio.to_thread(api.go_away)
        with pytest.raises(NetworkError):  # the pending long poll is cut, not left hanging
            await poll
        assert time.monotonic() - start < 5.0
        assert refused(port)
        with pytest.raises(NetworkError):
            await bot.get_me()
        api.come_back()
        assert (await bot.get_me()).username == "rtoc_test_bot"
    with_bot(api, body)
    assert (api.base_url, api.port) == (base_url, port)


def test_nothing_is_left_after_the_with_block() -> None:
    with BotApiServer(token=TOKEN) as server:
        port = server.port
        with_bot(server, lambda bot: bot.get_me())  # a keep-alive connection stays open
        assert any(t.name.startswith(THREAD_PREFIX) for t in threading.enumerate())
    assert refused(port)
    assert [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)] == []
