"""The archive reconciliation helper (tests/reconcile.py) finds what it is there to find."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
from rtoc.frontends.archive.duck import create_tables

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reconcile import check, reconcile  # noqa: E402


def test_duplicates_phantom_gaps_and_holes_are_each_found() -> None:
    con = duckdb.connect()
    create_tables(con)
    con.execute("insert into signals values (1, 'D', 'D.A', '', 0), (2, 'D', 'D.B', '', 0)")
    # D.A epoch 5: seq 0..9 once, then 5 twice (a duplicate); gap row 20..24 (lost), hole 10..19
    con.execute("insert into samples select 1, 5, i, i, 0 from range(10) t(i)")
    con.execute("insert into samples values (1, 5, 5, 5, 0)")
    con.execute("insert into samples select 1, 5, i, i, 0 from range(25, 30) t(i)")
    con.execute("insert into gaps values (1, 5, 20, 5, 0, 0, 0)")
    # D.B epoch 7: complete 0..99, but a gap row claims 50..59 lost (a phantom gap)
    con.execute("insert into samples select 2, 7, i, i, 0 from range(100) t(i)")
    con.execute("insert into gaps values (2, 7, 50, 10, 0, 0, 0)")
    report = reconcile(lambda sql: con.execute(sql).fetchall())
    a, b = report[("D.A", 5)], report[("D.B", 7)]
    assert (a["duplicates"], a["gaps"], a["missing"], a["end"]) == (1, 5, 10, 30)
    assert (b["phantom"], b["missing"], b["duplicates"]) == (10, 0, 0)
    broken = check(report, {"D.B": 120})
    assert any("archived twice" in m for m in broken)
    assert any("neither archived nor in a gap row" in m for m in broken)
    assert any("phantom" in m for m in broken)
    assert any("120 written" in m for m in broken)
    con.execute("delete from gaps where signal = 2")
    assert not [m for m in check(reconcile(lambda sql: con.execute(sql).fetchall())) if "D.B" in m]


def test_the_streaming_reconciliation_of_a_file_agrees_with_the_sql_one() -> None:
    from reconcile import reconcile_file

    con = duckdb.connect()
    con.execute("create table signals(id int, name text)")
    con.execute("insert into signals values (1, 'A.x'), (2, 'B.y')")
    con.execute("create table samples(signal int, epoch bigint, seq bigint, t double, y double)")
    con.execute("create table gaps(signal int, epoch bigint, first_seq bigint, count bigint)")
    seqs = [*range(100), 50, 51, *range(120, 200)]  # two twice, 100-119 lost, 95-97 "lost" too
    con.executemany("insert into samples values (?, ?, ?, 0, 0)",
                    [(1, 5, s) for s in seqs] + [(2, 7, s) for s in range(10, 30)])
    con.execute("insert into gaps values (1, 5, 100, 10), (1, 5, 95, 3), (2, 7, 0, 10)")
    slow = reconcile(lambda sql: con.execute(sql).fetchall())
    assert reconcile_file(con, batch=17) == slow
    assert slow[("A.x", 5)] == {"archived": 182, "duplicates": 2, "first": 0, "end": 200,
                                "gaps": 13, "phantom": 3, "missing": 10, "distinct": 180}
