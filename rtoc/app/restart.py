"""When to restart a crashed child: exponential back-off and a failure budget.

The rule: a child that exits ``burst_starts`` times in a row, each time less than
``burst_seconds`` after it started (it never had a healthy run), is given up on. A run of
``burst_seconds`` or longer is healthy: it forgives the failures before it and resets the
back-off. Counting starts within a fixed window (systemd's ``StartLimitBurst``) could never
trip with the defaults: the back-off delays alone (0.5 + 1 + 2 + 4 s) outgrow a 10-s
window, so a child crashing in ``setup()`` stayed in back-off for ever. Pure: time is an
argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtoc.config import SupervisorConfig


@dataclass
class RestartPolicy:
    cfg: SupervisorConfig
    failures: int = 0    # exits in a row, each before a healthy run
    delay: float = 0.0   # the next back-off

    def __post_init__(self):
        self.delay = self.cfg.restart_delay

    def started(self, now: float) -> None:
        """A start (the rule needs only the run's length, given at its exit)."""

    def exited(self, now: float, uptime: float) -> float | None:
        """The time to restart at, or None when the budget is spent (give up)."""
        if uptime > self.cfg.burst_seconds:  # a healthy run: forgive the failures before it
            self.failures, self.delay = 0, self.cfg.restart_delay
        self.failures += 1
        if self.failures >= self.cfg.burst_starts:
            return None
        at = now + self.delay
        self.delay = min(self.delay * 2, self.cfg.restart_max_delay)
        return at

    def reset(self) -> None:
        self.failures = 0
        self.delay = self.cfg.restart_delay
