"""rtoc.toml, decoded into one frozen, typed tree and validated at start.

``load(path)`` returns a :class:`Config`; an unknown key, a wrong type or a bad value raises
:class:`ConfigError` naming the key path (``drivers[1].samplerate``) and the file's line.
With no file, the defaults run the generator and the system driver.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from rtoc.errors import ConfigError
from rtoc.events.rules import ActionRule, EventRule
from rtoc.paths import config_dir, default_data_dir
from rtoc.typed_toml import decode, line_of

_INSTANCE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


@dataclass(frozen=True)
class DriverConfig:
    """One driver process. ``driver``: a built-in short name, ``module:Class`` or an entry
    point of the group ``rtoc.drivers``; ``name`` is its device name."""

    name: str
    driver: str
    autostart: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    ring_seconds: float = 4.0
    max_tick_failures: int = 10  # timer ticks that raise in a row before the driver is restarted
    stall_timeout: float = 60.0  # s a running driver's process may not turn its loop (a hung
                                 # tick) before it is killed and restarted; 0: never


@dataclass(frozen=True)
class EngineConfig:
    tick: float = 0.001          # s between ring scans while data flows
    idle_tick: float = 0.02      # s between scans after idle_after quiet ticks
    idle_after: int = 50
    min_batch: int = 4096        # publish a signal once this many samples wait ...
    max_delay: float = 0.001     # ... or its oldest unpublished sample is this old (s)
    max_batch: int = 65536       # samples per data message at most
    heartbeat: float = 1.0       # s between meta heartbeats
    event_history: int = 10000   # events the engine keeps for queries
    max_event_rate: float = 1000.0  # events per second per rule at most (the rest counted)
    max_event_total_rate: float = 2000.0  # events per second of all rules together at most
    throttle_report: float = 10.0  # s between two events reporting one throttled rule at least
    max_rule_load: float = 0.5   # part of the engine's time event rules may take (over 5 s)
                                 # before new or changed rules are refused
    sync_timeout: float = 0.2    # s a multi-signal condition waits for a silent signal
    view_points: int = 2000      # view/<signal> points per signal per second at most
    view_grace: float = 0.25     # s after its end a view bucket is closed without more data
    aggregates: tuple[float, ...] = (1.0, 60.0, 3600.0)  # s, archive aggregate levels


@dataclass(frozen=True)
class SupervisorConfig:
    restart_delay: float = 0.5   # first back-off after a crash (s), doubling ...
    restart_max_delay: float = 30.0
    burst_starts: int = 5        # ... and a child that starts this often ...
    burst_seconds: float = 10.0  # ... within this window is marked failed
    stop_timeout: float = 4.0    # s for all children to stop before SIGKILL
    # the rings in /dev/shm: a new ring past a budget is refused (error shm_budget)
    shm_budget: int = 0          # bytes all rings may take; 0: half the size of /dev/shm
    shm_clients_share: float = 0.5  # part of shm_budget clients' rings may take together
                                    # (the rest stays for drivers and the engine)
    shm_per_client: int = 512 << 20  # bytes of one client's rings (all websocket clients are one)
    max_client_rate: float = 100_000.0  # samples/s a client's ring-size hint may ask at most
    max_client_seconds: float = 60.0    # s of samples a client's ring-size hint may ask at most


@dataclass(frozen=True)
class BusConfig:
    """Endpoints; empty means ``ipc://`` in the instance folder. An endpoint on the network
    (``tcp://``) needs the CURVE keys (``rtoc keys`` makes them): anyone reaching the
    control plane could otherwise query, stop drivers and write signals. With keys, every
    socket of the bus and control plane is encrypted and only holders of the client key
    get in. Keys are Z85 text of 40 characters."""

    control: str = ""
    data: str = ""
    inbox: str = ""
    curve_server_key: str = ""     # the server's public key (the supervisor's and engine's)
    curve_server_secret: str = ""  # its secret: needed only where `rtoc run` runs
    curve_client_key: str = ""     # the clients' public key (children, rtoc commands, scripts)
    curve_client_secret: str = ""  # ... and its secret

    @property
    def has_curve(self) -> bool:
        """Whether a client has the keys it needs (the server's also needs its secret)."""
        return bool(self.curve_server_key and self.curve_client_key and self.curve_client_secret)


@dataclass(frozen=True)
class ArchiveConfig:
    """The archiver process. ``backend``: ``duckdb`` (a file, default
    ``<data_dir>/archive/<instance>.duckdb``) or ``postgres`` (``dsn``)."""

    enabled: bool = True
    backend: str = "duckdb"
    path: str = ""
    dsn: str = ""
    schema: str = "rtoc"
    flush_interval: float = 1.0      # s: write at least this often ...
    max_batch: int = 1_000_000       # ... or once this many samples wait
    snapshot_interval: float = 10.0  # s: a plotted signal's snapshots kept at most this often (0: all)
    retention_days: float = 0.0      # delete data older than this (0: keep everything)
    spool_dir: str = ""              # batches wait here while the database is away
    memory_limit: int = 0            # bytes DuckDB may use (0: 1 GiB or 1/8 of RAM, the smaller)
    threads: int = 0                 # DuckDB's worker threads (0: 2, or 1 on a 1-core machine)


@dataclass(frozen=True)
class AutomationConfig:
    """Trusted Python automation files; empty ``folder``: ``automations/`` beside the
    config file in use (or in the user config folder)."""

    folder: str = ""
    enabled: bool = True


@dataclass(frozen=True)
class UserConfig:
    """A websocket user. ``password_hash``: what ``rtoc passwd`` prints (scrypt)."""

    name: str
    password_hash: str
    role: str = "read"           # read, write or admin


@dataclass(frozen=True)
class WebsocketConfig:
    """The websocket server (RTOC's JSON protocol, the binary subprotocol, the dashboard).
    ``anonymous``: the role of clients that did not log in; empty: ``admin`` when no users
    are configured and ``host`` is a loopback address (RTOC without a password), else
    ``read``. ``none`` makes every client log in."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 5050
    users: tuple[UserConfig, ...] = ()
    anonymous: str = ""
    allowed_origins: tuple[str, ...] = ()   # browser Origins besides the server's own ("*": any)
    hosts: tuple[str, ...] = ()             # Host header names besides host, loopback, IPs ("*": any)
    tls_cert: str = ""                      # PEM files; both set: wss:// and https://
    tls_key: str = ""
    max_message: int = 1 << 20              # bytes; larger frames close the connection (1009)
    max_depth: int = 32                     # JSON nesting
    max_clients: int = 256
    ping_interval: float = 20.0             # s
    ping_timeout: float = 20.0              # s without a pong closes the connection
    send_queue: int = 256                   # messages waiting per client before pushes drop
    send_queue_bytes: int = 1 << 20         # bytes waiting per client: pushes drop, replies wait
    binary_send_queue_bytes: int = 16 << 20  # the same for an rtoc.bin.v1 client (data at MS/s)
    inbox_bytes: int = 1 << 20              # bytes of received messages waiting before reading pauses
    slow_client_timeout: float = 30.0       # s a send queue may stay full before the client is closed (1008)
    max_big_replies: int = 8                # get... replies (getSignal: megabytes) owed to clients at once
    max_clients_per_address: int = 64       # connections from one address at once (0: no cap)
    max_frame_anonymous: int = 16 << 10     # bytes of an rtoc.bin.v1 frame from a client that may not push
    metrics_token: str = ""                 # GET /metrics with "Authorization: Bearer <token>" (besides the read role)
    push_interval: float = 0.01             # s between two pushes to clients at least
    event_level: int = 0                    # events pushed to a client: priority >= this
    max_subscriptions: int = 1000           # names (signals, devices, views) one client subscribes
    max_subscriptions_total: int = 20_000   # ... all clients together
    max_reply_points: int = 200_000         # points of one getSignal reply, all signals together
    login_max_failures: int = 5             # failed logins (per address, per user) within login_window ...
    login_window: float = 60.0              # s ... that lock the address or user name out
    login_lockout: float = 30.0             # s of the first lockout; each further one doubles ...
    login_max_lockout: float = 900.0        # s ... up to this
    # RTOC 3.0's AES-CBC websocket encryption (no integrity; docs/PROTOCOL.md): only to move over
    legacy_rtoc_encryption: bool = False
    legacy_password_env: str = ""           # the environment variable holding RTOC's one password
    legacy_role: str = "write"              # the role that password logs in with (user "rtoc-legacy")


TELEGRAM_ROLES = ("blocked", "custom", "read", "write", "admin")
TELEGRAM_LEVELS = ("all", "warnings", "errors", "none")


@dataclass(frozen=True)
class TelegramConfig:
    """The Telegram bot; it runs only when ``token`` or ``token_env`` (the name of an
    environment variable holding the token) is set. ``admins``: chat ids that are admins
    (besides those paired with ``rtoc telegram pair``); everyone else starts as
    ``default_role``."""

    token: str = ""
    token_env: str = ""
    base_url: str = ""                # a self-hosted Bot API server ("": api.telegram.org)
    mode: str = "polling"             # or "webhook"
    webhook_url: str = ""             # the public https URL Telegram posts updates to
    webhook_listen: str = "127.0.0.1"  # where the webhook server listens (behind a proxy)
    webhook_port: int = 8443
    admins: tuple[int, ...] = ()
    default_role: str = "blocked"     # blocked, custom, read, write or admin
    default_level: str = "warnings"   # notifications of a new user: all, warnings, errors, none
    chat_rate: float = 1.0            # messages per second to one chat at most (Telegram's limit)
    total_rate: float = 30.0          # messages per second to all chats together at most
    queue_bytes: int = 1 << 20        # notification text waiting (Telegram away) before the oldest drop
    plot_width: int = 1280            # px of a plot
    plot_height: int = 720

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.token_env)


@dataclass(frozen=True)
class Config:
    instance: str = "default"
    data_dir: str = ""
    log_level: str = "INFO"
    plugins_dir: str = ""  # a folder of plugin modules (RTOC plugins); "": plugins/ beside this file
    drivers: tuple[DriverConfig, ...] = ()
    engine: EngineConfig = field(default_factory=EngineConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    automation: AutomationConfig = field(default_factory=AutomationConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    websocket: WebsocketConfig = field(default_factory=WebsocketConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    events: tuple[EventRule, ...] = ()
    actions: tuple[ActionRule, ...] = ()
    source: str = ""  # the file it came from ("" = built-in defaults); not a TOML key

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()

    @property
    def plugins_path(self) -> Path | None:
        """Where driver modules named ``module:Class`` are also looked for (first)."""
        if self.plugins_dir:
            folder = Path(self.plugins_dir).expanduser()
            return folder if folder.is_absolute() or not self.source else Path(self.source).parent / folder
        return Path(self.source).parent / "plugins" if self.source else None

    @property
    def automation_path(self) -> Path:
        if self.automation.folder:
            folder = Path(self.automation.folder).expanduser()
            return folder if folder.is_absolute() or not self.source else Path(self.source).parent / folder
        return (Path(self.source).parent if self.source else config_dir()) / "automations"

    @property
    def archive_path(self) -> Path:
        return Path(self.archive.path).expanduser() if self.archive.path else \
            self.data_path / "archive" / f"{self.instance}.duckdb"

    @property
    def spool_path(self) -> Path:
        return Path(self.archive.spool_dir).expanduser() if self.archive.spool_dir else \
            self.data_path / "spool" / self.instance

    @property
    def telegram_path(self) -> Path:
        """The bot's users (roles, levels, shortcuts) and the pairing code."""
        return self.data_path / "telegram" / self.instance

    @property
    def rules_path(self) -> Path:
        """Where runtime changes to events and actions persist."""
        return self.data_path / "rules" / f"{self.instance}.json"


DEFAULT_DRIVERS = (
    DriverConfig(name="Generator", driver="generator"),
    DriverConfig(name="System", driver="system"),
)


def load(path: Path | str | None) -> Config:
    """Read and validate ``path``; ``None`` gives the built-in defaults."""
    if path is None:
        return Config(drivers=DEFAULT_DRIVERS)
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", file=str(path)) from exc
    return loads(text, str(path))


def loads(text: str, source: str = "<string>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from exc
    if "drivers" not in raw:
        raw["drivers"] = [dataclasses.asdict(d) for d in DEFAULT_DRIVERS]
    try:
        config = decode(Config, raw, "")
    except ConfigError as exc:
        raise ConfigError(exc.reason, exc.key, line_of(text, exc.key), source) from None
    config = dataclasses.replace(config, source=source)
    _check(config, text, source)
    return config


def _check(config: Config, text: str, source: str) -> None:
    """Values each key's type allows but RTOC does not. An error names the key that is
    wrong; a rule between two keys names the one the file sets (the first if both)."""
    def fail(msg: str, key: str) -> typing.NoReturn:
        raise ConfigError(msg, key, line_of(text, key), source)

    def given(*keys: str) -> str:
        return next((k for k in keys if line_of(text, k, exact=True)), keys[0])

    if not _INSTANCE_RE.match(config.instance):
        fail(f"must be 1-40 letters, digits, '_', '-' or '.', got {config.instance!r}", "instance")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail(f"must be DEBUG, INFO, WARNING or ERROR, got {config.log_level!r}", "log_level")
    seen: set[str] = set()
    for i, d in enumerate(config.drivers):
        if not d.name or "/" in d.name or "." in d.name:
            fail(f"must be a non-empty name without '.' or '/', got {d.name!r}", f"drivers[{i}].name")
        if d.name in seen:
            fail(f"driver name {d.name!r} is used twice", f"drivers[{i}].name")
        seen.add(d.name)
        if not d.ring_seconds > 0:
            fail("must be > 0", f"drivers[{i}].ring_seconds")
    sv = config.supervisor
    for key in ("shm_budget", "shm_per_client"):
        if getattr(sv, key) < 0:
            fail(f"must be >= 0 (bytes), got {getattr(sv, key)}", f"supervisor.{key}")
    if not 0 < sv.shm_clients_share <= 1:
        fail(f"must be in (0, 1], got {sv.shm_clients_share}", "supervisor.shm_clients_share")
    for key in ("max_client_rate", "max_client_seconds"):
        if not 0 < getattr(sv, key) < math.inf:
            fail(f"must be a positive, finite number, got {getattr(sv, key)}", f"supervisor.{key}")
    e = config.engine
    for key in ("tick", "idle_tick", "max_delay", "heartbeat"):
        if not getattr(e, key) > 0:
            fail("must be > 0", f"engine.{key}")
    for key in ("min_batch", "max_batch"):
        if getattr(e, key) < 1:
            fail("must be >= 1", f"engine.{key}")
    if e.max_batch < e.min_batch:
        key = given("engine.min_batch", "engine.max_batch")
        fail(f"max_batch must be >= min_batch, got min_batch {e.min_batch} and max_batch "
             f"{e.max_batch}", key)
    for key in ("sync_timeout", "max_event_rate", "view_grace", "max_event_total_rate",
                "throttle_report", "max_rule_load"):
        if not getattr(e, key) > 0:
            fail("must be > 0", f"engine.{key}")
    if e.event_history < 1:
        fail("must be >= 1", "engine.event_history")
    if e.view_points < 4:
        fail("must be >= 4 (M4 gives up to 4 points per bucket)", "engine.view_points")
    levels = e.aggregates
    if any(not lv > 0 for lv in levels) or any(
            abs(b / a - round(b / a)) > 1e-9 or b <= a for a, b in zip(levels, levels[1:], strict=False)):
        fail("must be increasing seconds, each a whole multiple of the one before", "engine.aggregates")
    a = config.archive
    if a.backend not in ("duckdb", "postgres"):
        fail(f"must be 'duckdb' or 'postgres', got {a.backend!r}", "archive.backend")
    if a.backend == "postgres" and not a.dsn:
        fail("the postgres backend needs a dsn (e.g. postgresql://user@host/db)", "archive.dsn")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", a.schema):
        fail(f"must be a lower-case SQL identifier, got {a.schema!r}", "archive.schema")
    if not a.flush_interval > 0:
        fail("must be > 0", "archive.flush_interval")
    if not a.snapshot_interval >= 0:
        fail("must be >= 0 (0: every snapshot)", "archive.snapshot_interval")
    if a.max_batch < 1:
        fail("must be >= 1", "archive.max_batch")
    if not a.retention_days >= 0:
        fail("must be >= 0 (0: keep everything)", "archive.retention_days")
    if a.memory_limit and a.memory_limit < 64 << 20:
        fail(f"must be 0 (automatic) or >= 67108864 (64 MiB), got {a.memory_limit}", "archive.memory_limit")
    if not 0 <= a.threads <= 256:
        fail(f"must be 0 (automatic) or 1..256, got {a.threads}", "archive.threads")
    _check_bus(config.bus, fail)
    _check_websocket(config.websocket, fail)
    _check_telegram(config.telegram, fail)
    _check_drivers(config, fail)
    for kind, rules in (("events", config.events), ("actions", config.actions)):
        names = [r.name for r in rules]
        for i, name in enumerate(names):
            if name in names[:i]:
                fail(f"{kind[:-1]} name {name!r} is used twice", f"{kind}[{i}].name")


_Z85_KEY_RE = re.compile(r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")
# ZeroMQ's transports that reach other machines (ipc:// and inproc:// do not)
_NETWORK_TRANSPORTS = ("tcp", "udp", "pgm", "epgm", "norm", "ws", "wss", "tipc", "vmci")


def _check_bus(b: BusConfig, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    keys = ("curve_server_key", "curve_server_secret", "curve_client_key", "curve_client_secret")
    for key in keys:
        value = getattr(b, key)
        if value and not _Z85_KEY_RE.fullmatch(value):
            fail("must be a Z85 CURVE key of 40 characters (`rtoc keys` makes a set)", f"bus.{key}")
    if any(getattr(b, k) for k in keys) and not b.has_curve:
        missing = next(k for k in keys if k != "curve_server_secret" and not getattr(b, k))
        fail("the CURVE keys go together: curve_server_key, curve_client_key and "
             "curve_client_secret (and curve_server_secret where rtoc runs)", f"bus.{missing}")
    for key in ("control", "data", "inbox"):
        endpoint = getattr(b, key)
        if endpoint.split("://")[0].lower() in _NETWORK_TRANSPORTS and not b.has_curve:
            fail(f"{endpoint.split('://')[0]}:// has no authentication: anyone who reaches it "
                 "controls the instance; set bus.curve_server_key, curve_client_key and "
                 "curve_client_secret (`rtoc keys` prints them) or use ipc://", f"bus.{key}")


ROLES = ("none", "read", "write", "admin")
LEGACY_USER = "rtoc-legacy"  # the user name of [websocket] legacy_password_env's password
_HASH_RE = re.compile(r"scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*")


def _check_websocket(w: WebsocketConfig, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    if not 0 <= w.port <= 65535:
        fail(f"must be 0-65535, got {w.port}", "websocket.port")
    if w.anonymous not in ("", *ROLES):
        fail(f"must be one of {', '.join(ROLES)} (or empty), got {w.anonymous!r}", "websocket.anonymous")
    for have, need in (("tls_cert", "tls_key"), ("tls_key", "tls_cert")):
        if getattr(w, have) and not getattr(w, need):
            fail(f"must be set too when {have} is (TLS needs both)", f"websocket.{need}")
    if w.max_message < 1024:
        fail(f"must be >= 1024, got {w.max_message}", "websocket.max_message")
    if not 2 <= w.max_depth <= 500:
        fail(f"must be 2..500, got {w.max_depth}", "websocket.max_depth")
    for key in ("max_clients", "send_queue", "max_subscriptions", "max_subscriptions_total"):
        if getattr(w, key) < 1:
            fail(f"must be >= 1, got {getattr(w, key)}", f"websocket.{key}")
    for key in ("send_queue_bytes", "binary_send_queue_bytes", "inbox_bytes", "max_frame_anonymous"):
        if getattr(w, key) < 1024:
            fail(f"must be >= 1024 (bytes), got {getattr(w, key)}", f"websocket.{key}")
    if w.max_big_replies < 1:
        fail(f"must be >= 1, got {w.max_big_replies}", "websocket.max_big_replies")
    if w.max_clients_per_address < 0:
        fail(f"must be >= 0 (0: no cap), got {w.max_clients_per_address}", "websocket.max_clients_per_address")
    for key in ("ping_interval", "ping_timeout", "push_interval", "slow_client_timeout"):
        if not getattr(w, key) > 0:
            fail("must be > 0", f"websocket.{key}")
    if w.max_reply_points < 4:
        fail(f"must be >= 4, got {w.max_reply_points}", "websocket.max_reply_points")
    if w.login_max_failures < 1:
        fail(f"must be >= 1, got {w.login_max_failures}", "websocket.login_max_failures")
    for key in ("login_window", "login_lockout", "login_max_lockout"):
        if not 0 < getattr(w, key) < 1e9:
            fail(f"must be > 0 (seconds), got {getattr(w, key)}", f"websocket.{key}")
    if w.login_max_lockout < w.login_lockout:
        fail(f"must be >= login_lockout ({w.login_lockout}), got {w.login_max_lockout}",
             "websocket.login_max_lockout")
    if w.legacy_password_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,100}", w.legacy_password_env):
        fail(f"must be the name of an environment variable, got {w.legacy_password_env!r}",
             "websocket.legacy_password_env")
    if w.legacy_role not in ROLES[1:]:
        fail(f"must be read, write or admin, got {w.legacy_role!r}", "websocket.legacy_role")
    if w.legacy_rtoc_encryption and not w.legacy_password_env:
        fail("legacy_rtoc_encryption needs the name of an environment variable holding RTOC's "
             "password (its AES key derives from it)", "websocket.legacy_password_env")
    names: set[str] = set()
    for i, u in enumerate(w.users):
        if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", u.name) or u.name in names:
            fail(f"must be a unique name of 1-64 letters, digits, '_.@-', got {u.name!r}",
                 f"websocket.users[{i}].name")
        names.add(u.name)
        if w.legacy_rtoc_encryption and u.name == LEGACY_USER:
            fail(f"{LEGACY_USER!r} is the user of the legacy RTOC password "
                 "(legacy_rtoc_encryption); choose another name", f"websocket.users[{i}].name")
        if u.role not in ROLES[1:]:
            fail(f"must be read, write or admin, got {u.role!r}", f"websocket.users[{i}].role")
        if not _HASH_RE.fullmatch(u.password_hash):
            fail("must be a hash made by `rtoc passwd` (scrypt$n$r$p$salt$hash), never a "
                 "plain password", f"websocket.users[{i}].password_hash")


def _check_drivers(config: Config, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    for i, d in enumerate(config.drivers):
        if d.max_tick_failures < 1:
            fail(f"must be >= 1, got {d.max_tick_failures}", f"drivers[{i}].max_tick_failures")
        if not (d.stall_timeout == 0 or 1.0 <= d.stall_timeout <= 86400):
            fail(f"must be 0 (off) or 1-86400 s, got {d.stall_timeout}", f"drivers[{i}].stall_timeout")


def _check_telegram(t: TelegramConfig, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    if t.token and not re.fullmatch(r"[0-9]{1,20}:[A-Za-z0-9_-]{10,100}", t.token):
        fail("must be a bot token as @BotFather gives it (digits:letters)", "telegram.token")
    if t.token_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,100}", t.token_env):
        fail(f"must be the name of an environment variable, got {t.token_env!r}", "telegram.token_env")
    if t.mode not in ("polling", "webhook"):
        fail(f"must be polling or webhook, got {t.mode!r}", "telegram.mode")
    if t.mode == "webhook" and not t.webhook_url.startswith("https://"):
        fail("mode = webhook needs webhook_url, the public https:// URL Telegram posts to",
             "telegram.webhook_url")
    if t.base_url and not re.fullmatch(r"https?://[^\s]+", t.base_url):
        fail(f"must be an http(s) URL, got {t.base_url!r}", "telegram.base_url")
    if t.default_role not in TELEGRAM_ROLES:
        fail(f"must be one of {', '.join(TELEGRAM_ROLES)}, got {t.default_role!r}", "telegram.default_role")
    if t.default_level not in TELEGRAM_LEVELS:
        fail(f"must be one of {', '.join(TELEGRAM_LEVELS)}, got {t.default_level!r}", "telegram.default_level")
    for key in ("chat_rate", "total_rate"):
        if not 0 < getattr(t, key) <= 1000:
            fail(f"must be > 0 and <= 1000 (messages per second), got {getattr(t, key)}", f"telegram.{key}")
    if t.queue_bytes < 1024:
        fail(f"must be >= 1024 (bytes), got {t.queue_bytes}", "telegram.queue_bytes")
    for key, least in (("plot_width", 240), ("plot_height", 160)):
        if not least <= getattr(t, key) <= 4000:
            fail(f"must be {least}-4000 (pixels), got {getattr(t, key)}", f"telegram.{key}")
    if not 0 < t.webhook_port <= 65535:
        fail(f"must be 1-65535, got {t.webhook_port}", "telegram.webhook_port")


HIDDEN = "(hidden)"


def to_toml(config: Config) -> str:
    """The effective configuration as TOML (what ``rtoc config`` prints); ``loads`` reads
    it back to an equal Config, whatever the texts hold (tomli-w writes it). The Telegram
    token is printed as ``(hidden)``: it is a password to the bot."""
    tree: dict[str, Any] = {f.name: _plain(getattr(config, f.name))
                            for f in dataclasses.fields(config) if f.name != "source"}
    if config.telegram.token:
        tree["telegram"]["token"] = HIDDEN
    tree["data_dir"] = str(config.data_path)
    for kind in ("events", "actions"):
        tree[kind] = [rule.to_dict() for rule in getattr(config, kind)]
    source = re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", "?", config.source or "built-in defaults")
    return f"# effective configuration ({source})\n" + tomli_w.dumps(tree)


def _plain(value: Any) -> Any:
    """A config value as the dicts, lists and scalars tomli-w writes."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def error_at(config: Config, message: str, key: str) -> ConfigError:
    """A ConfigError for ``key`` found after loading (e.g. a driver's params), with its line."""
    line = None
    if config.source and Path(config.source).is_file():
        line = line_of(Path(config.source).read_text(), key)
    return ConfigError(message, key, line, config.source)
