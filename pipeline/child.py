"""What every child process does first: die with its parent, ignore Ctrl-C, log."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rtoc import log

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
