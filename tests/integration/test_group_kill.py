"""Issue 13 A: the whole process group killed at once (the OOM killer, ``systemctl kill -s
KILL``, a container stop). The rings still held what the archiver had not archived, and the
next ``rtoc run`` removed them ("removed 12 leftover file(s)"): 0.65-1.05 s of a 1 MS/s
signal lost per round, with no gap row and no event. Now the next start's archiver takes
them first, and records the downtime."""

from __future__ import annotations

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reconcile import check, reconcile  # noqa: E402

CONFIG = '''
[[drivers]]
name = "G"
driver = "generator"
[drivers.params]
samplerate = 10000.0
block_rate = 100.0
[archive]
flush_interval = 2.0
'''


def _written(inst: Instance) -> int:
    return next(s["written"] for s in inst.client.request("signals")["signals"] if s["name"] == "G.Sine")


def test_a_group_kill_loses_nothing_the_rings_held() -> None:
    name = f"t{uuid.uuid4().hex[:10]}"
    folder = Path(tempfile.mkdtemp(prefix="rtoc-test-"))
    try:
        first = Instance.start(CONFIG, ("G.Sine",), name=name, folder=folder)
        try:
            first.wait_for(lambda: _written(first) > 30_000, timeout=30)
            time.sleep(0.5)
            seen = _written(first)  # at least this much was in the ring at the kill
            os.killpg(first.proc.pid, signal.SIGKILL)
            first.proc.wait(10)
            first.client.close()
        except BaseException:
            first.cleanup()
            raise
        assert any(instance_dir(name).glob("*.ring"))  # what the kill left behind
        with Instance.start(CONFIG, ("G.Sine",), name=name, folder=folder) as again:
            def rows(sql: str) -> list:
                return again.client.request("query", sql=sql)["rows"]

            epochs = again.wait_for(lambda: len(r := rows(
                "select epoch, count(*), min(seq), max(seq) from samples group by epoch order by epoch")) >= 2 and r,
                timeout=30)
            old_epoch, count, lo, hi = epochs[0]
            # every sample of the old ring up to the kill is archived: none lost, no gap
            assert lo == 0 and hi + 1 == count and count >= seen, (epochs, seen)
            assert rows(f"select count(*) from gaps where epoch = {old_epoch}")[0][0] == 0
            report = reconcile(rows)
            assert not check(report), check(report)  # nothing twice, missing or phantom
            down = rows("select value, extra from events where id = 'rtoc.instance_down'")
            assert len(down) == 1 and float(down[0][0]) > 0, down  # the downtime, in the archive
            assert "ring(s) of a dead instance" in again.log()
            assert not list(instance_dir(name).glob("dead-*"))  # removed once archived
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(instance_dir(name), ignore_errors=True)
