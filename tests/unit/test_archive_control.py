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


class Plane:
    """The supervisor's side of an archiver's sockets, in process (inproc://)."""

    endpoints = {"control": "inproc://control", "data": "inproc://data", "inbox": "inproc://inbox"}

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.bind(self.endpoints["control"])
        self.sockets = [self.router, self.ctx.socket(zmq.PUB), self.ctx.socket(zmq.PULL)]
        self.sockets[1].bind(self.endpoints["data"])
        self.sockets[2].bind(self.endpoints["inbox"])

    def close(self) -> None:
        for s in self.sockets:
            s.close(0)
        self.ctx.term()


@pytest.fixture
def plane():
    p = Plane()
    yield p
    p.close()


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


def test_queries_are_answered_while_batches_wait_for_a_busy_writer(tmp_path, plane):
    (tmp_path / "spool").mkdir()
    duck = SlowDuck(tmp_path / "a.duckdb")
    arch = Archiver(duck, Spool(tmp_path / "spool"),
                    plane.endpoints,
                    plane.ctx)
    try:
        arch.start(time.monotonic())
        for _ in range(2):  # hello and the signal list request
            plane.router.recv_multipart()
        batches = [ArchiveBatch(i, [Chunk(SignalKey("Dev.A", 1, ""), 10 * i, np.arange(10.0) + 10 * i,
                                          np.ones(10))]) for i in range(6)]
        # the archiver's main loop hands batches over; with 2 waiting it blocks in _write
        loop = threading.Thread(target=lambda: [arch._write(b, time.monotonic()) for b in batches])
        loop.start()
        assert duck.writing.wait(10), "the writer thread never began a write"
        plane.router.send_multipart([b"archiver", wire.pack({"op": "archive_signals", "rid": "q1"})])
        assert plane.router.poll(10_000), "no reply while the writer was busy"
        _, reply = plane.router.recv_multipart()
        reply = wire.unpack(reply)
        assert reply["re"] == "q1" and reply["ok"]
        assert loop.is_alive()  # answered before the last batches were even handed over
        loop.join(10)
        arch.flush()
        assert arch.written == 60
    finally:
        arch.close()


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
def test_a_writer_that_can_neither_write_nor_spool_survives_counts_and_recovers(tmp_path, plane):
    """Issue 13 E: with the database away and the spool's disk full, the exception in the
    writer's error path ended the writer thread: the archiver stayed "up" with no gap while
    half a run went unarchived, and freeing the disks did not help. Now the thread lives,
    the status says why it is down, the lost samples become gap rows once the database
    takes writes again, one warning event is raised, and writing resumes."""
    duck, spool = Outage(tmp_path / "a.duckdb"), FullDisk(tmp_path / "spool")
    arch = Archiver(duck, spool, plane.endpoints, plane.ctx)
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


@pytest.mark.timeout(60)
def test_a_restart_while_the_database_is_away_resumes_after_the_spool(tmp_path, plane):
    """Issue 13 B: an archiver restarted while the database was away had no resume point,
    started at seq 0 and recorded everything older than the ring as lost, then replayed the
    spool holding those same samples (phantom gaps). What was spooled counts as archived."""
    from rtoc.frontends.archive.process import Archiver as A

    key = SignalKey("Dev.A", 7, "")
    duck = Outage(tmp_path / "a.duckdb")
    duck.away = False
    first = A(duck, Spool(tmp_path / "spool"), plane.endpoints, plane.ctx)
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
    second = A(duck, Spool(tmp_path / "spool"), plane.endpoints, plane.ctx)
    try:
        second.start(time.monotonic())
        assert not second.up
        assert second.batcher.resume == {("Dev.A", 7): 40}  # not 0: nothing is lost
    finally:
        second.close()


class TakesNoWrites(DuckBackend):
    """A database that takes connections but no writes while ``full`` (its disk full)."""

    full = True

    def write(self, batch: ArchiveBatch) -> int:
        from rtoc.errors import ArchiveUnavailable

        if self.full:
            raise ArchiveUnavailable("could not extend file: No space left on device (test)")
        return super().write(batch)


@pytest.mark.timeout(60)
def test_an_outage_is_logged_once_and_its_retries_back_off(tmp_path, plane, caplog):
    """Issue 13 E: "database unavailable" was logged 82 times in 40 s. A database that
    connects but refuses writes made every retry look like a new outage: the connect reset
    the back-off and the failed replay logged again. One warning at the start, one line at
    the end, and the retries space out."""
    duck = TakesNoWrites(tmp_path / "a.duckdb")
    arch = Archiver(duck, Spool(tmp_path / "spool"), plane.endpoints, plane.ctx)
    key = SignalKey("Dev.A", 1, "")
    try:
        with caplog.at_level("INFO", logger="rtoc"):
            arch.start(time.monotonic())
            assert arch.up
            arch._write(ArchiveBatch(0, [Chunk(key, 0, np.arange(10.0), np.ones(10))]), time.monotonic())
            arch.flush()
            delays = []
            for _ in range(10):
                arch._retry(time.monotonic(), force=True)
                delays.append(arch.retry_delay)
            assert arch.spool.size == 1 and not arch.up
            duck.full = False
            arch._retry(time.monotonic(), force=True)
            assert arch.up and arch.spool.size == 0 and arch.written == 10
        lines = [r.getMessage() for r in caplog.records]
        assert sum("database unavailable" in m for m in lines) == 1, lines
        assert sum("database available again" in m for m in lines) == 1, lines
        assert delays == sorted(delays) and delays[-1] > delays[0], delays
    finally:
        arch.close()
