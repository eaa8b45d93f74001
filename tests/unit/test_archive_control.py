"""The archiver answers control ops while its writer thread is busy with earlier batches."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, SignalKey
from rtoc.frontends.archive.duck import DuckBackend
from rtoc.frontends.archive.process import Archiver
from rtoc.frontends.archive.spool import Spool

from rtoc import wire


class SlowDuck(DuckBackend):
    """A real DuckDB archive whose writes take ``delay`` s (a database under load);
    ``writing`` is set when the first write begins."""

    delay = 0.6

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.writing = threading.Event()

    def write(self, batch: ArchiveBatch) -> int:
        self.writing.set()
        time.sleep(self.delay)  # the slowness under test, not a wait
        return super().write(batch)


def test_queries_are_answered_while_batches_wait_for_a_busy_writer(tmp_path):
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("inproc://control")
    pub = ctx.socket(zmq.PUB)
    pub.bind("inproc://data")
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://inbox")
    (tmp_path / "spool").mkdir()
    duck = SlowDuck(tmp_path / "a.duckdb")
    arch = Archiver(duck, Spool(tmp_path / "spool"),
                    {"control": "inproc://control", "data": "inproc://data", "inbox": "inproc://inbox"},
                    ctx)
    try:
        arch.start(time.monotonic())
        for _ in range(2):  # hello and the signal list request
            router.recv_multipart()
        batches = [ArchiveBatch(i, [Chunk(SignalKey("Dev.A", 1, ""), 10 * i, np.arange(10.0) + 10 * i,
                                          np.ones(10))]) for i in range(6)]
        # the archiver's main loop hands batches over; with 2 waiting it blocks in _write
        loop = threading.Thread(target=lambda: [arch._write(b, time.monotonic()) for b in batches])
        loop.start()
        assert duck.writing.wait(10), "the writer thread never began a write"
        router.send_multipart([b"archiver", wire.pack({"op": "archive_signals", "rid": "q1"})])
        assert router.poll(10_000), "no reply while the writer was busy"
        _, reply = router.recv_multipart()
        reply = wire.unpack(reply)
        assert reply["re"] == "q1" and reply["ok"]
        assert loop.is_alive()  # answered before the last batches were even handed over
        loop.join(10)
        arch.flush()
        assert arch.written == 60
    finally:
        arch.close()
        for s in (router, pub, pull):
            s.close(0)
        ctx.term()


class Outage(DuckBackend):
    """A real DuckDB archive that is away (ArchiveUnavailable) while ``away`` is set."""

    away = True

    def connect(self) -> None:
        from rtoc.errors import ArchiveUnavailable

        if self.away and self._con is None:
            raise ArchiveUnavailable("database away (test)")
        super().connect()

    def write(self, batch: ArchiveBatch) -> int:
        from rtoc.errors import ArchiveUnavailable

        if self.away:
            raise ArchiveUnavailable("database away (test)")
        return super().write(batch)


class FullDisk(Spool):
    """A spool on a disk that is full while ``full`` is set."""

    full = True

    def put(self, batch: ArchiveBatch):
        if self.full:
            raise OSError(28, "No space left on device")
        return super().put(batch)


@pytest.mark.timeout(60)  # the old code hung here: its writer thread was dead
def test_a_writer_that_can_neither_write_nor_spool_survives_counts_and_recovers(tmp_path):
    """Issue 13 E: with the database away and the spool's disk full, the exception in the
    writer's error path ended the writer thread: the archiver stayed "up" with no gap while
    half a run went unarchived, and freeing the disks did not help. Now the thread lives,
    the status says why it is down, the lost samples become gap rows once the database
    takes writes again, one warning event is raised, and writing resumes."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("inproc://control")
    pub = ctx.socket(zmq.PUB)
    pub.bind("inproc://data")
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://inbox")
    duck, spool = Outage(tmp_path / "a.duckdb"), FullDisk(tmp_path / "spool")
    arch = Archiver(duck, spool, {"control": "inproc://control", "data": "inproc://data",
                                  "inbox": "inproc://inbox"}, ctx)
    key = SignalKey("Dev.A", 1, "")

    def batch(i: int) -> ArchiveBatch:
        return ArchiveBatch(i, [Chunk(key, 10 * i, np.arange(10.0) + 10 * i, np.ones(10))])

    try:
        arch.start(time.monotonic())
        arch.up = True  # it connected; the outage starts with the first write
        for i in range(3):  # two batches through the writer thread, one from the main loop
            arch.queue.put(batch(i)) if i < 2 else arch._write(batch(i), time.monotonic())
            arch.flush()
        assert arch.thread.is_alive()
        st = arch.status()
        assert st["up"] is False and "No space left" in st["unwritable"] and st["unwritable_lost"] == 30
        assert arch.unwritable.take_report() is True and arch.unwritable.take_report() is False
        # space returns, then the database: the next batch is written with the gap rows
        spool.full, duck.away = False, False
        arch._retry(time.monotonic(), force=True)
        arch._write(batch(3), time.monotonic())
        arch.flush()
        assert arch.status()["up"] is True and arch.status()["unwritable"] == ""
        con = duck._con
        assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == 10
        assert con.execute("SELECT first_seq, count FROM gaps ORDER BY first_seq").fetchall() == [(0, 30)]
    finally:
        arch.close()
        for s in (router, pub, pull):
            s.close(0)
        ctx.term()


@pytest.mark.timeout(60)
def test_a_restart_while_the_database_is_away_resumes_after_the_spool(tmp_path):
    """Issue 13 B: an archiver restarted while the database was away had no resume point,
    started at seq 0 and recorded everything older than the ring as lost, then replayed the
    spool holding those same samples (phantom gaps). What was spooled counts as archived."""
    from rtoc.frontends.archive.process import Archiver as A

    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("inproc://control")
    pub = ctx.socket(zmq.PUB)
    pub.bind("inproc://data")
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://inbox")
    eps = {"control": "inproc://control", "data": "inproc://data", "inbox": "inproc://inbox"}
    key = SignalKey("Dev.A", 7, "")
    duck = Outage(tmp_path / "a.duckdb")
    duck.away = False
    first = A(duck, Spool(tmp_path / "spool"), eps, ctx)
    try:
        first.start(time.monotonic())
        for i in range(4):  # two batches written, then the database goes away: two spooled
            if i == 2:
                duck.away = True
            first._write(ArchiveBatch(i, [Chunk(key, 10 * i, np.arange(10.0), np.ones(10))]),
                         time.monotonic())
            first.flush()
        assert first.spool.size == 2
    finally:
        first.close()  # the process dies; the database is still away when it comes back
    second = A(duck, Spool(tmp_path / "spool"), eps, ctx)
    try:
        second.start(time.monotonic())
        assert not second.up
        assert second.batcher.resume == {("Dev.A", 7): 40}  # not 0: nothing is lost
    finally:
        second.close()
        for s in (router, pub, pull):
            s.close(0)
        ctx.term()
