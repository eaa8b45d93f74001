"""The viewer's worker thread: it alone talks to the source; the GUI gets Qt signals.

The loop reads view points and events for up to ``READ_SLICE`` s, hands what came to the
GUI in one signal per slice (a 16-signal, 1 MS/s instance sends ~30 view messages a
second per signal; one Qt signal a slice keeps the GUI's event queue short), refreshes the
signal and driver lists every ``REFRESH`` s, and runs the GUI's requests (history,
start/stop, set, call) from a queue. When the instance is away it says so and reopens
the source with back-off.

A second worker (``live=False``) on the source's ``lane()`` runs the slow jobs (history,
export) on its own connection: in the bench, 23 history requests of up to 3.7 s each held
the live edge back for 37 s at start-up while one worker ran both.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from rtoc.errors import RtocError

from .source import SourceDown

log = logging.getLogger(__name__)
READ_SLICE = 0.03   # s of reading between two hand-overs to the GUI
REFRESH = 1.0       # s between signal/driver list refreshes
EVENTS_EVERY = 2.0  # s between event polls (the local bus also pushes them)
RETRY_MAX = 5.0     # s between reconnection attempts at most


class Worker(QObject):
    data = Signal(object)        # Incoming
    signals = Signal(object)     # list[dict]
    drivers = Signal(object)     # list[dict]
    events = Signal(object)      # list[dict]
    state = Signal(str, str)     # "connected"/"disconnected", detail
    reply = Signal(object, object, object)  # (tag, result, error text or None)

    def __init__(self, source: Any, live: bool = True):
        super().__init__()
        self.source, self.live = source, live
        self.jobs: queue.Queue[tuple[Any, Callable[[], Any]]] = queue.Queue()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="viewer-worker" if live else "viewer-history")
        self.connected = False
        self.role = "none"

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_flag.set()
        self.thread.join(timeout)

    def submit(self, tag: Any, job: Callable[[Any], Any]) -> None:
        """Run ``job(source)`` on the worker; its result (or error) comes back as ``reply``."""
        self.jobs.put((tag, job))

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        delay = 0.5
        while not self.stop_flag.is_set():
            try:
                self.source.open(live=self.live)
            except (SourceDown, RtocError, OSError) as exc:
                self.state.emit("disconnected", str(exc))
                self.stop_flag.wait(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            delay = 0.5
            self.connected, self.role = True, self.source.role
            self.state.emit("connected", self.source.label)
            try:
                self._serve()
            except (SourceDown, OSError) as exc:
                self.state.emit("disconnected", str(exc))
            except Exception as exc:  # our bug: logged; the viewer reconnects
                log.exception("viewer worker failed")
                self.state.emit("disconnected", f"{type(exc).__name__}: {exc}")
            finally:
                self.connected = False
                self.source.close()
        self._fail_jobs("the viewer is closing")

    def _serve(self) -> None:
        if not self.live:
            while not self.stop_flag.is_set():
                self._run_jobs(wait=0.1)
            return
        refreshed = events_at = 0.0
        since = time.time() - 3600.0
        while not self.stop_flag.is_set():
            now = time.monotonic()
            if now - refreshed >= REFRESH:
                self.signals.emit(self.source.request("signals")["signals"])
                self.drivers.emit(self.source.request("drivers")["drivers"])
                refreshed = now
            if now - events_at >= EVENTS_EVERY:
                found = self.source.events(since)
                if found:
                    self.events.emit(found)
                    since = max(e.get("time", since) for e in found)
                events_at = now
            incoming = self.source.read(READ_SLICE)
            if incoming:
                self.data.emit(incoming)
            self._run_jobs()

    def _run_jobs(self, wait: float = 0.0) -> None:
        for _ in range(16):
            try:
                tag, job = self.jobs.get(timeout=wait) if wait else self.jobs.get_nowait()
            except queue.Empty:
                return
            try:
                self.reply.emit(tag, job(self.source), None)
            except SourceDown:
                self.jobs.put((tag, job))  # tried again once the instance is back
                raise
            except (RtocError, OSError, ValueError) as exc:
                self.reply.emit(tag, None, str(exc))

    def _fail_jobs(self, why: str) -> None:
        while True:
            try:
                tag, _ = self.jobs.get_nowait()
            except queue.Empty:
                return
            self.reply.emit(tag, None, why)
