"""``rtoc export``, ``rtoc import`` and ``rtoc query``: the archive from the shell.

All three talk to the running instance's archiver over the control plane (only the
archiver opens the database for writing). Exports go window by window, so memory stays
bounded and a progress bar can show how far it got.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from rtoc.app.cli_events import since_arg
from rtoc.errors import ImportFileError, RtocError

WINDOW = 3600.0  # s of data per export request (shrunk automatically when too dense)


def _time_arg(text: str | None, default: float) -> float:
    if text is None:
        return default
    if text == "now":
        return time.time()
    return since_arg(text)


def _progress(done: float, total: float, samples: int) -> None:
    if not sys.stderr.isatty() or total <= 0:
        return
    frac = min(1.0, max(0.0, done / total))
    bar = "#" * int(frac * 30)
    sys.stderr.write(f"\r[{bar:<30}] {frac * 100:5.1f}%  {samples} samples")
    sys.stderr.flush()


def cmd_export(args, client) -> int:
    """Samples of each signal in [from, to] from the archive, as csv/parquet/json."""
    t_from = _time_arg(args.t_from, -math.inf)
    t_to = _time_arg(args.t_to, time.time())
    out = Path(args.output)
    fmt = args.format or {".parquet": "parquet", ".json": "json"}.get(out.suffix, "csv")
    with client as c:
        if math.isinf(t_from):  # from the beginning: ask the archive where that is
            sigs = {s["name"]: s for s in c.request("archive_signals")["signals"]}
            starts = [sigs[s]["t_first"] for s in args.signals if s in sigs and sigs[s].get("t_first") is not None]
            t_from = min(starts) if starts else t_to
        writer = _Writer(out, fmt)
        total = 0
        try:
            for name in args.signals:
                total += _export_one(c, writer, name, t_from, t_to, len(args.signals))
        finally:
            writer.close()
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    print(f"{total} samples of {len(args.signals)} signal(s) written to {out}")
    return 0


def cmd_snapshots(args, client) -> int:
    """The archived snapshots of a plotted signal, newest first: rows of (snapshot time, x, y)
    written as signal ``<name>@<time shown, unix s>``, so each keeps its own curve."""
    t_from = _time_arg(args.t_from, -math.inf)
    t_to = _time_arg(args.t_to, time.time())
    out = Path(args.output)
    fmt = args.format or {".parquet": "parquet", ".json": "json"}.get(out.suffix, "csv")
    with client as c:
        found = c.request("archive_snapshots", signal=args.signal, limit=args.limit, timeout=60.0,
                          **{"from": t_from, "to": t_to})["snapshots"]
    writer = _Writer(out, fmt)
    points = 0
    try:
        for snap in found:
            t, y = np.frombuffer(snap["t"], "<f8"), np.frombuffer(snap["y"], "<f8")
            writer.write(f"{args.signal}@{snap['time']!r}", t, y)
            points += len(t)
    finally:
        writer.close()
    print(f"{len(found)} snapshot(s) of {args.signal}, {points} points, written to {out}")
    return 0


def _export_one(c, writer, name: str, t_from: float, t_to: float, count: int) -> int:
    window, t0, total = WINDOW, t_from, 0
    while t0 <= t_to:
        t1 = min(t_to, t0 + window)
        try:
            r = c.request("history", signal=name, source="archive", timeout=60.0,
                          **{"from": t0, "to": t1})
        except RtocError as exc:
            if "samples in this range" in str(exc) and window > 1e-3:
                window /= 8  # too dense for one reply: smaller windows
                continue
            raise
        t, y = np.frombuffer(r["t"], "<f8"), np.frombuffer(r["y"], "<f8")
        t, y = t[t < t1] if t1 < t_to else t, y[t < t1] if t1 < t_to else y  # [t0, t1) but the last
        writer.write(name, t, y)
        total += len(t)
        _progress(t1 - t_from, t_to - t_from, total)
        if t1 >= t_to:
            break
        t0 = t1
    return total


class _Writer:
    """csv (signal,t,y rows), parquet (columns signal, t, y) or json lines."""

    def __init__(self, path: Path, fmt: str):
        self.fmt = fmt
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.pa = pa
            self.schema = pa.schema([("signal", pa.string()), ("t", pa.float64()), ("y", pa.float64())])
            self.pq = pq.ParquetWriter(str(path), self.schema)
        elif fmt in ("csv", "json"):
            self.f = open(path, "w", newline="")
            if fmt == "csv":
                self.f.write("signal,t,y\n")
        else:
            raise RtocError(f"unknown format {fmt!r} (csv, parquet, json)")

    def write(self, name: str, t: np.ndarray, y: np.ndarray) -> None:
        if not len(t):
            return
        if self.fmt == "parquet":
            self.pq.write_table(self.pa.table({"signal": [name] * len(t), "t": t, "y": y}, schema=self.schema))
        elif self.fmt == "csv":
            self.f.writelines(f"{name},{ti!r},{yi!r}\n" for ti, yi in zip(t.tolist(), y.tolist(), strict=True))
        else:
            self.f.writelines(json.dumps({"signal": name, "t": ti, "y": yi}) + "\n"
                              for ti, yi in zip(t.tolist(), y.tolist(), strict=True))

    def close(self) -> None:
        if self.fmt == "parquet":
            self.pq.close()
        else:
            self.f.close()


def read_csv(path: Path, time_column: str, columns: dict[str, str], delimiter: str = ","
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(t, {signal: y})`` from a CSV file with a header row; ``columns`` maps CSV column
    -> signal name. Raises ImportFileError naming the line and column of the first bad value."""
    with open(path, newline="") as f:
        rows = csv.reader(f, delimiter=delimiter)
        try:
            header = next(rows)
        except StopIteration:
            raise ImportFileError(f"{path}: the file is empty") from None
        missing = [c for c in [time_column, *columns] if c not in header]
        if missing:
            raise ImportFileError(f"{path}:1: no column {missing[0]!r} (columns: {', '.join(header)})")
        ti = header.index(time_column)
        idx = {sig: header.index(col) for col, sig in columns.items()}
        t: list[float] = []
        ys: dict[str, list[float]] = {sig: [] for sig in idx}
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ImportFileError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
            t.append(_number(row[ti], path, line, time_column))
            for sig, i in idx.items():
                ys[sig].append(_number(row[i], path, line, header[i]))
    return np.array(t, np.float64), {k: np.array(v, np.float64) for k, v in ys.items()}


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ImportFileError(f"{path}:{line}: column {column!r}: {text!r} is not a number") from None


def cmd_import(args, client) -> int:
    mapping = {}
    for item in args.columns:
        col, _, sig = item.partition(":")
        mapping[col] = sig or col
    t, ys = read_csv(Path(args.file), args.time_column, mapping, args.delimiter)
    with client as c:
        for sig, y in ys.items():
            name = f"{args.device}.{sig}"
            for i in range(0, max(len(t), 1), 100_000):
                c.request("import", signal=name, unit=args.unit or "", timeout=60.0,
                          t=np.ascontiguousarray(t[i:i + 100_000]).tobytes(),
                          y=np.ascontiguousarray(y[i:i + 100_000]).tobytes())
            print(f"{name}: {len(t)} samples imported")
    return 0


def cmd_query(args, client) -> int:
    with client as c:
        r = c.request("query", sql=args.sql, timeout=60.0)
    if args.json:
        print(json.dumps({"columns": r["columns"], "rows": r["rows"]}, default=str))
        return 0
    w = csv.writer(sys.stdout)
    w.writerow(r["columns"])
    w.writerows(r["rows"])
    return 0


def add_parsers(sub, client_of) -> None:
    e = sub.add_parser("export", help="archived samples to csv/parquet/json")
    e.add_argument("signals", nargs="+", metavar="SIGNAL")
    e.add_argument("--from", dest="t_from", help="-1h, 30m, 90s or unix seconds (default: the start)")
    e.add_argument("--to", dest="t_to", help="as --from, or now (default)")
    e.add_argument("--format", choices=("csv", "parquet", "json"), help="default: from the file name")
    e.add_argument("-o", "--output", required=True)
    e.set_defaults(fn=lambda a: cmd_export(a, client_of(a)))
    n = sub.add_parser("snapshots", help="what a driver's plot() showed (archived snapshots) to csv/parquet/json")
    n.add_argument("signal")
    n.add_argument("--from", dest="t_from", help="-1h, 30m, 90s or unix seconds (default: the start)")
    n.add_argument("--to", dest="t_to", help="as --from, or now (default)")
    n.add_argument("--limit", type=int, default=1, help="the newest this many (default 1, at most 100)")
    n.add_argument("--format", choices=("csv", "parquet", "json"), help="default: from the file name")
    n.add_argument("-o", "--output", required=True)
    n.set_defaults(fn=lambda a: cmd_snapshots(a, client_of(a)))
    i = sub.add_parser("import", help="a CSV file into the archive as a device")
    i.add_argument("file")
    i.add_argument("--device", required=True)
    i.add_argument("--time-column", default="t", help="the column of unix seconds (default t)")
    i.add_argument("--columns", nargs="+", required=True, metavar="COL[:SIGNAL]",
                   help="CSV columns to import, optionally renamed")
    i.add_argument("--unit", default="")
    i.add_argument("--delimiter", default=",")
    i.set_defaults(fn=lambda a: cmd_import(a, client_of(a)))
    q = sub.add_parser("query", help="read-only SQL against the DuckDB archive")
    q.add_argument("sql")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=lambda a: cmd_query(a, client_of(a)))
