"""Reconciliation of an instance's archive (issue 13): per signal and ring epoch, what was
archived against what was written, and what the gap rows say.

``reconcile(query)`` takes a function running one SQL statement on the archive (the control
plane's ``query`` op: ``lambda sql: inst.client.request("query", sql=sql)["rows"]``) and
returns, per ``(name, epoch)``: ``archived`` (sample rows), ``duplicates`` (rows past one per
seq), ``first``/``end`` (seq range), ``gaps`` (samples the gap rows declare lost),
``phantom`` (declared lost but archived), ``missing`` (neither archived nor declared lost,
within ``0 .. end``). ``check(report, written)`` lists every broken promise: each ring
complete from seq 0 up to what was ``written`` (name -> samples, for the current epoch of
each name, when known), nothing twice, no phantom gap, nothing missing without a gap row.
"""

from __future__ import annotations

from collections.abc import Callable

Key = tuple[str, int]


def reconcile(query: Callable[[str], list]) -> dict[Key, dict[str, int]]:
    out: dict[Key, dict[str, int]] = {}
    for name, epoch, rows, distinct, first, last in query(
            "select s.name, x.epoch, count(*), count(distinct x.seq), min(x.seq), max(x.seq) "
            "from samples x join signals s on s.id = x.signal group by s.name, x.epoch"):
        out[(name, int(epoch))] = {"archived": int(rows), "duplicates": int(rows) - int(distinct),
                                   "first": int(first), "end": int(last) + 1, "gaps": 0,
                                   "phantom": 0, "missing": 0, "distinct": int(distinct)}
    for name, epoch, lost in query(
            "select s.name, g.epoch, sum(g.count) from gaps g join signals s on s.id = g.signal "
            "group by s.name, g.epoch"):
        r = out.setdefault((name, int(epoch)), {"archived": 0, "duplicates": 0, "first": 0, "end": 0,
                                                "gaps": 0, "phantom": 0, "missing": 0, "distinct": 0})
        r["gaps"] = int(lost)
    for name, epoch, phantom in query(
            "select s.name, g.epoch, count(distinct x.seq) from gaps g "
            "join samples x on x.signal = g.signal and x.epoch = g.epoch "
            "and x.seq >= g.first_seq and x.seq < g.first_seq + g.count "
            "join signals s on s.id = g.signal group by s.name, g.epoch"):
        out[(name, int(epoch))]["phantom"] = int(phantom)
    for r in out.values():
        r["missing"] = max(0, r["end"] - r["distinct"] - (r["gaps"] - r["phantom"]))
    return out


def check(report: dict[Key, dict[str, int]], written: dict[str, int] | None = None) -> list[str]:
    broken = []
    for (name, epoch), r in sorted(report.items()):
        where = f"{name} (epoch {epoch})"
        if r["duplicates"]:
            broken.append(f"{where}: {r['duplicates']} samples archived twice")
        if r["phantom"]:
            broken.append(f"{where}: {r['phantom']} samples declared lost are archived (phantom gaps)")
        if r["missing"]:
            broken.append(f"{where}: {r['missing']} samples neither archived nor in a gap row")
        if r["archived"] and r["first"] != 0 and not r["gaps"]:
            broken.append(f"{where}: starts at seq {r['first']} without a gap row")
    for name, n in (written or {}).items():
        newest = max((e for (nm, e) in report if nm == name), default=None)
        r = report.get((name, newest)) if newest is not None else None
        if r is None or r["end"] < n:
            broken.append(f"{name}: {n} written, archive ends at {r['end'] if r else 0}")
    return broken


def reconcile_file(con, batch: int = 1 << 22) -> dict[Key, dict[str, int]]:
    """:func:`reconcile` of a large DuckDB archive through ``con`` (a duckdb connection),
    in bounded memory: each ring epoch's seqs are streamed into a bitmap (one byte per seq)
    instead of ``count(distinct)``, whose hash table needs more than the machine has at
    ~10^9 rows (it failed with "Out of Memory" at 600 M)."""
    import numpy as np

    out: dict[Key, dict[str, int]] = {}
    keys = con.execute("select s.id, s.name, x.epoch, count(*), min(x.seq), max(x.seq) from samples x "
                       "join signals s on s.id = x.signal group by s.id, s.name, x.epoch").fetchall()
    for sig, name, epoch, rows, first, last in keys:
        seen = np.zeros(int(last) + 1, np.uint8)
        dup = 0
        reader = con.sql(f"select seq from samples where signal = {int(sig)} "
                         f"and epoch = {int(epoch)}").to_arrow_reader(batch)
        for rb in reader:
            seq = rb.column(0).to_numpy()
            dup += int(np.count_nonzero(seen[seq]))
            uniq, counts = np.unique(seq, return_counts=True)  # repeats inside one batch
            dup += int((counts - 1).sum())
            seen[uniq] = 1
        gaps = con.execute("select first_seq, count from gaps where signal = ? and epoch = ?",
                           [sig, epoch]).fetchall()
        declared = sum(int(c) for _, c in gaps)
        phantom = sum(int(np.count_nonzero(seen[int(f):int(f) + int(c)])) for f, c in gaps)
        distinct = int(np.count_nonzero(seen))
        out[(name, int(epoch))] = {"archived": int(rows), "duplicates": dup, "first": int(first),
                                   "end": int(last) + 1, "gaps": declared, "phantom": phantom,
                                   "distinct": distinct,
                                   "missing": max(0, int(last) + 1 - distinct - (declared - phantom))}
    return out
