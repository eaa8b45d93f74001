"""Unit tests of rtoc.frontends.websocket.auth: roles, hashes, login, throttle, origins."""

from __future__ import annotations

import base64
import hashlib

import pytest
from rtoc.frontends.websocket.auth import (
    ROLES,
    BadPasswordHash,
    Throttle,
    User,
    Users,
    hash_password,
    origin_allowed,
    parse_hash,
    role_at_least,
    rtoc_token,
    verify_password,
    verify_token,
)

from rtoc.errors import ConfigError, RtocError

FAST = {"n": 16, "r": 1, "p": 1}  # scrypt parameters that keep the tests fast


def test_roles_are_ordered() -> None:
    assert ROLES == ("none", "read", "write", "admin")
    assert role_at_least("admin", "write") and role_at_least("read", "read")
    assert not role_at_least("read", "write") and not role_at_least("none", "read")
    assert role_at_least("read", "none")
    with pytest.raises(ValueError, match="unknown role 'root'"):
        role_at_least("root", "read")


def test_rtoc_token_is_base64_of_sha256() -> None:
    expected = base64.b64encode(hashlib.sha256(b"geheim").digest()).decode()
    assert rtoc_token("geheim") == expected and len(expected) == 44
    assert rtoc_token("") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_hash_format_and_round_trip_with_default_cost() -> None:
    stored = hash_password("s3cret")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert verify_password(stored, "s3cret")
    assert not verify_password(stored, "s3cret ")


def test_hash_is_scrypt_of_the_rtoc_token() -> None:
    salt = b"0123456789abcdef"
    stored = hash_password("pw", salt=salt, **FAST)
    want = hashlib.scrypt(rtoc_token("pw").encode(), salt=salt, n=16, r=1, p=1, dklen=32)
    assert stored == f"scrypt$16$1$1${base64.b64encode(salt).decode()}${base64.b64encode(want).decode()}"


def test_salts_differ() -> None:
    assert hash_password("pw", **FAST) != hash_password("pw", **FAST)


def test_token_and_password_forms() -> None:
    stored = hash_password("pässword", **FAST)
    assert verify_token(stored, rtoc_token("pässword"))
    assert not verify_token(stored, "pässword")  # the password is not its token
    assert verify_password(stored, "pässword")
    assert not verify_password(stored, "password")
    assert not verify_token(stored, "\ud800")  # a lone surrogate from JSON hashes, no error


@pytest.mark.parametrize(("stored", "says"), [
    ("", "6 fields"),
    ("scrypt$16$1$1$c2FsdHNhbHQ=", "6 fields"),
    ("bcrypt$16$1$1$c2FsdHNhbHQ=$" + "A" * 43 + "=", "unknown password hash scheme 'bcrypt'"),
    ("scrypt$15$1$1$c2FsdHNhbHQ=$" + "A" * 43 + "=", "n must be a power of two"),
    ("scrypt$1$1$1$c2FsdHNhbHQ=$" + "A" * 43 + "=", "n must be a power of two"),
    ("scrypt$x$1$1$c2FsdHNhbHQ=$" + "A" * 43 + "=", "n must be a positive integer"),
    ("scrypt$16$0$1$c2FsdHNhbHQ=$" + "A" * 43 + "=", "r must be a positive integer"),
    ("scrypt$16$1$-1$c2FsdHNhbHQ=$" + "A" * 43 + "=", "p must be a positive integer"),
    ("scrypt$16$1$17$c2FsdHNhbHQ=$" + "A" * 43 + "=", "p must be at most 16"),
    ("scrypt$1048576$8$1$c2FsdHNhbHQ=$" + "A" * 43 + "=", "MiB"),
    ("scrypt$16$1$1$not base64!$" + "A" * 43 + "=", "salt is not valid base64"),
    ("scrypt$16$1$1$c2FsdHNhbHQ=$AAA", "hash is not valid base64"),
    ("scrypt$16$1$1$c2FsdA==$" + "A" * 43 + "=", "salt of 4 bytes is shorter than 8"),
    ("scrypt$16$1$1$c2FsdHNhbHQ=$AAAA", "hash of 3 bytes"),
])
def test_parse_errors_name_the_problem(stored: str, says: str) -> None:
    with pytest.raises(BadPasswordHash, match=says) as info:
        parse_hash(stored)
    assert isinstance(info.value, RtocError) and isinstance(info.value, ValueError)
    assert info.value.code == "bad_password_hash"


def test_parse_round_trips_through_str() -> None:
    stored = hash_password("pw", **FAST)
    parsed = parse_hash(stored)
    assert (parsed.n, parsed.r, parsed.p) == (16, 1, 1) and str(parsed) == stored
    assert repr(parsed) == "ScryptHash(n=16, r=1, p=1)"  # no salt or digest in logs


def test_user_repr_hides_the_hash() -> None:
    user = User("ada", "admin", hash_password("pw", **FAST))
    assert user.password_hash not in repr(user)


def _users(anonymous: str = "read") -> Users:
    return Users([User("ada", "admin", hash_password("lovelace", **FAST)),
                  User("bob", "read", hash_password("builder", **FAST))], anonymous)


def test_login_by_name() -> None:
    users = _users()
    assert users.login("ada", "lovelace", is_token=False) == users.get("ada")
    assert users.login("ada", rtoc_token("lovelace"), is_token=True) == users.get("ada")
    assert users.login("ada", "builder", is_token=False) is None
    assert users.login("ada", "lovelace", is_token=True) is None  # a password is no token
    assert users.login("nobody", "lovelace", is_token=False) is None
    assert users.login("", "x", is_token=False) is None


def test_login_without_name_finds_the_user_with_that_password() -> None:
    users = _users()
    assert users.login(None, rtoc_token("builder"), is_token=True).name == "bob"
    assert users.login(None, "lovelace", is_token=False).name == "ada"
    assert users.login(None, "wrong", is_token=False) is None
    assert Users([]).login(None, "x", is_token=False) is None


def test_unknown_name_costs_a_scrypt_with_the_users_parameters(monkeypatch) -> None:
    users = _users()
    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counting(password: bytes, **kw):
        calls.append((kw["n"], kw["r"], kw["p"]))
        return real(password, **kw)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    users.login("nobody", "x", is_token=False)
    users.login("ada", "x", is_token=False)
    assert calls == [(16, 1, 1), (16, 1, 1)]
    calls.clear()
    users.login(None, "x", is_token=False)
    assert len(calls) == 2  # every user is tried, no early exit
    calls.clear()
    Users([]).login("nobody", "x", is_token=False)
    assert calls == [(2**14, 8, 1)]


def test_users_container_and_anonymous_role() -> None:
    users = _users("none")
    assert len(users) == 2 and "ada" in users and "carl" not in users
    assert users.get("carl") is None and users.anonymous == "none"
    assert Users([]).anonymous == "read"


@pytest.mark.parametrize(("users", "anonymous", "key", "says"), [
    ([User("a", "root", "")], "read", "ws.users[0].role", "unknown role 'root'"),
    ([User("a", "read", "scrypt$16")], "read", "ws.users[0].password_hash", "6 fields"),
    ([User("", "read", "")], "read", "ws.users[0].name", "non-empty name"),
    ([User("a", "read", "x"), User("a", "read", "x")], "read", "ws.users[1].name", "twice"),
    ([], "guest", "ws.anonymous", "unknown role 'guest'"),
])
def test_bad_users_fail_at_load_time_naming_the_key(
    users: list[User], anonymous: str, key: str, says: str
) -> None:
    good = hash_password("pw", **FAST)
    users = [User(u.name, u.role, good if u.password_hash == "x" else u.password_hash)
             for u in users]
    with pytest.raises(ConfigError, match=says) as info:
        Users(users, anonymous, section="ws")
    assert info.value.key == key


def test_login_refuses_a_non_string_secret() -> None:
    with pytest.raises(TypeError, match="secret must be a str"):
        _users().login("ada", 123, is_token=False)  # type: ignore[arg-type]


# --- throttle ------------------------------------------------------------------------------

def test_throttle_locks_after_max_failures_within_the_window() -> None:
    t = Throttle(max_failures=3, window=60, lockout=30)
    for now in (0.0, 10.0):
        t.failed("1.2.3.4", now)
        assert t.check("1.2.3.4", now) == 0.0
    t.failed("1.2.3.4", 20.0)
    assert t.check("1.2.3.4", 20.0) == 30.0
    assert t.check("1.2.3.4", 45.0) == 5.0
    assert t.check("5.6.7.8", 45.0) == 0.0  # per address
    assert t.check("1.2.3.4", 50.0) == 0.0


def test_throttle_failures_outside_the_window_do_not_count() -> None:
    t = Throttle(max_failures=3, window=60, lockout=30)
    t.failed("a", 0.0)
    t.failed("a", 50.0)
    t.failed("a", 61.0)  # the one at 0 has left the window
    assert t.check("a", 61.0) == 0.0
    t.failed("a", 62.0)
    assert t.check("a", 62.0) == 30.0


def test_throttle_lockout_doubles_up_to_the_maximum_and_a_success_does_not_reset_it() -> None:
    t = Throttle(max_failures=2, window=60, lockout=30, max_lockout=100)
    now, waits = 0.0, []
    for _ in range(4):
        t.failed("a", now)
        t.failed("a", now)
        waits.append(t.check("a", now))
        now += waits[-1]
        assert t.check("a", now) == 0.0
    assert waits == [30.0, 60.0, 100.0, 100.0]
    t.succeeded("a", now, "ada")  # only ada's failures are forgotten, not the address's
    t.failed("a", now)
    t.failed("a", now)
    assert t.check("a", now) == 100.0


def test_throttle_forgets_quiet_addresses_and_stays_bounded() -> None:
    t = Throttle(max_failures=2, window=60, lockout=30, max_lockout=100, max_entries=3)
    t.failed("a", 0.0)
    t.failed("a", 0.0)  # locked until 30
    t.failed("b", 1.0)
    t.failed("c", 2.0)
    t.failed("d", 3.0)  # full: "a", the least recently failing, is dropped
    assert len(t) == 3 and t.check("a", 3.0) == 0.0
    t.failed("e", 1000.0)  # everyone else has been quiet for long enough
    assert len(t) == 1
    t.failed("e", 1000.0)
    assert t.check("e", 1000.0) == 30.0
    # a lockout long ago no longer doubles the next one
    t.failed("e", 2000.0)
    t.failed("e", 2000.0)
    assert t.check("e", 2000.0) == 30.0


def test_throttle_memory_is_bounded_under_a_flood() -> None:
    t = Throttle(max_entries=100)
    for i in range(10_000):
        t.failed(f"10.0.{i // 256}.{i % 256}", float(i) / 1000)
    assert len(t) == 100


@pytest.mark.parametrize("kwargs", [
    {"max_failures": 0}, {"window": 0}, {"lockout": 0}, {"lockout": 60, "max_lockout": 30},
    {"max_entries": 0},
])
def test_throttle_refuses_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="Throttle"):
        Throttle(**kwargs)


# --- origins -------------------------------------------------------------------------------

@pytest.mark.parametrize(("origin", "host", "allow", "ok"), [
    (None, "rtoc.local:8080", (), True),                               # not a browser
    (None, None, (), True),
    ("http://rtoc.local:8080", "rtoc.local:8080", (), True),           # same origin
    ("http://RTOC.local:8080", "rtoc.LOCAL:8080", (), True),           # case
    ("HTTP://rtoc.local", "rtoc.local", (), True),
    ("http://rtoc.local:80", "rtoc.local", (), True),                  # default ports
    ("http://rtoc.local", "rtoc.local:80", (), True),
    ("https://rtoc.local", "rtoc.local:443", (), True),
    ("https://rtoc.local", "rtoc.local", (), True),
    ("https://rtoc.local", "rtoc.local:80", (), False),
    ("http://rtoc.local:8081", "rtoc.local:8080", (), False),          # other port
    ("http://evil.example", "rtoc.local:8080", (), False),             # cross origin
    ("http://evil.example", None, (), False),
    ("http://[::1]:8080", "[::1]:8080", (), True),                      # IPv6
    ("http://[::1]:8080", "[::2]:8080", (), False),
    ("http://evil.example", "rtoc.local", ("*",), True),               # anything
    ("null", "rtoc.local", ("*",), True),
    ("http://app.example", "rtoc.local", ("http://app.example",), True),  # allow list
    ("http://APP.example:80", "rtoc.local", ("http://app.example",), True),
    ("http://app.example", "rtoc.local", ("http://app.example:80",), True),
    ("https://app.example", "rtoc.local", ("http://app.example",), False),
    ("http://app.example:8000", "rtoc.local", ("http://app.example",), False),
    ("http://app.example.evil", "rtoc.local", ("http://app.example",), False),
    ("null", "rtoc.local", (), False),                                 # sandboxed page
    ("null", "rtoc.local", ("null",), False),
    ("file://", "rtoc.local", (), False),
    ("http://rtoc.local:99999", "rtoc.local", (), False),              # malformed
    ("http://user@rtoc.local", "rtoc.local", (), False),
    ("http://rtoc.local/path", "rtoc.local", (), False),
    ("http://rtoc.local", "rtoc.local:notaport", (), False),
    ("", "rtoc.local", (), False),
])
def test_origin_matrix(origin: str | None, host: str | None, allow: tuple[str, ...],
                       ok: bool) -> None:
    assert origin_allowed(origin, host, allow) is ok


def test_a_locked_user_name_still_logs_in_from_an_address_it_used_before() -> None:
    """Guesses at "admin" from many addresses lock the name everywhere (a spread-out guess
    is throttled), but not for the addresses admin logged in from: anyone could otherwise
    lock the owner out of their own server by guessing wrong on purpose."""
    t = Throttle(max_failures=3, window=60, lockout=30, max_lockout=900)
    assert t.begin("10.0.0.1", 0.0, "admin") == 0.0
    t.succeeded("10.0.0.1", 0.0, "admin")                 # the owner, from home
    for i in range(3):                                    # an attacker, from three addresses
        assert t.begin(f"192.0.2.{i}", 1.0, "admin") == 0.0
        t.failed(f"192.0.2.{i}", 1.0, "admin")
    assert t.begin("192.0.2.9", 2.0, "admin") > 0         # the name is locked for strangers
    assert t.begin("10.0.0.1", 2.0, "admin") == 0.0       # not at home
    t.succeeded("10.0.0.1", 2.0, "admin")
    for _ in range(3):                                    # home still counts its own failures
        assert t.begin("10.0.0.1", 2.0, "admin") == 0.0
        t.failed("10.0.0.1", 2.0, "admin")
    assert t.begin("10.0.0.1", 2.0, "admin") > 0          # three failures: the address locks


def test_the_login_throttle_takes_its_settings_from_the_config() -> None:
    from rtoc.frontends.websocket.server import Server

    from rtoc.config import loads

    cfg = loads('[websocket]\nlogin_max_failures = 2\nlogin_window = 10.0\nlogin_lockout = 5.0\n'
                'login_max_lockout = 50.0\n').websocket
    t = Server.throttle_for(cfg)
    assert (t.max_failures, t.window, t.lockout, t.max_lockout) == (2, 10.0, 5.0, 50.0)
