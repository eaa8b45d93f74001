"""A Python client of the binary websocket subprotocol ``rtoc.bin.v1``.

    async with AsyncClient("ws://host:5050/", user="lab", password="...") as c:
        await c.subscribe(["Generator.Sine"])
        async for batch in c.batches():          # name, seq, t, y (float64[n]), lost, gap
            ...
        await c.push("Lab.Temp", t, y, unit="K")   # numpy arrays, no JSON
        await c.sync()                             # every push so far stored (or raises)

    with Client("ws://host:5050/") as c:           # the same, blocking, for threads/scripts
        c.subscribe(["Generator.Sine"])
        batch = c.recv(timeout=1.0)

The protocol (frames, ops, the encrypted handshake and its threat model) is described in
docs/PROTOCOL.md. The frames are :mod:`rtoc.client.frames` and the encryption :mod:`rtoc.client.aead`,
base modules the server uses too; the client depends on no server code. This module is the
public face: :class:`AsyncClient` lives in :mod:`rtoc.client.aio`, :class:`Client` (a
thread running an AsyncClient) in :mod:`rtoc.client.sync`.

Reconnecting: after the connection drops, the client connects again every ``reconnect``
seconds, logs in again and restores its subscriptions; batches received before are kept.
A wrong password is not retried: it is raised by ``connect`` (or by ``recv`` when it
happens on a reconnect). ``gap`` counts samples of a signal that the consumer did not get
(``seq`` jumped: dropped by a slow network or consumer, or missed while reconnecting);
``lost`` samples the server's ring lost before its engine read them.
"""

from __future__ import annotations

from rtoc.client.aio import (
    AsyncClient,
    Batch,
    LoginFailed,
    NotConnected,
    ProtocolError,
    PushRefused,
)
from rtoc.client.frames import SUBPROTOCOL, encode_control
from rtoc.client.sync import Client

__all__ = ["AsyncClient", "Client", "Batch", "ProtocolError", "NotConnected", "LoginFailed",
           "PushRefused", "SUBPROTOCOL", "encode_control"]
