#!/usr/bin/env python
"""The websocket attack suite (issue 12) for ``--seconds``: what a well-behaved client feels
while every attack runs against one instance.

A real ``rtoc run`` configured as an exposed server (tests/integration/ws_attacks.py's
``config``: users with roles, anonymous ``read``, an Origin allow-list, per-address cap,
ring and rule budgets, a Generator at 20 kHz). A witness client (a process of its own,
anonymous, subscribed to ``Generator.Sine``) sends ``getLatest`` every 50 ms, open loop,
and records each round trip and each push's arrival: ``--baseline`` s alone, then while the
attack mix of tests/integration/test_ws_attack_suite.py (huge subscription names, heavy
getSignal, clients that never read or leave with a full queue, 1 MiB messages, many
connections from one address, big binary frames before a login, DNS rebinding, a login
throttle race, ring-budget and rule-budget attacks, NaN parameters) runs again and again,
all attacks of a round at once, for ``--seconds`` (one round at least).

Prints and writes ``bench/results/ws-attack-suite-latest.json``: the witness's round trip
p50/p99/max before and during, its longest gap between pushes, the event loop's lag
quantiles from /metrics before and after, the websocket process's RSS (base, peak, after;
pid from ``status``, /proc every 50 ms), CPU per process during the attacks, and what each
attack got back (first and last round). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from ws_attacks import ATTACKS, config, run_suite, summary  # noqa: E402

from rtoc.app.harness import Instance  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="attack for this long (rounds)")
    ap.add_argument("--baseline", type=float, default=3.0, help="witness alone before (s)")
    ap.add_argument("--only", default="", metavar="A,B",
                    help=f"a subset of the attacks ({', '.join(ATTACKS)})")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment of the instance, e.g. --env MALLOC_ARENA_MAX=2")
    args = ap.parse_args()
    only = [a for a in args.only.split(",") if a] or None
    unknown = sorted(set(only or ()) - set(ATTACKS))
    if unknown:
        ap.error(f"unknown attacks {unknown}")
    env = dict(kv.split("=", 1) for kv in args.env)
    t0 = time.monotonic()
    with Instance.start(config(), ("Generator.Sine", "Aux.Sine"), env=env or None) as inst:
        s = run_suite(inst, args.seconds, args.baseline, only)
        traceback = "Traceback" in inst.log()
    s.update({"seconds_asked": args.seconds, "baseline_seconds": args.baseline, "env": env,
              "traceback_in_log": traceback, "wall_seconds": round(time.monotonic() - t0, 1)})
    print(summary(s))
    print(f"traceback in the instance's log: {traceback}; {s['wall_seconds']} s in all")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "ws-attack-suite-latest.json"
    out.write_text(json.dumps(s, indent=1, default=str))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
