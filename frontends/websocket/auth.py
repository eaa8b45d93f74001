"""Who may do what on the websocket: roles, password hashes, login, throttling, origins, hosts.

Everything here is pure: no sockets, no clock (``now`` is an argument, in seconds on any
monotonic clock), no logging. The only cost is scrypt, on purpose.

Passwords and RTOC compatibility: the original RTOC client never sends the password; its
``authorize`` message carries ``token = base64(sha256(password_utf8))`` (standard base64 of
the raw 32-byte digest, see :func:`rtoc_token`). So that such clients keep working, the
stored hash is scrypt *of that token*: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``. A
client that sends the password itself is checked the same way after hashing it to a token.
The token is a password equivalent on the wire; use TLS (or the encrypted subprotocol).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from rtoc.client.aead import rtoc_token, scrypt_digest
from rtoc.errors import ConfigError, RtocError

__all__ = [
    "ROLES", "BadPasswordHash", "ScryptHash", "Throttle", "User", "Users", "accepted_hosts",
    "hash_password", "host_allowed", "origin_allowed", "parse_hash", "role_at_least", "rtoc_token", "verify_password",
    "verify_token",
]

ROLES: tuple[str, ...] = ("none", "read", "write", "admin")
"""Roles from least to most allowed; each includes what the ones before it may do."""

_RANK = {role: rank for rank, role in enumerate(ROLES)}


def role_at_least(have: str, need: str) -> bool:
    """True if role ``have`` allows what ``need`` allows; unknown roles raise ValueError."""
    for role in (have, need):
        if role not in _RANK:
            raise ValueError(f"unknown role {role!r} (roles are {', '.join(ROLES)})")
    return _RANK[have] >= _RANK[need]


# --- password hashes -----------------------------------------------------------------------

class BadPasswordHash(RtocError, ValueError):
    """A stored password hash that is not ``scrypt$n$r$p$salt$hash``; says which part."""

    code = "bad_password_hash"


@dataclass(frozen=True)
class ScryptHash:
    """A parsed ``scrypt$n$r$p$salt$hash``: cost ``n`` (a power of two), block size ``r``,
    parallelism ``p``, ``salt`` and ``digest`` bytes."""

    n: int
    r: int
    p: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    def verify(self, token: str) -> bool:
        """True if ``token`` (an :func:`rtoc_token`) hashes to ``digest``; constant time."""
        return hmac.compare_digest(
            scrypt_digest(token, self.salt, self.n, self.r, self.p, len(self.digest)), self.digest
        )

    def __str__(self) -> str:
        return "$".join(("scrypt", str(self.n), str(self.r), str(self.p),
                         base64.b64encode(self.salt).decode(),
                         base64.b64encode(self.digest).decode()))


_MAX_SCRYPT_MEMORY = 256 << 20  # bytes; scrypt needs 128 * r * n
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # hash_password's defaults: ~50 ms, 16 MiB


def hash_password(password: str, *, salt: bytes | None = None, n: int = SCRYPT_N,
                  r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The stored form of ``password``: ``scrypt$n$r$p$salt$hash`` over its RTOC token.

    ``salt`` defaults to 16 random bytes; the hash is 32 bytes. The defaults take about
    50 ms and 16 MiB per check.
    """
    salt = os.urandom(16) if salt is None else salt
    text = str(ScryptHash(n, r, p, salt, b"\0" * 32))
    parse_hash(text)  # the same bounds as for stored hashes
    return str(ScryptHash(n, r, p, salt, scrypt_digest(rtoc_token(password), salt, n, r, p, 32)))


def parse_hash(stored: str) -> ScryptHash:
    """Check and split a stored hash; raise BadPasswordHash naming the bad part.

    Call it when the configuration is loaded (:class:`Users` does), not at login.
    """
    if not isinstance(stored, str):
        raise BadPasswordHash(f"password hash must be a string, not {type(stored).__name__}")
    parts = stored.split("$")
    if len(parts) != 6:
        raise BadPasswordHash(
            f"password hash must have 6 fields separated by '$' (scrypt$n$r$p$salt$hash), "
            f"got {len(parts)}"
        )
    scheme, n_text, r_text, p_text, salt_text, digest_text = parts
    if scheme != "scrypt":
        raise BadPasswordHash(f"unknown password hash scheme {scheme[:20]!r} (expected 'scrypt')")
    n, r, p = (_positive(name, text) for name, text in (("n", n_text), ("r", r_text),
                                                          ("p", p_text)))
    if n < 2 or n & (n - 1):
        raise BadPasswordHash(f"scrypt n must be a power of two of at least 2, got {n}")
    if p > 16:
        raise BadPasswordHash(f"scrypt p must be at most 16, got {p}")
    if 128 * r * n > _MAX_SCRYPT_MEMORY:
        raise BadPasswordHash(
            f"scrypt n={n} r={r} needs {128 * r * n >> 20} MiB, more than the "
            f"{_MAX_SCRYPT_MEMORY >> 20} MiB allowed"
        )
    salt = _base64("salt", salt_text)
    digest = _base64("hash", digest_text)
    if len(salt) < 8:
        raise BadPasswordHash(f"salt of {len(salt)} bytes is shorter than 8")
    if not 16 <= len(digest) <= 64:
        raise BadPasswordHash(f"hash of {len(digest)} bytes is not 16 to 64 bytes long")
    return ScryptHash(n, r, p, salt, digest)


def _positive(name: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) < 1:
        raise BadPasswordHash(f"scrypt {name} must be a positive integer, got {text[:20]!r}")
    return int(text)


def _base64(name: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadPasswordHash(f"{name} is not valid base64") from None


def verify_token(stored: str, token: str) -> bool:
    """True if ``token`` (an :func:`rtoc_token`) matches the stored hash; constant time."""
    return parse_hash(stored).verify(token)


def verify_password(stored: str, password: str) -> bool:
    """True if ``password`` matches the stored hash."""
    return verify_token(stored, rtoc_token(password))


# --- users and login -----------------------------------------------------------------------

@dataclass(frozen=True)
class User:
    """One account: ``name``, ``role`` (one of :data:`ROLES`), ``password_hash`` (stored form)."""

    name: str
    role: str
    password_hash: str = field(repr=False)


class Users:
    """The configured accounts plus the role of a connection that has not logged in.

    ``anonymous`` is that role: "read" by default, "none" to require a login for anything.
    Construction checks every user (name, role, hash) and raises ConfigError whose ``key`` is
    ``[section.]users[i].field`` or ``[section.]anonymous``.
    """

    def __init__(self, users: Iterable[User], anonymous: str = "read", *, section: str = ""):
        prefix = f"{section}." if section else ""
        if anonymous not in _RANK:
            raise ConfigError(f"unknown role {anonymous!r} (roles are {', '.join(ROLES)})",
                              f"{prefix}anonymous")
        self.anonymous = anonymous
        self._users: list[tuple[User, ScryptHash]] = []
        self._by_name: dict[str, tuple[User, ScryptHash]] = {}
        for i, user in enumerate(users):
            key = f"{prefix}users[{i}]"
            if not isinstance(user.name, str) or not user.name:
                raise ConfigError("a user needs a non-empty name", f"{key}.name")
            if user.name in self._by_name:
                raise ConfigError(f"user {user.name!r} is defined twice", f"{key}.name")
            if user.role not in _RANK:
                raise ConfigError(f"unknown role {user.role!r} (roles are {', '.join(ROLES)})",
                                  f"{key}.role")
            try:
                parsed = parse_hash(user.password_hash)
            except BadPasswordHash as exc:
                raise ConfigError(str(exc), f"{key}.password_hash") from None
            self._users.append((user, parsed))
            self._by_name[user.name] = (user, parsed)
        # Unknown names are checked against this, with the first user's cost, so a failed
        # login takes as long whether or not the name exists. Its random digest never matches.
        n, r, p = ((self._users[0][1].n, self._users[0][1].r, self._users[0][1].p)
                   if self._users else (SCRYPT_N, SCRYPT_R, SCRYPT_P))
        self._dummy = ScryptHash(n, r, p, os.urandom(16), os.urandom(32))

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> User | None:
        """The user called ``name``, or None."""
        entry = self._by_name.get(name)
        return entry[0] if entry else None

    def login(self, name: str | None, secret: str, *, is_token: bool) -> User | None:
        """The user whose password ``secret`` is, or None; costs scrypt time either way.

        ``secret`` is the password, or with ``is_token`` its :func:`rtoc_token` (what an
        RTOC client sends). With ``name`` None (RTOC's single-password ``authorize``) every
        user is tried and the first that matches is returned: with one configured user that
        is RTOC's behaviour; with several, whichever user has that password (all are checked,
        so this costs one scrypt per user). An unknown ``name`` costs one scrypt too.
        """
        if not isinstance(secret, str):
            raise TypeError(f"secret must be a str, not {type(secret).__name__}")
        token = secret if is_token else rtoc_token(secret)
        if name is None:
            found = None
            for user, parsed in self._users:  # no early exit: the time says nothing
                if parsed.verify(token) and found is None:
                    found = user
            if not self._users:
                self._dummy.verify(token)
            return found
        entry = self._by_name.get(name)
        if entry is None:
            self._dummy.verify(token)
            return None
        return entry[0] if entry[1].verify(token) else None


# --- throttling ----------------------------------------------------------------------------

@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)  # times within the window
    pending: list[float] = field(default_factory=list)   # attempts begun, not yet decided
    lockouts: int = 0
    locked_until: float = float("-inf")
    last: float = 0.0


TRUSTED_PER_USER = 8  # addresses per user a lock of that user name does not apply to


class Throttle:
    """Refuse logins from an address, or for a user name, that keeps failing.

    Attempts are counted per address and per user name, before the password is checked:
    :meth:`begin` refuses (a wait in seconds) or records the attempt as pending; the caller
    then reports :meth:`failed` or :meth:`succeeded`. At most ``max_failures`` failures and
    pending attempts together are allowed per key, so parallel guesses cannot all reach
    scrypt before the first failure is recorded (the others are refused for ``busy``
    seconds, without a lockout); an attempt never decided (a client that went away) counts
    as a failure after ``window`` seconds.

    After ``max_failures`` failures within ``window`` seconds the key is locked for
    ``lockout`` seconds, doubling with each further lockout up to ``max_lockout``;
    ``max_lockout`` seconds without failures after a lockout ended forget it. A success
    forgets only its user's failures and lockouts, not the address's (a login with one
    account must not reset the count of guesses at another). A locked user name is locked
    for every address, so that guesses spread over many addresses are throttled too, except
    the addresses that user logged in from before (the last ``TRUSTED_PER_USER`` of them):
    otherwise anyone could lock the admin out of their own server by guessing wrong on
    purpose. Those addresses still count their own failures. At most ``max_entries`` keys
    are remembered: past that the least recently failing ones are forgotten first (memory
    stays bounded).

    Addresses and names are opaque strings; pass the peer's IP without its port.
    """

    def __init__(self, *, max_failures: int = 5, window: float = 60.0, lockout: float = 30.0,
                 max_lockout: float = 900.0, max_entries: int = 10_000, busy: float = 1.0):
        if max_failures < 1 or window <= 0 or lockout <= 0 or max_lockout < lockout:
            raise ValueError(
                f"Throttle needs max_failures >= 1, window > 0 and 0 < lockout <= max_lockout, "
                f"got {max_failures}, {window}, {lockout}, {max_lockout}"
            )
        if max_entries < 1 or not busy > 0:
            raise ValueError(f"Throttle max_entries must be at least 1 and busy > 0, got "
                             f"{max_entries}, {busy}")
        self.max_failures, self.window, self.busy = max_failures, window, busy
        self.lockout, self.max_lockout, self.max_entries = lockout, max_lockout, max_entries
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()  # least recent first
        self._trusted: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()  # user -> addresses
        self.refused = 0  # attempts refused (locked or busy), for /metrics

    def __len__(self) -> int:
        return len(self._records)

    def _keys(self, address: str, user: str | None) -> list[tuple[str, str]]:
        """The records an attempt counts against: its address, and its user name unless
        that user logged in from this address before (see the class's text)."""
        keys = [("address", address)]
        if user is not None and address not in self._trusted.get(user, ()):
            keys.append(("user", user))
        return keys

    def check(self, address: str, now: float, user: str | None = None) -> float:
        """Seconds ``address`` (and ``user``) must still wait before a login because of a
        lockout; 0.0 = allowed. Only looks: it counts nothing (see :meth:`begin`)."""
        wait = 0.0
        for key in self._keys(address, user):
            record = self._records.get(key)
            if record is not None and record.locked_until > now:
                wait = max(wait, record.locked_until - now)
        return wait

    def begin(self, address: str, now: float, user: str | None = None) -> float:
        """Start a login attempt: the seconds to wait if it is refused (nothing counted), or
        0.0 when the password may be checked; then call :meth:`failed` or :meth:`succeeded`."""
        wait = self.check(address, now, user)
        if wait == 0.0:
            records = [self._record(key, now) for key in self._keys(address, user)]
            for record in records:
                if record.locked_until > now:  # expired pending attempts locked it
                    wait = max(wait, record.locked_until - now)
                elif len(record.failures) + len(record.pending) >= self.max_failures:
                    wait = max(wait, self.busy)
            if wait == 0.0:
                for record in records:
                    record.pending.append(now)
                return 0.0
        self.refused += 1
        return wait

    def failed(self, address: str, now: float, user: str | None = None) -> None:
        """A login from ``address`` (for ``user``) failed at ``now`` (seconds)."""
        for key in self._keys(address, user):
            record = self._record(key, now)
            if record.pending:
                record.pending.pop(0)
            self._fail(record, now)

    def succeeded(self, address: str, now: float, user: str | None = None) -> None:
        """A login worked: its attempt is done, and ``user``'s failures and lockouts are
        forgotten (no one else's), and ``address`` is one ``user`` is known to log in from."""
        for key in self._keys(address, user):
            record = self._records.get(key)
            if record is None:
                continue
            if record.pending:
                record.pending.pop(0)
            if key[0] == "user":
                record.failures.clear()
                record.lockouts, record.locked_until = 0, float("-inf")
        if user is not None:
            self._trust(user, address)

    def _trust(self, user: str, address: str) -> None:
        known = self._trusted.pop(user, None) or OrderedDict()
        known.pop(address, None)
        known[address] = None
        while len(known) > TRUSTED_PER_USER:
            known.popitem(last=False)
        self._trusted[user] = known  # most recent last
        while len(self._trusted) > self.max_entries:
            self._trusted.popitem(last=False)

    def _fail(self, record: _Record, now: float) -> None:
        record.failures.append(now)
        if len(record.failures) >= self.max_failures:
            record.failures.clear()
            record.lockouts += 1
            wait = min(self.lockout * 2 ** min(record.lockouts - 1, 64), self.max_lockout)
            record.locked_until = max(record.locked_until, now + wait)

    def _record(self, key: tuple[str, str], now: float) -> _Record:
        """The record of ``key``, made or refreshed, touched at ``now``; pending attempts
        older than the window count as failures."""
        self._forget_expired(now)
        record = self._records.get(key)
        if record is not None and self._expired(record, now):
            del self._records[key]  # quiet long enough: start afresh
            record = None
        if record is None:
            while len(self._records) >= self.max_entries:
                self._records.popitem(last=False)
            record = self._records[key] = _Record()
        else:
            self._records.move_to_end(key)
        record.last = now
        record.failures = [t for t in record.failures if t > now - self.window]
        while record.pending and record.pending[0] <= now - self.window:
            record.pending.pop(0)  # never decided: the client went away mid-login
            self._fail(record, now)
        return record

    def _expired(self, record: _Record, now: float) -> bool:
        return (record.last <= now - self.window and not record.pending
                and record.locked_until <= now - self.max_lockout)

    def _forget_expired(self, now: float) -> None:
        # The front is the least recently failing; stop at the first one still relevant,
        # so each call costs O(1) amortised.
        while self._records:
            key, record = next(iter(self._records.items()))
            if not self._expired(record, now):
                break
            del self._records[key]


# --- origins -------------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _origin_parts(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a ``scheme://host[:port]`` origin, lower case; None if not one."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None
            or parts.password is not None or parts.path not in ("", "/") or parts.query
            or parts.fragment):
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def origin_allowed(origin: str | None, host_header: str | None, allow: tuple[str, ...]) -> bool:
    """Whether a websocket handshake with this ``Origin`` header may proceed.

    Allowed: no Origin (not a browser); an Origin whose host and port equal the ``Host``
    header's (same origin; a Host without a port means the Origin scheme's default port);
    an Origin in ``allow`` (compared as scheme://host:port, case-insensitive, default ports
    filled in), or any Origin if ``allow`` holds "*". Everything else, including the
    ``null`` origin of sandboxed pages and malformed origins, is refused. The ``Host``
    header itself must pass :func:`host_allowed` first: same origin means nothing when the
    page's name was rebound to this server.
    """
    if origin is None:
        return True
    if "*" in allow:
        return True
    parsed = _origin_parts(origin)
    if parsed is None:
        return False
    scheme, host, port = parsed
    if host_header:
        try:
            split = urlsplit("//" + host_header.strip())
            host_port = split.port
        except ValueError:
            split, host_port = None, None
        if split is not None and split.hostname:
            if host_port is None:
                host_port = _DEFAULT_PORTS[scheme]
            if split.hostname.lower() == host and host_port == port:
                return True
    return any(_origin_parts(entry) == parsed for entry in allow)


# --- hosts ---------------------------------------------------------------------------------

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = ("", "0.0.0.0", "::")


def accepted_hosts(listen: str, hosts: Iterable[str] = (), *,
                   machine: Iterable[str] = ()) -> frozenset[str]:
    """The names a ``Host`` header may carry, lower case, without ports or brackets.

    ``listen`` is the address the server listens on; ``hosts`` the configured extra names
    (``[websocket] hosts``; "*" accepts any). A loopback listener accepts localhost,
    127.0.0.1 and ::1 too; a wildcard one (0.0.0.0, ::) those and ``machine``, the names
    of this machine (its hostname, say). IP literals are always accepted (see
    :func:`host_allowed`).
    """
    names = {_bare(name) for name in hosts}
    listen_name = _bare(listen)
    names.add(listen_name)
    if listen_name in _WILDCARDS or listen_name in _LOOPBACK_NAMES or _is_loopback(listen_name):
        names.update(_LOOPBACK_NAMES)
    if listen_name in _WILDCARDS:
        names.update(_bare(name) for name in machine)
    names.discard("")
    return frozenset(names)


def host_allowed(host_header: str | None, accepted: frozenset[str]) -> bool:
    """Whether a request's ``Host`` header names this server (DNS rebinding guard).

    A page on a name the attacker controls that now resolves to this server sends its own
    name as Host; only names in ``accepted`` (see :func:`accepted_hosts`, "*": any) and IP
    literals (a page loaded from an IP is this server's own) pass. No Host header fails.
    """
    if "*" in accepted:
        return True
    if not host_header:
        return False
    try:
        name = urlsplit("//" + host_header.strip()).hostname
    except ValueError:
        return False
    if not name:
        return False
    name = name.lower()
    if name in accepted:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _bare(name: str) -> str:
    name = name.strip().lower()
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
