"""The instance folder in /dev/shm and the registry of its signals (one ring each).

Only the supervisor uses this: it owns every ring. ``Instance.acquire`` takes an exclusive
``flock`` on ``<folder>/lock`` (released by the kernel when the holder dies, however it
dies), so a second ``rtoc run`` of the same instance is refused, and a dead instance's
leftovers are recognised and removed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from rtoc.pipeline.ring import Ring, RingReader, capacity_for, file_size

from rtoc.errors import (
    InstanceError,
    InstanceRunning,
    ShmBudgetExceeded,
    SignalNotFound,
    SignalOwned,
)
from rtoc.files import write_atomic
from rtoc.model import check_part, signal_name
from rtoc.paths import instance_dir

log = logging.getLogger(__name__)
_BUDGET_KEYS = {"total": "shm_budget", "clients": "shm_clients_share", "per_client": "shm_per_client"}
MANIFEST = "signals.json"  # the rings' names and epochs, for whoever finds them after a crash
DEAD = "dead-"             # a dead instance's rings, kept for the archiver (dead-<time ns>/)


def dead_folders(folder: Path) -> list[Path]:
    """Rings of dead instances kept in ``folder``, oldest first."""
    return sorted(p for p in folder.glob(f"{DEAD}*") if p.is_dir())


class Instance:
    """The shm folder of one running instance."""

    def __init__(self, name: str, root: Path | None = None):
        self.name = name
        self.dir = (root / f"rtoc-{name}") if root else instance_dir(name)
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        """Lock the folder (refusing a running instance) and clear a dead one's leftovers."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(self.dir)  # someone else's folder (or a symlink) is never used
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise InstanceError(f"refusing {self.dir}: it must be a directory of user {os.getuid()} "
                                f"with mode 0700 (it is uid {st.st_uid}, mode {oct(st.st_mode & 0o7777)})")
        try:
            fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:  # e.g. a symlink planted as the lock
            raise InstanceError(f"refusing {self.dir / 'lock'}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise InstanceRunning(f"instance {self.name!r} is already running (pid {pid or '?'}); "
                                  f"its folder is {self.dir}") from None
        self._keep_rings()
        leftovers = [p for p in self.dir.iterdir() if p.name != "lock" and not p.name.startswith(DEAD)]
        for p in leftovers:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        if leftovers:
            log.warning("removed %d leftover file(s) of a dead instance in %s", len(leftovers), self.dir)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _keep_rings(self) -> None:
        """A dead instance's rings (and their manifest) move aside into ``dead-<ns>/``, for
        the archiver to take what it had not archived yet before they are removed: a whole
        process group killed at once (the OOM killer, a container stop) lost up to a
        second per signal, silently, when the next start removed them."""
        manifest = self.dir / MANIFEST
        rings = list(self.dir.glob("*.ring"))
        if not (rings and manifest.is_file()):
            return
        dead = self.dir / f"{DEAD}{time.time_ns()}"
        dead.mkdir(mode=0o700)
        for p in [*rings, manifest]:
            p.rename(dead / p.name)
        log.warning("kept %d ring(s) of a dead instance in %s for the archiver", len(rings), dead)

    def release(self) -> None:
        """Remove the folder and everything in it, then drop the lock."""
        if self._lock_fd is None:
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        os.close(self._lock_fd)
        self._lock_fd = None


@dataclass
class SignalEntry:
    id: int
    device: str
    signal: str
    unit: str
    owner: str
    ring: Ring
    reader: RingReader  # for `latest`; never advanced
    epoch: int = 0      # ns since 1970 when the ring was created: (name, epoch, seq) names a
                        # sample for good, although a new ring starts again at seq 0
    charged: str = ""   # whose per-client ring budget it counts against ("": its owner's)
    content: str = "samples"  # "snapshot": a driver plot()s it (whole contents, archived as snapshots)

    @property
    def name(self) -> str:
        return signal_name(self.device, self.signal)

    def info(self) -> dict:
        return {"id": self.id, "name": self.name, "device": self.device, "signal": self.signal,
                "unit": self.unit, "owner": self.owner, "path": str(self.ring.path),
                "capacity": self.ring.capacity, "epoch": self.epoch, "content": self.content}


@dataclass(frozen=True)
class RingBudget:
    """Bytes of /dev/shm the rings may take: all together (``total``), the rings of clients
    (owners ``client:...``) together (``clients``, less than ``total``: the rest is kept for
    drivers and the engine), and one client owner's (``per_client``). Clients' size hints
    are capped at ``max_rate`` samples/s and ``max_seconds``. 0: no limit."""

    total: int = 0
    clients: int = 0
    per_client: int = 0
    max_rate: float = 0.0
    max_seconds: float = 0.0


def is_client(owner: str) -> bool:
    return owner.startswith("client:")


class SignalRegistry:
    """Signals by full name; each has one ring and one owner (the writer)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.by_name: dict[str, SignalEntry] = {}
        self._next_id = 1
        self.refused = 0  # claims refused by the budget

    def used_bytes(self, owner: str | None = None, clients: bool = False) -> int:
        """Bytes of the rings charged to ``owner`` (None: of all; ``clients``: of every
        client)."""
        return sum(file_size(e.ring.capacity) for e in self.by_name.values()
                   if (owner is None or (e.charged or e.owner) == owner)
                   and (not clients or is_client(e.charged or e.owner)))

    def claim(self, device: str, signal: str, unit: str, owner: str, rate: float = 1.0,
              seconds: float = 4.0, budget: RingBudget | None = None,
              charge: str = "", content: str = "samples") -> tuple[SignalEntry, bool]:
        """The signal's entry, created on first claim; ``(entry, created)``.

        The same owner claiming again (a restarted driver) gets the same ring, so its
        sequence numbers continue; another owner gets SignalOwned. A new ring that would
        pass a ``budget`` is refused (ShmBudgetExceeded); a client's ``rate`` (samples/s)
        and ``seconds`` hints are first capped by it. ``charge`` names whose budget a new
        ring counts against when that is not the owner: the websocket process owns every
        ring its clients push, but charges each to the client that created it
        (``client:websocket/user:alice``), so the client rules apply to it.
        """
        name = signal_name(check_part("device", device), check_part("signal", signal))
        entry = self.by_name.get(name)
        if entry is not None:
            if entry.owner != owner:
                raise SignalOwned(f"signal {name} is written by {entry.owner!r}; "
                                  f"{owner!r} cannot write it too", name)
            return entry, False
        budget = budget or RingBudget()
        if is_client(charge or owner):
            rate = min(rate, budget.max_rate) if budget.max_rate else rate
            seconds = min(seconds, budget.max_seconds) if budget.max_seconds else seconds
        capacity = capacity_for(max(rate, 1.0), seconds)
        self._check_budget(name, charge or owner, file_size(capacity), budget)
        sig = self._next_id
        ring = Ring.create(self.folder / f"{sig}.ring", capacity, sig)
        self._next_id += 1
        entry = SignalEntry(sig, device, signal, unit, owner, ring, RingReader(ring, max_batch=1),
                            time.time_ns(), charge, "snapshot" if content == "snapshot" else "samples")
        self.by_name[name] = entry
        self._save()
        log.info("signal %s created (id %d, %d samples, owner %s)", name, sig, ring.capacity, owner)
        return entry, True

    def _save(self) -> None:
        """The manifest: what each ring file holds (name, epoch, unit), so that the rings
        of an instance that dies whole can still be archived by the next start."""
        write_atomic(self.folder / MANIFEST, json.dumps([e.info() for e in self.by_name.values()]))

    def _check_budget(self, name: str, owner: str, size: int, budget: RingBudget) -> None:
        limits = [("total", budget.total, self.used_bytes(), "all rings of the instance")]
        if is_client(owner):
            limits += [("clients", budget.clients, self.used_bytes(clients=True), "clients' rings"),
                       ("per_client", budget.per_client, self.used_bytes(owner), f"{owner}'s rings")]
        for key, limit, used, what in limits:
            if limit and used + size > limit:
                self.refused += 1
                log.warning("signal %s refused: %s would pass the %s budget", name, owner, key)
                raise ShmBudgetExceeded(
                    f"signal {name} refused: its ring ({size >> 20} MiB) would take {what} past "
                    f"their budget ({used >> 20} of {limit >> 20} MiB in use; [supervisor] "
                    f"{_BUDGET_KEYS[key]})", owner, key)

    def remove(self, name: str) -> SignalEntry:
        """Forget ``name`` and delete its ring file (readers that still map it keep their
        mapping until they close it). SignalNotFound when there is no such signal."""
        entry = self.by_name.pop(name, None)
        if entry is None:
            raise SignalNotFound(f"no signal {name!r}", name)
        path = entry.ring.path
        entry.reader = None  # type: ignore[assignment]
        entry.ring.close()
        path.unlink(missing_ok=True)
        self._save()
        log.info("signal %s removed (id %d)", name, entry.id)
        return entry

    def close(self) -> None:
        for entry in self.by_name.values():
            entry.reader = None  # type: ignore[assignment]
            entry.ring.close()
        self.by_name.clear()
