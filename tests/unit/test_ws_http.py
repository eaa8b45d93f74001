"""HTTP on the websocket port (``http.route``): statuses follow the error's type."""

from __future__ import annotations

import asyncio
import json
import logging
import math

import pytest
from rtoc.frontends.websocket import http
from ws_world import protocol, session

from rtoc.errors import BadRequest, EngineUnavailable


async def _metrics() -> str:
    return ""


def get(proto, target: str, role: str = "read") -> tuple[int, str, bytes]:
    return asyncio.run(http.route(proto, session(role), target, _metrics))


def test_signal_csv_and_json() -> None:
    proto, world = protocol()
    status, kind, body = get(proto, "/api/signals/Generator.Sine?format=csv&from=1990")
    assert status == 200 and kind.startswith("text/csv")
    assert body.decode().splitlines()[:2] == ["t,Generator.Sine [V]", f"1990.0,{math.sin(1990.0)!r}"]
    world.samples["Generator.Sine"][1][-1] = float("nan")
    status, _, body = get(proto, "/api/signals/Generator.Sine?from=1998")
    assert status == 200 and json.loads(body)["y"][-1] is None  # NaN is null
    status, _, body = get(proto, "/api/signals/Generator.Sine?format=csv&from=1999")
    assert body.decode().splitlines()[1] == "1999.0,"  # and an empty cell


@pytest.mark.parametrize(("target", "status"), [
    ("/api/signals/No.Such", 404),              # SignalNotFound
    ("/api/signals/Generator.Sine?from=soon", 400),  # BadRequest (a query that is no number)
    ("/api/signals/Generator.Sine?maxN=2", 400),
    ("/api/signals/Generator.Sine?maxN=inf", 400),
    ("/api/signals/NoDot", 400),               # SignalError (the name rule)
    ("/api/signals", 200),
])
def test_status_follows_the_error_type(target: str, status: int) -> None:
    proto, _ = protocol()
    assert get(proto, target)[0] == status


def test_status_never_follows_the_message_text() -> None:
    proto, world = protocol()

    async def restarting(op: str, **fields):
        raise EngineUnavailable("no signal table while the engine restarts")

    world.request = restarting
    status, _, body = get(proto, "/api/signals/Generator.Sine")
    assert status == 503 and "no signal table" in json.loads(body)["message"]

    async def refusing(op: str, **fields):
        raise BadRequest("no signal of that kind here")

    world.request = refusing
    assert get(proto, "/api/signals")[0] == 400


def test_a_bug_of_ours_is_logged_and_answered_500(caplog: pytest.LogCaptureFixture) -> None:
    proto, world = protocol()

    async def broken(op: str, **fields):
        return {"ok": True}  # no "signals": a KeyError in our own code

    world.request = broken
    with caplog.at_level(logging.ERROR, "rtoc.frontends.websocket.http"):
        status, _, body = get(proto, "/api/signals")
    assert status == 500 and json.loads(body)["message"] == "internal error (the server logged it)"
    assert caplog.records and caplog.records[-1].exc_info[0] is KeyError


def test_a_signal_is_encoded_off_the_event_loop_and_a_unit_with_a_comma_is_quoted(monkeypatch) -> None:
    """``/api/signals/X`` (up to max_reply_points rows) was encoded on the event loop: a
    CSV of 200,000 rows stalled every client for a fraction of a second."""
    import threading

    proto, world = protocol()
    world.units["Generator.Sine"] = 'V, "rms"'
    where = []
    body = http.signal_body

    def watched(*args):
        where.append(threading.current_thread() is threading.main_thread())
        return body(*args)

    monkeypatch.setattr(http, "signal_body", watched)
    status, _, csv_body = get(proto, "/api/signals/Generator.Sine?format=csv&from=1998")
    status2, _, json_body = get(proto, "/api/signals/Generator.Sine?from=1998")
    assert status == status2 == 200 and where == [False, False]
    assert csv_body.decode().splitlines()[0] == 't,"Generator.Sine [V, ""rms""]"'
    assert json.loads(json_body)["t"] == [1998.0, 1999.0]
