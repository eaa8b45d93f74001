"""The login throttle under parallel attempts: counted before scrypt, per user and address."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from rtoc.frontends.websocket.auth import Throttle, User, Users, hash_password

# cheap scrypt: the race is about ordering, not cost
ADA = User("ada", "admin", hash_password("lovelace", n=2, r=1))
BOB = User("bob", "read", hash_password("builder", n=2, r=1))


class World:
    """Logs in as the websocket Hub does: throttle, then scrypt in a thread."""

    def __init__(self, throttle: Throttle):
        self.users = Users([ADA, BOB])
        self.throttle = throttle
        self._scrypt = ThreadPoolExecutor(1)  # the Hub's one login thread

    async def login(self, user: str | None, secret: str, address: str,
                    now: float) -> tuple[str, str] | float | None:
        from rtoc.frontends.websocket.hub import Hub
        return await Hub.login(self, user, secret, False, address, now)  # type: ignore[arg-type]


def _guesses(world: World, n: int, user: str, address: str) -> list:
    async def main() -> list:
        return await asyncio.gather(*(world.login(user, f"guess{i}", address, 0.0)
                                      for i in range(n)))
    return asyncio.run(main())


def test_concurrent_guesses_are_throttled() -> None:
    results = _guesses(World(Throttle(max_failures=5)), 100, "ada", "6.6.6.6")
    assert sum(r is None for r in results) == 5  # only these reached scrypt
    assert sum(isinstance(r, float) and r > 0 for r in results) == 95


def test_concurrent_guesses_from_many_addresses_are_throttled_per_user() -> None:
    world = World(Throttle(max_failures=5))

    async def main() -> list:
        return await asyncio.gather(*(world.login("ada", f"g{i}", f"10.0.0.{i}", 0.0)
                                      for i in range(50)))
    results = asyncio.run(main())
    assert sum(r is None for r in results) == 5
    assert world.throttle.check("10.0.0.99", 0.0, "ada") > 0  # ada is locked everywhere
    assert world.throttle.check("10.0.0.99", 0.0, "bob") == 0.0


def test_another_users_success_does_not_clear_an_address() -> None:
    world = World(Throttle(max_failures=5))

    async def main() -> list:
        out = []
        for round_ in range(3):
            out += await asyncio.gather(*(world.login("ada", f"g{round_}{i}", "6.6.6.6", 0.0)
                                          for i in range(2)))
            out.append(await world.login("bob", "builder", "6.6.6.6", 0.0))
        return out
    results = asyncio.run(main())
    assert results.count(("bob", "read")) == 2  # the third bob login is refused: 6 guesses
    assert isinstance(results[-1], float)


def test_a_success_clears_only_that_users_failures() -> None:
    t = Throttle(max_failures=3)
    for _ in range(2):
        assert t.begin("a", 0.0, "ada") == 0.0
        t.failed("a", 0.0, "ada")
    assert t.begin("b", 0.0, "ada") == 0.0
    t.succeeded("b", 0.0, "ada")  # ada's failures are forgotten, address a's two remain
    assert t.begin("a", 0.0, "bob") == 0.0
    t.failed("a", 0.0, "bob")  # the third failure from a locks it
    assert t.begin("a", 0.0, "carl") == 30.0
    assert t.begin("c", 0.0, "ada") == 0.0


def test_parallel_logins_wait_but_are_not_locked_out() -> None:
    t = Throttle(max_failures=3, busy=1.0)
    assert [t.begin("a", 0.0, f"u{i}") for i in range(5)] == [0.0, 0.0, 0.0, 1.0, 1.0]
    for i in range(3):
        t.succeeded("a", 0.1, f"u{i}")
    assert t.begin("a", 0.2, "u3") == 0.0  # the first ones are done: room again
    assert t.check("a", 0.2) == 0.0


def test_an_attempt_never_decided_counts_as_a_failure_after_the_window() -> None:
    t = Throttle(max_failures=2, window=60)
    assert t.begin("a", 0.0, "ada") == 0.0 and t.begin("a", 0.0, "ada") == 0.0  # went away
    assert t.begin("a", 10.0, "ada") == 1.0  # still pending: busy
    assert t.begin("a", 61.0, "ada") == 30.0  # both counted as failures: locked


def test_a_legitimate_user_logging_in_often_is_not_locked() -> None:
    t = Throttle(max_failures=3)
    for i in range(20):
        assert t.begin("a", float(i), "ada") == 0.0
        t.succeeded("a", float(i), "ada")


def test_refused_attempts_are_counted() -> None:
    t = Throttle(max_failures=1)
    assert t.begin("a", 0.0) == 0.0
    assert t.begin("a", 0.0) == 1.0  # busy
    t.failed("a", 0.5)
    assert t.begin("a", 1.0) == 29.5  # locked
    assert t.refused == 2
