"""Waiting for a condition in tests: poll it with a deadline instead of sleeping a guess.

A fixed ``time.sleep(2.0)`` is either too long (the suite gets slow) or, on a loaded
machine, too short (the test gets flaky). ``wait_until`` returns as soon as the condition
holds and fails naming what did not happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *,
               interval: float = 0.05, detail: Callable[[], str] | None = None) -> T:
    """Poll ``predicate()`` every ``interval`` s until it returns something truthy; return it.

    After ``timeout`` s raise an AssertionError saying ``what`` did not happen (plus
    ``detail()``, e.g. an instance's log, when given). The predicate runs at least once and
    once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"not within {timeout} s: {what}{extra}")
        time.sleep(interval)
