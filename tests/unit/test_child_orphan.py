"""A child outlives a killed supervisor by a few seconds at most, even when its main thread
never runs the SIGTERM handler (blocked in C code: one child outlived a killed supervisor
for more than 30 s in a full test run). Here the handler is ignored outright; the child's
orphan watch thread still ends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from rtoc.pipeline.child import GRACE

CHILD = """
import os, signal, sys, time
from rtoc.pipeline.child import start_child
start_child("probe", "WARNING", int(sys.argv[1]))
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as if the main thread never got to run it
print(os.getpid(), flush=True)
time.sleep(120)
"""
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(__import__("os").getpid())],
                         stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), flush=True)
child.stdout.close()
time.sleep(120)
"""


@pytest.mark.timeout(60)
def test_an_orphaned_child_exits_even_when_its_sigterm_handler_never_runs() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], stdout=subprocess.PIPE, text=True)
    child_pid = 0
    try:
        child_pid = int(parent.stdout.readline())
        parent.kill()
        parent.wait(5)
        deadline = time.monotonic() + GRACE + 10.0
        while time.monotonic() < deadline and psutil.pid_exists(child_pid) and \
                psutil.Process(child_pid).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.1)
        alive = psutil.pid_exists(child_pid) and psutil.Process(child_pid).status() != psutil.STATUS_ZOMBIE
        assert not alive, "the orphaned child is still running"
    finally:
        parent.kill()
        parent.wait(5)
        parent.stdout.close()
        if child_pid and psutil.pid_exists(child_pid):
            os.kill(child_pid, signal.SIGKILL)
