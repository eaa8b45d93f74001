#!/usr/bin/env python
"""Issue 13 A: the whole process group SIGKILLed (what the OOM killer or a container stop
does) at ``--rate`` samples/s, ``--rounds`` times: after each kill the same instance starts
again and its archiver takes the dead rings. Per round: samples the ring had at the last
look before the kill (a lower bound of what was written), what the archive holds of that
ring afterwards, gap rows, and tests/reconcile.py's verdict (duplicates, phantom gaps,
holes). Prints and writes ``bench/results/group-kill-latest.json``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rtoc.app.harness import Instance
from rtoc.paths import instance_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reconcile import check, reconcile  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1e6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="running before each kill")
    args = ap.parse_args()
    cfg = (f'[[drivers]]\nname = "G"\ndriver = "generator"\n[drivers.params]\n'
           f'samplerate = {args.rate}\nblock_rate = 100.0\n')
    name, folder = f"b{uuid.uuid4().hex[:10]}", Path(tempfile.mkdtemp(prefix="rtoc-bench-"))
    rounds = []
    try:
        for r in range(args.rounds + 1):
            inst = Instance.start(cfg, ("G.Sine",), name=name, folder=folder)
            rows = lambda sql, inst=inst: inst.client.request("query", sql=sql)["rows"]  # noqa: E731
            try:
                if r:  # the dead instance's ring is archived before the new one's samples
                    inst.wait_for(lambda rows=rows, r=r: len(rows("select distinct epoch from samples")) > r,
                                  timeout=60)
                    rep = reconcile(rows)
                    epoch = sorted(e for _, e in rep)[r - 1]
                    old = rep[("G.Sine", epoch)]
                    rounds[-1].update(archived=old["archived"], gaps=old["gaps"],
                                      end=old["end"], broken=check(rep))
                    print(rounds[-1], flush=True)
                if r == args.rounds:
                    break
                time.sleep(args.seconds)
                seen = next(s["written"] for s in inst.client.request("signals")["signals"]
                            if s["name"] == "G.Sine")
                os.killpg(inst.proc.pid, signal.SIGKILL)
                inst.proc.wait(10)
                inst.client.close()
                rounds.append({"round": r + 1, "written_seen_before_kill": seen})
            except BaseException:
                inst.cleanup()
                raise
        inst.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(instance_dir(name), ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "group-kill-latest.json").write_text(json.dumps(
        {"rate": args.rate, "seconds": args.seconds, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
