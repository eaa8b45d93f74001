"""The automation process: load the folder's files, feed the core, run its timers.

Read, feed, run: data batches and events come from two SUB sockets (events have a queue of
their own, so a flood of data cannot push them out at the high-water mark); of each data
batch only its last sample is kept (per batch, never per sample). The loop waits for
messages up to the core's next timer deadline. Handlers run one at a time on this loop, so
a slow handler (a control call waits up to its timeout) delays the others but never the
instance: data it misses meanwhile is dropped at the SUB's high-water mark, and only the
latest values matter here.

Entry points: :func:`main` (spawned by the supervisor with ``spec = {parent_pid,
log_level, endpoints, folder}``) and :func:`cli` (``python -m rtoc.frontends.automation``).
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zmq
from rtoc.pipeline.bus import DataBatch, Subscriber
from rtoc.pipeline.child import ChildSpec, run_child
from rtoc.pipeline.control import ControlClient

from rtoc import config as config_mod
from rtoc import log as log_mod
from rtoc import wire
from rtoc.errors import ConfigError
from rtoc.events.automation import AutomationCore, automation_files, load_folder
from rtoc.model import Event
from rtoc.paths import default_config_file
from rtoc.paths import endpoints as instance_endpoints

log = logging.getLogger(__name__)
IDLE_WAIT = 0.1         # s: longest poll, so a stop request is seen soon
MAX_DRAIN = 1000        # messages per socket per turn: timers still run during a flood
CONTROL_TIMEOUT = 5.0   # s a handler's call()/set() waits for the reply


class BusTransport:
    """The core's transport: control-plane requests and the engine's inbox."""

    def __init__(self, ctx: zmq.Context, endpoints: dict, timeout: float = CONTROL_TIMEOUT):
        self.control = ControlClient(endpoints["control"], timeout=timeout, ctx=ctx)
        self.inbox = ctx.socket(zmq.PUSH)
        self.inbox.setsockopt(zmq.SNDHWM, 10000)
        self.inbox.setsockopt(zmq.LINGER, 1000)  # events raised just before a stop go out
        self.inbox.connect(endpoints["inbox"])
        self.dropped = 0

    def request(self, op: str, **fields: Any) -> dict:
        return self.control.request(op, **fields)

    def push(self, message: dict) -> None:
        try:
            self.inbox.send(wire.pack(message), zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            log.warning("engine inbox full: a %s message was dropped (%d so far)",
                        message.get("kind"), self.dropped)

    def close(self) -> None:
        self.control.close()
        self.inbox.close()


class AutomationHost:
    def __init__(self, folder: str | Path, endpoints: dict, ctx: zmq.Context):
        self.folder = Path(folder)
        self.transport = BusTransport(ctx, endpoints)
        self.data = Subscriber(endpoints["data"], None, ctx=ctx)           # all data
        self.events = Subscriber(endpoints["data"], [], events=True, ctx=ctx)  # events only
        self.poller = zmq.Poller()
        self.poller.register(self.data.sock, zmq.POLLIN)
        self.poller.register(self.events.sock, zmq.POLLIN)

    def run(self, stop: threading.Event) -> int:
        # files may import helper modules (``_common.py``) that sit beside them; appended,
        # so a file named like a standard module (``time.py``) cannot shadow it
        sys.path.append(str(self.folder))
        files = automation_files(self.folder)
        modules = load_folder(self.folder)
        core = AutomationCore(modules, self.transport, time.time, time.monotonic())
        log.info("automation running: %d of %d files in %s loaded, %d handlers", len(modules),
                 len(files), self.folder, len(core.handlers))
        while not stop.is_set():
            deadline = core.next_deadline()
            wait = IDLE_WAIT if deadline is None else min(IDLE_WAIT, deadline - time.monotonic())
            ready = dict(self.poller.poll(max(0, math.ceil(wait * 1000))))
            if self.data.sock in ready:
                self._drain_data(core)
            if self.events.sock in ready:
                self._drain_events(core)
            core.on_timer(time.monotonic())
        return 0

    def _drain_data(self, core: AutomationCore) -> None:
        for _ in range(MAX_DRAIN):
            msg = self.data.recv(0)
            if msg is None:
                return
            if isinstance(msg, DataBatch):
                core.on_data(msg.name, msg.t, msg.y)

    def _drain_events(self, core: AutomationCore) -> None:
        for _ in range(MAX_DRAIN):
            msg = self.events.recv(0)
            if msg is None:
                return
            if isinstance(msg, Event):
                core.on_event(msg)

    def close(self) -> None:
        self.data.close()
        self.events.close()
        self.transport.close()


def serve(folder: str | Path, endpoints: dict, stop: threading.Event, ctx: zmq.Context) -> int:
    """Run the automation of ``folder`` against ``endpoints`` until ``stop`` is set;
    0 when stopped (a handler's failure is only logged)."""
    host = AutomationHost(folder, endpoints, ctx)
    try:
        return host.run(stop)
    finally:
        host.close()


def _serve(spec: ChildSpec, stop: threading.Event, ctx: zmq.Context) -> int:
    """The automation process's life (see :func:`run_child`)."""
    return serve(spec.config.automation_path, spec.endpoints, stop, ctx)


def main(spec: ChildSpec) -> None:
    """Entry point of the automation process (spawned by the supervisor)."""
    run_child(spec, _serve)


def cli(argv: list[str] | None = None) -> int:
    """Run the automation by hand against a running instance; Ctrl-C stops it."""
    p = argparse.ArgumentParser(
        prog="python -m rtoc.frontends.automation",
        description="Run the automation files of a folder against a running rtoc instance.")
    p.add_argument("--config", type=Path, help="rtoc.toml (default: $RTOC_CONFIG or the user's)")
    p.add_argument("--instance", help="instance name (default: the config's)")
    p.add_argument("--folder", type=Path,
                   help="automation folder (default: automations/ beside the config)")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    log_mod.configure(args.log_level, "automation")
    try:
        cfg = config_mod.load(args.config or default_config_file())
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    endpoints = instance_endpoints(args.instance or cfg.instance, cfg.bus.control, cfg.bus.data,
                                   cfg.bus.inbox)
    folder = args.folder or cfg.automation_path
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    ctx = zmq.Context()
    try:
        return serve(folder, endpoints, stop, ctx)
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.exception("automation crashed")
        return 1
    finally:
        ctx.term()


if __name__ == "__main__":
    sys.exit(cli())
