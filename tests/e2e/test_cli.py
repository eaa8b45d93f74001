"""``rtoc`` as a user runs it: no config file, then the CLI against the running instance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rtoc.paths import instance_dir


def rtoc(*args: str, env: dict, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtoc", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def home(tmp_path: Path) -> dict:
    """An environment with empty config and data folders (no rtoc.toml anywhere)."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("RTOC_CONFIG", None)
    return env


def test_run_without_a_config_file(home: dict) -> None:
    name = f"e{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-m", "rtoc", "--instance", name, "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=home, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = rtoc("--instance", name, "--timeout", "1", "signals", env=home)
            if r.returncode == 0 and "Generator.Sine" in r.stdout and "System.CPU" in r.stdout:
                break
            time.sleep(0.3)
        assert "Generator.Sine" in r.stdout and "System.CPU" in r.stdout, r.stdout + r.stderr
        assert r.stdout.splitlines()[0].split() == ["signal", "unit", "latest", "rate", "written", "lost"]

        r = rtoc("--instance", name, "tail", "Generator.Sine", "-n", "3", env=home)
        lines = r.stdout.splitlines()
        assert r.returncode == 0 and len(lines) == 3 and all("Generator.Sine" in ln for ln in lines)
        seqs = [int(ln.rsplit("seq", 1)[1].split()[0]) for ln in lines]
        assert seqs == sorted(seqs)

        r = rtoc("--instance", name, "status", env=home)
        assert r.returncode == 0 and "engine" in r.stdout and "Generator" in r.stdout

        r = rtoc("--instance", name, "call", "Generator.set_frequency", "2", env=home)
        assert r.returncode == 0 and r.stdout.strip() == "2.0"
        r = rtoc("--instance", name, "set", "Generator.amplitude", "3", env=home)
        assert r.returncode == 0 and "Generator.amplitude = 3.0" in r.stdout
        r = rtoc("--instance", name, "set", "Generator.amplitude", "abc", env=home)
        assert r.returncode == 1 and "must be float" in r.stderr
        r = rtoc("--instance", name, "call", "Generator.nope", env=home)
        assert r.returncode == 1 and "no function 'nope'" in r.stderr
        # parameters persist in the user data folder
        assert (Path(home["XDG_DATA_HOME"]) / "rtoc" / "params" / "Generator.json").exists()

        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0, out
        assert time.monotonic() - t0 < 5.0
        assert not instance_dir(name).exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_cli_without_a_running_instance(home: dict) -> None:
    r = rtoc("--instance", f"none{uuid.uuid4().hex[:6]}", "--timeout", "0.5", "status", env=home)
    assert r.returncode == 1 and "is rtoc running?" in r.stderr


def test_config_prints_the_effective_defaults(home: dict) -> None:
    r = rtoc("config", env=home)
    assert r.returncode == 0
    assert 'driver = "generator"' in r.stdout and 'driver = "system"' in r.stdout
    assert "[engine]" in r.stdout and "tick = 0.001" in r.stdout


@pytest.mark.parametrize("text, key, line", [
    ('[[drivers]]\nname = "G"\ndriver = "generator"\nbogus = 1\n', "drivers[0].bogus", 4),
    ('[engine]\ntick = "fast"\n', "engine.tick", 2),
    ('[[drivers]]\nname = "G"\ndriver = "no_such_driver"\n', "drivers[0].driver", 3),
    ('[[drivers]]\nname = "G"\ndriver = "generator"\n[drivers.params]\nfrequency = "x"\n',
     "drivers[0].params.frequency", 5),
])
def test_bad_config_stops_start_up_with_status_2(home: dict, tmp_path: Path, text: str, key: str,
                                                 line: int) -> None:
    cfg = tmp_path / "rtoc.toml"
    cfg.write_text(f'instance = "bad{uuid.uuid4().hex[:6]}"\n' + text)
    r = rtoc("--config", str(cfg), "run", env=home)
    assert r.returncode == 2, r.stderr
    assert f"{cfg}:{line + 1}: {key}" in r.stderr


def _ctrl_c_run(home: dict, tmp_path: Path, when) -> tuple[int, str, str]:
    """Start ``rtoc run``, send Ctrl-C (SIGINT to the whole process group, as a terminal
    does) once ``when(log_so_far)`` is true; return the status, the output and the name."""
    name = f"c{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "rtoc", "--instance", name, "run"],
                                stdout=log_file, stderr=subprocess.STDOUT, env=home,
                                start_new_session=True)
    t0 = time.monotonic()
    try:
        while not when(time.monotonic() - t0, log_path.read_text()):
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() - t0 < 60, log_path.read_text()
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)
        return proc.returncode, log_path.read_text(), name
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("moment", ["0.2 s", "0.5 s", "1 s", "children importing"])
def test_an_early_ctrl_c_stops_quietly(home: dict, tmp_path: Path, moment: str) -> None:
    """Ctrl-C while the command or its children still import: no traceback from any process,
    no child killed for being slow to stop, and nothing left in /dev/shm."""
    if moment == "children importing":  # the last child has just been spawned
        def when(_elapsed: float, out: str) -> bool:
            return "frontend websocket started" in out
    else:
        delay = float(moment.split()[0])

        def when(elapsed: float, _out: str) -> bool:
            return elapsed >= delay
    code, out, name = _ctrl_c_run(home, tmp_path, when)
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert "did not stop within" not in out, out
    # 0: stopped in order; 130: stopped while importing; -SIGINT: the signal came before
    # the interpreter installed its handler (a loaded machine), ended silently by the kernel
    assert code in (0, 130, -signal.SIGINT), out
    assert not instance_dir(name).exists()


def test_global_options_after_the_command(home: dict, tmp_path: Path) -> None:
    """`rtoc run --config FILE` is `rtoc --config FILE run` (the bad file stops it at once)."""
    cfg = tmp_path / "rtoc.toml"
    cfg.write_text('[engine]\ntick = "fast"\n')
    r = rtoc("run", "--config", str(cfg), env=home)
    assert r.returncode == 2 and f"{cfg}:2: engine.tick" in r.stderr, r.stderr
    r = rtoc("--config", str(tmp_path / "nope.toml"), "config", "--config", str(cfg), env=home)
    assert r.returncode == 2 and f"{cfg}:2: engine.tick" in r.stderr, r.stderr
