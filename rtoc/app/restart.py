"""When to restart a crashed child: exponential back-off and a start budget.

Like systemd's ``StartLimitBurst``/``StartLimitIntervalSec``: a child that starts
``burst_starts`` times within ``burst_seconds`` is given up on. Pure: time is an argument.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rtoc.config import SupervisorConfig


@dataclass
class RestartPolicy:
    cfg: SupervisorConfig
    starts: deque = field(default_factory=deque)
    delay: float = 0.0

    def __post_init__(self):
        self.delay = self.cfg.restart_delay

    def started(self, now: float) -> None:
        self.starts.append(now)

    def exited(self, now: float, uptime: float) -> float | None:
        """The time to restart at, or None when the budget is spent (give up)."""
        while self.starts and self.starts[0] < now - self.cfg.burst_seconds:
            self.starts.popleft()
        if len(self.starts) >= self.cfg.burst_starts:
            return None
        if uptime > self.cfg.burst_seconds:  # it ran well for a while: forgive earlier crashes
            self.delay = self.cfg.restart_delay
        at = now + self.delay
        self.delay = min(self.delay * 2, self.cfg.restart_max_delay)
        return at

    def reset(self) -> None:
        self.starts.clear()
        self.delay = self.cfg.restart_delay
