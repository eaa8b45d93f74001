"""The driver process: hosts one ``rtoc.Driver``, writes its samples into rings.

Read, run, flush, answer: the loop runs the driver's timer at its deadlines, flushes
buffered samples into the rings, and answers control requests (call a function, set a
parameter, describe) between ticks, so driver code never runs on two threads at once
unless the driver starts threads itself. An exception in a timer tick is logged with its
traceback and counted, and the driver goes on (as in RTOC); ``max_tick_failures`` ticks
failing in a row end the process with status 1, and the supervisor restarts it; its rings
survive, so sequence numbers continue. A plugin's own non-daemon thread cannot keep a
stopped driver's process alive.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque

import zmq
from rtoc.pipeline.child import ChildSpec, run_child
from rtoc.pipeline.ring import Ring, RingWriter

from rtoc import loader, wire
from rtoc.driver import DriverContext, construct
from rtoc.errors import RtocError, error_reply, raise_for_reply
from rtoc.model import Event, Notification
from rtoc.params import ParamStore

log = logging.getLogger(__name__)
IDLE_WAIT = 0.05     # s between loop turns when nothing is scheduled
THREAD_WAIT = 0.002  # s when the driver runs threads of its own (their samples need flushing)
LOG_EVERY = 10.0     # s between two logged tick failures at most (after the first three)
ALIVE_EVERY = 1.0    # s between two signs of life to the supervisor (stall_timeout)
ATTACHMENTS_BURST = 5  # pictures, files or plots a driver may send to Telegram in any 5 s


class RingSink:
    """The driver's sink: asks the supervisor for each signal's ring, pushes events."""

    def __init__(self, host: DriverHost):
        self.host = host

    def claim(self, device: str, signal: str, unit: str, rate: float, content: str = "samples") -> RingWriter:
        reply = self.host.request("create_signal", device=device, signal=signal, unit=unit,
                                  rate=float(rate), seconds=self.host.cfg.ring_seconds, content=content)
        return RingWriter(Ring.open(reply["path"]))

    def event(self, event: Event) -> None:
        self.host.send_event(event)

    def notify(self, text: str, priority: int, permission: str = "", **attachment) -> None:
        """A notification for people (the Telegram bot); a picture, a file or a plot's data
        with it (``Notification``'s fields) at most ``ATTACHMENTS_BURST`` in any
        ``ATTACHMENTS_BURST`` seconds: the inbox counts messages, not bytes, so attachments are what
        could fill it. Those over the rate are dropped, counted and logged."""
        if attachment and not self.host.attachment_allowed(time.monotonic()):
            self.host.attachments_dropped += 1
            log.warning("%s: a Telegram %s dropped: more than one a second (%d so far)", self.host.name,
                        attachment.get("file_kind") or "plot", self.host.attachments_dropped)
            return
        note = Notification(time.time(), text, priority, f"driver:{self.host.name}", permission, **attachment)
        self.host.send_inbox({"kind": "notify", "notify": note.to_dict()}, "notification")


class DriverHost:
    def __init__(self, spec: ChildSpec, ctx: zmq.Context):
        assert spec.driver is not None, "a driver process needs its [[drivers]] section"
        self.spec, self.cfg = spec, spec.driver
        self.name = self.cfg.name
        self.ctrl = ctx.socket(zmq.DEALER)
        self.ctrl.setsockopt(zmq.IDENTITY, f"driver:{self.name}".encode())
        self.ctrl.setsockopt(zmq.LINGER, 500)
        self.ctrl.connect(spec.endpoints["control"])
        self.inbox = ctx.socket(zmq.PUSH)
        self.inbox.setsockopt(zmq.SNDHWM, 10000)
        self.inbox.setsockopt(zmq.LINGER, 1000)
        self.inbox.connect(spec.endpoints["inbox"])
        self.queued: deque[dict] = deque()
        self.events_dropped = 0
        self.tick_errors = self.failed_in_a_row = 0
        self.attachment_times: deque[float] = deque(maxlen=ATTACHMENTS_BURST)
        self.attachments_dropped = 0
        self.logged_at = 0.0
        self._rid = 0
        self.driver = None

    # -- talking to the supervisor ----------------------------------------------
    def request(self, op: str, timeout: float = 10.0, **fields) -> dict:
        """A request of this driver's own; forwarded requests arriving meanwhile queue up."""
        self._rid += 1
        rid = f"{self.name}-{self._rid}"
        self.ctrl.send(wire.pack({"op": op, "rid": rid, **fields}))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self.ctrl.poll(int(left * 1000) + 1):
                msg = wire.unpack(self.ctrl.recv())
                if msg.get("re") == rid:
                    return raise_for_reply(msg)
                if "op" in msg:
                    self.queued.append(msg)
        raise TimeoutError(f"supervisor did not answer {op!r} within {timeout} s")

    def send_event(self, event: Event) -> None:
        self.send_inbox({"kind": "event", "event": event.to_dict()}, f"event {event.text!r}")

    def attachment_allowed(self, now: float) -> bool:
        times = self.attachment_times
        if len(times) == times.maxlen and now - times[0] < ATTACHMENTS_BURST:
            return False
        times.append(now)
        return True

    def send_inbox(self, msg: dict, what: str) -> None:
        try:
            self.inbox.send(wire.pack(msg), zmq.NOBLOCK)
        except zmq.Again:
            self.events_dropped += 1
            log.warning("engine inbox full: %s dropped (%d so far)", what, self.events_dropped)

    def describe(self) -> dict:
        return {"op": "driver_state", "state": "running" if self.driver.run else "idle",
                "description": {**self.driver.describe(), "stats": {
                    "tick_errors": self.tick_errors, "tick_errors_in_a_row": self.failed_in_a_row}}}

    # -- serving forwarded requests ------------------------------------------------
    def handle(self, msg: dict) -> None:
        op, rid = msg.get("op"), msg.get("rid")
        try:
            if op == "call":
                result = self.driver.call_function(str(msg.get("function", "")), list(msg.get("args") or []),
                                                   dict(msg.get("kwargs") or {}))
                reply = {"ok": True, "result": result}
            elif op == "set":
                value = self.driver.set_parameter(str(msg.get("param", "")), msg.get("value"))
                reply = {"ok": True, "value": value}
            elif op == "describe":
                reply = {"ok": True, **self.driver.describe()}
            else:
                reply = {"ok": False, "error": {"code": "bad_request", "message": f"driver cannot do {op!r}"}}
        except RtocError as exc:
            reply = error_reply(exc)
        except Exception as exc:  # the driver's own function failed: report, keep running
            log.exception("%s: %s failed", self.name, op)
            reply = {"ok": False, "error": {"code": "driver_error", "message": f"{type(exc).__name__}: {exc}"}}
        if op in ("set", "call") and reply.get("ok"):
            # parameters may have changed: say so before replying, so that a client that
            # asks `drivers` right after the reply sees the new values
            self.send(self.describe())
        self.send({"re": rid, **reply})

    def send(self, msg: dict) -> None:
        """An unsolicited message or a reply: never blocks, never raises."""
        try:
            body = wire.pack(msg)
        except (TypeError, ValueError, OverflowError) as exc:
            body = wire.pack({"re": msg.get("re"), "ok": False, "error": {
                "code": "driver_error", "message": f"the result cannot be encoded: {exc}"}})
        try:
            self.ctrl.send(body, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("control queue full: a message to the supervisor was dropped")

    # -- the loop ---------------------------------------------------------------
    def _construct(self, cls: type, store: ParamStore):
        """Make, set up and start the driver, and run its first tick: where a bad persisted
        value shows."""
        ctx = DriverContext(name=self.name, sink=RingSink(self), options=dict(self.cfg.params),
                            clock=time.time, store=store,
                            logger=logging.LoggerAdapter(logging.getLogger(f"rtoc.driver.{self.name}"), {}))
        driver = construct(cls, ctx)
        try:
            adopt = getattr(driver, "adopt_attributes", None)
            if adopt is not None:  # a LoggerPlugin: its public attributes are parameters
                adopt()
            driver.ensure_setup()  # once, also when the driver's own __init__ ran it
            if driver.start_on_launch or getattr(driver, "AUTORUN", False):
                driver.start()  # (a LoggerPlugin's timer starts when it calls start(), as in RTOC)
            now = time.time()
            deadline = driver.next_deadline()
            if deadline is not None and now >= deadline:
                driver.on_timer(now)
            driver.flush()
        except BaseException:
            try:
                driver.close()
            except Exception:
                log.exception("%s: close() after a failed start failed too", self.name)
            raise
        return driver

    def start_driver(self, cls: type):
        """The driver, started; when it fails to start with persisted parameter values, it
        is started again without them, and only if that works are they set aside (moved to
        ``params/NAME.rejected.json``) and reported: a value that crashes the driver must
        not crash-loop it, but a failure that is not theirs must not cost the user them."""
        store = ParamStore(self.spec.config.data_path / "params" / f"{self.name}.json")
        try:
            driver = self._construct(cls, store)
        except Exception as exc:
            if not store.used:
                raise
            used = set(store.used)
            log.error("%s failed to start with its persisted parameters %s (%s: %s); "
                      "trying without them", self.name, sorted(used), type(exc).__name__, exc)
            driver = self._construct(cls, store.without(used))  # its failure ends the process
            reason = f"the driver failed to start with it: {type(exc).__name__}: {exc}"
            for name, value in store.set_aside(used, reason, time.time()).items():
                driver.report_rejected(name, value, reason)
        for name, info in driver.rejected_parameters.items():
            self.send_event(Event(time=time.time(), device=self.name, priority=2,
                                  id=f"{self.name}.parameter_rejected",
                                  text=f"{self.name}: persisted parameter {name} = {info['value']!r} "
                                       f"was set aside, the default is used: {info['reason']}"))
        return driver

    def run(self, stop: threading.Event) -> int:
        loader.use_plugins_dir(self.spec.config.plugins_path)  # RTOC plugins and their helpers
        cls = loader.resolve(self.cfg.driver)
        self.request("hello", role="driver", name=self.name)
        self.driver = driver = self.start_driver(cls)
        self.send(self.describe())
        log.info("driver %s (%s) running", self.name, self.cfg.driver)
        alive_at = 0.0
        while not stop.is_set():
            now = time.time()
            if now - alive_at >= ALIVE_EVERY:  # the supervisor kills a driver whose loop hangs
                self.send({"op": "driver_alive"})
                alive_at = now
            deadline = driver.next_deadline()
            if deadline is not None and now >= deadline:
                self.tick(now)
            else:
                driver.flush()
            if getattr(driver, "_describe_due", False):  # the plugin's updateInfo()
                driver._describe_due = False
                self.send(self.describe())
            while self.queued:
                self.handle(self.queued.popleft())
            wait = IDLE_WAIT if threading.active_count() == 1 else THREAD_WAIT
            deadline = driver.next_deadline()
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.time()))
            if self.ctrl.poll(math.ceil(wait * 1000)):
                while self.ctrl.poll(0):
                    msg = wire.unpack(self.ctrl.recv())
                    if "op" in msg:
                        self.handle(msg)
        driver.stop()
        driver.close()
        driver.flush()
        return 0

    def tick(self, now: float) -> None:
        """One timer tick. An exception is logged with its traceback and counted; the
        driver goes on, unless ``max_tick_failures`` ticks in a row failed: then it raises
        and the supervisor restarts the driver."""
        try:
            self.driver.on_timer(now)
        except Exception as exc:
            self.tick_errors += 1
            self.failed_in_a_row += 1
            if self.failed_in_a_row >= self.cfg.max_tick_failures:
                raise RtocError(f"{self.name}: {self.failed_in_a_row} timer ticks in a row failed "
                                f"(max_tick_failures); the last: {type(exc).__name__}: {exc}") from exc
            if self.tick_errors <= 3 or now - self.logged_at >= LOG_EVERY:  # no flood at 1 kHz
                self.logged_at = now
                log.exception("%s: a timer tick failed (%d in a row, %d in all); the driver goes on",
                              self.name, self.failed_in_a_row, self.tick_errors)
            if self.failed_in_a_row == 1:
                self.send(self.describe())  # rtoc status shows the count
            return
        if self.failed_in_a_row:
            self.failed_in_a_row = 0
            self.send(self.describe())

    def close(self) -> None:
        self.ctrl.close()
        self.inbox.close()


def _serve(spec: ChildSpec, stop: threading.Event, ctx: zmq.Context) -> int:
    """A driver process's life (see :func:`run_child`)."""
    host = DriverHost(spec, ctx)
    try:
        code = host.run(stop)
    finally:
        host.close()
    _leave_despite_threads(code, ctx)
    return code


def _leave_despite_threads(code: int, ctx: zmq.Context) -> None:
    """A plugin's own non-daemon thread would keep the stopped driver's process alive (the
    interpreter waits for it at exit): then the process ends here, once its sockets have
    sent what they hold (up to their linger)."""
    others = [t for t in threading.enumerate()
              if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    if not others:
        return
    log.warning("stopping although the driver's own threads still run: %s",
                ", ".join(t.name for t in others[:5]))
    closer = threading.Thread(target=ctx.term, daemon=True)
    closer.start()
    closer.join(2.0)
    logging.shutdown()
    os._exit(code)


def main(spec: ChildSpec) -> None:
    """Entry point of a driver process (spawned by the supervisor)."""
    run_child(spec, _serve)
