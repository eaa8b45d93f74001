"""7. A plain single-sample JSON push in the websocket protocol core: full road vs fast road.

In one process, without sockets or rings (the World's ``push`` does nothing), so only the
protocol's own cost is measured: ``JsonProtocol.handle`` per message (limits check,
``json.loads``, the key table, the push command) against ``JsonProtocol.handle_batch`` on
the same 10,000 messages (``PushGather``: ``orjson`` and type checks, one write per signal).
The note of the batch case gives the ratio of the medians.
"""

from __future__ import annotations

import asyncio

from rtoc.frontends.websocket.json_protocol.guard import Limits
from rtoc.frontends.websocket.json_protocol.protocol import JsonProtocol
from rtoc.frontends.websocket.session import Session

GROUP = "7 websocket JSON push, 10,000 single-sample messages"
N = 10_000
MESSAGES = [f'{{"y": [{float(i)!r}], "x": [{1.8e9 + i * 1e-6!r}], "sname": ["S"], '
            f'"dname": "Bench"}}'.encode() for i in range(N)]
_medians: dict[str, float] = {}


class NoRings:
    """The protocol's World with nothing behind it: every signal is writable, writes vanish."""

    async def push(self, *args, **kwargs) -> None:
        pass

    def writes(self, name: str) -> bool:
        return True


def _run(benchmark, rate, name: str, each) -> None:
    proto, session = JsonProtocol(NoRings(), Limits()), Session("bench", "admin", "admin")
    loop = asyncio.new_event_loop()
    try:
        benchmark.group = GROUP
        benchmark.pedantic(lambda: loop.run_until_complete(each(proto, session)),
                           rounds=10, warmup_rounds=1)
    finally:
        loop.close()
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None:
        _medians[name] = stats.median
    note = ""
    if name == "batch" and {"one", "batch"} <= _medians.keys():
        note = f"{_medians['one'] / _medians['batch']:.1f}x one by one"
    rate(benchmark, N, note)


async def _one_by_one(proto: JsonProtocol, session: Session) -> None:
    for m in MESSAGES:
        await proto.handle(session, m, 0.0)


async def _batch(proto: JsonProtocol, session: Session) -> None:
    await proto.handle_batch(session, MESSAGES, 0.0)


def test_push_one_by_one(benchmark, rate) -> None:
    _run(benchmark, rate, "one", _one_by_one)


def test_push_batch(benchmark, rate) -> None:
    _run(benchmark, rate, "batch", _batch)
