"""Per-client bounds of the websocket server (issue 12): the send queue in bytes, the
close of a client that does not read, msgpack bounds of rtoc.bin.v1 frames, the frame
limit before a login, /metrics' access."""

from __future__ import annotations

import asyncio

import msgpack
import pytest
from rtoc.frontends.websocket import http as routes
from rtoc.frontends.websocket.binary_protocol.protocol import BinSession
from rtoc.frontends.websocket.binary_protocol.shell import Binary, SendQueue
from rtoc.frontends.websocket.server import CHUNK, _chunks
from rtoc.frontends.websocket.session import Session

from rtoc.client import frames


def run(coro):
    return asyncio.run(coro)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_queue_is_bounded_in_bytes_and_items() -> None:
    q = SendQueue(100, max_items=3)
    assert q.offer(b"x" * 60, None)
    assert not q.offer(b"y" * 60, None)       # 120 bytes > 100
    assert q.offer(b"z" * 10, None) and q.offer(b"w", None)
    assert not q.offer(b"v", None)            # 3 items
    assert q.bytes == 71


def test_an_oversized_item_goes_only_when_everything_before_was_written_out() -> None:
    async def main() -> None:
        q = SendQueue(10)
        assert q.offer(b"a", None)
        await q.get()                          # the sender writes it ...
        assert not q.offer(b"b" * 20, None)    # ... a big one waits until it is out
        q.done()
        assert q.offer(b"b" * 20, None)
    run(main())


def test_a_queue_that_stays_full_is_noticed_and_one_that_drains_is_not() -> None:
    async def main() -> None:
        clock = Clock()
        q = SendQueue(10, clock=clock)
        q.offer(b"x" * 10, None)
        assert not q.offer(b"y", None)         # full: since now
        clock.now += 5
        assert q.stays_full(5) and not q.stays_full(6)
        await q.get()                          # the client reads: room again
        q.done()
        assert q.full_since is None and not q.stays_full(0)
    run(main())


def test_put_gives_up_after_its_timeout_and_when_the_queue_closes() -> None:
    async def main() -> None:
        q = SendQueue(10)
        q.offer(b"x" * 10, None)
        assert await q.put(b"y" * 5, None, timeout=0.05) is False   # nobody reads
        waiting = asyncio.create_task(q.put(b"y" * 5, None))          # no timeout ...
        await asyncio.sleep(0)
        q.close()                                                     # ... the connection is lost
        assert await asyncio.wait_for(waiting, 1.0) is False
        assert not q.offer(b"z", None) and q.bytes == 0
        await asyncio.wait_for(q.drained(), 1.0)
    run(main())


def test_close_gives_back_the_budget_of_dropped_items() -> None:
    released = []
    q = SendQueue(10)
    q.offer(b"x", lambda: released.append(1))
    q.offer(b"y", None)
    q.close()
    assert released == [1]


def test_batches_are_cut_after_reads_and_every_chunk() -> None:
    push, read = b'{"y": [1], "sname": ["S"], "dname": "D"}', b'{"getSignal": ["D.S"]}'
    assert list(_chunks([push, push, read, push, read, read])) == [[push, push, read], [push, read], [read]]
    many = [push] * (CHUNK + 5)
    assert [len(c) for c in _chunks(many)] == [CHUNK, 5]
    assert list(_chunks([])) == []


# -- rtoc.bin.v1 ------------------------------------------------------------------------------
def test_control_frames_with_huge_containers_are_refused() -> None:
    for obj in ({"op": "ping", "pad": [None] * (frames.MAX_ITEMS + 1)},
                {"op": "ping", "pad": {str(i): 0 for i in range(frames.MAX_ITEMS + 1)}},
                {"op": "ping", "pad": "x" * (frames.MAX_TEXT + 1)}):
        with pytest.raises(frames.FrameError, match="control frame: not a msgpack message"):
            frames.decode(b"\x01" + msgpack.packb(obj))
    # binary values may fill the frame (history's t and y)
    big = frames.decode(frames.encode_control({"op": "history", "t": bytes(8 << 20)}))
    assert len(big.msg["t"]) == 8 << 20


def test_frames_before_a_login_are_small_unless_anonymous_may_push() -> None:
    b = Binary(None, 1 << 20, max_frame=32 << 20, max_frame_anonymous=16 << 10)
    reader = BinSession("1.2.3.4", "read", "read")
    assert b.frame_limit(reader) == 16 << 10
    reader.log_in("wes", "write")
    assert b.frame_limit(reader) == 32 << 20
    assert b.frame_limit(BinSession("1.2.3.4", "write", "write")) == 32 << 20


# -- /metrics ---------------------------------------------------------------------------------
def test_metrics_need_the_read_role_or_the_token() -> None:
    async def metrics() -> str:
        return "rtoc_ws_clients 0\n"

    def get(session: Session, allowed: bool = False) -> int:
        return run(routes.route(None, session, "/metrics", metrics, metrics_allowed=allowed))[0]

    assert get(Session("1.2.3.4", "none", "none")) == 401
    assert get(Session("1.2.3.4", "none", "none"), allowed=True) == 200
    assert get(Session("1.2.3.4", "read", "read")) == 200


def test_a_reset_while_writing_ends_the_sender_quietly_and_holds_no_reply() -> None:
    """A peer that resets while a reply waits in drain() raised ConnectionResetError out of
    the sender; the task kept it, its traceback kept the frame, and the frame kept the
    replies (megabytes each) and the connection: +650 MiB after 100 such clients left."""
    from collections import Counter
    from types import SimpleNamespace

    from rtoc.frontends.websocket.server import Client, Server

    class Resetting:
        async def send_frames(self, frames: bytes) -> None:
            await asyncio.sleep(0)
            raise ConnectionResetError(104, "Connection reset by peer")

    async def main() -> None:
        released = []
        client = Client(Resetting(), Session("127.0.0.1", "read", "read"), SendQueue(1 << 20))
        assert client.queue.offer(b"x" * 1000, lambda: released.append(1))
        task = asyncio.create_task(Server._send_loop(SimpleNamespace(counters=Counter()), client))
        await asyncio.wait_for(task, 5)
        assert task.exception() is None
        assert released == [1]           # the big-reply slot is given back
    run(main())
