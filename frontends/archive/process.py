"""The archiver process: the bus in, the database out, nothing lost and nothing twice.

Read, feed, drain, write: a SUB on data, events and meta feeds the :class:`Batcher`; every
``flush_interval`` its batch goes to the backend in one transaction. While the database is
away, batches go to the :class:`Spool` and are replayed in order, with back-off, once it is
back. At start the archive says where each ring's archived samples end, and the archiver
reads the rest from the rings (after a ``kill -9``, a restart, an outage of the archiver).
A hole on the bus is backfilled from the ring while the ring still holds it; otherwise it
becomes a gap row and a warning event. Requests forwarded by the supervisor (history,
status, query, import) are answered between batches.
"""

from __future__ import annotations

import logging
import math
import queue
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from rtoc.frontends.archive.backend import ArchiveBatch, Backend
from rtoc.frontends.archive.batcher import Backfill, Batcher
from rtoc.frontends.archive.dead_rings import recover
from rtoc.frontends.archive.queries import Queries
from rtoc.frontends.archive.resume_file import ResumeFile
from rtoc.frontends.archive.spool import Spool
from rtoc.frontends.archive.unwritable import Unwritable
from rtoc.pipeline.bus import DataBatch, Meta, Subscriber
from rtoc.pipeline.child import ChildSpec, run_child
from rtoc.pipeline.registry import dead_folders
from rtoc.pipeline.ring import Ring, RingReader

from rtoc import wire
from rtoc.config import Config
from rtoc.errors import ArchiveError, ArchiveUnavailable, RtocError, error_reply
from rtoc.model import Event
from rtoc.paths import instance_dir

log = logging.getLogger(__name__)
RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # s: back-off while the database is away
RETENTION_EVERY = 3600.0            # s between retention runs at most (a quarter of the age)
SIGNALS_RID = "archiver-signals"
CONTROL_WAIT = 0.05  # s; while both batches wait for the writer, control ops are answered this often


class Archiver:
    def __init__(self, backend: Backend, spool: Spool, endpoints: dict, ctx: zmq.Context,
                 flush_interval: float = 1.0, max_batch: int = 1_000_000, retention_days: float = 0.0,
                 shm_folder: Path | None = None, snapshot_interval: float = 10.0):
        self.shm_folder = shm_folder  # the instance's folder: a dead instance's rings wait there
        self.backend, self.spool = backend, spool
        self.flush_interval, self.max_batch = flush_interval, max_batch
        self.snapshot_interval = snapshot_interval
        self.retention = retention_days * 86400.0
        self.sub = Subscriber(endpoints["data"], None, events=True, meta=True, ctx=ctx)
        self.ctrl = ctx.socket(zmq.DEALER)
        self.ctrl.setsockopt(zmq.IDENTITY, b"archiver")
        self.ctrl.setsockopt(zmq.LINGER, 500)
        self.ctrl.connect(endpoints["control"])
        self.inbox = ctx.socket(zmq.PUSH)
        self.inbox.setsockopt(zmq.LINGER, 500)
        self.inbox.connect(endpoints["inbox"])
        self.batcher: Batcher | None = None
        self.rings: dict[int, Ring] = {}
        self.paths: dict[int, str] = {}
        self.sig_of: dict[str, int] = {}
        self.asked: set[int] = set()
        self.deferred: dict[int, Backfill] = {}  # backfills waiting for their ring's path
        self.up = False
        self.retry_at = 0.0
        self.retry_delay = RETRY_FIRST
        self.queries = Queries(self)
        self.lock = threading.RLock()  # one user of the backend at a time
        self.queue: queue.Queue[ArchiveBatch | None] = queue.Queue(maxsize=2)
        self.thread = threading.Thread(target=self._writer, name="archive-writer", daemon=True)
        self.written = self.spooled = 0
        self.last_error = ""
        self.outage = ""  # why the database is away, while an outage is on (logged once)
        self.unwritable = Unwritable()  # batches neither written nor spooled (both disks full)
        self.ends = ResumeFile(spool.folder / "resume.json")  # what was written or spooled

    # -- start-up ------------------------------------------------------------------------
    def start(self, now: float) -> None:
        self.thread.start()
        resume: dict = {}
        if self._connect():
            resume = self._call(self.backend.resume_points) or {}
        # what is spooled counts as archived: without it a restart while the database is
        # away (or behind its spool) recorded the spooled samples as lost
        resume = self.ends.merged(resume)
        self.batcher = Batcher(self.flush_interval, self.max_batch, resume,
                               first_number=max(time.time_ns(), self.spool.last_number() + 1),
                               snapshot_interval=self.snapshot_interval)
        if self.shm_folder is not None:  # before the hello: the rings must not wait long
            self._recover_dead(resume, now)
        self.ctrl.send(wire.pack({"op": "hello", "role": "archiver", "rid": "archiver-hello"}))
        self.ctrl.send(wire.pack({"op": "signals", "rid": SIGNALS_RID}))

    def _recover_dead(self, resume: dict, now: float) -> None:
        """A dead instance's rings (``dead_rings.py``): archived or spooled, then removed."""
        for folder in dead_folders(self.shm_folder):
            for batch in recover(folder, resume, self.batcher.next_number, time.time()):
                self._write(batch, now)
            self.flush()
            shutil.rmtree(folder, ignore_errors=True)

    def _connect(self) -> bool:
        try:
            self.backend.connect()
        except ArchiveUnavailable as exc:
            self._down(exc)
            return False
        self.up = True  # the outage ends with the first write that works (_wrote)
        return True

    def _wrote(self) -> None:
        """A write the database took: an outage is over (logged once, as its start was)."""
        if self.outage:
            log.info("archive: database available again (was: %s)", self.outage)
            self.outage = ""
        self.retry_delay = RETRY_FIRST

    def _follow(self, s: dict, now: float) -> None:
        """A ring to archive; read what it holds beyond the archive's end."""
        sig = int(s["id"])
        self.paths[sig] = s.get("path") or self.paths.get(sig, "")
        self.sig_of[s["name"]] = sig
        known = sig in self.batcher.tracks
        self.batcher.signal(sig, s["name"], int(s.get("epoch", 0)), s.get("unit") or "", s.get("content") or "",
                            int(s.get("capacity") or 0))
        if self.paths[sig] and sig in self.deferred:
            self._backfill(self.deferred.pop(sig), now)
        if known or not self.paths[sig]:
            return
        ring = self._ring(sig)  # what it holds beyond the archive's end (its resume point)
        if ring is not None:
            self._backfill(self.batcher.expect(sig, ring.committed, now), now)

    # -- the loop ------------------------------------------------------------------------
    def run(self, stop) -> int:
        self.start(time.monotonic())
        last_retention = -math.inf
        poller = zmq.Poller()
        poller.register(self.sub.sock, zmq.POLLIN)
        poller.register(self.ctrl, zmq.POLLIN)
        while not stop.is_set():
            now = time.monotonic()
            deadline = self.batcher.next_deadline()
            wait = 0.1 if deadline is None else min(0.1, max(0.0, deadline - now))
            for sock, _ in poller.poll(math.ceil(wait * 1000)):
                for _ in range(1000):  # bounded, so flushes and retries still happen
                    if sock is self.sub.sock:
                        msg = self.sub.recv(timeout=0)
                        if msg is None:
                            break
                        self._bus(msg, time.monotonic())
                    else:
                        self._answer_controls()
                        break
            now = time.monotonic()
            if self.batcher.due(now):
                self._write(self.batcher.take(), now)
            if not self.up or self.spool.size:
                self._retry(now)
            if self.unwritable.take_report():
                self._report_unwritable()
            every = min(RETENTION_EVERY, max(1.0, self.retention / 4))
            if self.retention and self.up and now - last_retention > every:
                self._call(self.backend.delete_before, time.time() - self.retention)
                last_retention = now
        self._drain()
        return 0

    def _drain(self) -> None:
        """Stopping: take what is still on the bus, write (or spool) the last batch."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            msg = self.sub.recv(timeout=0.05)
            if msg is None:
                break
            self._bus(msg, time.monotonic())
        now = time.monotonic()
        self._retry(now, force=True)
        batch = self.batcher.take(final=True)  # the last plots too, not waiting for their interval
        if batch:
            self._write(batch, now)
        self.flush()

    def _bus(self, msg: Any, now: float) -> None:
        b = self.batcher
        if isinstance(msg, DataBatch):
            if msg.sig not in b.tracks:  # not announced yet: ask (its ring is read then)
                if msg.sig not in self.asked:
                    self.asked.add(msg.sig)
                    self.ctrl.send(wire.pack({"op": "signals", "rid": SIGNALS_RID}), zmq.NOBLOCK)
                return
            self._backfill(b.data(msg.sig, msg.seq, msg.t, msg.y, msg.lost, now, msg.replace), now)
        elif isinstance(msg, Event):
            b.event(msg.to_dict(), now)
        elif isinstance(msg, Meta):
            if msg.kind == "signal_created":
                self._follow(msg.fields, now)
            elif msg.kind == "signal_removed":  # its archived history stays
                ring = self.rings.pop(int(msg.fields.get("id", -1)), None)
                if ring is not None:
                    ring.close()
            elif msg.kind == "heartbeat":
                for name, seq in (msg.fields.get("seq") or {}).items():
                    sig = self.sig_of.get(name)
                    if sig is not None:
                        self._backfill(b.expect(sig, int(seq), now), now)

    def _backfill(self, req: Backfill | None, now: float) -> None:
        while req is not None:
            if not self.paths.get(req.sig):  # known from a meta without a ring path: ask first
                if req.sig not in self.deferred:
                    self.ctrl.send(wire.pack({"op": "signals", "rid": SIGNALS_RID}), zmq.NOBLOCK)
                self.deferred[req.sig] = req  # the batcher holds what comes after the gap
                return
            ring = self._ring(req.sig)
            snapshot = None
            if ring is None:
                t = y = np.empty(0)
                first = req.first_seq + req.count
            else:
                res = RingReader(ring, cursor=req.first_seq, max_batch=req.count).read()
                tr = self.batcher.tracks.get(req.sig)
                if tr is not None and tr.snapshots and tr.snap is None and res.snapshot < req.first_seq:
                    # a restarted archiver: the plot on show began before its resume point
                    # (it grew with hold="on"); take it whole, from where it began
                    whole = RingReader(ring, cursor=res.snapshot,
                                       max_batch=req.first_seq + req.count - res.snapshot).read()
                    if whole.first == res.snapshot:
                        res = whole
                first, t, y = res.first, res.t, res.y
                # where its last plot() began: 0 means none (or one at 0, which announced
                # snapshot signals start from anyway)
                snapshot = res.snapshot if res.snapshot > 0 else None
            before = self.batcher.stats["lost"]
            more = self.batcher.backfilled(req.sig, first, t, y, now, snapshot)
            lost = self.batcher.stats["lost"] - before
            if lost:
                self._warn(req, lost)
            req = more[0] if more else None

    def _warn(self, req: Backfill, lost: int) -> None:
        key = self.batcher.tracks[req.sig].key
        text = f"archive: {lost} samples of {key.name} were lost before they could be archived"
        log.warning("%s (from seq %d)", text, req.first_seq)
        ev = Event(time.time(), text, key.device, key.name.partition(".")[2], 1, "rtoc.archive_gap",
                   lost, {"first_seq": req.first_seq})
        try:
            self.inbox.send(wire.pack({"kind": "event", "event": ev.to_dict()}), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def _ring(self, sig: int) -> Ring | None:
        ring = self.rings.get(sig)
        if ring is None and self.paths.get(sig):
            try:
                ring = self.rings[sig] = Ring.open(self.paths[sig])
            except (OSError, RtocError) as exc:
                log.warning("cannot open the ring of signal %d: %s", sig, exc)
                return None
        return ring

    # -- writing -------------------------------------------------------------------------
    def _write(self, batch: ArchiveBatch, now: float) -> None:
        """Hand a batch to the writer thread (or the spool while the database is away).
        The database works while this thread receives the next batch; at most two wait."""
        if not batch:
            return
        if self.up and not self.spool.size:
            while True:
                try:
                    self.queue.put(batch, timeout=CONTROL_WAIT)
                    break
                except queue.Full:  # the writer is busy: queries still get their answers
                    self._answer_controls()
        else:
            self._keep(batch)

    def _writer(self) -> None:
        """The writer thread: batches in order; once the database is away (or batches wait
        in the spool) they go to the spool, so the spool keeps the order."""
        while True:
            batch = self.queue.get()
            try:
                if batch is None:
                    return
                with self.lock:
                    self._write_now(batch)
            except Exception:  # never lose the thread: the batch is spooled (or counted lost)
                log.exception("archive: writing batch %d failed", batch.number)
                self._keep(batch)
            finally:
                self.queue.task_done()

    def _write_now(self, batch: ArchiveBatch) -> None:
        if self.up and not self.spool.size:
            batch.gaps.extend(self.unwritable.take_gaps())  # what earlier outages lost
            try:
                self.written += self.backend.write(batch)
                self._wrote()
                self._recovered()
                return
            except ArchiveUnavailable as exc:
                self._down(exc)
            except ArchiveError as exc:  # the database refused this batch: keep it aside
                path = self._keep(batch)
                if path is not None:
                    self._refused(path, exc)
                return
        self._keep(batch)

    def _keep(self, batch: ArchiveBatch) -> Path | None:
        """Spool a batch the database did not take. When the spool cannot take it either
        (its disk full too) its samples are lost: counted, written as gap rows once the
        database takes writes again, logged and reported once per outage. Never raises:
        the writer thread must outlive any disk (it died here once, silently, and the
        archiver stayed "up" while half a run went unarchived)."""
        try:
            path = self.spool.put(batch)
        except OSError as exc:
            if self.unwritable.lost(batch, exc):
                log.error("archive: cannot write or spool (%s; database: %s): samples are "
                          "lost until space returns, recorded as gaps", exc,
                          self.last_error or "up")
            return None
        self.spooled += batch.samples
        self.ends.note(batch)
        self._recovered()
        return path

    def _recovered(self) -> None:
        reason = self.unwritable.recovered()
        if reason:
            log.warning("archive: writing again after an outage (%s); %d samples could not be "
                        "kept and are recorded as gaps", reason, self.unwritable.samples)

    def _report_unwritable(self) -> None:
        """(main thread: it owns the inbox socket) One warning event per outage."""
        text = (f"archive: cannot write or spool ({self.unwritable.reason or 'recovered'}); "
                "samples are being lost and recorded as gaps")
        ev = Event(time.time(), text, "rtoc", "archive", 2, "rtoc.archive_unwritable",
                   self.unwritable.samples, {})
        try:
            self.inbox.send(wire.pack({"kind": "event", "event": ev.to_dict()}), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def flush(self) -> None:
        """Wait until every batch handed to the writer thread is written or spooled."""
        self.queue.join()

    def _retry(self, now: float, force: bool = False) -> None:
        if not force and now < self.retry_at:
            return
        self.flush()  # batches older than the spooled ones go first (into the spool)
        with self.lock:
            self._replay(now)

    def _replay(self, now: float) -> None:
        if not self.up and not self._connect():
            self._back_off(now)
            return
        pending = self.spool.pending()
        for path in pending:  # in order; stop at the first failure
            batch = self.spool.load(path)
            if batch is None:
                continue
            try:
                self.written += self.backend.write(batch)
                self._wrote()
            except ArchiveUnavailable as exc:
                self._down(exc)
                self._back_off(now)
                return
            except ArchiveError as exc:
                self._refused(path, exc)
                continue
            self.spool.done(path)
        if pending:
            log.info("archive: database available; %d spooled batches replayed", len(pending))

    def _refused(self, path: Path, exc: Exception) -> None:
        """A batch the database will never take (not an outage): kept aside as ``*.bad``
        for a person to look at, and reported; the archive goes on."""
        bad = path.with_suffix(".bad")
        path.rename(bad)
        self.last_error = str(exc)
        log.error("archive: the database refused a batch (%s); kept in %s", exc, bad)

    def _back_off(self, now: float) -> None:
        self.retry_at = now + self.retry_delay
        self.retry_delay = min(RETRY_MAX, self.retry_delay * 2)

    def _down(self, exc: Exception) -> None:
        """The database is away. Logged once per outage: a database that takes connections
        but no writes (its disk full) once logged this at every retry, 82 times in 40 s."""
        if not self.outage:
            log.warning("archive: database unavailable (%s); spooling to %s", exc, self.spool.folder)
        self.up = False
        self.last_error = self.outage = str(exc)

    def _call(self, fn, *args):
        with self.lock:
            try:
                return fn(*args)
            except ArchiveUnavailable as exc:
                self._down(exc)
                return None

    # -- control -------------------------------------------------------------------------
    def _answer_controls(self, limit: int = 1000) -> None:
        for _ in range(limit):
            if not self.ctrl.poll(0):
                return
            self._control(wire.unpack(self.ctrl.recv()), time.monotonic())

    def _control(self, msg: dict, now: float) -> None:
        if "op" not in msg:  # a reply to one of ours
            if msg.get("re") == SIGNALS_RID and msg.get("ok"):
                for s in msg.get("signals", []):
                    self._follow(s, now)
            return
        try:
            reply = self.queries.handle(msg["op"], msg)
        except RtocError as exc:
            reply = error_reply(exc)
        except (KeyError, TypeError, ValueError) as exc:
            reply = {"ok": False, "error": {"code": "bad_request", "message": f"{type(exc).__name__}: {exc}"}}
        try:
            self.ctrl.send(wire.pack({"re": msg.get("rid"), **reply}), zmq.NOBLOCK)
        except zmq.Again:
            log.warning("control queue full: a reply was dropped")

    def status(self) -> dict:
        return {"backend": self.backend.name, "up": self.up and not self.unwritable.reason,
                "unwritable": self.unwritable.reason, "unwritable_lost": self.unwritable.samples,
                "written": self.written,
                "spooled_samples": self.spooled, "spool_batches": self.spool.size,
                "last_error": self.last_error, **self.batcher.stats}

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(30)
        for ring in self.rings.values():
            ring.close()
        self.rings.clear()
        self.sub.close()
        self.ctrl.close()
        self.inbox.close()
        try:
            self.backend.close()
        except ArchiveUnavailable:
            pass


def make_backend(cfg: Config) -> Backend:
    """The backend ``[archive]`` names: PostgreSQL at its ``dsn``, or the DuckDB file."""
    if cfg.archive.backend == "postgres":
        from rtoc.frontends.archive.postgres import PostgresBackend

        return PostgresBackend(cfg.archive.dsn, cfg.archive.schema)
    from rtoc.frontends.archive.duck import DuckBackend

    return DuckBackend(cfg.archive_path, memory_limit=cfg.archive.memory_limit,
                       threads=cfg.archive.threads)


def _serve(spec: ChildSpec, stop: threading.Event, ctx: zmq.Context) -> int:
    """The archiver process's life (see :func:`run_child`)."""
    cfg = spec.config
    a = cfg.archive
    archiver = Archiver(make_backend(cfg), Spool(cfg.spool_path), spec.endpoints, ctx,
                        a.flush_interval, a.max_batch, a.retention_days,
                        shm_folder=instance_dir(cfg.instance), snapshot_interval=a.snapshot_interval)
    try:
        return archiver.run(stop)
    finally:
        archiver.close()


def main(spec: ChildSpec) -> None:
    """Entry point of the archiver process (spawned by the supervisor)."""
    run_child(spec, _serve)
