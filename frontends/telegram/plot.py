"""Pictures and CSV files of measurement history, as the Telegram bot sends them.

The bot asks the archive for the history of a few signals over a period (decimated to
``points_for(width)`` points by min/max, so a curve keeps its peaks), draws them with the
events of that period as vertical lines, and sends the PNG; or it sends the same data as CSV.

Pure: no sockets, no clock, no global matplotlib state. Every picture is its own
``Figure`` on its own Agg canvas (``pyplot`` keeps a global figure registry and is not
thread-safe), so the bot can render in a worker thread while the event loop goes on.
The axes rectangle is fixed in pixels by ``layout`` (not by ``tight_layout``, which is slow
and moves with the tick labels), so a caller or a test knows where a time lands in the image.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections import Counter
from dataclasses import dataclass

import numpy as np
from dateutil.tz import tzlocal  # matplotlib depends on dateutil
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Distinct from each other and from every curve colour, so an event line is never mistaken
# for a signal; info is the lightest, as the least urgent.
PRIORITY_COLOURS: dict[int, str] = {0: "#8fa3b8", 1: "#ff8c00", 2: "#e00000"}
# Tableau colours without red, orange and grey: those belong to the events.
SERIES_COLOURS: tuple[str, ...] = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                                   "#17becf", "#bcbd22", "#1a1a6e")
NO_DATA = "no data in this period"
MIN_WIDTH, MIN_HEIGHT = 240, 160
_DPI = 100  # fonts are in points: a fixed dpi keeps text the same size in pixels
# Margins in pixels, sized for tick labels and titles at matplotlib's 10 pt default font.
_LEFT, _RIGHT, _RIGHT_TWIN, _TOP, _BOTTOM = 80, 20, 80, 36, 56
_PRIORITY_WORDS = {2: ("error", "errors"), 1: ("warning", "warnings")}


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous: compare by identity
class Series:
    """One signal's history: ``name`` is "Device.Signal", ``unit`` may be ""."""

    name: str
    unit: str
    t: np.ndarray  # float64[n], unix seconds, ascending
    y: np.ndarray  # float64[n]

    def __post_init__(self) -> None:
        t = np.asarray(self.t, dtype=np.float64)
        y = np.asarray(self.y, dtype=np.float64)
        if t.ndim != 1 or t.shape != y.shape:
            raise ValueError(f"{self.name}: t and y must be 1-d of the same length")
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "y", y)


@dataclass(frozen=True)
class Mark:
    """An event, drawn as a vertical line: ``priority`` 0 info, 1 warning, 2 error."""

    time: float
    text: str
    priority: int


@dataclass(frozen=True)
class Box:
    """A rectangle in image pixels: origin at the top left, y downwards (as in the PNG)."""

    left: float
    top: float
    width: float
    height: float


def layout(width: int, height: int, *, right_axis: bool = False) -> Box:
    """The plot area of a ``width`` x ``height`` picture (wider right margin for a twin axis)."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"a picture needs at least {MIN_WIDTH}x{MIN_HEIGHT} pixels")
    right = _RIGHT_TWIN if right_axis else _RIGHT
    return Box(_LEFT, _TOP, width - _LEFT - right, height - _TOP - _BOTTOM)


def points_for(width: int) -> int:
    """Points to ask the archive for: min/max decimation gives 2 per pixel column."""
    return 2 * int(layout(width, MIN_HEIGHT, right_axis=True).width)


def build_figure(series: list[Series], marks: list[Mark], *, t0: float, t1: float,
                 width: int = 1280, height: int = 720, title: str = "",
                 tz: datetime.tzinfo | None = None) -> Figure:
    """The picture as a Figure on an Agg canvas (not drawn yet), for ``render_png``."""
    if not t1 > t0:
        raise ValueError(f"empty period: t0={t0!r} t1={t1!r}")
    units = _units(series)
    box = layout(width, height, right_axis=len(units) == 2)
    fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((box.left / width, 1 - (box.top + box.height) / height,
                       box.width / width, box.height / height))
    ax.set_axisbelow(True)  # grid under the event lines, which are under the curves
    ax.grid(True, linewidth=0.5, alpha=0.6)
    _time_axis(ax, t0, t1, tz if tz is not None else tzlocal())
    shown = [m for m in marks if t0 <= m.time <= t1]
    _draw_marks(ax, shown)
    # A fixed y: placing it automatically measures every tick label (a third of the drawing).
    ax.set_title(_title(_plain(title), shown), fontsize=11, y=1.0, pad=8)
    if any(np.isfinite(s.y).any() for s in series):
        _draw_series(ax, series, units)
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, NO_DATA, transform=ax.transAxes, ha="center", va="center",
                fontsize=14, color="#555555")
    return fig


def render_png(series: list[Series], marks: list[Mark], *, t0: float, t1: float,
               width: int = 1280, height: int = 720, title: str = "",
               tz: datetime.tzinfo | None = None) -> bytes:
    """PNG of exactly ``width`` x ``height`` pixels: the series over t0..t1 with the marks."""
    fig = build_figure(series, marks, t0=t0, t1=t1, width=width, height=height, title=title,
                       tz=tz)
    out = io.BytesIO()
    # Level 1 instead of 6: two thirds of the encoding time for ~15 % more bytes.
    fig.canvas.print_png(out, pil_kwargs={"compress_level": 1})
    return out.getvalue()


def render_csv(series: list[Series]) -> bytes:
    """UTF-8 CSV, one row per distinct timestamp of any series; empty where a series has no
    sample then (or a NaN). Values are ``repr`` floats, so they read back exactly."""
    times = np.unique(np.concatenate([s.t for s in series])) if series else np.empty(0)
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(
        ["time_iso", "unix_s", *(_label(s) for s in series)])  # names may need quoting
    columns = [_iso_utc(times), _cells(times)] + [_cells(_on_grid(s, times)) for s in series]
    # Numbers and ISO times never need quoting: joined directly, twice as fast as csv.writer.
    rows = "".join(line + "\n" for line in map(",".join, zip(*columns, strict=True)))
    return (header.getvalue() + rows).encode("utf-8")


def _units(series: list[Series]) -> list[str]:
    """Distinct units in order of first appearance (so the first series' unit is on the left)."""
    return list(dict.fromkeys(s.unit for s in series if len(s.t)))


def _plain(text: str) -> str:
    """A name drawn as written: matplotlib reads ``$…$`` as mathtext (and fails on some)."""
    return text.replace("$", r"\$")


def _label(s: Series) -> str:
    return _plain(f"{s.name} [{s.unit}]" if s.unit else s.name)


def _to_num(t: np.ndarray | float) -> np.ndarray:
    """Unix seconds to matplotlib date numbers (days since ``date.epoch``, whatever it is)."""
    return np.asarray(t) / 86400.0 + mdates.date2num(datetime.datetime(1970, 1, 1,
                                                                       tzinfo=datetime.UTC))


def _time_axis(ax: Axes, t0: float, t1: float, tz: datetime.tzinfo) -> None:
    locator = mdates.AutoDateLocator(tz=tz)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
    ax.set_xlim(float(_to_num(t0)), float(_to_num(t1)))


def _draw_marks(ax: Axes, marks: list[Mark]) -> None:
    # One LineCollection per priority: an axvline per mark costs an artist each.
    by_priority: dict[int, list[float]] = {}
    for m in marks:
        by_priority.setdefault(_priority(m), []).append(m.time)
    for p, times in sorted(by_priority.items()):
        ax.vlines(_to_num(np.array(times)), 0, 1, transform=ax.get_xaxis_transform(),
                  colors=PRIORITY_COLOURS[p], linewidth=1.5, zorder=1)


def _draw_series(ax: Axes, series: list[Series], units: list[str]) -> None:
    twin = ax.twinx() if len(units) == 2 else None
    for i, s in enumerate(series):
        target = twin if twin is not None and s.unit == units[1] else ax
        marker = "o" if len(s.t) == 1 else None  # a lone point would be an invisible line
        target.plot(_to_num(s.t), s.y, color=SERIES_COLOURS[i % len(SERIES_COLOURS)],
                    linewidth=1, marker=marker, markersize=4, label=_label(s))
    ax.set_ylabel(_plain(units[0] if len(units) <= 2 else ", ".join(u for u in units if u)))
    top = ax
    if twin is not None:
        twin.set_ylabel(_plain(units[1]))
        top = twin  # the twin is drawn over ax: a legend on ax would be under its curves
    handles = ax.get_lines() + (twin.get_lines() if twin is not None else [])
    # A fixed corner: loc="best" scans every point of every line.
    top.legend(handles=handles, loc="upper left", fontsize=9, framealpha=0.8)


def _priority(m: Mark) -> int:
    return min(max(int(m.priority), 0), 2)


def _title(title: str, marks: list[Mark]) -> str:
    if not marks:
        return title
    counts = Counter(_priority(m) for m in marks)
    text = f"{len(marks)} event" + ("" if len(marks) == 1 else "s")
    worst = [f"{counts[p]} {_PRIORITY_WORDS[p][counts[p] != 1]}" for p in (2, 1) if counts[p]]
    if worst:
        text += f" ({', '.join(worst)})"
    return f"{title} — {text}" if title else text


def _on_grid(s: Series, times: np.ndarray) -> np.ndarray:
    """The series' values on the merged time grid, NaN where it has no sample."""
    out = np.full(len(times), np.nan)
    out[np.searchsorted(times, s.t)] = s.y  # times holds every s.t: exact positions
    return out


def _cells(values: np.ndarray) -> list[str]:
    """``repr`` of each value, "" for NaN (repr only where needed: merged columns are sparse)."""
    out = np.full(len(values), "", dtype=object)
    ok = ~np.isnan(values)
    out[ok] = list(map(repr, values[ok].tolist()))
    return out.tolist()


def _iso_utc(times: np.ndarray) -> list[str]:
    micros = np.rint(times * 1e6).astype(np.int64).astype("datetime64[us]")
    return [s + "Z" for s in np.datetime_as_string(micros, unit="us").tolist()]
