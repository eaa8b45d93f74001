"""CURVE keys of the bus: what the config accepts, and sockets that use them."""

from __future__ import annotations

import threading

import pytest
import zmq
from rtoc.pipeline import curve

from rtoc.config import BusConfig, loads
from rtoc.errors import ConfigError

pytestmark = pytest.mark.skipif(not curve.has_curve(), reason="this ZeroMQ has no CURVE")


def _toml(**bus: str) -> str:
    return "[bus]\n" + "".join(f'{k} = "{v}"\n' for k, v in bus.items())


@pytest.mark.parametrize("key", ["control", "data", "inbox"])
def test_a_network_endpoint_without_keys_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="curve_server_key") as err:
        loads(_toml(**{key: "tcp://0.0.0.0:5555"}))
    assert err.value.key == f"bus.{key}" and "rtoc keys" in str(err.value)


def test_local_endpoints_need_no_keys_and_keys_allow_tcp() -> None:
    assert loads(_toml(control="ipc:///tmp/x.sock")).bus.control == "ipc:///tmp/x.sock"
    keys = curve.new_keys()
    assert loads(_toml(control="tcp://127.0.0.1:5555", **keys)).bus.has_curve
    client_only = {k: v for k, v in keys.items() if k != "curve_server_secret"}
    assert loads(_toml(control="tcp://10.0.0.1:5555", **client_only)).bus.has_curve


def test_bad_or_partial_keys_are_refused() -> None:
    keys = curve.new_keys()
    with pytest.raises(ConfigError, match="Z85") as err:
        loads(_toml(**{**keys, "curve_client_secret": "short"}))
    assert err.value.key == "bus.curve_client_secret"
    with pytest.raises(ConfigError, match="go together") as err:
        loads(_toml(curve_server_key=keys["curve_server_key"]))
    assert err.value.key == "bus.curve_client_key"


def test_the_server_needs_its_secret() -> None:
    keys = {k: v for k, v in curve.new_keys().items() if k != "curve_server_secret"}
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    try:
        with pytest.raises(ConfigError, match="secret") as err:
            curve.server(sock, BusConfig(**keys))
        assert err.value.key == "bus.curve_server_secret"
    finally:
        sock.close(0)
        ctx.term()


def _answered(server_ctx: zmq.Context, bus: BusConfig | None, port: int) -> bool:
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    curve.client(dealer, bus)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    try:
        dealer.send(b"ping")
        return bool(dealer.poll(500))
    finally:
        dealer.close(0)
        ctx.term()


def test_only_holders_of_the_client_key_are_answered() -> None:
    keys = curve.new_keys()
    bus = BusConfig(**keys)
    ctx = zmq.Context()
    stop_auth = curve.secure_context(ctx, bus)
    router = ctx.socket(zmq.ROUTER)
    curve.server(router, bus)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    client_in_ctx = ctx.socket(zmq.DEALER)  # the context's default: a CURVE client
    try:
        def echo() -> None:
            while router.poll(3000):
                ident, body = router.recv_multipart()
                router.send_multipart([ident, body])
        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        assert _answered(ctx, bus, port)
        assert not _answered(ctx, None, port)
        public, secret = (k.decode() for k in zmq.curve_keypair())
        assert not _answered(ctx, BusConfig(curve_server_key=keys["curve_server_key"],
                                            curve_client_key=public,
                                            curve_client_secret=secret), port)
        client_in_ctx.connect(f"tcp://127.0.0.1:{port}")
        client_in_ctx.send(b"hi")
        assert client_in_ctx.poll(2000) and client_in_ctx.recv() == b"hi"
        thread.join(5)
    finally:
        client_in_ctx.close(0)
        router.close(0)
        stop_auth()
        ctx.term()


def test_rtoc_keys_prints_a_bus_table_that_allows_tcp(capsys: pytest.CaptureFixture) -> None:
    from rtoc.app import cli

    assert cli.main(["keys"]) == 0
    text = capsys.readouterr().out
    bus = loads(text.replace("[bus]\n", '[bus]\ncontrol = "tcp://127.0.0.1:5555"\n')).bus
    assert bus.has_curve and bus.curve_server_secret
    assert zmq.curve_public(bus.curve_client_secret.encode()).decode() == bus.curve_client_key
    assert zmq.curve_public(bus.curve_server_secret.encode()).decode() == bus.curve_server_key
