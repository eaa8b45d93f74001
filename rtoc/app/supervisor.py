"""``rtoc run``: the supervisor, the one composition root of a running instance.

It validates the config, takes the instance folder in /dev/shm, creates rings on request,
spawns the engine and one process per driver (``spawn`` start method), restarts crashed
children with back-off (giving up on one that keeps failing, and saying so), routes
control requests, and stops everything in order on SIGINT/SIGTERM: drivers first, then the
engine (which drains the rings), then it removes the folder.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from rtoc import __version__, loader, wire
from rtoc.app.restart import RestartPolicy
from rtoc.config import Config, error_at
from rtoc.errors import (
    ArchiveOff,
    DriverNotFound,
    DriverNotRunning,
    EngineUnavailable,
    ParameterError,
    RtocError,
    SignalNotFound,
    SignalOwned,
    error_reply,
)
from rtoc.events.automation import has_automations
from rtoc.frontends.archive import process as archive_process
from rtoc.frontends.automation import host as automation_host
from rtoc.frontends.websocket import server as websocket_server
from rtoc.paths import endpoints as instance_endpoints
from rtoc.pipeline import driver_host, engine
from rtoc.pipeline.child import sigint_ignored_by_children
from rtoc.pipeline.evaluator import warm_up as conditions_warm_up
from rtoc.pipeline.registry import Instance, SignalRegistry
from rtoc.pipeline.resampler import warm_up as resampler_warm_up
from rtoc.pipeline.ring import warm_up

log = logging.getLogger(__name__)
POLL_MS = 50
FORWARD_TIMEOUT = 10.0
MAX_PER_TURN = 1000  # requests handled per loop turn, so reaping and restarts never starve


@dataclass
class Child:
    """One child process and what the supervisor knows of it."""

    name: str
    kind: str                     # "engine" or "driver"
    target: Any
    spec: dict
    policy: RestartPolicy
    process: multiprocessing.process.BaseProcess | None = None
    state: str = "stopped"        # starting, running, backoff, failed, stopped
    wanted: bool = True
    started_at: float = 0.0
    next_start: float | None = 0.0
    restarts: int = 0
    last_exit: int | None = None
    description: dict = field(default_factory=dict)

    @property
    def identity(self) -> bytes:
        if self.kind == "driver":
            return f"driver:{self.name}".encode()
        return self.name.encode()  # the engine, the archiver: b"engine", b"archiver"

    def info(self, now: float) -> dict:
        alive = self.process is not None and self.process.is_alive()
        return {"name": self.name, "kind": self.kind, "state": self.state,
                "pid": self.process.pid if alive else None,
                "uptime": now - self.started_at if alive else 0.0,
                "restarts": self.restarts, "last_exit": self.last_exit,
                **({"url": self.description["url"]} if self.kind == "frontend" and "url" in self.description else {})}


def validate_drivers(config: Config) -> None:
    """Resolve every driver and check its params, so a bad config fails before start."""
    for i, d in enumerate(config.drivers):
        try:
            cls = loader.resolve(d.driver)
        except DriverNotFound as exc:
            raise error_at(config, str(exc), f"drivers[{i}].driver") from None
        specs = cls.parameter_specs()
        for name, value in d.params.items():
            if name not in specs:
                raise error_at(config, f"{d.driver} has no parameter {name!r} (it has "
                               f"{', '.join(sorted(specs))})", f"drivers[{i}].params.{name}")
            try:
                specs[name].validate(value)
            except ParameterError as exc:
                raise error_at(config, str(exc), f"drivers[{i}].params.{name}") from None


class Supervisor:
    def __init__(self, config: Config):
        self.config = config
        self.endpoints = instance_endpoints(config.instance, config.bus.control, config.bus.data,
                                            config.bus.inbox)
        self.instance = Instance(config.instance)
        self.mp = multiprocessing.get_context("spawn")
        self.children: dict[str, Child] = {}
        self.pending: dict[str, tuple[bytes, Any, float, str]] = {}  # forwarded rid -> client
        self.engine_stats: dict[str, dict] = {}
        self.started = time.time()
        self.stopping = False
        self.exit_code = 0
        self.dropped_replies = 0
        self._fwd = 0

    # -- start-up ----------------------------------------------------------------
    def _spec(self, **extra) -> dict:
        return {"parent_pid": os.getpid(), "log_level": self.config.log_level,
                "endpoints": self.endpoints, **extra}

    def _build_children(self) -> None:
        cfg = self.config
        rules = {"path": str(cfg.rules_path), "events": [r.to_dict() for r in cfg.events],
                 "actions": [r.to_dict() for r in cfg.actions]}
        self.children["engine"] = Child("engine", "engine", engine.main,
                                        self._spec(engine=dataclasses.asdict(cfg.engine), rules=rules),
                                        RestartPolicy(cfg.supervisor))
        for d in cfg.drivers:
            spec = self._spec(name=d.name, driver=d.driver, params=dict(d.params),
                              ring_seconds=d.ring_seconds, data_dir=str(cfg.data_path))
            self.children[d.name] = Child(d.name, "driver", driver_host.main, spec,
                                          RestartPolicy(cfg.supervisor), wanted=d.autostart,
                                          next_start=0.0 if d.autostart else None)
        if cfg.archive.enabled:
            a = cfg.archive
            spec = self._spec(backend=a.backend, path=str(cfg.archive_path), dsn=a.dsn, schema=a.schema,
                              spool=str(cfg.spool_path), flush_interval=a.flush_interval,
                              max_batch=a.max_batch, retention_days=a.retention_days)
            self.children["archiver"] = Child("archiver", "frontend", archive_process.main, spec,
                                              RestartPolicy(cfg.supervisor))
        if cfg.websocket.enabled:
            self.children["websocket"] = Child("websocket", "frontend", websocket_server.main,
                                               self._spec(**dataclasses.asdict(cfg.websocket)),
                                               RestartPolicy(cfg.supervisor))
        folder = cfg.automation_path
        if cfg.automation.enabled and has_automations(folder):
            self.children["automation"] = Child("automation", "frontend", automation_host.main,
                                                self._spec(folder=str(folder)),
                                                RestartPolicy(cfg.supervisor))

    def run(self) -> int:
        """Run until SIGINT/SIGTERM; returns the exit status."""
        validate_drivers(self.config)
        # handlers first: a signal during the numba warm-up must still end in a clean stop
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._run()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _run(self) -> int:
        self.instance.acquire()
        ctx = zmq.Context()
        self.router = ctx.socket(zmq.ROUTER)
        try:
            self.router.setsockopt(zmq.LINGER, 0)
            self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted child takes over its identity
            self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
            self.router.bind(self.endpoints["control"])
            self.registry = SignalRegistry(self.instance.dir)
            # compile (or load from numba's cache) the kernels once, before children race
            warm_up()
            conditions_warm_up()
            resampler_warm_up()
            self._build_children()
            log.info("rtoc %s instance %r running (control %s, data %s)", __version__,
                     self.config.instance, self.endpoints["control"], self.endpoints["data"])
            try:
                self._loop()
            finally:
                self._shutdown()
        finally:
            self.router.close(0)
            ctx.term()
            if hasattr(self, "registry"):
                self.registry.close()
            self.instance.release()
        log.info("stopped")
        return self.exit_code

    def _on_signal(self, signum, frame) -> None:
        if not self.stopping:
            log.info("%s received: stopping", signal.Signals(signum).name)
        self.stopping = True

    # -- the loop ----------------------------------------------------------------
    def _loop(self) -> None:
        engine_child = self.children["engine"]
        while not self.stopping:
            now = time.monotonic()
            for child in self.children.values():
                if child.process is not None and not child.process.is_alive():
                    self._exited(child, now)
                if child.wanted and child.process is None and child.next_start is not None \
                        and now >= child.next_start:
                    if child.kind == "engine" or engine_child.state == "running":
                        self._start(child, now)  # drivers wait for the engine
            self._expire(now)
            try:
                if self.router.poll(POLL_MS):
                    for _ in range(MAX_PER_TURN):
                        if not self.router.poll(0):
                            break
                        self._receive(self.router.recv_multipart())
            except zmq.ZMQError as exc:
                if exc.errno != getattr(zmq, "EINTR", 4):
                    raise

    def _start(self, child: Child, now: float) -> None:
        child.process = self.mp.Process(target=child.target, args=(child.spec,),
                                        name=f"rtoc-{child.kind}-{child.name}")
        with sigint_ignored_by_children(self._on_signal):
            child.process.start()
        # a frontend has no hello: it runs once started (a driver or the engine says so)
        state = "running" if child.kind == "frontend" else "starting"
        child.state, child.started_at, child.next_start = state, now, None
        child.policy.started(now)
        log.info("%s %s started (pid %d)", child.kind, child.name, child.process.pid)

    def _exited(self, child: Child, now: float) -> None:
        code = child.process.exitcode
        child.process.join()
        child.process.close()
        child.process, child.last_exit = None, code
        uptime = now - child.started_at
        self._fail_pending(child)
        if not child.wanted:
            child.state = "stopped"
            log.info("%s %s stopped", child.kind, child.name)
        else:
            at = child.policy.exited(now, uptime)
            how = f"exit status {code}" if code is not None and code >= 0 else f"signal {-code}"
            if at is None and child.kind == "engine":
                child.state, child.wanted = "failed", False
                log.error("engine failed: started %d times within %g s, last exit %s; without it "
                          "no data flows, so the instance stops (exit status 1)",
                          len(child.policy.starts), self.config.supervisor.burst_seconds, how)
                self.stopping, self.exit_code = True, 1
            elif at is None:
                child.state, child.wanted = "failed", False
                log.error("%s %s failed: started %d times within %g s, last exit %s; giving up "
                          "('rtoc start %s' tries again)", child.kind, child.name,
                          len(child.policy.starts), self.config.supervisor.burst_seconds, how, child.name)
            else:
                child.state, child.next_start = "backoff", at
                child.restarts += 1
                log.warning("%s %s exited (%s) after %.1f s; restarting in %.1f s",
                            child.kind, child.name, how, uptime, at - now)
        self._meta("child_state", name=child.name, role=child.kind, state=child.state,
                   exit=code, restarts=child.restarts)

    def _stop_child(self, child: Child, timeout: float) -> None:
        p = child.process
        if p is None:
            return
        p.terminate()
        p.join(timeout)
        if p.is_alive():
            log.warning("%s %s did not stop within %.1f s: killing it", child.kind, child.name, timeout)
            p.kill()
            p.join(1.0)

    def _shutdown(self) -> None:
        budget = self.config.supervisor.stop_timeout
        for child in self.children.values():
            child.wanted = False
        # the automation first: it is a client of the drivers, and while stopping the
        # supervisor answers no requests, so it would block until killed
        auto = self.children.get("automation")
        if auto is not None and auto.process is not None:
            self._stop_child(auto, budget / 4)
        drivers = [c for c in self.children.values() if c.kind == "driver" and c.process]
        for c in drivers:
            c.process.terminate()  # all at once, then wait
        t0 = time.monotonic()
        deadline = t0 + budget / 2
        for c in drivers:
            self._stop_child(c, max(0.05, deadline - time.monotonic()))
        log.info("drivers stopped (%d) in %.2f s", len(drivers), time.monotonic() - t0)
        if "engine" in self.children:
            self._stop_child(self.children["engine"], budget / 2)
            log.info("engine stopped after draining, %.2f s after the drivers' stop began",
                     time.monotonic() - t0)
        frontends = [c for c in self.children.values() if c.kind == "frontend" and c.process
                     and c.name != "automation"]
        for c in frontends:  # last: they take what the engine published while draining
            c.process.terminate()
        for c in frontends:
            self._stop_child(c, budget / 2)
        for c in self.children.values():
            if c.process is not None:
                c.process.join(0)
                c.process = None
            c.state = "stopped"

    # -- control -----------------------------------------------------------------
    def _send(self, identity: bytes, msg: dict, delimiter: bool = False) -> None:
        """Never blocks: a peer that does not read its replies (its queue is full) or that
        went away loses this one, and the loop goes on."""
        frames = [identity, b"", wire.pack(msg)] if delimiter else [identity, wire.pack(msg)]
        try:
            self.router.send_multipart(frames, zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            self.dropped_replies += 1
            log.debug("cannot send to %r: %s", identity, exc)

    def _receive(self, frames: list[bytes]) -> None:
        """``[identity, body]`` from a DEALER, ``[identity, b"", body]`` from a REQ socket."""
        identity = frames[0]
        if len(frames) == 3 and frames[1] == b"":
            self._route(identity, frames[2], delimiter=True)
        elif len(frames) == 2:
            self._route(identity, frames[1])
        else:
            self._send(identity, {"ok": False, "error": {"code": "bad_request", "message":
                       f"a request is one msgpack frame, got {len(frames) - 1} frames"}})

    def _meta(self, what: str, **fields) -> None:
        eng = self.children.get("engine")
        if eng is not None and eng.state == "running":
            self._send(b"engine", {"op": "meta", "kind": what, "fields": fields})

    def _route(self, identity: bytes, body: bytes, delimiter: bool = False) -> None:
        try:
            msg = wire.unpack(body)
        except ValueError as exc:
            self._send(identity, {"ok": False, "error": {"code": "bad_request", "message": str(exc)}},
                       delimiter)
            return
        rid = msg.get("rid")
        try:
            if "re" in msg and "op" not in msg:  # a child answering a forwarded request
                if self._child_of(identity) is not None and isinstance(msg["re"], str):
                    self._forwarded_reply(msg)
                return
            if not isinstance(msg.get("op"), str):
                raise ValueError("a request needs 'op' (a string)")
            reply = self._handle(identity, msg)
        except RtocError as exc:
            reply = error_reply(exc)
        except (KeyError, TypeError, ValueError) as exc:
            reply = {"ok": False, "error": {"code": "bad_request", "message": f"{type(exc).__name__}: {exc}"}}
        except Exception as exc:  # no request may take the supervisor down
            log.exception("request %r failed", msg.get("op"))
            reply = {"ok": False, "error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}
        if reply is not None:
            self._send(identity, {"re": rid, **reply}, delimiter)

    def _child_of(self, identity: bytes) -> Child | None:
        if identity in (b"engine", b"archiver", b"websocket"):
            return self.children.get(identity.decode())
        if identity.startswith(b"driver:"):
            return self.children.get(identity[7:].decode())
        return None

    def _handle(self, identity: bytes, msg: dict) -> dict | None:
        op = msg.get("op")
        child = self._child_of(identity)
        if child is not None and op in ("hello", "driver_state", "engine_stats", "create_signal"):
            return self._from_child(child, op, msg)
        handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            return {"ok": False, "error": {"code": "unknown_op", "message": f"unknown op {op!r}; known: "
                                           + ", ".join(sorted(n[4:] for n in dir(self) if n.startswith("_op_")))}}
        return handler(identity, msg)

    def _from_child(self, child: Child, op: str, msg: dict) -> dict | None:
        if op == "hello":
            if child.kind == "engine":
                child.state = "running"
                return {"ok": True, "signals": [e.info() for e in self.registry.by_name.values()]}
            if child.kind == "frontend" and isinstance(msg.get("url"), str):
                child.description = {"url": msg["url"]}  # where a server listens (port 0: chosen)
            return {"ok": True}
        if op == "driver_state":
            if child.state != "running":
                log.info("driver %s running", child.name)
            desc = msg.get("description")
            child.state, child.description = "running", desc if isinstance(desc, dict) else {}
            self._meta("driver_state", name=child.name, state=msg.get("state"))
            return None
        if op == "engine_stats":
            stats = msg.get("signals")
            self.engine_stats = stats if isinstance(stats, dict) else {}
            return None
        return self._claim(child.name, msg)  # a driver claims as itself

    def _forward(self, identity: bytes, msg: dict, driver: str, op: str, **fields) -> dict | None:
        child = self.children.get(driver)
        if child is None or child.kind != "driver":
            raise DriverNotFound(f"no driver named {driver!r} (drivers: "
                                 f"{', '.join(n for n, c in self.children.items() if c.kind == 'driver')})", driver)
        if child.state != "running":
            raise DriverNotRunning(f"driver {driver} is {child.state}", driver)
        return self._forward_to(child, identity, msg, op, **fields)

    def _to_engine(self, identity: bytes, msg: dict) -> dict | None:
        """Events and rules live in the engine: pass the request on as it is."""
        child = self.children["engine"]
        if child.state != "running":
            raise EngineUnavailable(f"the engine is {child.state}; try again")
        fields = {k: v for k, v in msg.items() if k not in ("op", "rid")}
        return self._forward_to(child, identity, msg, msg["op"], **fields)

    _op_events = _op_rules = _op_rule_put = _op_rule_enable = _op_rule_remove = _to_engine

    def _to_archiver(self, identity: bytes, msg: dict) -> dict | None:
        """History, export, import and queries are the archiver's: pass them on."""
        child = self.children.get("archiver")
        if child is None:
            raise ArchiveOff("the archive is disabled ([archive] enabled = false)")
        if child.process is None:
            raise EngineUnavailable(f"the archiver is {child.state}; try again")
        fields = {k: v for k, v in msg.items() if k not in ("op", "rid")}
        return self._forward_to(child, identity, msg, msg["op"], **fields)

    _op_history = _op_archive_status = _op_archive_signals = _op_archive_events = _to_archiver
    _op_query = _op_import = _to_archiver

    def _forward_to(self, child: Child, identity: bytes, msg: dict, op: str, **fields) -> dict | None:
        self._fwd += 1
        fid = f"f{self._fwd}"
        self.pending[fid] = (identity, msg.get("rid"), time.monotonic() + FORWARD_TIMEOUT, child.name)
        self._send(child.identity, {"op": op, "rid": fid, **fields})
        return None  # the driver's reply is forwarded when it comes

    def _forwarded_reply(self, msg: dict) -> None:
        entry = self.pending.pop(msg.get("re"), None)
        if entry is not None:
            self._send(entry[0], {**msg, "re": entry[1]})

    def _expire(self, now: float) -> None:
        for fid, (ident, rid, deadline, driver) in list(self.pending.items()):
            if now > deadline:
                del self.pending[fid]
                self._send(ident, {"re": rid, "ok": False, "error": {
                    "code": "timeout", "message": f"{driver} did not answer within {FORWARD_TIMEOUT:g} s"}})

    def _fail_pending(self, child: Child) -> None:
        for fid, (ident, rid, _, driver) in list(self.pending.items()):
            if driver == child.name:
                del self.pending[fid]
                self._send(ident, {"re": rid, "ok": False, "error": {
                    "code": "driver_not_running" if child.kind == "driver" else "unavailable",
                    "message": f"{child.kind} {driver} exited before answering"}})

    # ops: each returns the reply, or None when a child will answer
    def _op_ping(self, identity: bytes, msg: dict) -> dict:
        return {"ok": True, "pong": True, "instance": self.config.instance, "pid": os.getpid(),
                "version": __version__}

    def _op_signals(self, identity: bytes, msg: dict) -> dict:
        out = []
        for name, e in self.registry.by_name.items():
            latest = e.reader.latest()
            stats = self.engine_stats.get(name, {})
            out.append({**e.info(), "written": e.ring.committed, "rate": stats.get("rate", 0.0),
                        "lost": stats.get("lost", 0),
                        "latest": None if latest is None else {"t": latest[1], "y": latest[2]}})
        return {"ok": True, "signals": out}

    def _op_status(self, identity: bytes, msg: dict) -> dict:
        now = time.monotonic()
        return {"ok": True, "instance": self.config.instance, "pid": os.getpid(),
                "uptime": time.time() - self.started, "version": __version__,
                "dropped_replies": self.dropped_replies,
                "processes": [c.info(now) for c in self.children.values()],
                "signals": self._op_signals(identity, msg)["signals"]}

    def _op_drivers(self, identity: bytes, msg: dict) -> dict:
        now = time.monotonic()
        out = []
        for c in self.children.values():
            if c.kind == "driver":
                d = c.description
                out.append({**c.info(now), "driver": c.spec["driver"], "autostart": c.wanted,
                            "parameters": d.get("parameters", []), "functions": d.get("functions", [])})
        return {"ok": True, "drivers": out}

    def _driver_child(self, msg: dict) -> Child:
        name = str(msg.get("driver", ""))
        child = self.children.get(name)
        if child is None or child.kind != "driver":
            raise DriverNotFound(f"no driver named {name!r}", name)
        return child

    def _op_start(self, identity: bytes, msg: dict) -> dict:
        child = self._driver_child(msg)
        if child.process is None:
            child.wanted, child.next_start = True, time.monotonic()
            child.policy.reset()
        return {"ok": True, "state": child.state}

    def _op_stop(self, identity: bytes, msg: dict) -> dict:
        child = self._driver_child(msg)
        child.wanted, child.next_start = False, None
        self._stop_child(child, self.config.supervisor.stop_timeout / 2)
        if child.process is not None:
            self._exited(child, time.monotonic())
        child.state = "stopped"  # also when it was waiting in back-off or had failed
        return {"ok": True, "state": child.state}

    def _op_restart(self, identity: bytes, msg: dict) -> dict:
        self._op_stop(identity, msg)
        return self._op_start(identity, msg)

    def _op_call(self, identity: bytes, msg: dict) -> dict | None:
        args, kwargs = msg.get("args") or [], msg.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict) \
                or not all(isinstance(k, str) for k in kwargs):
            raise ParameterError("'args' must be a list and 'kwargs' a map with string keys")
        return self._forward(identity, msg, str(msg.get("driver", "")), "call",
                             function=str(msg.get("function", "")), args=args, kwargs=kwargs)

    def _op_set(self, identity: bytes, msg: dict) -> dict | None:
        return self._forward(identity, msg, str(msg.get("driver", "")), "set",
                             param=msg.get("param"), value=msg.get("value"))

    def _op_remove_signal(self, identity: bytes, msg: dict) -> dict:
        """Remove a signal a client wrote (``name`` or ``id``): its ring goes, the archive
        keeps its history. A driver's or the engine's signal is refused."""
        name = msg.get("name")
        if name is None and isinstance(msg.get("id"), int):
            name = next((n for n, e in self.registry.by_name.items() if e.id == msg["id"]), None)
        entry = self.registry.by_name.get(str(name))
        if entry is None:
            raise SignalNotFound(f"no signal {name if name is not None else msg.get('id')!r}", str(name))
        if not (entry.owner.startswith("client:") or entry.owner == "websocket"):
            raise SignalOwned(f"{entry.name} is written by {entry.owner!r}: only signals that "
                              "clients pushed can be removed", entry.name)
        self.registry.remove(entry.name)
        self._send(b"engine", {"op": "signal_removed", "signal": {"id": entry.id, "name": entry.name}})
        return {"ok": True, "id": entry.id, "name": entry.name}

    def _op_create_signal(self, identity: bytes, msg: dict) -> dict:
        # a client's owner name is always "client:...", so no client can claim (and then
        # write) a driver's ring
        return self._claim(f"client:{msg.get('owner') or identity.hex()}", msg)

    def _claim(self, owner: str, msg: dict) -> dict:
        entry, created = self.registry.claim(str(msg.get("device", "")), str(msg.get("signal", "")),
                                             str(msg.get("unit") or ""), owner,
                                             float(msg.get("rate") or 1.0), float(msg.get("seconds") or 4.0))
        if created:
            self._send(b"engine", {"op": "signal_added", "signal": entry.info()})
        return {"ok": True, **entry.info(), "seq": entry.ring.committed}
