"""The Telegram process: python-telegram-bot's ``Application`` around the pure core.

Read, feed, perform: updates come from PTB (long polling, or a webhook by config), events
and notifications from the bus (a thread on a SUB socket); both are fed to
:class:`.core.BotCore` on one worker thread (the core and the control socket are used by
that thread alone, so the event loop never waits on the instance), and the actions it
returns are performed through the Bot API. Notifications leave through the core's
:class:`.notify.Notifier` at Telegram's rates.

Telegram or the network away: PTB's polling retries with back-off; every Bot API request
goes through :class:`WatchedRequest`, which logs the outage once and its end once; queued
notifications wait (bounded) and go out when it is back; ``RetryAfter`` is honoured with its
delay. The token never reaches a log line: a filter on this process's handlers replaces it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import secrets
import threading
import time
from typing import Any

import zmq
from rtoc.pipeline.bus import Subscriber
from rtoc.pipeline.child import ChildSpec, run_child
from rtoc.pipeline.control import ControlClient

from rtoc.config import Config, TelegramConfig
from rtoc.errors import ConfigError
from rtoc.model import Event, Notification

from .core import Action, Answer, BotCore, Document, Edit, Photo, Send
from .notify import Notifier
from .users import UserStore
from .world import ControlWorld

log = logging.getLogger(__name__)
STATS_EVERY = 5.0      # s between two stats reports to the supervisor
RETRY_FIRST, RETRY_MAX = 1.0, 60.0  # s: back-off while Telegram is away
UPLOAD_TIMEOUT = 60.0  # s to upload a picture or a file
COMMANDS = [("menu", "the main menu"), ("latest", "latest values"), ("signals", "devices and signals"),
            ("plot", "plot a signal: /plot Device.Signal 2h"), ("csv", "a signal's data as CSV"),
            ("events", "the latest events"), ("devices", "start, stop, parameters, functions"),
            ("automation", "event rules and actions"), ("shortcuts", "your pinned signals"),
            ("settings", "your notification level"), ("users", "users and roles (admin)"),
            ("help", "what the bot does")]


def resolve_token(cfg: TelegramConfig) -> str:
    if cfg.token:
        return cfg.token
    token = os.environ.get(cfg.token_env, "")
    if not token:
        raise ConfigError(f"the environment variable {cfg.token_env} (telegram.token_env) is not set",
                          "telegram.token_env")
    return token


class RedactToken(logging.Filter):
    """Replaces the bot's token in every record this process logs (httpx and PTB put
    request URLs, which hold it, into messages and exceptions)."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if self.token in text:
            text = text.replace(self.token, "<token>")
        record.msg, record.args = text, ()
        return True


def hide_token(token: str) -> None:
    redact = RedactToken(token)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request's URL at INFO


class Outage:
    """Whether Telegram answers; logs an outage once and its end once. A failure that a
    success follows within ``GRACE`` s (a long poll cut by a proxy) is no outage."""

    GRACE = 2.0

    def __init__(self) -> None:
        self.since: float | None = None
        self.logged = False
        self.outages = 0

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if not self.logged and now - self.since >= self.GRACE:
            self.logged = True
            self.outages += 1
            log.warning("telegram: the Bot API does not answer (%s: %s); retrying with back-off",
                        type(exc).__name__, exc)

    def answered(self) -> None:
        if self.logged:
            log.info("telegram: the Bot API answers again after %.1f s", time.monotonic() - self.since)
        self.since, self.logged = None, False


def watched_request(outage: Outage, **kwargs: Any):
    """PTB's HTTPXRequest, noting every request's success or network failure."""
    from telegram.error import NetworkError
    from telegram.request import HTTPXRequest

    class WatchedRequest(HTTPXRequest):
        async def do_request(self, *args: Any, **kw: Any):
            try:
                result = await super().do_request(*args, **kw)
            except NetworkError as exc:
                outage.failed(exc)
                raise
            outage.answered()
            return result

    return WatchedRequest(**kwargs)


class TelegramBot:
    def __init__(self, cfg: Config, endpoints: dict, ctx: zmq.Context, token: str):
        tg = cfg.telegram
        self.cfg, self.tg, self.endpoints, self.ctx, self.token = cfg, tg, endpoints, ctx, token
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="telegram-core")
        self.control = None
        folder = cfg.telegram_path
        users = UserStore(folder / "users.json", tg.admins, tg.default_role, tg.default_level)
        self.notifier = Notifier(tg.chat_rate, tg.total_rate, tg.queue_bytes)
        self.core = BotCore(None, users, folder, self.notifier, lambda: secrets.token_urlsafe(12),
                            (tg.plot_width, tg.plot_height))
        self.outage = Outage()
        self.wake = asyncio.Event()
        self.stats = {"sent_failed": 0, "forbidden": 0}
        self.app = None

    # -- the worker thread (the core, the control socket) ----------------------------------
    async def on_core(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def _open_control(self) -> None:
        self.control = ControlClient(self.endpoints["control"], timeout=5.0, ctx=self.ctx,
                                     identity=b"telegram")
        self.core.world = ControlWorld(self.control)
        self.control.request("hello", role="telegram")

    def _report(self) -> None:
        stats = {**{f"notify_{k}": v for k, v in self.notifier.stats.items()},
                 "notify_waiting": self.notifier.waiting, **self.core.stats, **self.stats,
                 "telegram_up": int(self.outage.since is None), "outages": self.outage.outages,
                 "users": len(self.core.users.users)}
        self.control.request("frontend_stats", stats=stats)

    # -- updates ---------------------------------------------------------------------------
    async def on_update(self, update: Any, context: Any) -> None:
        now = time.time()
        if update.callback_query is not None and update.callback_query.message is not None:
            q = update.callback_query
            actions = await self.on_core(self.core.press, q.message.chat.id, q.message.message_id,
                                         q.id, q.data or "", now)
        elif update.message is not None and update.message.text is not None:
            m = update.message
            name = " ".join(p for p in (m.from_user.first_name, m.from_user.last_name) if p) \
                if m.from_user else ""
            actions = await self.on_core(self.core.message, m.chat.id, name, m.text, now)
        else:
            return
        await self.perform(actions)

    async def perform(self, actions: list[Action]) -> None:
        from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

        for action in actions:
            for attempt in range(2):
                try:
                    await self._perform(action)
                    break
                except RetryAfter as exc:
                    if attempt:
                        log.warning("telegram: %s dropped: Telegram asked twice to wait", type(action).__name__)
                        break
                    await asyncio.sleep(min(_seconds(exc.retry_after), RETRY_MAX))
                except BadRequest as exc:
                    if "not modified" not in str(exc):
                        log.warning("telegram: %s refused: %s", type(action).__name__, exc)
                    break
                except Forbidden:
                    self.stats["forbidden"] += 1  # the user blocked the bot
                    break
                except TelegramError as exc:
                    self.stats["sent_failed"] += 1
                    log.debug("telegram: %s failed: %s", type(action).__name__, exc)
                    break

    async def _perform(self, a: Action) -> None:
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup
        from telegram.constants import ParseMode

        bot = self.app.bot
        markup = None
        if getattr(a, "buttons", ()):
            markup = InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data)
                                            for label, data in row] for row in a.buttons])
        if isinstance(a, Send):
            await bot.send_message(a.chat_id, a.text, parse_mode=ParseMode.HTML, reply_markup=markup)
        elif isinstance(a, Edit):
            await bot.edit_message_text(a.text, a.chat_id, a.message_id, parse_mode=ParseMode.HTML,
                                        reply_markup=markup)
        elif isinstance(a, Answer):
            await bot.answer_callback_query(a.callback_id, a.text or None)
        elif isinstance(a, Photo):  # uploads get a minute, not PTB's 20 s (a 10 MiB picture
            # needs about 4 Mbit/s for that); one that still fails is tried FILE_TRIES times
            await bot.send_photo(a.chat_id, a.png, caption=a.caption, parse_mode=ParseMode.HTML,
                                 reply_markup=markup, write_timeout=UPLOAD_TIMEOUT)
        elif isinstance(a, Document):
            await bot.send_document(a.chat_id, a.data, filename=a.filename, caption=a.caption,
                                    parse_mode=ParseMode.HTML, write_timeout=UPLOAD_TIMEOUT)

    # -- notifications ---------------------------------------------------------------------
    def _bus(self, stop: threading.Event, loop: asyncio.AbstractEventLoop) -> None:
        """(a thread) Events and notifications from the bus, fed to the core's thread."""
        sub = Subscriber(self.endpoints["data"], [], events=True, notify=True, ctx=self.ctx)
        try:
            while not stop.is_set():
                msg = sub.recv(timeout=0.2)
                if isinstance(msg, Event):
                    self.pool.submit(_logged, self.core.event, msg, time.time())
                elif isinstance(msg, Notification):
                    file = (msg.file_kind, msg.file_name, msg.file) if msg.file is not None else None
                    self.pool.submit(_logged, self.core.notification, msg.text, msg.priority,
                                     msg.source, time.time(), msg.permission, file, msg.plot)
                else:
                    continue
                loop.call_soon_threadsafe(self.wake.set)
        finally:
            sub.close()

    async def notify_loop(self, stop: threading.Event) -> None:
        delay = RETRY_FIRST
        while not stop.is_set():
            now = time.monotonic()
            deadline = await self.on_core(self.notifier.next_deadline)
            wait = 0.2 if deadline is None else min(0.2, max(0.0, deadline - now))
            try:
                await asyncio.wait_for(self.wake.wait(), wait)
            except TimeoutError:
                pass
            self.wake.clear()
            try:
                for out, message in await self.on_core(self.core.outgoing, time.monotonic(), time.time()):
                    delay = await self._notify(out, message, delay)
            except Exception:  # our bug: logged; the loop (and every later alarm) goes on
                log.exception("telegram: the notification loop failed")
                await asyncio.sleep(1.0)

    async def _notify(self, out: Any, message: Send, delay: float) -> float:
        """Send one notification; returns the back-off for the next failure."""
        from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

        try:
            await self._perform(message)
            await self.on_core(self.notifier.sent, out, time.monotonic())
            return RETRY_FIRST
        except RetryAfter as exc:
            await self.on_core(self.notifier.failed, out, time.monotonic() + _seconds(exc.retry_after))
        except (Forbidden, BadRequest) as exc:  # never taken (BadRequest is a NetworkError in PTB 22)
            await self.on_core(self.notifier.refused, out)
            self.stats["forbidden" if isinstance(exc, Forbidden) else "sent_failed"] += 1
            log.warning("telegram: a notification to chat %d was refused: %s", out.chat_id, exc)
        except NetworkError:  # away: back to the queue, try again later
            await self.on_core(self.notifier.failed, out, time.monotonic() + delay)
            return min(RETRY_MAX, delay * 2)
        except TelegramError as exc:
            await self.on_core(self.notifier.refused, out)
            self.stats["sent_failed"] += 1
            log.warning("telegram: a notification to chat %d was refused: %s", out.chat_id, exc)
        return delay

    async def stats_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(STATS_EVERY)
            try:
                await self.on_core(self._report)
            except Exception as exc:  # noqa: BLE001 - the supervisor restarting: next time
                log.debug("stats not reported: %s", exc)

    # -- life ------------------------------------------------------------------------------
    def _build(self):
        from telegram import Update
        from telegram.ext import Application, TypeHandler

        b = Application.builder().token(self.token)
        if self.tg.base_url:
            base = self.tg.base_url.rstrip("/")
            b = b.base_url(base + "/bot").base_file_url(base + "/file/bot")
        b = b.request(watched_request(self.outage, connection_pool_size=8))
        b = b.get_updates_request(watched_request(self.outage, read_timeout=40.0))
        app = b.build()
        app.add_handler(TypeHandler(Update, self.on_update))
        app.add_error_handler(self._on_error)
        return app

    async def _on_error(self, update: Any, context: Any) -> None:
        from telegram.error import NetworkError

        if isinstance(context.error, NetworkError):
            return  # the outage is logged once by WatchedRequest
        log.error("telegram: an update failed: %s: %s", type(context.error).__name__, context.error)

    async def _connect(self, stop: threading.Event) -> bool:
        """``initialize`` (getMe) until Telegram answers; False when stopped first."""
        from telegram.error import InvalidToken, NetworkError

        delay = RETRY_FIRST
        while not stop.is_set():
            try:
                await self.app.initialize()
                return True
            except InvalidToken:
                raise ConfigError("Telegram refused the token (telegram.token)", "telegram.token") from None
            except NetworkError:
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
        return False

    async def run(self, stop: threading.Event) -> int:
        from telegram.error import TelegramError

        await self.on_core(self._open_control)
        loop = asyncio.get_running_loop()
        bus = threading.Thread(target=self._bus, args=(stop, loop), name="telegram-bus", daemon=True)
        bus.start()
        self.app = self._build()
        tasks = [asyncio.create_task(self.notify_loop(stop)), asyncio.create_task(self.stats_loop(stop))]
        try:
            if not await self._connect(stop):
                return 0
            try:
                await self.app.bot.set_my_commands(COMMANDS)
            except TelegramError as exc:
                log.warning("telegram: the commands could not be registered (setMyCommands): %s", exc)
            await self.app.start()
            await self.perform(await self.on_core(self.core.startup_report))
            if self.tg.mode == "webhook":
                await self._webhook()
            else:
                await self.app.updater.start_polling(error_callback=lambda exc: None, timeout=30)
            log.info("telegram bot @%s running (%s)", self.app.bot.username, self.tg.mode)
            while not stop.is_set():
                await asyncio.sleep(0.2)
            return 0
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._shutdown()
            bus.join(2)
            self.pool.submit(self._close_control).result(5)
            self.pool.shutdown()

    async def _webhook(self) -> None:
        try:
            import tornado  # noqa: F401 - PTB's webhook server
        except ImportError:
            raise ConfigError("mode = webhook needs python-telegram-bot's webhook server: "
                              "pip install 'python-telegram-bot[webhooks]'", "telegram.mode") from None
        path = secrets.token_urlsafe(16)
        await self.app.updater.start_webhook(listen=self.tg.webhook_listen, port=self.tg.webhook_port,
                                             url_path=path, webhook_url=self.tg.webhook_url.rstrip("/") + "/" + path,
                                             secret_token=secrets.token_urlsafe(24))

    async def _shutdown(self) -> None:
        app = self.app
        try:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()
        except Exception as exc:  # noqa: BLE001 - stopping: what is left is closed with the process
            log.debug("telegram shutdown: %s", exc)

    def _close_control(self) -> None:
        if self.control is not None:
            self.control.close()


def _logged(fn, *args) -> None:
    """Run ``fn`` on the core's thread; a failure is logged (a pool future nobody reads
    would swallow it, and with it an alarm)."""
    try:
        fn(*args)
    except Exception:
        log.exception("telegram: %s failed", getattr(fn, "__name__", fn))


def _seconds(retry_after: Any) -> float:
    """PTB's RetryAfter.retry_after: seconds (int) or a timedelta, by PTB's settings."""
    return retry_after.total_seconds() if hasattr(retry_after, "total_seconds") else float(retry_after)


def _serve(spec: ChildSpec, stop: threading.Event, ctx: zmq.Context) -> int:
    """The Telegram process's life (see :func:`run_child`)."""
    token = resolve_token(spec.config.telegram)
    hide_token(token)
    bot = TelegramBot(spec.config, spec.endpoints, ctx, token)
    return asyncio.run(bot.run(stop))


def main(spec: ChildSpec) -> None:
    """Entry point of the Telegram process (spawned by the supervisor)."""
    run_child(spec, _serve)
