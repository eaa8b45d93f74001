"""A plugin's ``plot()`` on a live instance is archived as snapshots, not samples: a scope
at 10 Hz with 10,000 points a plot wrote 100,000 samples/s into the archive before; now one
snapshot per ``snapshot_interval``, the latest, readable with ``archive_snapshots``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from rtoc.app.harness import Instance

PLUGIN = '''
import numpy as np
from rtoc import LoggerPlugin


class Plugin(LoggerPlugin):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setDeviceName("Scope")
        self.k = 0
        self.setPerpetualTimer(self._tick, samplerate=10)
        self.start()

    def _tick(self):
        self.k += 1
        x = np.arange(10_000, dtype=float)
        self.plot(x, np.full(10_000, float(self.k)), sname="Trace", unit="V")
        self.stream(self.k, snames="Count")
'''


@pytest.mark.timeout(120)
def test_a_10_hz_scope_is_archived_as_one_snapshot_a_second_not_as_samples(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "scope.py").write_text(PLUGIN)
    config = '''
[[drivers]]
name = "Scope"
driver = "scope:Plugin"

[archive]
flush_interval = 0.5
snapshot_interval = 1.0
'''
    with Instance.start(config, ("Scope.Count",), folder=tmp_path) as inst:
        time.sleep(5.0)
        c = inst.client
        archived = {s["name"]: s for s in c.request("archive_signals")["signals"]}
        assert archived["Scope.Count"]["samples"] >= 30  # streamed: samples, as before
        assert archived.get("Scope.Trace", {}).get("samples", 0) == 0  # plotted: none
        snaps = c.request("archive_snapshots", signal="Scope.Trace", limit=100)["snapshots"]
        assert 3 <= len(snaps) <= 8, len(snaps)  # about one a second, not ten
        newest = snaps[0]
        y = np.frombuffer(newest["y"], np.float64)
        assert newest["count"] == 10_000 and len(y) == 10_000 and np.all(y == y[0])  # one whole plot
        assert np.array_equal(np.frombuffer(newest["t"], np.float64), np.arange(10_000.0))
        times = [s["time"] for s in snaps]
        assert times == sorted(times, reverse=True) and min(np.diff(times[::-1])) >= 0.9
        out = tmp_path / "trace.csv"  # `rtoc snapshots` writes them out, one curve each
        assert "2 snapshot(s) of Scope.Trace, 20000 points" in inst.cli("snapshots", "Scope.Trace", "--limit", "2",
                                                                        "-o", str(out))
        rows = out.read_text().splitlines()
        assert rows[0] == "signal,t,y" and len(rows) == 20_001 and rows[1].startswith("Scope.Trace@")


GROWING = '''
import numpy as np
from rtoc import LoggerPlugin


class Plugin(LoggerPlugin):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setDeviceName("Curve")
        self.k = 0
        self.setPerpetualTimer(self._tick, samplerate=20)
        self.start()

    def _tick(self):
        if self.k == 0:
            self.plot(np.arange(1000.0), np.zeros(1000), sname="XY")
        else:  # RTOC's way of growing a curve
            self.plot(990.0 + 10 * self.k + np.arange(10.0), np.full(10, float(self.k)), sname="XY", hold="on")
        self.k += 1
'''


@pytest.mark.timeout(120)
def test_a_curve_grown_with_hold_on_is_archived_whole_after_the_archiver_is_killed(tmp_path: Path) -> None:
    """Review: a restarted archiver began the snapshot at its resume point, so the plot on
    show (1000 points grown by 10 a tick) was archived as the appended tail only."""
    import os
    import signal

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "growing.py").write_text(GROWING)
    config = '''
[[drivers]]
name = "Curve"
driver = "growing:Plugin"

[archive]
flush_interval = 0.5
snapshot_interval = 0.5
'''
    with Instance.start(config, (), folder=tmp_path) as inst:
        c = inst.client
        inst.wait_for(lambda: c.request("archive_snapshots", signal="Curve.XY")["snapshots"], timeout=20)
        old = inst.pid_of("archiver")
        os.kill(old, signal.SIGKILL)  # no final drain: the next archiver resumes from the archive
        inst.wait_for(lambda: inst.pid_of("archiver") not in (0, old), timeout=30)
        time.sleep(3.0)
        newest = inst.wait_for(lambda: [s for s in c.request("archive_snapshots", signal="Curve.XY")["snapshots"]
                                        if s["time"] > 0], timeout=20)[0]
        t = np.frombuffer(newest["t"], np.float64)
        assert newest["first_seq"] == 0 and t[0] == 0.0  # from where the plot began
        assert newest["count"] == len(t) > 1000 and np.array_equal(np.diff(t), np.ones(len(t) - 1))
