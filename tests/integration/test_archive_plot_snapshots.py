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
