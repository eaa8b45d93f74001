"""ZeroMQ CURVE on the bus and control plane: keys on sockets, the ZAP check of clients.

Without keys (the default, ``ipc://`` in the instance folder) nothing here does anything;
the folder's 0700 mode keeps other users out. With keys (``[bus] curve_*``, required for
``tcp://``): the sockets that bind (the supervisor's ROUTER, the engine's PUB and PULL) are
CURVE servers with the server's secret key, every other socket is a CURVE client with the
client key pair and the server's public key, and a ZAP handler in each process that binds
admits only the configured client key. A peer without the keys completes no handshake, so
it gets no answer at all.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq
from zmq.auth.thread import ThreadAuthenticator

from rtoc.config import BusConfig
from rtoc.errors import ConfigError

__all__ = ["client", "has_curve", "new_keys", "secure_context", "server"]


def has_curve() -> bool:
    """Whether this libzmq was built with CURVE (libsodium or tweetnacl)."""
    return bool(zmq.has("curve"))


def new_keys() -> dict[str, str]:
    """A new server and client key pair: the four ``[bus]`` keys, Z85 text."""
    if not has_curve():
        raise ConfigError("this ZeroMQ has no CURVE support: tcp:// endpoints cannot be secured",
                          "bus")
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    return {"curve_server_key": server_public.decode(),
            "curve_server_secret": server_secret.decode(),
            "curve_client_key": client_public.decode(),
            "curve_client_secret": client_secret.decode()}


def _require(bus: BusConfig) -> None:
    if not has_curve():
        raise ConfigError("CURVE keys are set but this ZeroMQ has no CURVE support", "bus")


def client(sock: zmq.Socket, bus: BusConfig | None) -> None:
    """Make ``sock`` (before it connects) a CURVE client when ``bus`` has the keys."""
    if bus is None or not bus.has_curve:
        return
    _require(bus)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, bus.curve_client_key.encode())
    sock.setsockopt(zmq.CURVE_SECRETKEY, bus.curve_client_secret.encode())
    sock.setsockopt(zmq.CURVE_SERVERKEY, bus.curve_server_key.encode())


def server(sock: zmq.Socket, bus: BusConfig | None) -> None:
    """Make ``sock`` (before it binds) a CURVE server when ``bus`` has the keys; a
    missing ``curve_server_secret`` is a ConfigError."""
    if bus is None or not bus.has_curve:
        return
    _require(bus)
    if not bus.curve_server_secret:
        raise ConfigError("rtoc run needs the server's secret key besides the client keys",
                          "bus.curve_server_secret")
    sock.setsockopt(zmq.CURVE_SECRETKEY, bus.curve_server_secret.encode())
    sock.setsockopt(zmq.CURVE_PUBLICKEY, bus.curve_server_key.encode())
    sock.setsockopt(zmq.CURVE_SERVER, 1)  # last: a CURVE_SERVERKEY default made it a client


class _ClientKey:
    """ZAP callback: only the configured client key is admitted."""

    def __init__(self, key: str):
        self.key = key.encode()

    def callback(self, domain: str, key: bytes) -> bool:
        return key == self.key


def secure_context(ctx: zmq.Context, bus: BusConfig | None) -> Callable[[], None]:
    """With keys: start the ZAP handler of ``ctx`` (admitting the client key) and make
    every socket ``ctx`` creates from now on a CURVE client (:func:`server` turns a binding
    one into a server). Returns what to call before ``ctx.term()``; without keys a no-op."""
    if bus is None or not bus.has_curve:
        return lambda: None
    _require(bus)
    auth = ThreadAuthenticator(ctx)  # its own sockets are made before the defaults below
    auth.start()
    auth.configure_curve_callback("*", _ClientKey(bus.curve_client_key))
    ctx.setsockopt(zmq.CURVE_PUBLICKEY, bus.curve_client_key.encode())
    ctx.setsockopt(zmq.CURVE_SECRETKEY, bus.curve_client_secret.encode())
    ctx.setsockopt(zmq.CURVE_SERVERKEY, bus.curve_server_key.encode())
    return auth.stop
