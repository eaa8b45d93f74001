"""Issue 13 D: a client that subscribed and stopped reading is closed as PROTOCOL.md says
(1011 once it has not read for ``ping_timeout``), and is no longer counted."""

from __future__ import annotations

import asyncio
import time

from test_ws_attacks_memory import FAST_GENERATOR, Raw, ws_url

from rtoc.app.harness import Instance


def test_a_subscriber_that_stops_reading_is_closed_after_ping_timeout() -> None:
    # keepalive pings rare (600 s): the close must not depend on websockets' own ping
    cfg = FAST_GENERATOR + ('[websocket]\nport = 0\nping_interval = 600.0\nping_timeout = 2.0\n'
                            'slow_client_timeout = 120.0\n')
    with Instance.start(cfg, ("Generator.Sine",)) as inst:
        url = ws_url(inst)

        async def go() -> tuple[float, bytes]:
            c = await Raw.connect(url)
            await c.send_for(b'{"subscribe": ["signal", "Generator.Sine"]}', 0.01)
            start = time.monotonic()
            inst.wait_for(lambda: inst.metrics()["rtoc_ws_clients"] == 0, timeout=30)
            gone = time.monotonic() - start
            c.abort()
            return gone, b""

        gone, _ = asyncio.run(go())
        # before: still connected (and counted) after 140 s; now gone within ping_timeout,
        # the check's second and the close's own grace
        assert gone < 15.0, gone
        m = inst.metrics()
        assert m["rtoc_ws_slow_closed_total"] >= 1
