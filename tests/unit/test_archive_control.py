"""The archiver answers control ops while its writer thread is busy with earlier batches."""

from __future__ import annotations

import threading
import time

import numpy as np
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
