"""The websocket process's event-loop lag figure (issue 12's stall measure)."""

from __future__ import annotations

import asyncio
import time

import pytest
from rtoc.frontends.websocket.loop_lag import LoopLag


def test_quantiles_cover_the_window_and_max_the_whole_run() -> None:
    lag = LoopLag(window=100)
    assert lag.quantiles() == {0.5: 0.0, 0.99: 0.0, 1.0: 0.0}
    lag.record(10.0, 10.5)                       # one stall of 0.5 s ...
    for i in range(100):                         # ... then 100 wake-ups 1 ms late
        lag.record(11.0 + i, 11.001 + i)
    q = lag.quantiles()
    assert q[0.5] == pytest.approx(0.001) and q[1.0] == pytest.approx(0.001)  # out of the window
    assert lag.max == pytest.approx(0.5) and lag.n == 101
    lag.record(20.0, 19.0)                       # woke early (a clock step): no negative lag
    assert lag.quantiles()[0.5] >= 0.0


def test_the_watcher_sees_a_blocked_loop() -> None:
    async def main() -> LoopLag:
        lag = LoopLag()
        task = asyncio.create_task(lag.watch())
        await asyncio.sleep(0.05)
        time.sleep(0.2)                          # blocks the loop
        await asyncio.sleep(0.05)
        task.cancel()
        return lag
    lag = asyncio.run(main())
    assert lag.max >= 0.15
    names = {n for n, *_ in lag.samples()}
    assert names == {"rtoc_ws_loop_lag_seconds", "rtoc_ws_loop_lag_max_seconds"}
