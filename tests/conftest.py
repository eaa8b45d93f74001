"""Session-wide guards: every test must leave /dev/shm and the process table clean."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def no_instance_leftovers():
    before = {p.name for p in Path("/dev/shm").glob("rtoc-*")}
    yield
    after = {p.name for p in Path("/dev/shm").glob("rtoc-*")}
    left = sorted(after - before)
    assert not left, f"tests left instance folders in /dev/shm: {left}"


@pytest.fixture(scope="module")
def shm_dir() -> Iterator[Path]:
    """A temp folder under /dev/shm (where rings live), removed after the module."""
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="rtoc-test-ring-") as d:
        yield Path(d)


QT_MODULES = ("test_viewer.py", "test_viewer_qt.py")  # the tests that load Qt into this process


def pytest_collection_modifyitems(session, config, items) -> None:
    """The tests that load Qt run last. Once Qt was loaded in this pytest process (one
    pyqtgraph PlotWidget shown is enough), tests/integration/test_ws_attack_suite.py, whose
    attackers run here, measured its witness's p99 round trip at 53-103 ms against 30-39 ms
    without: a failure in every attempt when test_viewer.py ran before it. Why is not known
    (no thread or CPU of Qt's was seen); the server under test is the same either way."""
    qt = [item for item in items if Path(str(item.fspath)).name in QT_MODULES]
    if qt:
        chosen = set(qt)
        items[:] = [item for item in items if item not in chosen] + qt
