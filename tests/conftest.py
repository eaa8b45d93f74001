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
