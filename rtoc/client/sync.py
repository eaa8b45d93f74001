"""The blocking client of ``rtoc.bin.v1`` (:class:`Client`); see :mod:`rtoc.client`."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from rtoc.client.aio import AsyncClient, Batch, NotConnected

__all__ = ["Client"]


class Client:
    """:class:`AsyncClient` for threads and scripts: the same methods, blocking, run on an
    event loop in a background thread (one per client). ``recv(timeout)`` returns the next
    :class:`Batch` or None."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None,
                 encrypt: bool = False, reconnect: float | None = 5.0, **kw: Any):
        self.aio = AsyncClient(url, user, password, encrypt, reconnect, **kw)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rtoc-client",
                                        daemon=True)
        self._thread.start()

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        if not self._thread.is_alive():
            coro.close()
            raise NotConnected("this client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __getattr__(self, name: str) -> Any:  # counters: received, lost, gaps, error, ...
        if name.startswith("_") or name == "aio":
            raise AttributeError(name)
        return getattr(self.aio, name)

    def connect(self, wait: bool = True) -> None:
        self._call(self.aio.connect(wait))

    def subscribe(self, signals: list[str] | str, mode: str = "raw") -> dict:
        return self._call(self.aio.subscribe(signals, mode))

    def unsubscribe(self, signals: list[str] | str = "*", mode: str | None = None) -> dict:
        return self._call(self.aio.unsubscribe(signals, mode))

    def push(self, name: str, t: Any, y: Any, unit: str = "", replace: bool = False,
             rate: float | None = None) -> None:
        self._call(self.aio.push(name, t, y, unit, replace, rate))

    def sync(self) -> int:
        return self._call(self.aio.sync())

    def request(self, op: str, **fields: Any) -> dict:
        return self._call(self.aio.request(op, **fields))

    def signals(self) -> list[dict]:
        return self._call(self.aio.signals())

    def events(self, **filters: float) -> list[dict]:
        return self._call(self.aio.events(**filters))

    def history(self, signal: str, t_from: float | None = None, t_to: float | None = None,
                max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self._call(self.aio.history(signal, t_from, t_to, max_points))

    def recv(self, timeout: float | None = None) -> Batch | None:
        return self._call(self.aio.recv(timeout))

    def drain(self, limit: int | None = None) -> list[Batch]:
        """The batches received so far (at most ``limit``), without waiting."""
        return self._call(self._drain(limit))

    async def _drain(self, limit: int | None) -> list[Batch]:
        return self.aio.drain(limit)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self.aio.close(), timeout=10.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> Client:
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
