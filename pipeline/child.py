"""One way to be a child process: :func:`run_child` is every process type's ``main``.

The supervisor spawns ``run_child(ChildSpec(...), body)``-shaped targets; the runner does
what every child does (die with the parent, ignore Ctrl-C, stop on SIGTERM with a
watchdog, configure logging, own the ZeroMQ context, log a crash with its traceback, exit
with the body's status), and the body is only the process's own work::

    def _serve(spec: ChildSpec, stop: threading.Event, ctx: zmq.Context) -> int: ...
    def main(spec: ChildSpec) -> None:
        run_child(spec, _serve)
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NoReturn

import zmq
from rtoc.pipeline import curve

from rtoc import log
from rtoc.config import Config, DriverConfig

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux); exit if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(0)  # the parent died before the request took effect


GRACE = 4.0  # s a child may take to stop after SIGTERM before it exits anyway


def _orphan_watch(parent_pid: int) -> None:
    """(a thread) Exit GRACE + 1 s after the parent is gone, whatever the main thread does.

    The SIGTERM the kernel sends then (PDEATHSIG) arms the same deadline, but only once the
    main thread runs Python again: a main thread blocked in C code (a socket's linger in
    ``ctx.term``, a database call) never ran the handler, and one child outlived a killed
    supervisor for more than 30 s in a full test run. This thread needs only the GIL, which
    such calls release."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    time.sleep(GRACE + 1.0)  # the orderly stop (drain, last batch) gets its time first
    os._exit(1)


def start_child(name: str, level: str, parent_pid: int) -> threading.Event:
    """Set up a child process; the returned event is set on SIGTERM.

    SIGINT is ignored: Ctrl-C reaches the whole process group, and the supervisor stops
    the children in order itself. SIGTERM also arms a watchdog: a child stuck in driver
    code (blocking I/O, a long function) still exits after GRACE seconds, so it cannot
    outlive a supervisor that was killed.
    """
    die_with_parent(parent_pid)
    log.configure(level, name)
    stop = threading.Event()
    threading.Thread(target=_orphan_watch, args=(parent_pid,), name="orphan-watch", daemon=True).start()

    def on_term(*_) -> None:
        if not stop.is_set():
            stop.set()
            watchdog = threading.Timer(GRACE, os._exit, (1,))
            watchdog.daemon = True
            watchdog.start()

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # already, if sigint_ignored_by_children spawned us
    signal.signal(signal.SIGTERM, on_term)
    return stop


@contextmanager
def sigint_ignored_by_children(on_sigint: Callable[[int, object], None]) -> Iterator[None]:
    """Spawn children inside this block so that they ignore SIGINT from their first line.

    An ignored signal stays ignored across fork and exec, and CPython then installs no
    KeyboardInterrupt handler: a Ctrl-C while a child still imports cannot end it with a
    traceback. (A blocked signal mask is not inherited through multiprocessing's spawn.)
    The caller's own SIGINT is blocked meanwhile, so it waits and arrives afterwards; one
    already pending goes to ``on_sigint`` at once, since setting SIG_IGN discards it.
    """
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.getsignal(signal.SIGINT)
    try:
        if signal.SIGINT in signal.sigpending():
            on_sigint(signal.SIGINT, None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@dataclass(frozen=True)
class ChildSpec:
    """What the supervisor hands a child: who it is, where its instance is, and the frozen,
    typed config it reads its own section of (``config.engine``, ``config.websocket`` ...;
    a driver's is :attr:`driver`). Pickled once at spawn."""

    role: str                   # the log name: "engine", "driver:Generator", "archiver", ...
    parent_pid: int
    endpoints: dict[str, str] = field(hash=False)
    config: Config = field(default_factory=Config)
    driver: DriverConfig | None = None  # a driver process's own section


Body = Callable[[ChildSpec, threading.Event, zmq.Context], int]


def run_child(spec: ChildSpec, body: Body, context: type[zmq.Context] = zmq.Context) -> NoReturn:
    """Run ``body(spec, stop, ctx)`` as this process's life and exit with its status.

    ``stop`` is set on SIGTERM; ``ctx`` (a ``context`` instance: ``zmq.asyncio.Context`` for
    an asyncio body) is terminated after the body returned, which waits for each closed
    socket's linger (a driver's last events still leave). The body closes what it opened.
    An exception out of the body is logged with its traceback, and the exit status is then
    1: the supervisor restarts the child.
    """
    stop = start_child(spec.role, spec.config.log_level, spec.parent_pid)
    ctx = context()
    code = 1
    stop_auth = lambda: None  # noqa: E731
    try:
        stop_auth = curve.secure_context(ctx, spec.config.bus)  # every socket a CURVE client
        code = body(spec, stop, ctx)
    except Exception:
        logger.exception("%s crashed", spec.role)
    finally:
        stop_auth()
        ctx.term()
    sys.exit(code)
