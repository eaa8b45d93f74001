"""Mirror signals of another RTOC instance, over its binary websocket subprotocol.

    [[drivers]]
    name = "LabA"                      # the local device: LabA.Generator.Sine
    driver = "rtoc.drivers.remote:Remote"
    [drivers.params]
    url = "ws://lab-a:5050/"
    samplerate = 1e6                   # of the fastest mirrored signal: sizes the rings
    signals = "Generator.Sine, System.CPU"   # or "*" for every signal of the remote
    user = "mirror"
    password_env = "LABA_PASSWORD"     # the password from the environment, not the config

Each remote signal ``Dev.Sig`` becomes the local signal ``<driver name>.<prefix>Dev.Sig``
with the remote's unit and timestamps, every raw batch the remote publishes (no
resampling). The connection runs on a background thread (:class:`rtoc.client.Client`) and
reconnects by itself; ``poll`` writes what arrived. Samples the remote lost, or that were
missed while disconnected, are counted (``stats()``), not invented.
"""

from __future__ import annotations

import os
import time

from rtoc import Driver, Parameter, function
from rtoc.client import Batch, Client, LoginFailed
from rtoc.errors import RtocError

REFRESH = 2.0        # s between two look-ups of the remote's units at most
WARN_EVERY = 10.0    # s between two warnings about gaps at most


class Remote(Driver):
    """Mirror the raw data of another RTOC's signals into signals of this device."""

    samplerate = Parameter(1000.0, "Samples per second expected of each mirrored signal "
                           "(sizes the local rings)", min=1e-3, max=1e8)
    poll_rate = Parameter(50.0, "Times per second the received batches are written",
                          min=1.0, max=1000.0)
    url = Parameter("ws://127.0.0.1:5050/", "The remote's websocket (ws:// or wss://)")
    user = Parameter("", "User on the remote (empty: its anonymous role)")
    password = Parameter("", "Password on the remote. Every client that lists drivers sees "
                         "it: prefer password_env", persist=False)
    password_env = Parameter("", "Environment variable holding the password (wins over password)")
    encrypt = Parameter(False, "Encrypt the connection (AES-GCM keyed by the password; needs user)")
    signals = Parameter("*", "Comma-separated remote Device.Signal names, or * for all")
    prefix = Parameter("", "Text put before each remote name in the local signal name")
    reconnect = Parameter(5.0, "Seconds between connection attempts", min=0.1)

    _client: Client | None = None  # until setup(); close() may run without it

    def setup(self) -> None:
        password = os.environ.get(self.password_env, "") if self.password_env else self.password
        self._client = Client(self.url, self.user or None, password or None, self.encrypt,
                              self.reconnect, max_batches=100_000)
        self._client.connect(wait=False)
        self._subscribed = False
        self._units: dict[str, str] = {}
        self._looked_up = 0.0
        self._warned = 0.0
        self.written = 0
        self._gaps_warned = 0

    def tick_rate(self) -> float:
        return self.poll_rate

    def _names(self) -> list[str] | str:
        text = self.signals.strip()
        return "*" if text == "*" else [n.strip() for n in text.split(",") if n.strip()]

    def poll(self) -> None:
        c = self._client
        if not self._subscribed:
            if not c.connected:
                if isinstance(c.error, LoginFailed):
                    raise c.error  # a wrong password does not fix itself: fail visibly
                return
            try:
                c.subscribe(self._names())  # the client restores it after reconnects
            except (RtocError, ConnectionError, TimeoutError) as exc:
                self.debug(f"subscribing failed, trying again: {exc}")
                return
            self._subscribed = True
            self._lookup_units()
        for batch in c.drain(10_000):
            self._mirror(batch)
        gaps = sum(c.gaps.values())
        now = time.monotonic()
        if gaps != self._gaps_warned and now - self._warned >= WARN_EVERY:
            self.warning(f"{gaps - self._gaps_warned} samples of the remote were missed "
                         f"(reconnects: {c.reconnects})")
            self._gaps_warned, self._warned = gaps, now

    def _mirror(self, batch: Batch) -> None:
        if batch.view:
            return
        if batch.name not in self._units:
            self._lookup_units()
        name = self.prefix + batch.name
        unit = self._units.get(batch.name, "")
        if batch.replace:
            self.plot(batch.t, batch.y, name, unit=unit)
        elif len(batch.t):
            self.write(name, batch.t, batch.y, unit)
        self.written += len(batch.t)

    def _lookup_units(self) -> None:
        now = time.monotonic()
        if now - self._looked_up < REFRESH:
            return
        self._looked_up = now
        try:
            self._units = {s["name"]: s.get("unit", "") for s in self._client.signals()}
        except Exception as exc:  # disconnected meanwhile: the next unknown name asks again
            self.debug(f"unit look-up failed: {exc}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @function
    def stats(self) -> dict:
        """Samples written; per remote signal received, lost (by the remote's ring) and
        missed (gaps); reconnects."""
        c = self._client
        return {"written": self.written, "connected": c.connected, "reconnects": c.reconnects,
                "received": dict(c.received), "lost": dict(c.lost), "gaps": dict(c.gaps)}
