"""A local Telegram Bot API server for tests: the real python-telegram-bot talks to it.

Telegram's servers cannot be reached from the test machines, and a mocked ``telegram.Bot``
would test our guesses about the library rather than the library. So the bot is run with the
real python-telegram-bot (PTB 22), pointed through ``base_url`` at :class:`BotApiServer`, a
small HTTP server that speaks the Bot API closely enough that PTB cannot tell the difference:
the same URLs, the same request encodings (JSON, urlencoded, multipart uploads), the same
result objects and the same error envelopes (which PTB turns into ``BadRequest``,
``RetryAfter``, ``InvalidToken``, ``Conflict``, ``NetworkError`` ...).

Where Telegram is strict in ways a bot can trip over, the server is strict too: HTML and
MarkdownV2 texts are parsed (a stray ``<`` or an unescaped ``.`` is a 400 "can't parse
entities"), an edit to identical content is a 400 "message is not modified", an edit without
``reply_markup`` removes the keyboard, callback data over 64 bytes is refused, a photo that
is not an image is refused, callback queries can be answered once.

Tests play the users (:meth:`BotApiServer.user_message`, :meth:`BotApiServer.press`), read
what the bot did (:attr:`BotApiServer.calls`, :meth:`BotApiServer.messages`), wait for it
without sleeping a guess (:meth:`BotApiServer.wait_for`) and inject the faults a bot must
survive (:meth:`BotApiServer.fail_next` for 429/5xx, :meth:`BotApiServer.go_away` for an
outage on the same port).

Other test modules import it as ``from bot_api import BotApiServer`` after putting the
``tests`` folder on ``sys.path``.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["BotApiServer", "Call"]

T = TypeVar("T")
JSON = dict[str, Any]

THREAD_PREFIX = "bot-api"  # every thread of the server is named so: tests check none is left

# Telegram's own wordings: bots (and PTB's exception mapping) key on them
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message")
QUERY_INVALID = ("Bad Request: query is too old and response timeout expired or query ID "
                 "is invalid")
POLL_CONFLICT = ("Conflict: terminated by other getUpdates request; make sure that only one "
                 "bot instance is running")
WEBHOOK_CONFLICT = ("Conflict: can't use getUpdates method while webhook is active; use "
                    "deleteWebhook to delete the webhook first")

MAX_TEXT = 4096
MAX_CAPTION = 1024

# Form and multipart values are all text; these stay text even when they look like JSON
# ("42" as a message text must not become the number 42).
_STRING_FIELDS = frozenset({
    "text", "caption", "parse_mode", "callback_query_id", "url", "description",
    "short_description", "name", "language_code", "secret_token", "ip_address",
    "inline_message_id", "photo", "document", "audio", "video", "animation", "voice",
    "sticker", "thumbnail", "file_id", "emoji", "action", "title", "data",
    "business_connection_id", "message_effect_id", "filename",
})
# Values a JSON body may still carry JSON-encoded (Telegram accepts both)
_JSON_FIELDS = frozenset({
    "reply_markup", "commands", "scope", "allowed_updates", "entities", "caption_entities",
    "link_preview_options", "reply_parameters", "media",
})


class _ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": status, "description": ...}``."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


class _Drop(Exception):
    """Close the connection without an answer (the server went away mid-request)."""


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


def _u16(text: str) -> int:
    """Length in UTF-16 code units: the unit of Telegram's entity offsets and lengths."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


# ----------------------------------------------------------------------------------------
# Text formatting: Telegram parses parse_mode itself and answers with plain text + entities


_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
    "del": "strikethrough", "tg-spoiler": "spoiler", "span": "spoiler", "a": "text_link",
    "code": "code", "pre": "pre", "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]+));")
_HTML_ATTR = re.compile(r"""\s*([^\s=>/"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")


def _html_unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(3) is not None:
            return _HTML_NAMED.get(m.group(3), m.group(0))  # unknown names stay as written
        code = int(m.group(1), 10) if m.group(1) is not None else int(m.group(2), 16)
        return chr(code) if 0 < code <= 0x10FFFF else m.group(0)
    return _HTML_ENTITY.sub(one, text)


def _parse_html(text: str) -> tuple[str, list[JSON]]:
    out: list[str] = []
    pos16 = 0
    stack: list[tuple[str, dict[str, str], int]] = []  # tag, attributes, start offset
    entities: list[JSON] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "&":
            m = _HTML_ENTITY.match(text, i)
            if m:
                piece = _html_unescape(m.group(0))
                out.append(piece)
                pos16 += _u16(piece)
                i = m.end()
                continue
        if ch != "<":
            out.append(ch)
            pos16 += _u16(ch)
            i += 1
            continue
        at = _byte_offset(text, i)
        end, quote = i + 1, ""
        while end < n and (quote or text[end] != ">"):  # a '>' inside a quoted value is text
            if text[end] in "\"'":
                quote = "" if quote == text[end] else (quote or text[end])
            end += 1
        if end >= n:
            raise _bad(f"can't parse entities: Unclosed start tag at byte offset {at}")
        inner = text[i + 1:end]
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise _bad(f"can't parse entities: Unexpected end tag at byte offset {at}")
            tag, attrs, start = stack.pop()
            if name and name != tag:
                raise _bad(f'can\'t parse entities: Unmatched end tag at byte offset {at}, '
                           f'expected "</{tag}>", found "</{name}>"')
            if pos16 > start:
                entities.append(_html_entity_for(tag, attrs, start, pos16 - start, entities))
        else:
            name = re.match(r"[^\s/>]*", inner).group(0).lower()  # type: ignore[union-attr]
            if name not in _HTML_TAGS:
                raise _bad(f'can\'t parse entities: Unsupported start tag "{name}" '
                           f"at byte offset {at}")
            attrs = {m.group(1).lower(): _html_unescape(next(
                (g for g in m.group(2, 3, 4) if g is not None), ""))
                for m in _HTML_ATTR.finditer(inner[len(name):].rstrip("/"))}
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise _bad(f'can\'t parse entities: Tag "span" must have class "tg-spoiler" '
                           f"at byte offset {at}")
            stack.append((name, attrs, pos16))
        i = end + 1
    if stack:
        raise _bad(f"can't parse entities: Can't find end tag corresponding to start tag "
                   f'"{stack[-1][0]}"')
    return "".join(out), entities


def _html_entity_for(tag: str, attrs: dict[str, str], offset: int, length: int,
                     done: list[JSON]) -> JSON:
    kind = _HTML_TAGS[tag]
    entity: JSON = {"type": kind, "offset": offset, "length": length}
    if tag == "a":
        entity["url"] = attrs.get("href", "")
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif tag == "code" and attrs.get("class", "").startswith("language-"):
        entity["language"] = attrs["class"].removeprefix("language-")
    elif tag == "pre" and done and done[-1]["type"] == "code" \
            and (done[-1]["offset"], done[-1]["length"]) == (offset, length):
        # <pre><code class="language-x">: one pre entity with the language
        inner = done.pop()
        if "language" in inner:
            entity["language"] = inner["language"]
    return entity


_MDV2_MARKERS = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough",
                 "||": "spoiler", "`": "code", "```": "pre", "[": "text_link"}
_MDV2_NAMES = {"bold": "Bold", "italic": "Italic", "underline": "Underline",
               "strikethrough": "Strikethrough", "spoiler": "Spoiler", "code": "Code",
               "pre": "Pre", "text_link": "TextUrl"}
_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")


def _parse_markdown_v2(text: str) -> tuple[str, list[JSON]]:
    out: list[str] = []
    pos16 = 0
    stack: list[tuple[str, int, int]] = []  # marker, start offset, byte offset of the marker
    entities: list[JSON] = []
    quote_start: int | None = None  # a '>' line: a blockquote up to the end of the line
    i, n = 0, len(text)

    def emit(piece: str) -> None:
        nonlocal pos16
        out.append(piece)
        pos16 += _u16(piece)

    def close_quote() -> None:
        nonlocal quote_start
        if quote_start is not None and pos16 > quote_start:
            entities.append({"type": "blockquote", "offset": quote_start,
                             "length": pos16 - quote_start})
        quote_start = None

    while i < n:
        ch = text[i]
        top = stack[-1][0] if stack else ""
        if ch == "\\" and i + 1 < n and 0 < ord(text[i + 1]) < 127:
            emit(text[i + 1])
            i += 2
            continue
        if top in ("`", "```"):  # inside code only '`' and '\' are special
            if text.startswith(top, i):
                marker, start, _ = stack.pop()
                if pos16 > start:
                    entities.append({"type": _MDV2_MARKERS[marker], "offset": start,
                                     "length": pos16 - start})
                i += len(top)
            else:
                emit(ch)
                i += 1
            continue
        if ch == "\n":
            close_quote()
            emit(ch)
            i += 1
            continue
        if ch == ">" and (i == 0 or text[i - 1] == "\n"):
            quote_start = pos16
            i += 1
            continue
        if text.startswith("```", i):
            stack.append(("```", pos16, _byte_offset(text, i)))
            i += 3
            newline = text.find("\n", i)
            if newline >= 0 and re.fullmatch(r"[\w+#-]*", text[i:newline]):
                i = newline + 1  # ```python\n: the language line is no text
            continue
        marker = next((m for m in ("||", "__") if text.startswith(m, i)), ch)
        if marker == "]":
            if top != "[":
                raise _bad("can't parse entities: Character ']' is reserved and must be "
                           "escaped with the preceding '\\'")
            _, start, _ = stack.pop()
            i += 1
            url = ""
            if i < n and text[i] == "(":
                close = i + 1
                while close < n and text[close] != ")":
                    close += 2 if text[close] == "\\" else 1
                if close >= n:
                    raise _bad(f"can't parse entities: Can't find end of a URL at byte "
                               f"offset {_byte_offset(text, i)}")
                url = re.sub(r"\\(.)", r"\1", text[i + 1:close])
                i = close + 1
            if pos16 > start and url:
                entities.append({"type": "text_link", "offset": start,
                                 "length": pos16 - start, "url": url})
            continue
        if marker in _MDV2_MARKERS:
            if marker == top:
                _, start, _ = stack.pop()
                if pos16 > start:
                    entities.append({"type": _MDV2_MARKERS[marker], "offset": start,
                                     "length": pos16 - start})
            else:
                stack.append((marker, pos16, _byte_offset(text, i)))
            i += len(marker)
            continue
        if ch in _MDV2_RESERVED:
            raise _bad(f"can't parse entities: Character '{ch}' is reserved and must be "
                       f"escaped with the preceding '\\'")
        emit(ch)
        i += 1
    if stack:
        marker, _, at = stack[-1]
        raise _bad(f"can't parse entities: Can't find end of {_MDV2_NAMES[_MDV2_MARKERS[marker]]}"
                   f" entity at byte offset {at}")
    close_quote()
    return "".join(out), entities


def _parse_markdown(text: str) -> tuple[str, list[JSON]]:
    """Legacy Markdown: *bold* _italic_ `code` ```pre``` [text](url), no nesting."""
    out: list[str] = []
    pos16 = 0
    entities: list[JSON] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            pos16 += 1
            i += 2
            continue
        marker = "```" if text.startswith("```", i) else ch
        if marker not in ("*", "_", "`", "```", "["):
            out.append(ch)
            pos16 += _u16(ch)
            i += 1
            continue
        closer = "]" if marker == "[" else marker
        end = text.find(closer, i + len(marker))
        if end < 0:
            raise _bad(f"can't parse entities: Can't find end of the entity starting at byte "
                       f"offset {_byte_offset(text, i)}")
        inner = text[i + len(marker):end]
        entity: JSON = {"type": {"*": "bold", "_": "italic", "`": "code", "```": "pre",
                                 "[": "text_link"}[marker]}
        i = end + len(closer)
        if marker == "```":
            first, sep, rest = inner.partition("\n")
            if sep and first and re.fullmatch(r"[\w+#-]+", first):
                entity["language"], inner = first, rest
        if marker == "[":
            if not text.startswith("(", i) or text.find(")", i) < 0:
                out.append(inner)  # "[text]" without a URL is plain text
                pos16 += _u16(inner)
                continue
            close = text.find(")", i)
            entity["url"] = text[i + 1:close]
            i = close + 1
        if inner:
            entity.update(offset=pos16, length=_u16(inner))
            entities.append(entity)
        out.append(inner)
        pos16 += _u16(inner)
    return "".join(out), entities


def _format(text: str, parse_mode: str | None, entities: Any) -> tuple[str, list[JSON]]:
    """Plain text and entities as Telegram stores them; raises the 400 Telegram raises."""
    text = text.strip()  # Telegram trims the text (before the markup is read)
    mode = (parse_mode or "").lower()
    if mode == "html":
        plain, found = _parse_html(text)
    elif mode == "markdownv2":
        plain, found = _parse_markdown_v2(text)
    elif mode == "markdown":
        plain, found = _parse_markdown(text)
    elif mode:
        raise _bad(f"unsupported parse_mode {parse_mode!r}")
    else:
        found = list(entities or [])
        if not all(isinstance(e, dict) and isinstance(e.get("offset"), int)
                   and isinstance(e.get("length"), int) and e.get("type") for e in found):
            raise _bad("can't parse entities JSON object")
        plain = text
    found.sort(key=lambda e: (e["offset"], -e["length"]))
    return plain, found


# ----------------------------------------------------------------------------------------
# Requests: the three encodings the Bot API accepts


@dataclass(frozen=True)
class _Upload:
    filename: str
    data: bytes
    mime_type: str


_CD_PARAM = re.compile(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


def _header_param(value: str, name: str) -> str | None:
    params = (";" + value.split(";", 1)[1]) if ";" in value else ""
    for m in _CD_PARAM.finditer(params):
        key = m.group(1).lower()
        raw = m.group(2) if m.group(2) is not None else (m.group(3) or "").strip()
        if key == name + "*":  # RFC 5987: utf-8''percent-encoded
            return unquote(raw.split("'", 2)[-1])
        if key == name:
            # undo the HTML5 form escaping that browsers and httpx apply
            raw = re.sub(r"\\(.)", r"\1", raw)
            return re.sub(r"%(22|[01][0-9A-Fa-f])", lambda m: chr(int(m.group(1), 16)), raw)
    return None


def _parse_multipart(body: bytes, boundary: str) -> tuple[dict[str, str], dict[str, _Upload]]:
    fields: dict[str, str] = {}
    files: dict[str, _Upload] = {}
    delimiter = b"--" + boundary.encode("latin-1")
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):  # the closing delimiter
            break
        part = part.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _header_param(disposition, "name")
        if name is None:
            continue
        filename = _header_param(disposition, "filename")
        if filename is None:
            fields[name] = content.decode("utf-8")
        else:
            mime = headers.get("content-type", "application/octet-stream").split(";")[0]
            files[name] = _Upload(filename, content, mime.strip())
    return fields, files


def _decode_params(ctype_header: str, body: bytes, query: str
                   ) -> tuple[JSON, dict[str, _Upload]]:
    params: JSON = {}
    files: dict[str, _Upload] = {}
    text_values: dict[str, str] = dict(parse_qsl(query, keep_blank_values=True))
    ctype = ctype_header.split(";")[0].strip().lower()
    if body and ctype == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError as exc:
            raise _bad("can't parse JSON encoded request parameters") from exc
        if not isinstance(decoded, dict):
            raise _bad("can't parse JSON encoded request parameters")
        for key, value in decoded.items():
            if key in _JSON_FIELDS and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            params[key] = value
    elif body and ctype == "application/x-www-form-urlencoded":
        text_values.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    elif body and ctype == "multipart/form-data":
        boundary = _header_param(ctype_header, "boundary")
        if not boundary:
            raise _bad("multipart body without a boundary")
        fields, files = _parse_multipart(body, boundary)
        text_values.update(fields)
    for key, value in text_values.items():
        if key not in _STRING_FIELDS:
            try:
                params[key] = json.loads(value)
                continue
            except ValueError:
                pass
        params[key] = value
    return params, files


# ----------------------------------------------------------------------------------------
# What the server records and keeps


@dataclass
class Call:
    """One request the bot made. ``status`` is the HTTP status answered (``None`` while a
    long poll is still waiting, 0 when the connection was dropped instead of answered)."""

    method: str
    params: JSON
    files: dict[str, tuple[str, bytes]]
    time: float
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | str | None:
        return _chat_key(self.params.get("chat_id"))

    def __getitem__(self, key: str) -> Any:  # dict-style access: call["params"]
        return getattr(self, key)

    def __str__(self) -> str:
        shown = {k: v for k, v in self.params.items() if k != "reply_markup"}
        text = json.dumps(shown, ensure_ascii=False, default=str)
        if len(text) > 120:
            text = text[:117] + "..."
        files = f" files={sorted(self.files)}" if self.files else ""
        return f"{self.method} -> {self.status} {text}{files}"


def _chat_key(value: Any) -> int | str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return str(value)  # "@channelusername"


@dataclass
class _Stored:
    """A message in a chat: the API object plus what the API object does not carry."""

    obj: JSON
    parse_mode: str | None = None
    source: str | None = None  # text/caption as the bot sent it, before parse_mode
    markup: JSON | None = None  # any reply_markup as sent (the API object shows inline only)
    file_id: str | None = None
    edits: int = 0
    deleted: bool = False


@dataclass
class _Fault:
    status: int
    retry_after: int | None
    description: str | None
    body: bytes | None
    times: int
    drop: bool = False
    processed: bool = False
    delay: float = 0.0


@dataclass
class _File:
    file_id: str
    unique_id: str
    filename: str
    data: bytes
    mime_type: str
    path: str


@dataclass
class _Request:
    method: str
    params: JSON
    files: dict[str, _Upload]
    epoch: int


# ----------------------------------------------------------------------------------------
# HTTP plumbing


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # come_back() binds the same port while old ones sit in TIME_WAIT

    def __init__(self, address: tuple[str, int], api: BotApiServer):
        self.api = api
        self.connections: dict[threading.Thread, socket.socket] = {}
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Own threads, registered before they start, so that stop() can end every
        # connection (ThreadingMixIn does not track daemon threads).
        thread = threading.Thread(target=self._serve_connection,
                                  args=(request, client_address),
                                  name=f"{THREAD_PREFIX}-{self.server_address[1]}-conn",
                                  daemon=True)
        with self.connections_lock:
            self.connections[thread] = request
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self.connections_lock:
                self.connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connections cut by go_away()/stop() or by a client giving up are the point of
        # the exercise; anything else is a bug in this file and fails the test.
        if not isinstance(_current_exception(), OSError):
            self.api._internal_error(traceback.format_exc())

    def cut_connections(self) -> list[threading.Thread]:
        with self.connections_lock:
            items = list(self.connections.items())
        for _, sock in items:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone
        return [thread for thread, _ in items]


def _current_exception() -> BaseException | None:
    return sys.exc_info()[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects from the real API
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every call is in BotApiServer.calls; stderr stays quiet

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_POST

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        body = self._read_body()
        reply = self.server.api._answer(self.path, self.headers.get("Content-Type", ""), body)
        if reply is None:
            self.close_connection = True
            return
        status, ctype, payload = reply
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG/JPEG/GIF/WebP/BMP, or None when it is no image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"GIF8") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return width, abs(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return 512, 512  # the size is in a codec-specific chunk; any plausible value will do
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data) and data[i] == 0xFF:
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return width, height
            i += 2 + length
        return 1, 1
    return None


# ----------------------------------------------------------------------------------------


class BotApiServer:
    """A Bot API server on 127.0.0.1 for one bot token; see the module docstring.

    ``with BotApiServer(token="123:ABC") as api:`` then
    ``Bot("123:ABC", base_url=api.base_url, base_file_url=api.base_file_url)``.
    """

    def __init__(self, token: str = "123:ABC", *, username: str = "rtoc_test_bot",
                 first_name: str = "RTOC Test Bot", known_chats_only: bool = False):
        self.token = token
        self.username = username
        self.first_name = first_name
        self.known_chats_only = known_chats_only  # unknown chat: 400 "chat not found"
        self.calls: list[Call] = []
        self.errors: list[str] = []  # tracebacks of bugs in this server
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._epoch = 0  # bumped by go_away()/stop(): waiting requests end without an answer
        self._port = 0
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._away = False
        self._updates: list[JSON] = []
        self._next_update_id = 1
        self._poll_seq = 0
        self._chats: dict[int | str, JSON] = {}
        self._messages: dict[int | str, dict[int, _Stored]] = {}
        self._next_message_id: dict[int | str, int] = {}
        self._callbacks: dict[str, JSON] = {}
        self._answered: list[JSON] = []
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._webhook: JSON = {"url": ""}
        self._files: dict[str, _File] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._blocked: set[int | str] = set()
        self._methods: dict[str, tuple[str, Callable[[_Request], Any]]] = {
            name.lower(): (name, handler) for name, handler in {
                "getMe": self._get_me, "getUpdates": self._get_updates,
                "sendMessage": self._send_message, "editMessageText": self._edit_text,
                "editMessageCaption": self._edit_caption,
                "editMessageReplyMarkup": self._edit_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback,
                "sendPhoto": self._send_photo, "sendDocument": self._send_document,
                "sendChatAction": self._send_chat_action, "getFile": self._get_file,
                "setMyCommands": self._set_commands, "deleteMyCommands": self._delete_commands,
                "getMyCommands": self._get_commands, "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook, "getWebhookInfo": self._webhook_info,
                "close": lambda req: True, "logOut": lambda req: True,
            }.items()
        }

    # -- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> BotApiServer:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop()
        if exc_type is None and self.errors:
            raise AssertionError("bot_api.py failed internally:\n" + "\n".join(self.errors))

    def start(self) -> BotApiServer:
        """Listen on an OS-chosen port (the port is kept for :meth:`come_back`)."""
        if self._started:
            raise RuntimeError("BotApiServer already started")
        self._started = True
        self._listen(0)
        return self

    def stop(self) -> None:
        """Close the port, cut every connection, end waiting requests, join all threads."""
        if not self._started:
            return
        self._started = False
        self._shut()

    def go_away(self) -> None:
        """An outage: the port refuses connections, open ones are cut, long polls end."""
        with self._lock:
            if self._away or not self._started:
                return
            self._away = True
        self._shut()

    def come_back(self) -> None:
        """End the outage: listen again on the same port (same :attr:`base_url`)."""
        with self._lock:
            if not self._away or not self._started:
                return
            self._away = False
        self._listen(self._port)

    def _listen(self, port: int) -> None:
        httpd = _HttpServer(("127.0.0.1", port), self)
        self._port = httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"{THREAD_PREFIX}-{self._port}", daemon=True)
        self._httpd, self._thread = httpd, thread
        thread.start()

    def _shut(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        with self._cond:
            self._epoch += 1
            self._cond.notify_all()
        if httpd is None or thread is None:
            return
        httpd.shutdown()  # no accept after this: every connection thread is registered
        httpd.server_close()
        thread.join()
        for conn in httpd.cut_connections():
            conn.join(5.0)
            if conn.is_alive():
                self.errors.append(f"connection thread {conn.name} did not end")

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """For ``Bot(base_url=...)``: PTB requests ``f"{base_url}{token}/{method}"``."""
        return f"http://127.0.0.1:{self._port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``Bot(base_file_url=...)``: downloads go to ``{base_file_url}{token}/{path}``."""
        return f"http://127.0.0.1:{self._port}/file/bot"

    @property
    def bot_id(self) -> int:
        head = self.token.split(":", 1)[0]
        return int(head) if head.isdigit() else 1

    @property
    def bot_user(self) -> JSON:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name,
                "username": self.username}

    # -- reading what the bot did ----------------------------------------------------------

    def sent(self, method: str | None = None, chat_id: int | str | None = None, *,
             ok: bool | None = None) -> list[Call]:
        """Recorded calls, oldest first, of ``method`` (any when None) to ``chat_id``;
        ``ok=True`` keeps only calls answered with success."""
        want_method = method.lower() if method else None
        want_chat = _chat_key(chat_id)
        with self._lock:
            return [c for c in self.calls
                    if (want_method is None or c.method.lower() == want_method)
                    and (want_chat is None or c.chat_id == want_chat)
                    and (ok is None or c.ok == ok)]

    def wait_for(self, predicate: Callable[[BotApiServer], T], timeout: float = 5.0) -> T:
        """Block until ``predicate(server)`` is truthy (re-checked on every change of the
        server's state) and return its value; TimeoutError listing the calls otherwise."""
        with self._cond:
            value = self._cond.wait_for(lambda: predicate(self), timeout)
            if value:
                return value
            summary = self.summary()
        name = getattr(predicate, "__name__", repr(predicate))
        raise TimeoutError(f"not within {timeout} s: {name}\n{summary}")

    def wait_sent(self, method: str, chat_id: int | str | None = None, count: int = 1,
                  timeout: float = 5.0) -> list[Call]:
        """Wait until ``count`` successful ``method`` calls (to ``chat_id``) were answered."""
        def enough(server: BotApiServer) -> list[Call]:
            calls = server.sent(method, chat_id, ok=True)
            return calls if len(calls) >= count else []
        enough.__name__ = f"{count} x {method}" + (f" to {chat_id}" if chat_id else "")
        return self.wait_for(enough, timeout)

    def summary(self, last: int = 30) -> str:
        with self._lock:
            calls = self.calls[-last:]
            skipped = len(self.calls) - len(calls)
        lines = [f"  {c}" for c in calls] or ["  (no calls)"]
        if skipped:
            lines.insert(0, f"  ... {skipped} earlier calls")
        return "calls:\n" + "\n".join(lines)

    def messages(self, chat_id: int | str) -> list[JSON]:
        """The bot's messages in a chat (not deleted), oldest first, as now edited:
        ``message_id, date, text, caption, entities, parse_mode, source, reply_markup,
        photo, document, filename, mime_type, edits, raw`` (``raw``: the API object)."""
        with self._lock:
            stored = self._messages.get(_chat_key(chat_id), {})  # type: ignore[arg-type]
            return [self._describe(s) for s in stored.values()
                    if not s.deleted and s.obj["from"].get("is_bot")]

    def message(self, chat_id: int | str, message_id: int) -> JSON:
        """One message of the bot (see :meth:`messages`); KeyError when there is none."""
        for msg in self.messages(chat_id):
            if msg["message_id"] == message_id:
                return msg
        raise KeyError(f"no bot message {message_id} in chat {chat_id}")

    def _describe(self, s: _Stored) -> JSON:
        obj = s.obj
        file = self._files.get(s.file_id) if s.file_id else None
        return {
            "message_id": obj["message_id"], "date": obj["date"],
            "text": obj.get("text"), "caption": obj.get("caption"),
            "entities": copy.deepcopy(obj.get("entities") or obj.get("caption_entities") or []),
            "parse_mode": s.parse_mode, "source": s.source,
            "reply_markup": copy.deepcopy(s.markup),
            "photo": file.data if file and "photo" in obj else None,
            "document": file.data if file and "document" in obj else None,
            "filename": file.filename if file else None,
            "mime_type": file.mime_type if file else None,
            "edits": s.edits, "raw": copy.deepcopy(obj),
        }

    def answered_callbacks(self) -> list[JSON]:
        """answerCallbackQuery calls that were accepted: ``callback_query_id, text,
        show_alert, url, cache_time, data, chat_id, message_id``."""
        with self._lock:
            return copy.deepcopy(self._answered)

    def commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """The command list set for a scope (default scope when None) and language."""
        with self._lock:
            return copy.deepcopy(self._commands.get(self._scope_key(scope, language_code), []))

    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by a getUpdates offset."""
        with self._lock:
            return copy.deepcopy(self._updates)

    def file(self, file_id: str) -> tuple[str, bytes]:
        """(filename, bytes) of a file the bot uploaded."""
        with self._lock:
            f = self._files[file_id]
            return f.filename, f.data

    @property
    def webhook_url(self) -> str:
        with self._lock:
            return str(self._webhook["url"])

    # -- playing the users -----------------------------------------------------------------

    def user_message(self, chat_id: int, text: str, first_name: str = "Ann",
                     username: str | None = None, *, user_id: int | None = None) -> int:
        """A user writes ``text`` in a chat: private when chat_id > 0 (the user is chat_id),
        else a group (the user is ``user_id``, default 1000); a leading "/command" gets its
        bot_command entity, as Telegram adds it. Returns the update_id."""
        user = self._user(self._user_id(chat_id, user_id), first_name, username)
        with self._cond:
            chat = self._register_chat(chat_id, user)
            msg: JSON = {"message_id": self._new_message_id(chat_id), "from": user,
                         "chat": chat, "date": int(time.time()), "text": text}
            if text.startswith("/"):
                command = re.match(r"\S+", text).group(0)  # type: ignore[union-attr]
                msg["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": _u16(command)}]
            self._messages.setdefault(chat_id, {})[msg["message_id"]] = _Stored(obj=msg)
            return self._push_update({"message": msg})

    def press(self, chat_id: int, message_id: int, data: str, *, first_name: str = "Ann",
              username: str | None = None, user_id: int | None = None,
              check: bool = True) -> int:
        """A user presses the inline button with callback ``data`` under the bot's message
        ``message_id``. With ``check`` the button must be on the message as it is now (a
        user cannot press a button that is not there). Returns the update_id."""
        user = self._user(self._user_id(chat_id, user_id), first_name, username)
        with self._cond:
            stored = self._messages.get(chat_id, {}).get(message_id)
            if stored is None or stored.deleted or not stored.obj["from"].get("is_bot"):
                raise KeyError(f"no bot message {message_id} in chat {chat_id}")
            if check:
                offered = [b.get("callback_data") for row in
                           stored.obj.get("reply_markup", {}).get("inline_keyboard", [])
                           for b in row]
                if data not in offered:
                    raise ValueError(f"message {message_id} has no button {data!r}; "
                                     f"its buttons: {offered}")
            query_id = str(secrets.randbits(62))
            self._callbacks[query_id] = {"data": data, "chat_id": chat_id,
                                         "message_id": message_id, "answered": False}
            return self._push_update({"callback_query": {
                "id": query_id, "from": user, "message": copy.deepcopy(stored.obj),
                "chat_instance": str(abs(hash(("chat", chat_id))) % 10**18), "data": data}})

    def block_chat(self, chat_id: int, blocked: bool = True) -> None:
        """The user blocks the bot: sending there is 403 "bot was blocked by the user"."""
        with self._lock:
            (self._blocked.add if blocked else self._blocked.discard)(chat_id)

    # -- faults ----------------------------------------------------------------------------

    def fail_next(self, method: str, status: int = 429, retry_after: int | None = 5,
                  times: int = 1, *, description: str | None = None,
                  body: bytes | str | None = None) -> None:
        """The next ``times`` calls of ``method`` ("*": any method) fail without effect.

        429 answers Telegram's flood-control error with ``parameters.retry_after`` (PTB:
        RetryAfter); other statuses a JSON error with ``description`` (default: the HTTP
        phrase), or, given ``body``, that raw text body (a proxy's HTML 502 page).
        """
        if isinstance(body, str):
            body = body.encode()
        self._add_fault(method, _Fault(status, retry_after if status == 429 else None,
                                       description, body, times))

    def drop_next(self, method: str, times: int = 1, *, processed: bool = False) -> None:
        """The next calls get no answer: the connection is closed (PTB: NetworkError).
        ``processed``: the request takes effect first (a lost answer, not a lost request)."""
        self._add_fault(method, _Fault(0, None, None, None, times, drop=True,
                                       processed=processed))

    def delay_next(self, method: str, seconds: float, times: int = 1) -> None:
        """The next calls are answered normally, after ``seconds`` (PTB: TimedOut when its
        read timeout is shorter; the request still takes effect, as on Telegram)."""
        self._add_fault(method, _Fault(200, None, None, None, times, delay=seconds))

    def _add_fault(self, method: str, fault: _Fault) -> None:
        with self._lock:
            self._faults.setdefault(method.lower(), []).append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        for key in (method.lower(), "*"):
            queue = self._faults.get(key)
            if queue:
                fault = queue[0]
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
                return fault
        return None

    # -- request handling (connection threads) ---------------------------------------------

    def _internal_error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def _answer(self, path: str, ctype: str, body: bytes) -> tuple[int, str, bytes] | None:
        try:
            return self._route(path, ctype, body)
        except _Drop:
            return None
        except Exception:
            self._internal_error(traceback.format_exc())
            return self._error(500, "Internal Server Error (a bug in tests/bot_api.py)")

    @staticmethod
    def _json(status: int, payload: JSON) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(payload, ensure_ascii=False).encode()

    def _error(self, status: int, description: str,
               parameters: JSON | None = None) -> tuple[int, str, bytes]:
        payload: JSON = {"ok": False, "error_code": status, "description": description}
        if parameters:
            payload["parameters"] = parameters
        return self._json(status, payload)

    def _route(self, path: str, ctype: str, body: bytes) -> tuple[int, str, bytes] | None:
        url = urlsplit(path)
        m = re.fullmatch(r"/(file/)?bot([^/]*)/(.+)", url.path)
        if not m:
            return self._error(404, "Not Found")
        token, rest = unquote(m.group(2)), unquote(m.group(3))
        if m.group(1):
            return self._download(token, rest)
        name, handler = self._methods.get(rest.lower(), (rest, None))
        try:
            params, uploads = _decode_params(ctype, body, url.query)
        except _ApiError as exc:
            params, uploads, bad = {}, {}, exc
        else:
            bad = None
        call = Call(name, params, {k: (u.filename, u.data) for k, u in uploads.items()},
                    time.monotonic())
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()
            epoch = self._epoch
        reply = self._dispatch(_Request(name, params, uploads, epoch), token, handler, bad)
        with self._cond:
            call.status = 0 if reply is None else reply[0]
            self._cond.notify_all()
        if reply is None:
            raise _Drop
        return reply

    def _dispatch(self, req: _Request, token: str, handler: Callable[[_Request], Any] | None,
                  bad: _ApiError | None) -> tuple[int, str, bytes] | None:
        if not re.fullmatch(r"\d+:[\w-]+", token):
            return self._error(404, "Not Found")  # Telegram: a malformed token is 404
        if token != self.token:
            return self._error(401, "Unauthorized")
        with self._cond:
            fault = self._take_fault(req.method)
        if fault is not None:
            if fault.delay:
                self._sleep(fault.delay, req.epoch)
            elif fault.drop:
                if fault.processed and handler is not None:
                    self._run(req, handler, bad)
                return None
            else:
                return self._fault_reply(fault)
        if handler is None:
            return self._error(404, "Not Found")
        return self._run(req, handler, bad)

    def _run(self, req: _Request, handler: Callable[[_Request], Any],
             bad: _ApiError | None) -> tuple[int, str, bytes]:
        try:
            if bad is not None:
                raise bad
            with self._cond:
                result = handler(req)
                self._cond.notify_all()
        except _ApiError as exc:
            return self._error(exc.status, exc.description, exc.parameters)
        return self._json(200, {"ok": True, "result": result})

    def _fault_reply(self, fault: _Fault) -> tuple[int, str, bytes]:
        if fault.body is not None:
            return fault.status, "text/html", fault.body
        if fault.status == 429:
            retry = fault.retry_after or 0
            return self._error(429, fault.description or f"Too Many Requests: retry after {retry}",
                               {"retry_after": retry} if retry else None)
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Error"
        return self._error(fault.status, fault.description or phrase)

    def _sleep(self, seconds: float, epoch: int) -> None:
        deadline = time.monotonic() + seconds
        with self._cond:
            while (remaining := deadline - time.monotonic()) > 0:
                if self._epoch != epoch:
                    raise _Drop
                self._cond.wait(remaining)

    def _download(self, token: str, path: str) -> tuple[int, str, bytes]:
        if token != self.token:
            return self._error(401, "Unauthorized")
        with self._lock:
            found = next((f for f in self._files.values() if f.path == path), None)
        if found is None:
            return self._error(404, "Not Found")
        return 200, found.mime_type, found.data

    # -- state helpers (called with the lock held) -----------------------------------------

    def _push_update(self, content: JSON) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        self._updates.append({"update_id": update_id, **content})
        self._cond.notify_all()
        return update_id

    @staticmethod
    def _user_id(chat_id: int, user_id: int | None) -> int:
        if user_id is not None:
            return user_id
        return chat_id if chat_id > 0 else 1000

    @staticmethod
    def _user(user_id: int, first_name: str, username: str | None) -> JSON:
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name,
                      "language_code": "en"}
        if username:
            user["username"] = username
        return user

    def _register_chat(self, chat_id: int, user: JSON) -> JSON:
        if chat_id > 0:
            chat: JSON = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
            if "username" in user:
                chat["username"] = user["username"]
        else:
            chat = self._chats.get(chat_id) or self._chat(chat_id)
        self._chats[chat_id] = chat
        return copy.deepcopy(chat)

    def _chat(self, chat_id: int | str) -> JSON:
        if chat_id in self._chats:
            return copy.deepcopy(self._chats[chat_id])
        if isinstance(chat_id, str):
            raise _bad("chat not found")  # "@name" chats are not modelled
        if self.known_chats_only:
            raise _bad("chat not found")
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Ann"}
        kind = "supergroup" if chat_id < -1_000_000_000_000 else "group"
        return {"id": chat_id, "type": kind, "title": f"Test {kind}"}

    def _new_message_id(self, chat_id: int | str) -> int:
        # private chats and groups number user and bot messages in one sequence
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _target_chat(self, params: JSON) -> tuple[int | str, JSON]:
        chat_id = _chat_key(params.get("chat_id"))
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        chat = self._chat(chat_id)
        if chat_id in self._blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id, chat

    def _stored(self, params: JSON, what: str) -> _Stored:
        chat_id = _chat_key(params.get("chat_id"))
        if "inline_message_id" in params:
            raise _bad("inline messages are not modelled by tests/bot_api.py")
        try:
            message_id = int(params.get("message_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise _bad("message identifier is not specified") from exc
        stored = self._messages.get(chat_id, {}).get(message_id)  # type: ignore[arg-type]
        if stored is None or stored.deleted:
            raise _bad(f"message to {what} not found")
        if not stored.obj["from"].get("is_bot") and what == "edit":
            raise _bad("message can't be edited")
        return stored

    @staticmethod
    def _inline_markup(params: JSON) -> tuple[JSON | None, JSON | None]:
        """(markup as sent, the inline keyboard the message object shows) after checks."""
        markup = params.get("reply_markup")
        if markup in (None, ""):
            return None, None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        keyboard = markup.get("inline_keyboard")
        if keyboard is None:
            return markup, None  # reply keyboards are not part of the sent message
        for row in keyboard:
            for button in row:
                if not button.get("text"):
                    raise _bad("can't parse inline keyboard button: Text buttons are "
                               "unallowed in the inline keyboard")
                data = button.get("callback_data")
                kinds = set(button) - {"text"}
                if not kinds:
                    raise _bad("can't parse inline keyboard button: Text buttons are "
                               "unallowed in the inline keyboard")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise _bad("BUTTON_DATA_INVALID")
        return markup, {"inline_keyboard": keyboard}

    def _store(self, chat_id: int | str, chat: JSON, content: JSON, req: _Request, *,
               markup: JSON | None, inline: JSON | None, source: str | None,
               file_id: str | None = None) -> JSON:
        obj: JSON = {"message_id": self._new_message_id(chat_id), "from": self.bot_user,
                     "chat": chat, "date": int(time.time()), **content}
        reply = req.params.get("reply_parameters") or (
            {"message_id": req.params["reply_to_message_id"]}
            if "reply_to_message_id" in req.params else None)
        if isinstance(reply, dict) and reply.get("message_id") is not None:
            target = self._messages.get(chat_id, {}).get(int(reply["message_id"]))
            if target is not None and not target.deleted:
                obj["reply_to_message"] = {k: v for k, v in copy.deepcopy(target.obj).items()
                                           if k != "reply_to_message"}
            elif not reply.get("allow_sending_without_reply"):
                raise _bad("message to be replied not found")
        if inline is not None:
            obj["reply_markup"] = inline
        self._messages.setdefault(chat_id, {})[obj["message_id"]] = _Stored(
            obj=obj, parse_mode=req.params.get("parse_mode"), source=source,
            markup=markup, file_id=file_id)
        return copy.deepcopy(obj)

    def _caption(self, params: JSON) -> JSON:
        caption = params.get("caption")
        if caption is None or caption == "":
            return {}
        plain, entities = _format(str(caption), params.get("parse_mode"),
                                  params.get("caption_entities"))
        if _u16(plain) > MAX_CAPTION:
            raise _bad("message caption is too long")
        out: JSON = {"caption": plain}
        if entities:
            out["caption_entities"] = entities
        return out

    def _file_from(self, req: _Request, field_name: str, kind: str) -> _File:
        value = req.params.get(field_name)
        upload = req.files.get(field_name)
        if upload is None and isinstance(value, str) and value.startswith("attach://"):
            upload = req.files.get(value.removeprefix("attach://"))
        if upload is not None:
            if not upload.data:
                raise _bad("file must be non-empty")
            number = len(self._files) + 1
            ext = upload.filename.rsplit(".", 1)[-1] if "." in upload.filename else "bin"
            f = _File(file_id=f"{kind[:2].upper()}AC{number}{secrets.token_hex(12)}",
                      unique_id=f"AQAD{number}{secrets.token_hex(4)}",
                      filename=upload.filename, data=upload.data, mime_type=upload.mime_type,
                      path=f"{kind}s/file_{number}.{ext}")
            self._files[f.file_id] = f
            return f
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        if not value:
            raise _bad(f"there is no {field_name} in the request")
        raise _bad("wrong file identifier/HTTP URL specified")

    @staticmethod
    def _scope_key(scope: Any, language_code: Any) -> tuple[str, str]:
        scope = scope or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(language_code or "")

    # -- the methods (called with the lock held) -------------------------------------------

    def _get_me(self, req: _Request) -> JSON:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False,
                "has_main_web_app": False}

    def _get_updates(self, req: _Request) -> list[JSON]:
        p = req.params
        if self._webhook["url"]:
            raise _ApiError(409, WEBHOOK_CONFLICT)
        offset = int(p.get("offset") or 0)
        limit = min(max(int(p.get("limit") or 100), 1), 100)
        timeout = float(p.get("timeout") or 0)
        if offset > 0:  # confirms (forgets) every update below it
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        self._poll_seq += 1
        me = self._poll_seq
        self._cond.notify_all()  # an older long poll ends with 409, as on Telegram
        deadline = time.monotonic() + timeout
        while True:
            if self._updates:
                return copy.deepcopy(self._updates[:limit])
            if self._epoch != req.epoch:
                raise _Drop
            if self._poll_seq != me:
                raise _ApiError(409, POLL_CONFLICT)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._cond.wait(remaining)

    def _send_message(self, req: _Request) -> JSON:
        chat_id, chat = self._target_chat(req.params)
        text = req.params.get("text")
        if text is None or str(text).strip() == "":
            raise _bad("message text is empty")
        plain, entities = _format(str(text), req.params.get("parse_mode"),
                                  req.params.get("entities"))
        if not plain.strip():
            raise _bad("message text is empty")
        if _u16(plain) > MAX_TEXT:
            raise _bad("message is too long")
        markup, inline = self._inline_markup(req.params)
        content: JSON = {"text": plain}
        if entities:
            content["entities"] = entities
        return self._store(chat_id, chat, content, req, markup=markup, inline=inline,
                           source=str(text))

    def _edited(self, stored: _Stored, content: JSON, markup: JSON | None,
                inline: JSON | None, req: _Request, source: str | None) -> JSON:
        keys = ("text", "entities", "caption", "caption_entities", "reply_markup")
        before = {k: stored.obj.get(k) for k in keys}
        new = dict(stored.obj)
        for key, value in content.items():
            if value in (None, [], ""):
                new.pop(key, None)
            else:
                new[key] = value
        # an edit without reply_markup removes the inline keyboard, as on Telegram
        new.pop("reply_markup", None)
        if inline is not None:
            new["reply_markup"] = inline
        if {k: new.get(k) for k in keys} == before:
            raise _bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        new["edit_date"] = int(time.time())
        stored.obj = new
        stored.markup = markup
        stored.edits += 1
        if source is not None:
            stored.source = source
            stored.parse_mode = req.params.get("parse_mode")
        return copy.deepcopy(new)

    def _edit_text(self, req: _Request) -> JSON:
        stored = self._stored(req.params, "edit")
        if "text" not in stored.obj:
            raise _bad("there is no text in the message to edit")
        text = req.params.get("text")
        if text is None or str(text).strip() == "":
            raise _bad("message text is empty")
        plain, entities = _format(str(text), req.params.get("parse_mode"),
                                  req.params.get("entities"))
        if _u16(plain) > MAX_TEXT:
            raise _bad("message is too long")
        markup, inline = self._inline_markup(req.params)
        return self._edited(stored, {"text": plain, "entities": entities}, markup, inline, req,
                            str(text))

    def _edit_caption(self, req: _Request) -> JSON:
        stored = self._stored(req.params, "edit")
        if "text" in stored.obj:
            raise _bad("there is no caption in the message to edit")
        caption = self._caption(req.params)
        markup, inline = self._inline_markup(req.params)
        return self._edited(stored, {"caption": caption.get("caption"),
                                     "caption_entities": caption.get("caption_entities")},
                            markup, inline, req, req.params.get("caption"))

    def _edit_markup(self, req: _Request) -> JSON:
        stored = self._stored(req.params, "edit")
        markup, inline = self._inline_markup(req.params)
        return self._edited(stored, {}, markup, inline, req, None)

    def _delete_message(self, req: _Request) -> bool:
        stored = self._stored(req.params, "delete")
        stored.deleted = True
        return True

    def _answer_callback(self, req: _Request) -> bool:
        query_id = str(req.params.get("callback_query_id", ""))
        query = self._callbacks.get(query_id)
        if query is None or query["answered"]:
            raise _bad(QUERY_INVALID.removeprefix("Bad Request: "))
        query["answered"] = True
        self._answered.append({
            "callback_query_id": query_id, "text": req.params.get("text"),
            "show_alert": bool(req.params.get("show_alert", False)),
            "url": req.params.get("url"), "cache_time": req.params.get("cache_time"),
            "data": query["data"], "chat_id": query["chat_id"],
            "message_id": query["message_id"]})
        return True

    def _send_photo(self, req: _Request) -> JSON:
        chat_id, chat = self._target_chat(req.params)
        f = self._file_from(req, "photo", "photo")
        size = _image_size(f.data)
        if size is None:
            raise _bad("IMAGE_PROCESS_FAILED")
        width, height = size
        photo = [{"file_id": f.file_id, "file_unique_id": f.unique_id, "width": width,
                  "height": height, "file_size": len(f.data)}]
        markup, inline = self._inline_markup(req.params)
        return self._store(chat_id, chat, {"photo": photo, **self._caption(req.params)}, req,
                           markup=markup, inline=inline, source=req.params.get("caption"),
                           file_id=f.file_id)

    def _send_document(self, req: _Request) -> JSON:
        chat_id, chat = self._target_chat(req.params)
        f = self._file_from(req, "document", "document")
        document = {"file_id": f.file_id, "file_unique_id": f.unique_id,
                    "file_name": f.filename, "mime_type": f.mime_type,
                    "file_size": len(f.data)}
        markup, inline = self._inline_markup(req.params)
        return self._store(chat_id, chat, {"document": document, **self._caption(req.params)},
                           req, markup=markup, inline=inline, source=req.params.get("caption"),
                           file_id=f.file_id)

    def _send_chat_action(self, req: _Request) -> bool:
        self._target_chat(req.params)
        return True

    def _get_file(self, req: _Request) -> JSON:
        f = self._files.get(str(req.params.get("file_id", "")))
        if f is None:
            raise _bad("invalid file_id")
        return {"file_id": f.file_id, "file_unique_id": f.unique_id,
                "file_size": len(f.data), "file_path": f.path}

    def _set_commands(self, req: _Request) -> bool:
        commands = req.params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        for c in commands:
            if not isinstance(c, dict) or not re.fullmatch(r"[a-z0-9_]{1,32}",
                                                           str(c.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", "")).strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._scope_key(req.params.get("scope"), req.params.get("language_code"))
        self._commands[key] = [{"command": c["command"], "description": c["description"]}
                               for c in commands]
        return True

    def _delete_commands(self, req: _Request) -> bool:
        self._commands.pop(self._scope_key(req.params.get("scope"),
                                           req.params.get("language_code")), None)
        return True

    def _get_commands(self, req: _Request) -> list[JSON]:
        key = self._scope_key(req.params.get("scope"), req.params.get("language_code"))
        return copy.deepcopy(self._commands.get(key, []))

    def _set_webhook(self, req: _Request) -> bool:
        url = str(req.params.get("url") or "")
        if url and not url.startswith("https://"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        self._webhook = {"url": url}
        if req.params.get("allowed_updates") is not None:
            self._webhook["allowed_updates"] = req.params["allowed_updates"]
        if req.params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _delete_webhook(self, req: _Request) -> bool:
        self._webhook = {"url": ""}
        if req.params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _webhook_info(self, req: _Request) -> JSON:
        return {**self._webhook, "has_custom_certificate": False,
                "pending_update_count": len(self._updates)}
