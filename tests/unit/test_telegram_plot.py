"""The Telegram bot's pictures and CSV files (rtoc.frontends.telegram.plot).

The pictures are checked by their pixels: the PNG is decoded and the event lines are looked
for by their exact colour at the column ``layout`` says their time lands in.
"""

from __future__ import annotations

import csv
import datetime
import io
import struct
import time

import numpy as np
import pytest
from PIL import Image  # pillow comes with matplotlib
from rtoc.frontends.telegram import plot
from rtoc.frontends.telegram.plot import Mark, Series

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
T1 = T0 + 7200.0


def _walk(name: str = "Gen.Sine", unit: str = "V", n: int = 2560, seed: int = 0) -> Series:
    t = np.linspace(T0, T1, n)
    return Series(name, unit, t, np.cumsum(np.random.default_rng(seed).standard_normal(n)))


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)


def _near(pixels: np.ndarray, hex_colour: str, tol: int = 10) -> np.ndarray:
    """Mask of the pixels within ``tol`` of the colour in every channel."""
    return (np.abs(pixels - _rgb(hex_colour)) <= tol).all(axis=-1)


def _column(time_s: float, width: int = 1280, height: int = 720) -> float:
    box = plot.layout(width, height)
    return box.left + (time_s - T0) / (T1 - T0) * box.width


INSET = 2  # pixels of the plot area left out at each side: the axes' frame


def _plot_area(pixels: np.ndarray, width: int = 1280, height: int = 720) -> np.ndarray:
    """The inside of the plot area (column 0 is image column ``box.left + INSET``)."""
    box = plot.layout(width, height)
    return pixels[int(box.top) + INSET:int(box.top + box.height) - INSET,
                  int(box.left) + INSET:int(box.left + box.width) - INSET]


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (641, 433)])
def test_png_decodes_at_the_requested_size(width: int, height: int) -> None:
    png = plot.render_png([_walk()], [Mark(T0 + 60, "x", 1)], t0=T0, t1=T1,
                          width=width, height=height, title="Sine")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (width, height)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.size == (width, height)


@pytest.mark.parametrize("units", [("V",), ("V", "°C")])
def test_the_axes_sit_where_layout_says(units: tuple[str, ...]) -> None:
    series = [_walk(f"D.S{i}", u, seed=i) for i, u in enumerate(units)]
    fig = plot.build_figure(series, [], t0=T0, t1=T1, width=900, height=500)
    box = plot.layout(900, 500, right_axis=len(units) == 2)
    for ax in fig.axes:
        extent = ax.get_window_extent()  # pixels from the bottom left
        assert extent.x0 == pytest.approx(box.left) and extent.width == pytest.approx(box.width)
        assert 500 - extent.y1 == pytest.approx(box.top)
        assert extent.height == pytest.approx(box.height)


def test_a_picture_smaller_than_the_minimum_or_an_empty_period_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        plot.render_png([_walk()], [], t0=T0, t1=T1, width=100, height=100)
    with pytest.raises(ValueError, match="empty period"):
        plot.render_png([_walk()], [], t0=T1, t1=T0)


def _changed_by(marks: list[Mark], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The picture with ``marks``, and the mask of the pixels the marks changed in the plot
    area (against the same picture without them: rendering is deterministic)."""
    with_marks = _pixels(plot.render_png([_walk(seed=seed)], marks, t0=T0, t1=T1, title="S"))
    without = _pixels(plot.render_png([_walk(seed=seed)], [], t0=T0, t1=T1, title="S"))
    box = plot.layout(1280, 720)
    changed = (with_marks != without).any(axis=-1)
    changed[: int(box.top)] = False  # the title counts the marks
    return with_marks, changed


@pytest.mark.parametrize(("priority", "fraction"), [(2, 0.3), (0, 0.71), (1, 0.5)])
def test_a_mark_is_a_line_of_its_colour_at_its_time_and_nowhere_else(priority: int,
                                                                      fraction: float) -> None:
    when = T0 + fraction * (T1 - T0)
    pixels, changed = _changed_by([Mark(when, "boom", priority)], seed=priority)
    x, box = _column(when), plot.layout(1280, 720)
    centres = np.flatnonzero(changed.any(axis=0)) + 0.5
    # A line 1.5 pt (2 px) wide, antialiased and snapped to the pixel grid: 4 columns at most.
    assert centres.size and np.all(np.abs(centres - x) <= 2.5), (x, centres)
    # Its colour, top to bottom of the plot area (except where the curve crosses it).
    own = _near(pixels, plot.PRIORITY_COLOURS[priority]) & changed
    rows = np.flatnonzero(own.any(axis=1))
    assert rows.size > 0.8 * box.height
    assert rows.min() >= box.top - 1 and rows.max() <= box.top + box.height + 1


def test_marks_outside_the_period_draw_nothing_and_are_not_counted() -> None:
    outside = [Mark(T0 - 10, "before", 2), Mark(T1 + 10, "after", 2), Mark(T1 + 5, "a", 0)]
    with_marks = plot.render_png([_walk()], outside, t0=T0, t1=T1, title="Sine")
    without = plot.render_png([_walk()], [], t0=T0, t1=T1, title="Sine")
    assert np.array_equal(_pixels(with_marks), _pixels(without))
    fig = plot.build_figure([_walk()], outside, t0=T0, t1=T1, title="Sine")
    assert fig.axes[0].get_title() == "Sine"


def test_all_marks_of_a_priority_are_drawn() -> None:
    marks = [Mark(T0 + f * (T1 - T0), "m", 2) for f in (0.1, 0.4, 0.9)]
    pixels, changed = _changed_by(marks)
    own = _near(pixels, plot.PRIORITY_COLOURS[2]) & changed
    for m in marks:
        x = int(_column(m.time))
        assert own[:, x - 2:x + 3].any(axis=1).sum() > 0.8 * plot.layout(1280, 720).height


def test_the_title_counts_the_marks_by_priority() -> None:
    marks = [Mark(T0 + 60 * i, "m", p) for i, p in enumerate([0, 0, 1, 2, 2, 2])]
    fig = plot.build_figure([_walk()], marks, t0=T0, t1=T1, title="Boiler")
    assert fig.axes[0].get_title() == "Boiler — 6 events (3 errors, 1 warning)"
    fig = plot.build_figure([_walk()], marks[:1], t0=T0, t1=T1)
    assert fig.axes[0].get_title() == "1 event"


def test_the_curve_colour_is_in_the_plot_area() -> None:
    pixels = _pixels(plot.render_png([_walk()], [], t0=T0, t1=T1))
    assert _near(_plot_area(pixels), plot.SERIES_COLOURS[0]).sum() > 1000


def test_no_data_is_a_valid_picture_without_curves() -> None:
    for series in ([], [Series("Gen.Sine", "V", np.empty(0), np.empty(0))]):
        png = plot.render_png(series, [], t0=T0, t1=T1, width=800, height=600)
        pixels = _pixels(png)
        assert pixels.shape == (600, 800, 3)
        assert not _near(pixels, plot.SERIES_COLOURS[0]).any()
        # The message is dark text in the middle of the plot area.
        middle = _plot_area(pixels, 800, 600)
        h, w = middle.shape[:2]
        assert (middle[h // 2 - 10:h // 2 + 10, w // 3:2 * w // 3] < 128).any()
        fig = plot.build_figure(series, [], t0=T0, t1=T1)
        assert plot.NO_DATA in [t.get_text() for t in fig.axes[0].texts]


def test_nan_gaps_and_a_single_point_are_drawn() -> None:
    gappy = _walk()
    gappy.y[1000:1500] = np.nan
    lone = Series("Gen.Once", "V", np.array([T0 + 3600]), np.array([gappy.y[0]]))
    pixels = _pixels(plot.render_png([gappy, lone], [], t0=T0, t1=T1))
    area = _plot_area(pixels)
    assert _near(area, plot.SERIES_COLOURS[0]).sum() > 500
    offset = int(plot.layout(1280, 720).left) + INSET
    x = int(_column(T0 + 3600)) - offset
    # A single point shows as a marker (its colour is also in the legend, at the far left).
    assert _near(area[:, x - 6:x + 7], plot.SERIES_COLOURS[1]).sum() >= 9
    assert not _near(area[:, x - 100:x - 6], plot.SERIES_COLOURS[1]).any()
    # The gap: no curve pixels in the columns of the NaN stretch.
    gap = slice(int(_column(gappy.t[1010])) - offset, int(_column(gappy.t[1490])) - offset)
    assert not _near(area[:, gap], plot.SERIES_COLOURS[0]).any()


def test_two_units_get_a_twin_axis_and_more_share_the_left_one() -> None:
    volts, degrees = _walk("A.U", "V"), _walk("B.T", "°C", seed=1)
    fig = plot.build_figure([volts, degrees, _walk("C.U", "V", seed=2)], [], t0=T0, t1=T1)
    assert [ax.get_ylabel() for ax in fig.axes] == ["V", "°C"]
    legend = fig.axes[1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["A.U [V]", "C.U [V]", "B.T [°C]"]
    assert plot.layout(1280, 720, right_axis=True).width < plot.layout(1280, 720).width

    fig = plot.build_figure([volts, degrees, _walk("D.P", "bar"), _walk("E.N", "")], [],
                            t0=T0, t1=T1)
    assert [ax.get_ylabel() for ax in fig.axes] == ["V, °C, bar"]
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()][-1] == "E.N"

    fig = plot.build_figure([volts], [], t0=T0, t1=T1)
    assert [ax.get_ylabel() for ax in fig.axes] == ["V"]


def _tick_labels(tz: datetime.tzinfo | None) -> list[str]:
    fig = plot.build_figure([_walk()], [], t0=T0, t1=T1, tz=tz)
    fig.canvas.draw()
    return [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]


def test_time_labels_are_in_the_given_zone() -> None:
    # 00:00..02:00 UTC is 05:00..07:00 at +05:00 and 19:00..21:00 at -05:00.
    plus5 = _tick_labels(datetime.timezone(datetime.timedelta(hours=5)))
    minus5 = _tick_labels(datetime.timezone(datetime.timedelta(hours=-5)))
    assert "06:00" in plus5 and not any(s.startswith(("00:", "01:")) for s in plus5)
    assert "20:00" in minus5 and "06:00" not in minus5


def test_no_zone_means_the_machines_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30, no daylight saving
    time.tzset()
    try:
        labels = _tick_labels(None)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert "06:00" in labels or "06:30" in labels, labels
    assert not any(s.startswith(("00:", "01:")) for s in labels)


def test_points_for_is_two_per_pixel_column_of_the_plot_area() -> None:
    assert plot.points_for(1280) == 2 * int(plot.layout(1280, 720, right_axis=True).width)
    assert 2 * 1000 < plot.points_for(1280) <= 2 * 1280
    assert plot.points_for(640) < plot.points_for(1280)


def _read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def test_csv_merges_series_by_timestamp() -> None:
    a = Series("Dev.A", "V", np.array([T0, T0 + 1.5, T0 + 3]), np.array([1.0, np.nan, 3.0]))
    b = Series("Dev.B", "", np.array([T0 + 1.5, T0 + 2]), np.array([-2.5, 0.1]))
    rows = _read_csv(plot.render_csv([a, b]))
    assert rows[0] == ["time_iso", "unix_s", "Dev.A [V]", "Dev.B"]
    assert rows[1:] == [
        ["2026-01-01T00:00:00.000000Z", repr(T0), "1.0", ""],
        ["2026-01-01T00:00:01.500000Z", repr(T0 + 1.5), "", "-2.5"],
        ["2026-01-01T00:00:02.000000Z", repr(T0 + 2), "", "0.1"],
        ["2026-01-01T00:00:03.000000Z", repr(T0 + 3), "3.0", ""],
    ]


def test_csv_floats_read_back_exactly() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(T0 + rng.random(1000) * 86400)
    y = rng.standard_normal(1000) * 10.0 ** rng.integers(-20, 20, 1000)
    rows = _read_csv(plot.render_csv([Series("Dev.X", "m", t, y)]))
    assert np.array_equal(np.array([float(r[1]) for r in rows[1:]]), t)
    assert np.array_equal(np.array([float(r[2]) for r in rows[1:]]), y)
    iso = np.array([r[0].rstrip("Z") for r in rows[1:]], dtype="datetime64[us]")
    micros = (iso - np.datetime64("1970-01-01T00:00:00", "us")).astype(np.int64)
    assert np.all(np.abs(micros - t * 1e6) <= 1)


def test_csv_of_nothing_and_names_that_need_quoting() -> None:
    assert plot.render_csv([]) == b"time_iso,unix_s\n"
    s = Series('Dev."Odd", name', "µs", np.array([T0]), np.array([1.0]))
    rows = _read_csv(plot.render_csv([s]))
    assert rows[0][2] == 'Dev."Odd", name [µs]'
