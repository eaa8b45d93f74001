"""What the bot's screens say: texts (Telegram HTML) built from the instance's answers.

Pure functions of data; every text from the instance or a user is escaped (``esc``), so a
signal named ``<b>`` or an event text with ``&`` shows as written. The buttons are built by
the core (:mod:`.core`), which alone knows the callback tokens.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re

from rtoc.model import Event

PRIORITY_ICONS = {0: "ℹ️", 1: "⚠️", 2: "🛑"}
PERIODS = {"10m": 600.0, "1h": 3600.0, "24h": 86400.0, "7d": 604800.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$", re.I)
_UNIT_S = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
MAX_PERIOD = 366 * 86400.0
MAX_ROWS = 40  # rows of a table in one message
MAX_TEXT = 3800  # characters of one message (Telegram takes 4096 after parsing the HTML)
MAX_NOTE = 800   # characters of an event's or notification's own text in a message


def esc(text: object) -> str:
    return html.escape(str(text), quote=False)


def looks_like_period(word: str) -> bool:
    """``2h``, ``0m``, ``9999999d``: a number and a unit (signal names have a dot)."""
    return re.fullmatch(r"\d+(?:\.\d+)?[A-Za-z]{1,3}", word) is not None


def duration(text: str) -> float:
    """``"2h"`` -> 7200.0; ValueError naming what is accepted."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a period; write e.g. 30m, 2h, 7d")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2).lower()]
    if not 1.0 <= seconds <= MAX_PERIOD:
        raise ValueError(f"a period is 1 s to 366 d, got {text!r}")
    return seconds


def period_name(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def value(y: object) -> str:
    if isinstance(y, float):
        return "nan" if math.isnan(y) else f"{y:.6g}"
    return str(y)


def age(seconds: float) -> str:
    if seconds < 0:
        seconds = 0.0
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def clock(t: float) -> str:
    """Local time of unix seconds ``t``; ``?`` for a time no calendar has (a plugin's
    milliseconds, NaN): an event with a bad time is still shown and notified."""
    try:
        return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError, TypeError):
        return f"? ({t!r})"


def cut(text: object, limit: int) -> str:
    """``text`` (plain, before escaping) at most ``limit`` characters."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def cut_units(text: object, limit: int) -> str:
    """``text`` (plain) at most ``limit`` UTF-16 code units, as Telegram counts a caption's
    length (an emoji outside the BMP is two); never splits a surrogate pair."""
    text = str(text)
    units = text.encode("utf-16-le")
    if len(units) <= 2 * limit:
        return text
    return units[:2 * (limit - 1)].decode("utf-16-le", errors="ignore") + "…"


def fit(lines: list[str], limit: int = MAX_TEXT, more: str = "… {n} more") -> list[str]:
    """The first of ``lines`` (each a whole line of HTML) that fit in ``limit`` characters,
    and a last line saying how many did not."""
    out, used = [], 0
    for i, line in enumerate(lines):
        if used + len(line) + 1 > limit - 40:
            return [*out, more.format(n=len(lines) - i)]
        out.append(line)
        used += len(line) + 1
    return out


def latest_table(signals: list[dict], now: float) -> str:
    """A monospace table: signal, value, unit, age."""
    rows = [(cut(s["name"], 48), cut(value(s["latest"]["y"]), 24), cut(s.get("unit") or "", 12),
             age(now - s["latest"]["t"])) for s in signals if s.get("latest")][:MAX_ROWS]
    if not rows:
        return "<b>Latest values</b>\nno signal has a value yet"
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    more = len([s for s in signals if s.get("latest")]) - len(rows)
    tail = f"\n… {more} more (pin signals to choose)" if more > 0 else ""
    return f"<b>Latest values</b> ({clock(now)})\n<pre>{esc(chr(10).join(lines))}</pre>{tail}"


def event_text(ev: Event) -> str:
    where = ".".join(p for p in (ev.device, ev.signal) if p)
    val = "" if ev.value is None else f"\nvalue {esc(cut(value(ev.value), 100))}"
    return (f"{PRIORITY_ICONS.get(ev.priority, '')} <b>{esc(cut(where or 'rtoc', 100))}</b>: "
            f"{esc(cut(ev.text, MAX_NOTE))}{val}\n<i>{clock(ev.time)}</i>")


def events_list(events: list[dict], min_priority: int) -> str:
    names = {0: "all", 1: "warnings and errors", 2: "errors"}
    if not events:
        return f"<b>Events</b> ({names[min_priority]})\nnone"
    lines = []
    for e in events[:MAX_ROWS // 2]:
        where = ".".join(p for p in (e.get("device", ""), e.get("signal", "")) if p)
        lines.append(f"{PRIORITY_ICONS.get(e.get('priority', 0), '')} {clock(e['time'])} "
                     f"<b>{esc(cut(where or 'rtoc', 80))}</b>: {esc(cut(e.get('text', ''), 160))}")
    return f"<b>Events</b> ({names[min_priority]}, newest first)\n" + "\n".join(fit(lines))


def _first_line(doc: object) -> str:
    return cut(str(doc or "").strip().split("\n", 1)[0], 120)


def device_text(d: dict) -> str:
    lines = []
    for p in d.get("parameters", []):
        limits = "".join(f" {k} {p[k]}" for k in ("min", "max") if k in p)
        lines.append(f"• {esc(cut(p.get('name', '?'), 60))} = <code>{esc(cut(value(p.get('value')), 80))}</code> "
                     f"({esc(p.get('type', ''))}{esc(limits)}) {esc(_first_line(p.get('doc')))}".rstrip())
    for f in d.get("functions", []):
        lines.append(f"ƒ <code>{esc(cut(f.get('signature', f.get('name', '?')), 120))}</code> "
                     f"{esc(_first_line(f.get('doc')))}".rstrip())
    return "\n".join([f"<b>{esc(cut(d['name'], 80))}</b>: {esc(d.get('state', '?'))}", *fit(lines, MAX_TEXT - 200)])


def rules_text(listing: dict) -> str:
    lines = ["<b>Automation</b>"]
    for kind in ("events", "actions"):
        for r in listing.get(kind, [])[:MAX_ROWS // 2]:
            mark = "✅" if r.get("active", True) else "⏸"
            what = r.get("cond") or "on " + ", ".join(map(str, r.get("listen") or ()))
            lines.append(f"{mark} {kind[:-1]} <b>{esc(cut(r['name'], 80))}</b>: <code>{esc(cut(what, 200))}</code>")
    if len(lines) == 1:
        lines.append("no rules")
    return "\n".join(fit(lines))


HELP = """<b>RTOC bot</b>
/menu – the main menu
/latest – latest values
/signals – devices and signals
/plot <i>Device.Signal [more] [period]</i> – e.g. <code>/plot Generator.Sine 2h</code>
/csv <i>Device.Signal [period]</i> – the same range as CSV
/events – the latest events
/devices – start, stop, parameters, functions (write role)
/automation – event rules and actions (write role)
/shortcuts – your pinned signals and functions
/settings – your notification level
/users – users and roles (admin)
/pair <i>CODE</i> – become admin with a code from <code>rtoc telegram pair</code>"""
