"""``rtoc run``: the supervisor, the one composition root of a running instance.

It validates the config, takes the instance folder in /dev/shm, creates rings on request,
spawns the engine and one process per driver (``spawn`` start method), restarts crashed
children with back-off (giving up on one that keeps failing, and saying so), routes
control requests, and stops everything in order on SIGINT/SIGTERM: drivers first, then the
engine (which drains the rings), then it removes the folder.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import zmq

from rtoc import __version__, loader, wire
from rtoc.app.children import Child, ChildTable
from rtoc.app.restart import RestartPolicy
from rtoc.config import Config, error_at
from rtoc.errors import (
    ArchiveOff,
    BadRequest,
    DriverNotFound,
    DriverNotRunning,
    EngineUnavailable,
    ParameterError,
    RtocError,
    ShmBudgetExceeded,
    SignalNotFound,
    SignalOwned,
    error_reply,
)
from rtoc.events.automation import has_automations
from rtoc.frontends import telegram as telegram_frontend
from rtoc.frontends.archive import process as archive_process
from rtoc.frontends.automation import host as automation_host
from rtoc.frontends.websocket import server as websocket_server
from rtoc.paths import endpoints as instance_endpoints
from rtoc.pipeline import curve, driver_host, engine
from rtoc.pipeline.child import ChildSpec, sigint_ignored_by_children
from rtoc.pipeline.evaluator import warm_up as conditions_warm_up
from rtoc.pipeline.registry import Instance, RingBudget, SignalRegistry
from rtoc.pipeline.resampler import warm_up as resampler_warm_up
from rtoc.pipeline.ring import warm_up

log = logging.getLogger(__name__)
POLL_MS = 50
FORWARD_TIMEOUT = 10.0
MAX_PER_TURN = 1000  # requests handled per loop turn, so reaping and restarts never starve


def validate_drivers(config: Config) -> None:
    """Resolve every driver and check its params, so a bad config fails before start."""
    loader.use_plugins_dir(config.plugins_path)
    for i, d in enumerate(config.drivers):
        try:
            cls = loader.resolve(d.driver)
        except DriverNotFound as exc:
            raise error_at(config, str(exc), f"drivers[{i}].driver") from None
        specs = cls.parameter_specs()
        for name, value in d.params.items():
            if name not in specs and cls.options_after_init:
                continue  # a LoggerPlugin's public attribute: checked when it is built
            if name not in specs:
                raise error_at(config, f"{d.driver} has no parameter {name!r} (it has "
                               f"{', '.join(sorted(specs))})", f"drivers[{i}].params.{name}")
            try:
                specs[name].validate(value)
            except ParameterError as exc:
                raise error_at(config, str(exc), f"drivers[{i}].params.{name}") from None


def _number(msg: dict, key: str, default: float) -> float:
    """A request's positive, finite number field (missing, null or 0: ``default``)."""
    value = msg.get(key) or default
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadRequest(f"{key!r} must be a number, not {type(value).__name__}")
    if not 0 < value < math.inf:
        raise BadRequest(f"{key!r} must be a positive, finite number, not {value!r}")
    return float(value)


class Supervisor:
    def __init__(self, config: Config):
        self.config = config
        self.endpoints = instance_endpoints(config.instance, config.bus.control, config.bus.data,
                                            config.bus.inbox)
        self.instance = Instance(config.instance)
        self.mp = multiprocessing.get_context("spawn")
        self.table = ChildTable(config.supervisor.burst_seconds)
        self.children = self.table.children  # name -> Child
        self.procs: dict[str, multiprocessing.process.BaseProcess] = {}  # name -> running process
        self.pending: dict[str, tuple[bytes, Any, float, str]] = {}  # forwarded rid -> client
        self.engine_stats: dict[str, dict] = {}
        self.started = time.time()
        self.stopping = False
        self.exit_code = 0
        self.dropped_replies = 0
        self._fwd = 0
        self.ops = self._op_table()

    # -- start-up ----------------------------------------------------------------
    def _add(self, name: str, kind: str, target: Any, role: str, **fields: Any) -> Child:
        spec = ChildSpec(role, os.getpid(), self.endpoints, self.config, fields.pop("driver", None))
        child = Child(name, kind, target, spec, RestartPolicy(self.config.supervisor), **fields)
        self.table.add(child)
        return child

    def _build_children(self) -> None:
        cfg = self.config
        self._add("engine", "engine", engine.main, "engine")
        for d in cfg.drivers:
            self._add(d.name, "driver", driver_host.main, f"driver:{d.name}", driver=d,
                      wanted=d.autostart, next_start=0.0 if d.autostart else None)
        if cfg.archive.enabled:
            self._add("archiver", "frontend", archive_process.main, "archiver")
        if cfg.websocket.enabled:
            self._add("websocket", "frontend", websocket_server.main, "websocket")
        if cfg.telegram.enabled:
            telegram_frontend.check_installed()
            self._add("telegram", "frontend", telegram_frontend.main, "telegram")
        if cfg.automation.enabled and has_automations(cfg.automation_path):
            self._add("automation", "frontend", automation_host.main, "automation")

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
        stop_auth = curve.secure_context(ctx, self.config.bus)  # tcp:// needs the keys
        self.router = ctx.socket(zmq.ROUTER)
        try:
            curve.server(self.router, self.config.bus)
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
            stop_auth()
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
        while not self.stopping:
            now = time.monotonic()
            for name, proc in list(self.procs.items()):
                if not proc.is_alive():
                    self._exited(self.children[name], now)
            for child in self.table.due(now):
                self._start(child, now)
            for child in self.table.stalled(now):
                self._kill_stalled(child, now)
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
        proc = self.mp.Process(target=child.target, args=(child.spec,),
                               name=f"rtoc-{child.kind}-{child.name}")
        with sigint_ignored_by_children(self._on_signal):
            proc.start()
        self.procs[child.name] = proc
        self.table.started(child, proc.pid, now)
        log.info("%s %s started (pid %d)", child.kind, child.name, proc.pid)

    def _kill_stalled(self, child: Child, now: float) -> None:
        """A driver whose loop has not turned for ``stall_timeout`` s (a hung tick): killed,
        and restarted by the restart policy like any failure."""
        log.error("driver %s has not turned its loop for %.0f s (stall_timeout): killing it to "
                  "restart it", child.name, now - child.alive_at)
        child.stalls += 1
        child.alive_at = now  # once: the exit comes next turn
        proc = self.procs.get(child.name)
        if proc is not None:
            proc.kill()

    def _exited(self, child: Child, now: float) -> None:
        proc = self.procs.pop(child.name)
        code = proc.exitcode
        proc.join()
        proc.close()
        self._fail_pending(child)
        outcome = self.table.exited(child, code, now)
        log.log(outcome.level, "%s", outcome.message)
        if outcome.stop_instance:
            self.stopping, self.exit_code = True, 1
        self._meta("child_state", name=child.name, role=child.kind, state=child.state,
                   exit=code, restarts=child.restarts)

    def _stop_child(self, child: Child, timeout: float) -> None:
        p = self.procs.get(child.name)
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
        if auto is not None:
            self._stop_child(auto, budget / 4)
        drivers = [c for c in self.table.of_kind("driver") if c.name in self.procs]
        for c in drivers:
            self.procs[c.name].terminate()  # all at once, then wait
        t0 = time.monotonic()
        deadline = t0 + budget / 2
        for c in drivers:
            self._stop_child(c, max(0.05, deadline - time.monotonic()))
        log.info("drivers stopped (%d) in %.2f s", len(drivers), time.monotonic() - t0)
        if "engine" in self.children:
            self._stop_child(self.children["engine"], budget / 2)
            log.info("engine stopped after draining, %.2f s after the drivers' stop began",
                     time.monotonic() - t0)
        frontends = [c for c in self.table.of_kind("frontend")
                     if c.name in self.procs and c.name != "automation"]
        for c in frontends:  # last: they take what the engine published while draining
            self.procs[c.name].terminate()
        for c in frontends:
            self._stop_child(c, budget / 2)
        for name, proc in self.procs.items():
            proc.join(0)
            self.children[name].pid = None
        self.procs.clear()
        for c in self.children.values():
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
            self._send(identity, error_reply(BadRequest(str(exc))), delimiter)
            return
        rid = msg.get("rid")
        try:
            if "re" in msg and "op" not in msg:  # a child answering a forwarded request
                if self.table.by_identity(identity) is not None and isinstance(msg["re"], str):
                    self._forwarded_reply(msg)
                return
            reply = self._handle(identity, msg)
        except RtocError as exc:  # the request's fault (BadRequest ...) or a refusal
            reply = error_reply(exc)
        except Exception as exc:  # our bug: logged, and no request may take the supervisor down
            log.exception("request %r failed", msg.get("op"))
            reply = {"ok": False, "error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}
        if reply is not None:
            self._send(identity, {"re": rid, **reply}, delimiter)

    def _op_table(self) -> dict[str, Callable[[bytes, dict], dict | None]]:
        """Every op a client may send, and its handler (each returns the reply, or None
        when a child answers later)."""
        to_engine, to_archiver = self._to_engine, self._to_archiver
        return {
            "ping": self._op_ping, "status": self._op_status, "signals": self._op_signals,
            "drivers": self._op_drivers, "start": self._op_start, "stop": self._op_stop,
            "restart": self._op_restart, "call": self._op_call, "set": self._op_set,
            "create_signal": self._op_create_signal, "remove_signal": self._op_remove_signal,
            # events and rules live in the engine
            "events": to_engine, "rules": to_engine, "rule_put": to_engine,
            "rule_enable": to_engine, "rule_remove": to_engine,
            # history, export, import and queries are the archiver's
            "history": to_archiver, "archive_status": to_archiver, "archive_signals": to_archiver,
            "archive_events": to_archiver, "archive_snapshots": to_archiver, "query": to_archiver,
            "import": to_archiver,
        }

    # ops only a child sends about itself
    CHILD_OPS = ("hello", "driver_state", "engine_stats", "create_signal", "frontend_stats",
                 "driver_alive")

    def _handle(self, identity: bytes, msg: dict) -> dict | None:
        op = msg.get("op")
        if not isinstance(op, str):
            raise BadRequest("a request needs 'op' (a string)")
        child = self.table.by_identity(identity)
        if child is not None and op in self.CHILD_OPS:
            return self._from_child(child, op, msg)
        handler = self.ops.get(op)
        if handler is None:
            return {"ok": False, "error": {"code": "unknown_op", "message": f"unknown op {op!r}; "
                                           f"known: {', '.join(sorted(self.ops))}"}}
        return handler(identity, msg)

    def _from_child(self, child: Child, op: str, msg: dict) -> dict | None:
        if op == "hello":
            if child.kind == "engine":
                child.state = "running"
                return {"ok": True, "signals": [e.info() for e in self.registry.by_name.values()]}
            if child.kind == "frontend" and isinstance(msg.get("url"), str):
                child.description = {"url": msg["url"]}  # where a server listens (port 0: chosen)
            if child.kind == "frontend" and child.pid is not None:
                child.state = "running"  # ready: the archiver connected, the websocket listens
            return {"ok": True}
        if op == "driver_state":
            if child.state != "running":
                log.info("driver %s running", child.name)
            desc = msg.get("description")
            child.state, child.description = "running", desc if isinstance(desc, dict) else {}
            self._meta("driver_state", name=child.name, state=msg.get("state"))
            return None
        if op == "driver_alive":
            child.alive_at = time.monotonic()
            return None
        if op == "frontend_stats" and child.kind == "frontend":  # counters for status, /metrics
            stats = msg.get("stats")
            child.stats = {k: v for k, v in stats.items() if isinstance(k, str) and
                           isinstance(v, (int, float))} if isinstance(stats, dict) else {}
            return {"ok": True}
        if op == "engine_stats":
            stats = msg.get("signals")
            self.engine_stats = stats if isinstance(stats, dict) else {}
            return None
        if child.kind == "frontend":  # the websocket process, for its clients: their budgets
            return self._claim(child.name, msg, self._charge(f"client:{child.name}", msg))
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

    def _to_archiver(self, identity: bytes, msg: dict) -> dict | None:
        """History, export, import and queries are the archiver's: pass them on."""
        child = self.children.get("archiver")
        if child is None:
            raise ArchiveOff("the archive is disabled ([archive] enabled = false)")
        if child.pid is None:
            raise EngineUnavailable(f"the archiver is {child.state}; try again")
        fields = {k: v for k, v in msg.items() if k not in ("op", "rid")}
        return self._forward_to(child, identity, msg, msg["op"], **fields)

    def _forward_to(self, child: Child, identity: bytes, msg: dict, op: str, **fields) -> dict | None:
        self._fwd += 1
        fid = f"f{self._fwd}"
        try:
            self.router.send_multipart([child.identity, wire.pack({"op": op, "rid": fid, **fields})],
                                       zmq.NOBLOCK)
        except zmq.ZMQError:  # just started, not connected yet (or its queue is full)
            raise EngineUnavailable(f"{child.kind} {child.name} cannot take requests yet "
                                    f"({child.state}); try again") from None
        self.pending[fid] = (identity, msg.get("rid"), time.monotonic() + FORWARD_TIMEOUT, child.name)
        return None  # the child's reply is forwarded when it comes

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
                out.append({**c.info(now), "driver": c.spec.driver.driver if c.spec.driver else "", "autostart": c.wanted,
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
        self.table.start_wanted(child, time.monotonic())
        return {"ok": True, "state": child.state}

    def _op_stop(self, identity: bytes, msg: dict) -> dict:
        child = self._driver_child(msg)
        self.table.unwant(child)
        self._stop_child(child, self.config.supervisor.stop_timeout / 2)
        if child.name in self.procs:
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
        owner = f"client:{msg.get('owner') or identity.hex()}"
        return self._claim(owner, msg, self._charge(owner, msg))

    @staticmethod
    def _charge(owner: str, msg: dict) -> str:
        """Whose client ring budget a claim counts against: ``owner``'s, or one client of
        it (``client``: the websocket process names the user or address that pushed)."""
        client = msg.get("client")
        return f"{owner}/{client[:200]}" if isinstance(client, str) and client else owner

    def _claim(self, owner: str, msg: dict, charge: str = "") -> dict:
        sv = self.config.supervisor
        total = sv.shm_budget
        if not total:  # half of /dev/shm (its size, not what is free: that changes)
            st = os.statvfs(self.registry.folder)
            total = st.f_blocks * st.f_frsize // 2
        budget = RingBudget(total=total, clients=int(total * sv.shm_clients_share),
                            per_client=sv.shm_per_client, max_rate=sv.max_client_rate,
                            max_seconds=sv.max_client_seconds)
        try:
            entry, created = self.registry.claim(str(msg.get("device", "")), str(msg.get("signal", "")),
                                                 str(msg.get("unit") or ""), owner,
                                                 _number(msg, "rate", 1.0), _number(msg, "seconds", 4.0),
                                                 budget, charge, str(msg.get("content") or "samples"))
        except ShmBudgetExceeded as exc:  # seen on the bus's meta topic, counted in `refused`
            self._meta("shm_budget", owner=charge or owner, budget=exc.budget, refused=self.registry.refused,
                       message=str(exc))
            raise
        if created:
            self._send(b"engine", {"op": "signal_added", "signal": entry.info()})
        return {"ok": True, **entry.info(), "seq": entry.ring.committed}
