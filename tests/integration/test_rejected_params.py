"""Bad parameter values are refused when set, and a persisted value that stops a driver from
starting is set aside (reported in the log, an event and the driver's description)."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from rtoc.app.harness import Instance
from rtoc.errors import ParameterError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HERE = Path(__file__).parent
ENV = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
CONFIG = '''
[[drivers]]
name = "G"
driver = "generator"
[[drivers]]
name = "P"
driver = "picky_driver:Picky"
'''


def _drivers(inst: Instance) -> dict:
    return {d["name"]: d for d in inst.client.request("drivers")["drivers"]}


def _value(inst: Instance, driver: str, param: str):
    return {p["name"]: p["value"] for p in _drivers(inst)[driver]["parameters"]}[param]


def test_nan_and_bad_names_are_refused_when_set() -> None:
    with Instance.start(CONFIG, ready_signals=("G.Sine", "P.Limit"), env=ENV) as inst:
        c = inst.client
        inst.wait_for(lambda: all(d["parameters"] for d in _drivers(inst).values()))
        for param, value in (("samplerate", math.nan), ("samplerate", math.inf),
                             ("frequency", -math.inf), ("signal", "a/b"), ("signal", " ")):
            with pytest.raises(ParameterError, match=param):
                c.request("set", driver="G", param=param, value=value)
        assert _value(inst, "G", "samplerate") == 50.0 and _value(inst, "G", "signal") == ""
        assert not (inst.folder / "data" / "params" / "G.json").exists()  # nothing persisted
        assert c.request("set", driver="G", param="signal", value="Wave")["value"] == "Wave"
        inst.wait_for(lambda: any(s["name"] == "G.Wave" for s in c.request("signals")["signals"]))


def test_persisted_values_that_break_the_start_are_set_aside() -> None:
    folder = Path(tempfile.mkdtemp(prefix="rtoc-test-"))
    try:
        params = folder / "data" / "params"
        params.mkdir(parents=True)
        # what an older RTOC accepted: a name with '/', a NaN rate; and a value the driver's
        # setup() refuses although its type is right
        (params / "G.json").write_text(json.dumps({
            "signal": {"value": "a/b", "config": None}, "samplerate": {"value": math.nan, "config": None},
            "amplitude": {"value": 2.0, "config": None}}))
        (params / "P.json").write_text(json.dumps({"limit": {"value": 99.0, "config": None}}))
        with Instance.start(CONFIG, ready_signals=("G.Sine", "P.Limit"), env=ENV, folder=folder) as inst:
            # a driver describes itself just after its first samples: wait for that
            inst.wait_for(lambda: all(d["parameters"] for d in _drivers(inst).values()))
            procs = {p["name"]: p for p in inst.client.request("status")["processes"]}
            assert procs["G"]["restarts"] == 0 and procs["P"]["restarts"] == 0  # no crash loop
            drivers = _drivers(inst)
            assert _value(inst, "P", "limit") == 1.0 and _value(inst, "G", "samplerate") == 50.0
            assert _value(inst, "G", "amplitude") == 2.0  # a good value stays
            rejected = {(d, p["name"]): p["rejected"] for d in "GP" for p in drivers[d]["parameters"]
                        if "rejected" in p}
            assert set(rejected) == {("G", "signal"), ("G", "samplerate"), ("P", "limit")}
            assert "refuses limit" in rejected["P", "limit"]["reason"]
            assert rejected["G", "signal"]["value"] == "a/b"
            # `rtoc status` shows them too (the status op's processes, and the CLI's table)
            procs = {p["name"]: p for p in inst.client.request("status")["processes"]}
            assert set(procs["G"]["rejected"]) == {"signal", "samplerate"} and set(procs["P"]["rejected"]) == {"limit"}
            shown = inst.cli("status")
            assert "set aside" in shown and "refuses limit" in shown and "'a/b'" in shown
            assert "limit" not in json.loads((params / "P.json").read_text())
            assert json.loads((params / "P.rejected.json").read_text())["limit"]["value"] == 99.0
            g = json.loads((params / "G.json").read_text())
            assert "signal" not in g and "samplerate" not in g and g["amplitude"]["value"] == 2.0
            events = inst.wait_for(lambda: len(e := inst.client.request(
                "events", text="set aside")["events"]) >= 3 and e)
            assert {(e["device"], e["priority"]) for e in events} == {("G", 2), ("P", 2)}
            assert "set aside" in inst.log()
            assert inst.client.request("set", driver="P", param="limit", value=5)["value"] == 5.0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
