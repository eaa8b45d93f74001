"""Plain HTTP on the websocket port: the dashboard, ``/metrics``, ``/api/signals``.

``route`` maps a GET request (path and query) to ``(status, content type, body)``; the
server turns that into a response. Reading the API and ``/metrics`` (every signal and
client address) needs the ``read`` role: anonymous clients have it unless ``[websocket]
anonymous = "none"``, in which case HTTP Basic credentials of a configured user are needed
(or, for ``/metrics`` only, the ``metrics_token`` as a Bearer token: ``metrics_allowed``). An error's status follows its type
(``RtocError.http_status``: a bad query 400, an unknown signal 404 ...); an exception that
is no RtocError is a bug of ours: logged with its traceback, answered 500.
"""

from __future__ import annotations

import asyncio
import logging
import math
import mimetypes
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import orjson
from rtoc.frontends.websocket.json_protocol import commands
from rtoc.frontends.websocket.json_protocol.fanout import dumps
from rtoc.frontends.websocket.validate import BadRequest

from rtoc.errors import RtocError

if TYPE_CHECKING:
    from rtoc.frontends.websocket.json_protocol.protocol import JsonProtocol
    from rtoc.frontends.websocket.session import Session

log = logging.getLogger(__name__)
STATIC = resources.files("rtoc.frontends.websocket") / "static"
Reply = tuple[int, str, bytes]


def _json(obj: Any, status: int = 200) -> Reply:
    return status, "application/json", dumps(obj).encode()


def _error(status: int, text: str) -> Reply:
    return _json({"error": True, "message": text}, status)


def static_file(name: str) -> Reply:
    """A file of the dashboard (``static/``); no path may leave that folder."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return _error(404, f"no such file {name!r}")
    f = STATIC / name
    if not f.is_file():
        return _error(404, f"no such file {name!r}")
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript",):
        kind += "; charset=utf-8"
    return 200, kind, f.read_bytes()


async def route(proto: JsonProtocol, session: Session, target: str, metrics: Any,
                metrics_allowed: bool = False) -> Reply:
    url = urlsplit(target)
    path, query = url.path, parse_qs(url.query)
    if path in ("/", "/index.html"):
        return static_file("index.html")
    if path.startswith("/static/"):
        return static_file(path[len("/static/"):])
    if path == "/metrics":
        if not (metrics_allowed or session.may("read")):
            return _error(401, "log in (HTTP Basic) as a user with the read role, or send the "
                               "metrics_token (Authorization: Bearer)")
        return 200, "text/plain; version=0.0.4; charset=utf-8", (await metrics()).encode()
    if path == "/api/signals" or path.startswith("/api/signals/"):
        if not session.may("read"):
            return _error(401, "log in (HTTP Basic) as a user with the read role")
        try:
            if path == "/api/signals":
                return _json(await commands.get_signal_info(proto, session, True, {}, 0.0))
            return await _signal(proto, session, unquote(path[len("/api/signals/"):]), query)
        except RtocError as exc:
            return _error(exc.http_status, str(exc))
        except Exception:
            log.exception("HTTP %s failed", path)
            return _error(500, "internal error (the server logged it)")
    return _error(404, f"nothing at {path} (try /, /metrics, /api/signals)")


async def _signal(proto: JsonProtocol, session: Session, name: str, query: dict) -> Reply:
    def number(key: str) -> float | None:
        v = query.get(key, [None])[0]
        if v in (None, ""):
            return None
        try:
            return float(v)
        except ValueError:
            raise BadRequest(f"{key} must be a number, got {v[:40]!r}") from None

    fmt = query.get("format", ["json"])[0]
    if fmt not in ("json", "csv"):
        return _error(400, f"format must be json or csv, got {fmt!r}")
    device, _, signal = name.partition(".")
    req: dict[str, Any] = {"dname": device, "sname": signal, "xmin": number("from"),
                           "xmax": number("to")}
    if (max_n := number("maxN")) is not None:
        req["maxN"] = int(max_n) if math.isfinite(max_n) else max_n  # getSignal checks it
    got = await commands.get_signal_arrays(proto, session, [req], {}, 0.0)
    x, y, unit, sig_id, _, _ = got[name]
    async with proto.heavy:  # up to max_reply_points rows: never on the event loop
        return await asyncio.to_thread(signal_body, fmt, name, unit, sig_id, x, y)


def signal_body(fmt: str, name: str, unit: str, sig_id: Any, t: Any, y: Any) -> Reply:
    """(worker thread) One signal as JSON (NaN: null) or CSV (NaN: an empty cell)."""
    t, y = np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if fmt == "json":
        return 200, "application/json", orjson.dumps(
            {"name": name, "unit": unit, "id": sig_id, "t": orjson.Fragment(commands.json_array(t)),
             "y": orjson.Fragment(commands.json_array(y))})
    title = f"{name} [{unit}]" if unit else name
    if any(c in title for c in ',"\r\n'):  # quoted as the csv module would
        title = '"' + title.replace('"', '""') + '"'
    head = f"t,{title}"
    rows = [a + b"," + b for a, b in zip(_cells(t), _cells(y), strict=True)]
    return 200, "text/csv; charset=utf-8", b"\n".join([head.encode(), *rows, b""])


def _cells(a: np.ndarray) -> list[bytes]:
    """CSV cells of float64[n], shortest round-trip form; NaN and infinities empty."""
    if not len(a):
        return []
    a = np.where(np.isfinite(a), a, np.nan)  # orjson writes NaN (and inf) as null
    return orjson.dumps(a, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].replace(b"null", b"").split(b",")


def prometheus(samples: list[tuple[str, str, dict[str, str], float]]) -> str:
    """Prometheus' text format from (name, help, labels, value); one HELP/TYPE per name."""
    out, seen = [], set()
    for name, text, labels, value in samples:
        if name not in seen:
            seen.add(name)
            kind = "counter" if name.endswith("_total") else "gauge"
            out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}")
        lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        v = float(value)
        val = "NaN" if math.isnan(v) else ("+Inf" if v == math.inf else "-Inf" if v == -math.inf else repr(v))
        out.append(f"{name}{{{lab}}} {val}" if lab else f"{name} {val}")
    return "\n".join(out) + "\n"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

