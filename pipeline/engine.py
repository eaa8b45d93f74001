"""The engine: the one reader that keeps up with every ring, and publishes on the bus.

``EngineCore`` decides, for a given ``now``, which rings to read and what to publish: a
signal is published once ``min_batch`` samples wait or its oldest waiting sample was first
seen ``max_delay`` ago (per-message cost dominates tiny messages; latency forbids waiting
long). The process shell around it scans, publishes, forwards events and meta, and sends
heartbeats.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq
from rtoc.pipeline import curve
from rtoc.pipeline.action_book import ActionBook
from rtoc.pipeline.bus import DataBatch, Publisher
from rtoc.pipeline.child import ChildSpec, run_child
from rtoc.pipeline.reactions import OPS as REACTION_OPS
from rtoc.pipeline.reactions import Reactions
from rtoc.pipeline.resampler import Resampler, view_width_for
from rtoc.pipeline.ring import Ring, RingReader, RingWriter
from rtoc.pipeline.ring_kernels import SEQLOCK, SNAPSHOT

from rtoc import wire
from rtoc.config import BusConfig, EngineConfig
from rtoc.errors import RtocError, error_reply
from rtoc.events.rules import ActionRule, Effect, EventRule
from rtoc.model import Event, Notification

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt() parameters (glibc malloc.h)
MAX_READS = 8  # batches of one signal per scan; the rest waits for the next tick
FAILED = "rtoc.action_failed"  # the id of the event an action's failure raises
MAX_MESSAGES = 32  # control/inbox messages handled per socket per loop turn
VIEW_EVERY = 0.05  # s between view/aggregate messages of a signal (20 frames/s is plenty)
REJOIN = 0.3  # s a restarted engine waits before publishing: subscribers reconnect to its PUB
              # (ZeroMQ retries every 0.1 s) instead of missing its first batches


Publication = DataBatch  # what the engine publishes is exactly what a subscriber receives


@dataclass
class Track:
    sig: int
    name: str
    reader: RingReader
    waiting_since: float | None = None
    snapshot: int = 0
    published: int = 0          # samples published in total
    lost: int = 0               # samples found overwritten in total
    carry_lost: int = 0         # lost, not yet reported in a message header
    next_seq: int = 0           # sequence after the last published sample
    resumed: int = 0            # a restarted engine went on at this seq (what came before it
                                # skipped; every header says so: subscribers count `restart`)
    rate: float = 0.0
    _hb_published: int = field(default=0, repr=False)


class EngineCore:
    def __init__(self, cfg: EngineConfig):
        self.cfg = cfg
        self.tracks: dict[int, Track] = {}

    def add(self, sig: int, name: str, ring: Ring, from_start: bool) -> Track:
        """Follow a ring: from its first sample, or from now (an engine that restarted)."""
        reader = RingReader(ring, cursor=0 if from_start else None, max_batch=self.cfg.max_batch)
        # from the start, a plot() that already happened must still come out as a replace
        snap = 0 if from_start else int(ring.hdr[SNAPSHOT])
        track = Track(sig, name, reader, snapshot=snap, next_seq=reader.cursor,
                      resumed=0 if from_start else reader.cursor)
        self.tracks[sig] = track
        return track

    def remove(self, sig: int) -> None:
        track = self.tracks.pop(sig, None)
        if track is not None:
            track.reader.ring.close()

    def scan(self, now: float, flush: bool = False) -> list[Publication]:
        """Read the rings that are due at ``now`` (all of them when ``flush``)."""
        out: list[Publication] = []
        cfg = self.cfg
        for tr in self.tracks.values():
            pending = tr.reader.pending()
            if pending <= 0:
                hdr = tr.reader.ring.hdr
                snap = int(hdr[SNAPSHOT])
                # an empty plot() (the signal was cleared); not one still being written
                if snap != tr.snapshot and not int(hdr[SEQLOCK]) & 1 and snap >= tr.next_seq:
                    tr.snapshot = snap
                    empty = np.empty(0, np.float64)
                    out.append(Publication(tr.name, tr.sig, snap, empty, empty, tr.carry_lost,
                                           replace=True))
                    tr.carry_lost = 0
                continue
            if tr.waiting_since is None:
                tr.waiting_since = now
            if not flush and pending < cfg.min_batch and now - tr.waiting_since < cfg.max_delay:
                continue
            tr.waiting_since = None
            # read what was pending when the scan began, and (unless draining) at most
            # MAX_READS batches: a writer that keeps pace must not keep one scan going forever
            reads = -(-pending // cfg.max_batch)
            for _ in range(reads if flush else min(MAX_READS, reads)):
                res = tr.reader.read()
                tr.lost += res.lost
                tr.carry_lost += res.lost
                n = len(res.t)
                if n:
                    self._publish(tr, res.first, res.t, res.y, res.snapshot, out)
                if n < cfg.max_batch:
                    break
        return out

    def _publish(self, tr: Track, first: int, t, y, snap: int, out: list[Publication]) -> None:
        cut = 0
        replace = False
        if snap != tr.snapshot and snap < first + len(t):  # a plot() replaced from `snap` on
            # (a marker at or beyond this batch's end belongs to a later batch)
            tr.snapshot = snap
            replace = True
            cut = min(max(snap - first, 0), len(t))
        if cut:
            out.append(Publication(tr.name, tr.sig, first, t[:cut], y[:cut], tr.carry_lost,
                                   resumed=tr.resumed))
            tr.carry_lost = 0
        if cut < len(t):
            out.append(Publication(tr.name, tr.sig, first + cut, t[cut:], y[cut:], tr.carry_lost,
                                   replace=replace, resumed=tr.resumed))
            tr.carry_lost = 0
        tr.published += len(t)
        tr.next_seq = first + len(t)

    def heartbeat(self, dt: float) -> dict:
        """Per-signal ``seq``, ``rate`` (samples/s over ``dt``), ``lost``, ``published``."""
        stats = {}
        for tr in self.tracks.values():
            tr.rate = (tr.published - tr._hb_published) / dt if dt > 0 else 0.0
            tr._hb_published = tr.published
            stats[tr.name] = {"seq": tr.next_seq, "rate": tr.rate, "lost": tr.lost,
                              "published": tr.published}
        return stats


class EngineProcess:
    def __init__(self, cfg: EngineConfig, endpoints: dict, ctx: zmq.Context,
                 rules_path: Path | None = None, events: tuple[EventRule, ...] = (),
                 actions: tuple[ActionRule, ...] = (), bus: BusConfig | None = None):
        self.cfg = cfg
        self.core = EngineCore(cfg)
        self.reactions = Reactions(rules_path, events, actions, cfg.event_history,
                                   cfg.sync_timeout, cfg.max_event_rate, cfg.max_event_total_rate,
                                   cfg.throttle_report, cfg.max_rule_load)
        self.writers: dict[str, RingWriter] = {}            # signals actions write to
        self.book = ActionBook(f"act-{os.getpid()}")          # requests and samples in flight
        self.resamplers: dict[int, Resampler] = {}
        self.pub = Publisher(ctx, endpoints["data"], curve=bus)
        self.inbox = ctx.socket(zmq.PULL)
        curve.server(self.inbox, bus)
        self.inbox.setsockopt(zmq.LINGER, 0)
        self.inbox.bind(endpoints["inbox"])
        self.ctrl = ctx.socket(zmq.DEALER)
        self.ctrl.setsockopt(zmq.IDENTITY, b"engine")
        self.ctrl.setsockopt(zmq.LINGER, 500)
        self.ctrl.connect(endpoints["control"])
        self.poller = zmq.Poller()
        self.poller.register(self.inbox, zmq.POLLIN)
        self.poller.register(self.ctrl, zmq.POLLIN)
        self.events = 0
        self.quiet_until = 0.0  # no data published before (see REJOIN)

    def run(self, stop) -> int:
        self.ctrl.send(wire.pack({"op": "hello", "role": "engine", "rid": "engine-hello"}))
        cfg = self.cfg
        last_data = last_hb = last_view = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            pubs = self.core.scan(now) if now >= self.quiet_until else []
            self._publish(pubs, now)
            t0 = time.perf_counter()
            events = self.reactions.tick(now)
            self.reactions.note_cost(time.perf_counter() - t0, now)
            self._events(events)
            if pubs:
                last_data = now
            if now - last_view >= VIEW_EVERY:
                self._views(time.time())
                last_view = now
            if now - last_hb >= cfg.heartbeat:
                self._heartbeat(now - last_hb)
                last_hb = now
            quiet = now - last_data > cfg.idle_after * cfg.tick
            wait = cfg.idle_tick if quiet else cfg.tick
            for sock, _ in self.poller.poll(math.ceil(wait * 1000)):
                # a bounded number per turn: a flood of requests must not stop the scans
                for _ in range(MAX_MESSAGES):
                    if not sock.poll(0):
                        break
                    data = sock.recv()
                    try:
                        self._message(sock, wire.unpack(data))
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("ignored a malformed message: %s", exc)
                    except Exception:  # nothing a peer sends may take the engine down
                        log.exception("a message could not be handled")
        now = time.monotonic()
        self._publish(self.core.scan(now, flush=True), now)  # drain before leaving
        self._events(self.reactions.flush(now))
        self._views(None)
        self._heartbeat(time.monotonic() - last_hb)
        return 0

    def _publish(self, pubs: list[Publication], now: float) -> None:
        watched = self.reactions.watched
        for p in pubs:
            self.pub.data(p.name, p.sig, p.seq, p.t, p.y, p.lost, p.replace, p.resumed)
            r = self.resamplers.get(p.sig)
            if r is not None:
                if p.replace:
                    r.reset()
                r.feed(p.t, p.y)
            if p.name in watched and len(p.t):
                t0 = time.perf_counter()  # what the rules cost: new ones are refused past a budget
                events = self.reactions.feed(p.name, p.t, p.y, now)
                self.reactions.note_cost(time.perf_counter() - t0, now)
                self._events(events)

    def _views(self, wall: float | None) -> None:
        """Close the view/aggregate buckets due at ``wall`` (unix s; None: all, at the end)
        and publish what is ready."""
        for sig, r in self.resamplers.items():
            track = self.core.tracks.get(sig)
            if track is None:
                continue
            if wall is None:
                r.flush()
            else:
                r.close(wall, self.cfg.view_grace)
            t, y = r.view()
            if len(t):
                self.pub.view(track.name, sig, t, y, r.view_width)
            for rows in r.aggregates():
                self.pub.aggregates(track.name, sig, rows.width, [
                    rows.start, rows.mean, rows.min, rows.max, rows.count, rows.n])

    def _events(self, events: list[Event]) -> None:
        for ev in events:  # every event was listed first, in this order: seq = its list number
            self.pub.event(ev, self.events)
            self.events += 1
        if self.reactions.effects:
            for ev, eff in self.reactions.take_effects():
                self._carry_out(ev, eff)

    # -- actions ------------------------------------------------------------------------
    def _carry_out(self, ev: Event, eff: Effect) -> None:
        if eff.kind == "notify":
            self.pub.notify(Notification(time.time(), eff.text, eff.priority, f"action:{eff.action}"))
        elif eff.kind == "write":
            self._write(eff, ev.id)
        else:
            req = {"op": "call", "driver": eff.device, "function": eff.name,
                   "args": list(eff.args), "kwargs": dict(eff.kwargs)} if eff.kind == "call" else \
                  {"op": "set", "driver": eff.device, "param": eff.name, "value": eff.value}
            self._request(req, eff, ev.id)

    def _request(self, req: dict, eff: Effect, cause: str) -> None:
        now = time.monotonic()
        for p in self.book.expired(now):  # never answered: forget
            self._failed(p.effect, f"no reply within {self.book.expire:g} s", p.cause)
        rid = self.book.ask(eff, cause, now)
        try:
            self.ctrl.send(wire.pack({**req, "rid": rid}), zmq.NOBLOCK)
        except (zmq.Again, ValueError, TypeError) as exc:
            self.book.forget(rid)
            self._failed(eff, f"could not send the request: {exc}", cause)

    def _write(self, eff: Effect, cause: str) -> None:
        name = f"{eff.device}.{eff.name}"
        value = eff.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._failed(eff, f"the value {value!r} is not a number", cause)
            return
        t = time.time()
        writer = self.writers.get(name)
        if writer is not None:
            writer.write(np.array([t]), np.array([float(value)]))
            return
        if self.book.queue(name, t, float(value)):  # ask for the ring once
            self._request({"op": "create_signal", "device": eff.device, "signal": eff.name}, eff, cause)

    def _reply(self, msg: dict) -> None:
        """A reply to one of the engine's own requests (an action's call/set/claim)."""
        pending = self.book.answered(msg.get("re"))
        if pending is None:
            return
        eff, cause = pending.effect, pending.cause
        if not msg.get("ok"):
            err = msg.get("error") or {}
            self._failed(eff, f"{err.get('code', 'error')}: {err.get('message', '')}", cause)
        elif eff.kind == "write":
            name = f"{eff.device}.{eff.name}"
            writer = self.writers[name] = RingWriter(Ring.open(msg["path"]))
            waiting = self.book.take_unwritten(name)
            if waiting is not None:
                writer.write(*waiting)

    def _failed(self, eff: Effect, why: str, cause: str) -> None:
        target = f"{eff.device}.{eff.name}" if eff.device else ""
        text = f"action {eff.action!r}: {eff.kind} {target} failed: {why}"
        log.warning("%s", text)
        if eff.kind == "write":  # the claim failed: the queued samples cannot be written
            self.book.drop_unwritten(target)
        ev = Event(time.time(), text, priority=1, id=FAILED, extra={"action": eff.action})
        if cause == FAILED:  # a failure while handling a failure: list it, run no action on it
            self.reactions.log.add(ev)
        else:
            self.reactions.receive(ev)
        self._events([ev])

    def _heartbeat(self, dt: float) -> None:
        stats = self.core.heartbeat(dt)
        self.pub.meta("heartbeat", {"seq": {k: v["seq"] for k, v in stats.items()},
                                    "rate": {k: v["rate"] for k, v in stats.items()},
                                    "lost": {k: v["lost"] for k, v in stats.items()},
                                    "resumed": {t.name: t.resumed for t in self.core.tracks.values()
                                                if t.resumed},
                                    "events": self.events})
        try:
            self.ctrl.send(wire.pack({"op": "engine_stats", "signals": stats, "events": self.events}),
                           zmq.NOBLOCK)
        except zmq.Again:
            pass  # the supervisor is busy: the next heartbeat carries the same counters

    def _message(self, sock, msg: dict) -> None:
        if sock is self.inbox:
            kind = msg.get("kind")
            try:
                if kind == "event":
                    self._events([self.reactions.receive(Event.from_dict(msg.get("event") or {}))])
                elif kind == "notify":
                    self.pub.notify(Notification.from_dict(msg.get("notify") or {}))
            except (TypeError, ValueError) as exc:
                log.warning("dropped a malformed %s: %s", kind, exc)
            return
        op = msg.get("op")
        if op is None and "re" in msg:
            if msg["re"] == "engine-hello" and msg.get("ok"):
                for s in msg.get("signals", []):
                    self._add(s, from_start=False)
                if self.core.tracks:  # a restart: let subscribers reconnect to the new PUB
                    self.quiet_until = time.monotonic() + REJOIN  # (the rings hold the data)

            else:
                self._reply(msg)
        elif op in REACTION_OPS:
            try:
                reply = self.reactions.handle(op, msg, time.monotonic())
            except RtocError as exc:
                reply = error_reply(exc)
            except Exception as exc:  # a request must never take the engine down
                log.exception("%s failed", op)
                reply = {"ok": False, "error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}
            try:
                self.ctrl.send(wire.pack({"re": msg.get("rid"), **reply}), zmq.NOBLOCK)
            except zmq.Again:
                log.warning("control queue full: the reply to %s was dropped", op)
            if op != "events" and op != "rules" and reply.get("ok"):
                self.pub.meta("rules_changed", {"op": op, "kind": msg.get("kind")})
        elif op == "signal_added":
            self._add(msg["signal"], from_start=True)
            self.pub.meta("signal_created", _public(msg["signal"]))
        elif op == "signal_removed":
            sig = msg["signal"]["id"]
            self.core.remove(sig)
            self.resamplers.pop(sig, None)
            self.pub.meta("signal_removed", _public(msg["signal"]))
        elif op == "meta":
            self.pub.meta(str(msg.get("kind", "info")), dict(msg.get("fields") or {}))

    def _add(self, s: dict, from_start: bool) -> None:
        if s["id"] not in self.core.tracks:
            self.core.add(s["id"], s["name"], Ring.open(s["path"]), from_start)
            self.resamplers[s["id"]] = Resampler(view_width_for(self.cfg.view_points),
                                                 tuple(self.cfg.aggregates))

    def close(self) -> None:
        for sig in list(self.core.tracks):
            self.core.remove(sig)
        for writer in self.writers.values():
            writer.ring.close()
        self.pub.close()
        self.inbox.close()
        self.ctrl.close()


def _public(signal: dict) -> dict:
    return {k: signal[k] for k in ("id", "name", "unit", "owner", "epoch", "path", "content") if k in signal}


def keep_large_blocks() -> None:
    """Ask glibc malloc to reuse large blocks instead of mmap/munmap'ing each one.

    Every read allocates fresh arrays (zmq may still hold the previous ones), and with
    glibc's default each 512 KiB array is a new mmap whose pages fault in on first touch:
    the bench measured engine CPU at 50 MS/s 57 % -> 31 % with these settings.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def _serve(spec: ChildSpec, stop: threading.Event, ctx: zmq.Context) -> int:
    """The engine process's life (see :func:`run_child`)."""
    keep_large_blocks()
    from rtoc.pipeline.evaluator import warm_up as conditions_warm_up
    from rtoc.pipeline.resampler import warm_up as resampler_warm_up
    from rtoc.pipeline.ring import warm_up

    warm_up()
    conditions_warm_up()
    resampler_warm_up()
    cfg = spec.config
    engine = EngineProcess(cfg.engine, spec.endpoints, ctx, cfg.rules_path, cfg.events, cfg.actions,
                           bus=cfg.bus)
    try:
        return engine.run(stop)
    finally:
        engine.close()


def main(spec: ChildSpec) -> None:
    """Entry point of the engine process (spawned by the supervisor)."""
    run_child(spec, _serve)
