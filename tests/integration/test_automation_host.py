"""The automation process against a real instance: timers call drivers, events answer events."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from rtoc.pipeline.bus import Subscriber

from rtoc.app.harness import Instance
from rtoc.model import Event

BEACON = '''
from rtoc import Driver, Parameter


class Beacon(Driver):
    """Raises an event with id "beacon" at every tick (and streams the count)."""

    samplerate = Parameter(5.0, "Hz")

    def setup(self):
        self.n = 0

    def poll(self):
        self.n += 1
        self.stream(float(self.n), "Count")
        self.event(f"beacon {self.n}", id="beacon", value=float(self.n))
'''

CONFIG = '''
[[drivers]]
name = "Generator"
driver = "generator"
[[drivers]]
name = "Beacon"
driver = "beacon_driver:Beacon"
'''

AUTOMATION = '''
from rtoc.events.automation import every, on_event

ticks = 0


@every(0.2)
def speed_up(rtoc):
    global ticks
    ticks += 1
    rtoc.call("Generator", "set_frequency", 2.0 + ticks)
    if ticks == 1:
        rtoc.set("Generator", "amplitude", 3)
        rtoc.notify("automation started")


@on_event("beacon")
def broken(event, rtoc):
    raise RuntimeError("handler broke on purpose")


@on_event("beacon")
def answer(event, rtoc):
    rtoc.event(f"seen {event.text}", id="beacon_seen", device="Auto",
               value=rtoc.latest("Generator.Sine"))
'''

# the automation process as the supervisor starts it: main(ChildSpec) with the instance's
# endpoints and a config whose [automation] folder is the test's
HOST = """
import json, sys
from rtoc.config import AutomationConfig, Config
from rtoc.frontends.automation.host import main
from rtoc.pipeline.child import ChildSpec
a = json.loads(sys.argv[1])
main(ChildSpec("automation", a["parent_pid"], a["endpoints"],
               Config(automation=AutomationConfig(folder=a["folder"]))))
"""


@pytest.fixture(scope="module")
def inst(tmp_path_factory) -> Iterator[Instance]:
    drivers = tmp_path_factory.mktemp("drivers")
    (drivers / "beacon_driver.py").write_text(BEACON)
    env = {"PYTHONPATH": os.pathsep.join([str(drivers), os.environ.get("PYTHONPATH", "")])}
    with Instance.start(CONFIG, ready_signals=("Generator.Sine", "Beacon.Count"), env=env) as i:
        yield i


@contextlib.contextmanager
def running(args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """A process that is reaped whatever happens (killed if it did not stop)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == "zombie"


def _param(inst: Instance, driver: str, name: str):
    d = next(d for d in inst.client.request("drivers")["drivers"] if d["name"] == driver)
    return next(p["value"] for p in d["parameters"] if p["name"] == name)


def _next_event(sub: Subscriber, event_id: str, timeout: float = 10.0) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = sub.recv(0.2)
        if isinstance(msg, Event) and msg.id == event_id:
            return msg
    raise TimeoutError(f"no event {event_id!r} within {timeout} s")


def _stopped(proc: subprocess.Popen, sig: int, log: Path) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(6)
    except subprocess.TimeoutExpired:
        pytest.fail(f"automation did not stop on {signal.Signals(sig).name}:\n{log.read_text()}")


def test_host_calls_drivers_on_timers_and_answers_driver_events(inst: Instance, tmp_path: Path) -> None:
    folder = tmp_path / "automations"
    folder.mkdir()
    (folder / "auto.py").write_text(AUTOMATION)
    (folder / "broken.py").write_text("raise RuntimeError('file broke on purpose')\n")
    spec = {"parent_pid": os.getpid(), "endpoints": inst.endpoints, "folder": str(folder)}
    log = tmp_path / "automation.log"
    with inst.subscriber([], events=True) as sub, \
            running([sys.executable, "-c", HOST, json.dumps(spec)], log) as proc:
        # (b) a driver's event is answered with an event of the automation's own
        seen = _next_event(sub, "beacon_seen")
        assert seen.text.startswith("seen beacon ") and seen.device == "Auto"
        assert seen.extra == {"source": "automation:auto.py"}
        # latest() has the generator's value once data has arrived
        while not isinstance(seen.value, float):
            seen = _next_event(sub, "beacon_seen")
        assert abs(seen.value) <= 3.0 + 1e-9
        # (a) the timer calls Generator.set_frequency through the control plane, repeatedly
        first = inst.wait_for(lambda: (f := _param(inst, "Generator", "frequency")) > 2.0 and f)
        inst.wait_for(lambda: _param(inst, "Generator", "frequency") > first)
        assert _param(inst, "Generator", "amplitude") == 3.0
        assert proc.poll() is None
        assert _stopped(proc, signal.SIGTERM, log) == 0
    text = log.read_text()
    assert "broken.py failed to load, skipped: RuntimeError: file broke on purpose" in text
    assert "1 of 2 files" in text and "3 handlers" in text
    assert "automation auto.py: broken() failed: RuntimeError: handler broke on purpose" in text
    assert "Traceback" in text


def test_run_by_hand_with_the_config_folder_and_ctrl_c(inst: Instance) -> None:
    folder = inst.folder / "automations"  # beside the instance's rtoc.toml: the default
    folder.mkdir()
    (folder / "alive.py").write_text(
        "from rtoc.events.automation import every\n\n\n"
        "@every(0.1, immediately=True)\n"
        "def alive(rtoc):\n"
        "    rtoc.event('alive', id='cli_alive')\n")
    log = inst.folder / "cli.log"
    args = [sys.executable, "-m", "rtoc.frontends.automation", "--config",
            str(inst.folder / "rtoc.toml")]
    with inst.subscriber([], events=True) as sub, running(args, log) as proc:
        ev = _next_event(sub, "cli_alive")
        assert ev.extra == {"source": "automation:alive.py"}
        assert _stopped(proc, signal.SIGINT, log) == 0
    assert "SIGINT received: stopping" in log.read_text()
