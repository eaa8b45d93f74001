"""DNS rebinding: the websocket server checks the Host header before the Origin."""

from __future__ import annotations

import asyncio
import http
from concurrent.futures import Future
from pathlib import Path

import pytest
import zmq.asyncio
from rtoc.frontends.websocket.auth import accepted_hosts, host_allowed, origin_allowed
from rtoc.frontends.websocket.server import Server
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from rtoc.config import WebsocketConfig


@pytest.mark.parametrize(("listen", "extra", "host", "ok"), [
    ("127.0.0.1", (), "127.0.0.1:5050", True),
    ("127.0.0.1", (), "localhost:5050", True),
    ("127.0.0.1", (), "LOCALHOST", True),
    ("127.0.0.1", (), "[::1]:5050", True),
    ("127.0.0.1", (), "evil.example:5050", False),        # a rebound name
    ("127.0.0.1", (), "evil.example", False),
    ("127.0.0.1", (), "localhost.evil.example", False),
    ("127.0.0.1", (), "192.168.1.7:5050", True),          # an IP literal cannot be rebound
    ("127.0.0.1", (), None, False),
    ("127.0.0.1", (), "", False),
    ("127.0.0.1", (), "a:b:c", False),
    ("127.0.0.1", ("rtoc.lab",), "RTOC.lab:5050", True),  # configured names
    ("127.0.0.1", ("rtoc.lab",), "evil.example", False),
    ("127.0.0.1", ("*",), "evil.example", True),
    ("rtoc.lab", (), "rtoc.lab:443", True),               # the listen name itself
    ("rtoc.lab", (), "localhost", False),
    ("::1", (), "localhost", True),
    ("[::1]", (), "[::1]:8080", True),
    ("0.0.0.0", (), "localhost", True),
])
def test_host_matrix(listen: str, extra: tuple[str, ...], host: str | None, ok: bool) -> None:
    assert host_allowed(host, accepted_hosts(listen, extra)) is ok


def test_a_wildcard_listener_accepts_the_machines_names() -> None:
    hosts = accepted_hosts("0.0.0.0", machine=("pi", "pi.local"))
    assert host_allowed("pi.local:5050", hosts) and not host_allowed("evil.example", hosts)


class _Conn:
    remote_address = ("127.0.0.1", 40000)

    def __init__(self) -> None:
        self.connection_lost_waiter: Future = Future()  # never lost while the test runs

    def respond(self, status: http.HTTPStatus, text: str) -> Response:
        return Response(status.value, status.phrase, Headers(), text.encode())


def _handshake(server: Server, host: str, origin: str) -> Response | None:
    headers = Headers([("Host", host), ("Origin", origin), ("Upgrade", "websocket"),
                       ("Connection", "Upgrade")])
    return asyncio.run(server.process_request(_Conn(), Request("/", headers)))  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path: Path):
    ctx = zmq.asyncio.Context()
    endpoints = {k: f"ipc://{tmp_path}/{k}" for k in ("control", "data", "inbox")}
    srv = Server(WebsocketConfig(port=5050), endpoints, ctx)  # no users, loopback: admin
    yield srv
    srv.hub.close()
    srv.sub.close(0)
    ctx.term()


def test_a_rebound_name_with_a_matching_origin_is_refused(server: Server) -> None:
    reply = _handshake(server, "evil.example:5050", "http://evil.example:5050")
    assert reply is not None and reply.status_code == 403
    assert b"Host" in reply.body
    assert origin_allowed("http://evil.example:5050", "evil.example:5050", ())  # Origin alone passes


def test_the_dashboards_own_origin_still_works(server: Server) -> None:
    assert _handshake(server, "127.0.0.1:5050", "http://127.0.0.1:5050") is None
    assert _handshake(server, "localhost:5050", "http://localhost:5050") is None
    reply = _handshake(server, "127.0.0.1:5050", "http://evil.example")
    assert reply is not None and reply.status_code == 403
