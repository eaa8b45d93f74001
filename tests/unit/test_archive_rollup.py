"""Per-second min/max rollups: the numpy kernel against a plain reference, on random
input with NaN values, NaN times, unsorted times and ties."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rtoc.frontends.archive.rollup import COLUMNS, reference, rollup


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5), st.one_of(st.floats(-3, 3), st.just(float("nan")),
                                                      st.sampled_from([1.0, 1.0, -1.0]))),
                max_size=60),
       st.sampled_from([0.5, 1.0, 2.0]))
def test_rollup_matches_the_reference(points, width) -> None:
    t = np.array([p[0] for p in points], np.float64)
    y = np.array([p[1] for p in points], np.float64)
    if len(t) > 3:
        t[1] = np.nan  # a NaN time is skipped
    got, want = rollup(t, y, width), reference(t, y, width)
    for c in COLUMNS:
        np.testing.assert_array_equal(got[c], want[c], err_msg=c)


def test_a_second_of_a_kilohertz_signal_is_one_row() -> None:
    t = 1_800_000_000.0 + np.arange(3000) / 1000.0
    y = np.sin(t)
    r = rollup(t, y)
    assert list(r["n"]) == [1000, 1000, 1000] and np.all(r["y_lo"] <= r["y_hi"])


def test_the_archive_keeps_rollups_backfills_an_old_file_and_drops_them_with_retention(tmp_path) -> None:
    """A day in 2000 bins is answered from the rollup (86 k rows), an archive written before
    the rollup existed gets it computed at open, and retention removes it with the samples."""
    import duckdb
    from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, SignalKey
    from rtoc.frontends.archive.duck import DuckBackend

    path = tmp_path / "a.duckdb"
    b = DuckBackend(path)
    t0 = 1_800_000_000.0
    t = t0 + np.arange(200_000) * 0.5   # 100,000 s at 2 Hz
    y = np.sin(t / 100.0)
    y[123_456] = 5.0
    b.write(ArchiveBatch(1, [Chunk(SignalKey("Dev.S", 1, ""), 0, t, y)]))
    n, lo, hi = b.history_span("Dev.S", -np.inf, np.inf)
    assert (n, lo, hi) == (200_000, t[0], t[-1])
    ts, ys = b.history_minmax("Dev.S", -np.inf, np.inf, 1000, lo, hi)
    assert ys.max() == 5.0 and ts[ys == 5.0][0] == t[123_456] and len(ts) <= 2000
    b.close()
    con = duckdb.connect(str(path))  # as an archive of the version before the rollup
    con.execute("DROP TABLE rollup")
    con.close()
    b = DuckBackend(path)
    ts2, ys2 = b.history_minmax("Dev.S", -np.inf, np.inf, 1000, lo, hi)
    np.testing.assert_array_equal(ys2, ys)
    b.delete_before(t0 + 50_000)
    ((left,),) = b._db().execute("SELECT count(*) FROM rollup WHERE t_last < ?", [t0 + 50_000]).fetchall()
    assert left == 0
    b.close()
