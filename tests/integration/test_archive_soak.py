"""Issue 13 F: the archiver's memory stays flat under a long run at 1 MS/s, and every sample
is archived. A soak (``make soak``): ``RTOC_SOAK_SECONDS`` (default 900) of a generator at
1,000,000 samples/s into the default DuckDB archive, the archiver's RSS read every 10 s; the
RSS of every process of the instance (the supervisor and each child) is printed at the start
and the end, and tests/reconcile.py checks the archive."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from rtoc.app.harness import Instance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reconcile import check, reconcile_file  # noqa: E402

SECONDS = float(os.environ.get("RTOC_SOAK_SECONDS", "900"))
CONFIG = '''
[[drivers]]
name = "G"
driver = "generator"
[drivers.params]
samplerate = 1000000.0
block_rate = 100.0
'''


def _rss_of_every_process(inst: Instance) -> dict[str, float]:
    """MiB per process: the supervisor and each running child, by name."""
    pids = {"supervisor": inst.proc.pid, **{p["name"]: p["pid"] for p in
                                            inst.client.request("status")["processes"] if p["pid"]}}
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = round(psutil.Process(pid).memory_info().rss / (1 << 20), 1)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.soak
@pytest.mark.timeout(SECONDS + 600)
def test_archiver_memory_stays_flat_at_one_million_samples_per_second(tmp_path: Path) -> None:
    name = f"s{os.getpid()}x"
    with Instance.start(CONFIG, ("G.Sine",), name=name, folder=tmp_path) as inst:
        archiver = psutil.Process(inst.pid_of("archiver"))
        rss: list[tuple[float, float]] = []
        every_start = _rss_of_every_process(inst)
        start = time.monotonic()
        while (now := time.monotonic() - start) < SECONDS:
            rss.append((now, archiver.memory_info().rss / (1 << 20)))
            time.sleep(10.0)
        every_end = _rss_of_every_process(inst)
        inst.client.request("stop", driver="G")
        written = next(s["written"] for s in inst.client.request("signals")["signals"]
                       if s["name"] == "G.Sine")

        def archived() -> int:
            return inst.client.request("query", sql="select count(*) from samples")["rows"][0][0]

        inst.wait_for(lambda: archived() >= written, timeout=300, interval=2.0)
        st = inst.client.request("archive_status")
        warm = max(120.0, SECONDS / 5)
        after = [r for t, r in rss if t >= warm]
        print(f"\narchiver RSS (MiB) every 10 s: {[round(r) for _, r in rss]}")
        print(f"RSS (MiB) of every process at the start: {every_start}")
        print(f"RSS (MiB) of every process at the end:   {every_end}")
        print(f"written {written}, archived {archived()}, status {st}")
        assert archived() == written and st["lost"] == 0, st
    # ~10^9 rows: reconciled from the file in bounded memory (count(distinct) through the
    # archiver takes longer than a control request may)
    con = duckdb.connect(str(tmp_path / "data" / "archive" / f"{name}.duckdb"), read_only=True)
    try:
        report = reconcile_file(con)
    finally:
        con.close()
    print(f"reconciliation: {report}")
    assert not check(report, {"G.Sine": written}), check(report, {"G.Sine": written})
    assert after and max(after) <= 1.10 * min(after), (min(after), max(after))
