"""Run a real RTOC instance from a test or a benchmark, and always clean it up.

    with Instance.start(config_text) as inst:        # `rtoc run` in a subprocess
        inst.client.request("signals")
        with inst.subscriber(["Generator.Sine"]) as sub: ...

The instance gets a unique name and a temporary data folder; on exit it is stopped with
SIGINT (then SIGKILL), and its process group and /dev/shm folder are checked to be gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from rtoc.errors import ControlTimeout
from rtoc.paths import endpoints, instance_dir
from rtoc.pipeline.bus import Subscriber
from rtoc.pipeline.control import ControlClient


class Instance:
    def __init__(self, proc: subprocess.Popen, name: str, folder: Path, log_path: Path):
        self.proc, self.name, self.folder, self.log_path = proc, name, folder, log_path
        self.own_folder = True
        self.endpoints = endpoints(name)
        self.client = ControlClient(self.endpoints["control"], timeout=5.0)

    @classmethod
    def start(cls, config: str = "", ready_signals: tuple[str, ...] = (), timeout: float = 60.0,
              env: dict | None = None, name: str | None = None,
              folder: Path | None = None) -> Instance:
        """Start ``rtoc run`` with ``config`` (TOML without ``instance``/``data_dir``).

        ``name`` and ``folder`` (config and data) default to fresh ones.
        """
        name = name or f"t{uuid.uuid4().hex[:10]}"
        own_folder = folder is None  # a folder the caller gives stays (e.g. to start again)
        folder = folder or Path(tempfile.mkdtemp(prefix="rtoc-test-"))
        folder.mkdir(parents=True, exist_ok=True)
        cfg = folder / "rtoc.toml"
        if "[websocket]" not in config:  # many instances at once: each on a port of its own
            config += "\n[websocket]\nport = 0\n"
        cfg.write_text(f'instance = "{name}"\ndata_dir = "{folder / "data"}"\n{config}')
        log_path = folder / "rtoc.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "rtoc", "--config", str(cfg), "run"],
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, **(env or {})})
        inst = cls(proc, name, folder, log_path)
        inst.own_folder = own_folder
        try:
            inst.wait_ready(ready_signals, timeout)
        except BaseException:
            inst.cleanup()  # stop it and remove its folders (wait_ready's error carries the log)
            raise
        return inst

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, signals: tuple[str, ...], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rtoc run exited with {self.proc.returncode}:\n{self.log()}")
            try:
                st = self.client.request("status", timeout=1.0)
            except ControlTimeout:
                continue
            running = all(p["state"] == "running" for p in st["processes"] if p["kind"] == "engine")
            # frontends say when they are ready (the archiver connected, the websocket listens)
            running = running and not any(p["state"] == "starting" for p in st["processes"]
                                           if p["kind"] == "frontend")
            have = {s["name"] for s in st["signals"] if s["written"] > 0}
            if running and set(signals) <= have:
                return
            time.sleep(0.1)
        raise TimeoutError(f"instance not ready within {timeout} s:\n{self.log()}")

    def cli(self, *args: str, timeout: float = 30.0) -> str:
        """What ``rtoc --config <this instance's> ARGS...`` prints (it must succeed)."""
        r = subprocess.run([sys.executable, "-m", "rtoc", "--config", str(self.folder / "rtoc.toml"), *args],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode:
            raise RuntimeError(f"rtoc {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
        return r.stdout

    def ws_url(self, timeout: float = 20.0) -> str:
        """``http://host:port/`` of the websocket server (once it listens)."""
        def url():
            procs = self.client.request("status")["processes"]
            return next((p.get("url") for p in procs if p["name"] == "websocket" and p.get("url")), None)
        return self.wait_for(url, timeout)

    def pid_of(self, name: str) -> int:
        """The pid of the child process ``name`` ("websocket", "engine", a driver's name)."""
        procs = {p["name"]: p for p in self.client.request("status")["processes"]}
        return procs[name]["pid"]

    def metrics(self, headers: dict | None = None) -> dict[str, float]:
        """The websocket server's ``/metrics`` as ``{"name{labels}": value}``; an error status
        raises urllib's HTTPError (closed)."""
        req = urllib.request.Request(self.ws_url() + "metrics", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as exc:
            exc.close()
            raise
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def subscriber(self, signals: list[str] | None = None, **kw) -> Subscriber:
        return Subscriber(self.endpoints["data"], signals, **kw)

    def wait_for(self, predicate, timeout: float = 20.0, interval: float = 0.1):
        """Poll ``predicate()`` until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"condition not met within {timeout} s:\n{self.log()[-4000:]}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> float:
        """Stop the instance; returns the seconds it took. Kills it if it hangs."""
        t0 = time.monotonic()
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        took = time.monotonic() - t0
        try:  # whatever is left of the process group goes, even after a failure
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        return took

    def cleanup(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(instance_dir(self.name), ignore_errors=True)
        if self.own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()
