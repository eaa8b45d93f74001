"""The Remote driver: instance B mirrors instance A's Generator.Sine over rtoc.bin.v1."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from rtoc.app.harness import Instance
from rtoc.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from waiting import wait_until  # noqa: E402

A = '''
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 1000.0
'''

B = '''
[[drivers]]
name = "LabA"
driver = "rtoc.drivers.remote:Remote"
[drivers.params]
url = "{url}"
signals = "Generator.Sine"
reconnect = 0.5
'''


def test_b_mirrors_a() -> None:
    with Instance.start(A, ("Generator.Sine",)) as a:
        url = a.ws_url()
        with Instance.start(B.format(url=url), ("LabA.Generator.Sine",)) as b, \
                Client(url) as ca, Client(b.ws_url()) as cb:
            wait_until(lambda: len(cb.history("LabA.Generator.Sine")[0]) > 1000, 20,
                       "more than 1000 samples mirrored in B", interval=0.2, detail=b.log)
            bt, by = cb.history("LabA.Generator.Sine")
            assert len(bt) > 1000
            at, ay = ca.history("Generator.Sine", float(bt[0]), float(bt[-1]))
            assert np.array_equal(at, bt) and np.array_equal(ay, by)  # sample for sample
            info = {s["name"]: s for s in cb.signals()}["LabA.Generator.Sine"]
            assert info["unit"] == "" and info["owner"] == "LabA"
            stats = b.client.request("call", driver="LabA", function="stats", args=[],
                                     kwargs={})["result"]
            assert stats["connected"] and stats["gaps"] == {"Generator.Sine": 0}
            assert stats["written"] >= len(bt)
