"""A throw-away PostgreSQL cluster for tests: initdb + pg_ctl in a temporary folder.

::

    with pg_cluster() as pg:          # initdb, start; stop and remove at the end
        backend = PostgresBackend(pg.dsn)
        pg.stop()                     # pg_ctl stop -m fast: clients lose their connections
        pg.start()                    # same port, same data
        pg.stop("immediate")          # a crash: the next start runs WAL recovery

The server listens on 127.0.0.1 at a free port (``pg.port``) with trust authentication for
the superuser ``postgres``, database ``postgres``; its unix socket lives in the temporary
folder, so nothing in /var/run is touched. ``fsync`` and ``full_page_writes`` are off (only
an OS crash could lose data, and the folder is gone afterwards anyway); commits stay
synchronous, so a committed transaction survives ``stop("immediate")``.

initdb refuses to run as root: as root every command runs as the OS user ``postgres``
(``subprocess``'s ``user=``), which then owns the folder. The binaries come from
``$RTOC_PG_BINDIR``, ``pg_config --bindir``, the newest ``/usr/lib/postgresql/*/bin``
or ``$PATH``. On leaving the context (also on an exception, and at interpreter exit) the
server is stopped (immediately), its postmaster is killed if it still lives, and the
folder is removed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "40",
    "shared_buffers": "'64MB'",
    "max_wal_size": "'1GB'",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


class ClusterError(RuntimeError):
    """The cluster could not be created, started or stopped; the message ends with the
    tail of the server log."""


def find_bindir() -> Path | None:
    """The folder with initdb, pg_ctl and postgres, or None."""
    candidates: list[Path] = []
    if os.environ.get("RTOC_PG_BINDIR"):
        candidates.append(Path(os.environ["RTOC_PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
            candidates.append(Path(out))

    def version(p: Path) -> float:
        try:
            return float(p.parent.name)
        except ValueError:
            return 0.0

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for d in candidates:
        if all((d / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """One cluster in ``root`` (``root/data`` the data folder, ``root/server.log`` its log,
    the unix socket in ``root``). Use ``pg_cluster()``, which creates and removes it."""

    def __init__(self, root: Path, bindir: Path, port: int):
        self.root, self.bindir, self.port = root, bindir, port
        self.datadir = root / "data"
        self.logfile = root / "server.log"
        self._as: dict = {}
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ClusterError("running as root, but there is no OS user 'postgres' to run "
                                   "initdb as") from exc
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            os.chown(root, pw.pw_uid, pw.pw_gid)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while its pid file exists."""
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def is_running(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _run(self, *args: str, timeout: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        # output to a file, not a pipe: the postmaster that pg_ctl leaves behind must not
        # hold our pipe open
        with open(self.root / "commands.out", "ab") as out:
            try:
                proc = subprocess.run([str(self.bindir / args[0]), *args[1:]], stdin=subprocess.DEVNULL,
                                      stdout=out, stderr=subprocess.STDOUT, cwd=self.root,
                                      env=env, timeout=timeout, check=False, **self._as)
            except subprocess.TimeoutExpired as exc:
                raise ClusterError(f"{args[0]} {args[1:]} took over {timeout} s\n"
                                   f"{self.log_tail()}") from exc
        if proc.returncode != 0:
            try:
                said = (self.root / "commands.out").read_text(errors="replace")[-2000:]
            except OSError:
                said = ""
            raise ClusterError(f"{args[0]} failed ({proc.returncode}): {said}\n{self.log_tail()}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        conf = "".join(f"{k} = {v}\n" for k, v in SETTINGS.items())
        conf += f"unix_socket_directories = '{self.root}'\n"
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# rtoc tests\n" + conf)

    def start(self, timeout: float = 30) -> None:
        """Start and wait until it accepts connections (same port as before)."""
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w",
                  "-t", str(int(timeout)), "-o", f"-p {self.port}", "start", timeout=timeout + 10)

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """``pg_ctl stop -m <mode>``: ``fast`` disconnects clients and shuts down cleanly,
        ``immediate`` is a crash (recovery at the next start)."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"stop mode {mode!r}")
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", str(int(timeout)),
                  "stop", timeout=timeout + 10)

    def destroy(self) -> None:
        """Stop the server however it goes and remove the folder. Idempotent."""
        if self.root.exists() and self.is_running:
            try:
                self.stop("immediate", timeout=15)
            except ClusterError:
                pass
            pid = self.pid
            if pid is not None and self.is_running:  # pg_ctl failed: the postmaster we started
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while self.is_running and time.monotonic() < deadline:
                    time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def pg_cluster(bindir: Path | None = None, *, start: bool = True) -> Iterator[PgCluster]:
    """A new cluster, started (unless ``start=False``); stopped and removed afterwards.
    Raises ClusterError when the binaries are missing or the server does not come up."""
    bindir = bindir or find_bindir()
    if bindir is None:
        raise ClusterError("no PostgreSQL server binaries (initdb, pg_ctl, postgres) found; "
                           "set RTOC_PG_BINDIR")
    base = tempfile.gettempdir()
    if len(base) > 60:  # the unix socket path must stay under 107 bytes
        base = "/tmp"
    root = Path(tempfile.mkdtemp(prefix="rtoc-pg-", dir=base))
    cluster: PgCluster | None = None
    try:
        cluster = PgCluster(root, bindir, free_port())
        atexit.register(cluster.destroy)
        cluster.init()
        if start:
            for attempt in range(3):
                try:
                    cluster.start()
                    break
                except ClusterError:
                    # another process may have taken the port between probe and start
                    if attempt == 2 or "could not bind" not in cluster.log_tail(50).lower():
                        raise
                    cluster.port = free_port()
        yield cluster
    finally:
        if cluster is not None:
            cluster.destroy()
            atexit.unregister(cluster.destroy)
        else:
            shutil.rmtree(root, ignore_errors=True)
