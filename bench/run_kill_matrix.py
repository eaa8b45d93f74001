#!/usr/bin/env python
"""Issue 13: the kill -9 matrix. One instance with a generator at ``--rate`` samples/s, the
default DuckDB archive and the websocket server; each child type (the driver, the engine,
the archiver, the websocket server) is SIGKILLed ``--rounds`` times, one at a time. Per
kill: seconds until the supervisor reports the child ``running`` again (a new pid) and
seconds until data flows again where that child's users see it:

* driver: the signal's ``written`` count grows again;
* engine: a bus subscriber receives a data batch;
* archiver: the archive's row count grows again (asked through the archiver itself);
* websocket: a new websocket client gets a ``getLatest`` answer with a value.

Each kill comes ``--pause`` s after the child's restart (default ``burst_seconds`` + 1), so
the restart policy sees healthy runs; kills closer together are a crash loop that escalates
the back-off and, at ``burst_starts``, gives up on the child, as documented.

At the end the driver is stopped, the archive catches up, and tests/reconcile.py compares
every ring epoch's written samples with archived rows and gap rows. Prints and writes
``bench/results/kill-matrix-latest.json``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
from rtoc.pipeline.bus import DataBatch
from websockets.sync.client import connect

from rtoc.app.harness import Instance
from rtoc.config import SupervisorConfig
from rtoc.errors import RtocError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reconcile import check, reconcile_file  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SIGNAL = "G.Sine"


def _proc(inst: Instance, name: str) -> dict:
    try:
        return next(p for p in inst.client.request("status", timeout=2.0)["processes"] if p["name"] == name)
    except RtocError:
        return {}


def _written(inst: Instance) -> int:
    return next(s["written"] for s in inst.client.request("signals")["signals"] if s["name"] == SIGNAL)


def _rows(inst: Instance) -> int:
    try:
        return inst.client.request("query", sql="select count(*) from samples", timeout=2.0)["rows"][0][0]
    except RtocError:
        return -1


def _poll(predicate, timeout: float = 60.0, interval: float = 0.01) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return time.monotonic() - t0
        time.sleep(interval)
    raise TimeoutError(predicate)


def _ws_latest(url: str) -> bool:
    try:
        with connect(url.replace("http", "ws", 1), open_timeout=1, close_timeout=1) as ws:
            ws.send(json.dumps({"getLatest": [SIGNAL]}))
            reply = json.loads(ws.recv(timeout=1))
            return bool(reply.get("latest", {}).get(SIGNAL))
    except (OSError, TimeoutError, ValueError, Exception):  # noqa: BLE001 - any failure means "not yet"
        return False


def _flowing(inst: Instance, child: str, t_kill: float) -> float:
    """Seconds from ``t_kill`` until data flows again where ``child``'s users see it."""
    if child == "engine":
        with inst.subscriber([SIGNAL]) as sub:
            while time.monotonic() - t_kill < 60:
                if isinstance(sub.recv(timeout=0.5), DataBatch):
                    return time.monotonic() - t_kill
        raise TimeoutError("no data batch after the engine's restart")
    if child == "archiver":
        _poll(lambda: _rows(inst) >= 0, interval=0.05)  # the new archiver answers
        before = _rows(inst)
        _poll(lambda: _rows(inst) > before, interval=0.05)
    elif child == "websocket":
        url = inst.ws_url()
        _poll(lambda: _ws_latest(url), interval=0.05)
    else:
        before = _written(inst)
        _poll(lambda: _written(inst) > before)
    return time.monotonic() - t_kill


def kill_once(inst: Instance, child: str) -> dict:
    old = _proc(inst, child)["pid"]
    t_kill = time.monotonic()
    os.kill(old, signal.SIGKILL)
    _poll(lambda: (p := _proc(inst, child)).get("pid") not in (None, old) and p["state"] == "running")
    restart = time.monotonic() - t_kill
    return {"child": child, "restart_s": round(restart, 3), "flowing_s": round(_flowing(inst, child, t_kill), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1e6)
    ap.add_argument("--rounds", type=int, default=3, help="kills per child type")
    # a kill within burst_seconds of the child's start counts toward giving up on it (a crash
    # loop, rtoc/app/restart.py); each kill here comes after a healthy run
    ap.add_argument("--pause", type=float, default=SupervisorConfig.burst_seconds + 1.0,
                    help="seconds of calm before each kill (default: burst_seconds + 1)")
    ap.add_argument("--children", default="G,engine,archiver,websocket")
    args = ap.parse_args()
    cfg = (f'[[drivers]]\nname = "G"\ndriver = "generator"\n[drivers.params]\n'
           f'samplerate = {args.rate}\nblock_rate = 100.0\n')
    kills = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the instance is cleaned up
    folder = Path(tempfile.mkdtemp(prefix="rtoc-bench-"))
    name = f"k{uuid.uuid4().hex[:10]}"
    try:
        with Instance.start(cfg, (SIGNAL,), name=name, folder=folder) as inst:
            inst.ws_url()
            for child in args.children.split(","):
                for _ in range(args.rounds):
                    time.sleep(args.pause)
                    kills.append(kill_once(inst, child))
                    print(kills[-1], flush=True)
            time.sleep(args.pause)
            inst.client.request("stop", driver="G")
            written = _written(inst)
            # count(*) is cheap; the reconciliation (count distinct over ~10^9 rows) takes
            # longer than a control request may, so it reads the file after the stop
            inst.wait_for(lambda: _rows(inst) >= written, timeout=300, interval=1.0)
            status = inst.client.request("archive_status")
        RESULTS.mkdir(exist_ok=True)  # the kills' figures first: the reconciliation is long
        (RESULTS / "kill-matrix-latest.json").write_text(json.dumps({"kills": kills}, indent=1))
        con = duckdb.connect(str(folder / "data" / "archive" / f"{name}.duckdb"), read_only=True)
        try:
            report = reconcile_file(con)
        finally:
            con.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary = {}
    for child in args.children.split(","):
        mine = [k for k in kills if k["child"] == child]
        summary[child] = {f"{key}_{stat}": round(fn([k[key] for k in mine]), 3)
                          for key in ("restart_s", "flowing_s")
                          for stat, fn in (("median", statistics.median), ("max", max))}
    epochs = {f"{n}@{e}": r for (n, e), r in report.items()}
    out = {"rate": args.rate, "rounds": args.rounds, "kills": kills, "summary": summary,
           "written_last_epoch": written, "epochs": epochs, "broken": check(report, {SIGNAL: written}),
           "archive_status": {k: status.get(k) for k in ("lost", "gaps", "backfilled")}}
    print(json.dumps({k: out[k] for k in ("summary", "epochs", "broken", "archive_status")}, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kill-matrix-latest.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
