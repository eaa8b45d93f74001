"""Unit tests of rtoc.app.restart.RestartPolicy: back-off, forgiveness, the failure budget."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtoc.app.restart import RestartPolicy
from rtoc.config import SupervisorConfig

CFG = SupervisorConfig(restart_delay=0.5, restart_max_delay=4.0, burst_starts=100,
                       burst_seconds=10.0)


def test_back_off_doubles_up_to_the_max() -> None:
    p = RestartPolicy(CFG)
    now = 1000.0
    delays = []
    for _ in range(7):
        p.started(now)
        at = p.exited(now + 1.0, uptime=1.0)
        assert at is not None
        delays.append(at - (now + 1.0))
        now = at
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_back_off_resets_after_a_long_uptime() -> None:
    p = RestartPolicy(CFG)
    for now in (0.0, 1.0, 2.0):
        p.started(now)
        p.exited(now + 0.1, uptime=0.1)
    p.started(3.0)
    assert p.exited(3.0 + 10.5, uptime=10.5) == 13.5 + 0.5  # ran longer than burst_seconds
    p.started(14.0)
    assert p.exited(14.1, uptime=0.1) == 14.1 + 1.0  # and doubles again from there


def test_an_uptime_of_exactly_burst_seconds_is_not_forgiven() -> None:
    p = RestartPolicy(CFG)
    p.started(0.0)
    p.exited(0.1, uptime=0.1)  # delay now 1.0
    p.started(1.0)
    assert p.exited(11.0, uptime=10.0) == 12.0


def test_gives_up_after_burst_starts_within_burst_seconds() -> None:
    cfg = SupervisorConfig(restart_delay=0.5, restart_max_delay=30.0, burst_starts=3,
                           burst_seconds=10.0)
    p = RestartPolicy(cfg)
    p.started(0.0)
    assert p.exited(1.0, 1.0) == 1.5
    p.started(1.5)
    assert p.exited(2.0, 0.5) == 3.0
    p.started(3.0)
    assert p.exited(4.0, 1.0) is None  # third start within 10 s
    assert p.exited(4.0, 1.0) is None  # and stays given up


def test_with_the_defaults_a_child_crashing_at_once_is_given_up() -> None:
    """The old rule (5 starts within 10 s) never tripped with the defaults: the back-off
    delays alone (0.5 + 1 + 2 + 4 s) took the starts out of the window, so a driver raising
    in setup() stayed in back-off for ever (9 restarts in 120 s)."""
    p = RestartPolicy(SupervisorConfig())
    now, exits = 0.0, 0
    while exits < 100:
        p.started(now)
        now += 1.5                      # a process start (imports) and setup() raising
        exits += 1
        at = p.exited(now, 1.5)
        if at is None:
            break
        now = at
    assert exits == SupervisorConfig().burst_starts == 5
    assert now < 20.0                   # 5 runs of 1.5 s and 0.5 + 1 + 2 + 4 s of back-off


def test_short_runs_spread_out_count_and_a_healthy_run_forgives() -> None:
    cfg = SupervisorConfig(restart_delay=0.5, restart_max_delay=30.0, burst_starts=3,
                           burst_seconds=10.0)
    p = RestartPolicy(cfg)
    assert p.exited(9.0, 9.0) is not None       # each run just short of healthy
    assert p.exited(20.0, 9.0) is not None
    assert p.exited(31.0, 11.0) is not None     # a healthy run: the count starts again
    assert p.failures == 1
    assert p.exited(32.0, 0.5) is not None
    assert p.exited(33.0, 0.5) is None          # three in a row without a healthy run


def test_reset_clears_the_budget_and_the_back_off() -> None:
    cfg = SupervisorConfig(restart_delay=0.5, restart_max_delay=30.0, burst_starts=2,
                           burst_seconds=10.0)
    p = RestartPolicy(cfg)
    p.started(0.0)
    p.exited(0.1, 0.1)
    p.started(1.0)
    assert p.exited(1.1, 0.1) is None
    p.reset()
    p.started(2.0)
    assert p.exited(2.1, 0.1) == 2.6


@given(st.lists(st.tuples(st.floats(0.0, 50.0), st.floats(0.0, 50.0)), min_size=1, max_size=30))
def test_delay_stays_within_bounds_and_restarts_are_never_in_the_past(
        steps: list[tuple[float, float]]) -> None:
    cfg = SupervisorConfig(restart_delay=0.5, restart_max_delay=30.0, burst_starts=1000,
                           burst_seconds=10.0)
    p = RestartPolicy(cfg)
    now = 0.0
    for gap, uptime in steps:
        p.started(now)
        now += gap
        at = p.exited(now, uptime)
        assert at is not None
        assert now + cfg.restart_delay <= at <= now + cfg.restart_max_delay
        now = at
