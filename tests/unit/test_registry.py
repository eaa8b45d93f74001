"""The instance folder: locking, leftovers, and refusing folders that are not ours."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rtoc.pipeline.registry import Instance, RingBudget, SignalRegistry
from rtoc.pipeline.ring import file_size

from rtoc.errors import (
    InstanceError,
    InstanceRunning,
    ShmBudgetExceeded,
    SignalNotFound,
    SignalOwned,
)


def test_lock_leftovers_and_release(tmp_path: Path) -> None:
    first = Instance("x", root=tmp_path)
    first.acquire()
    with pytest.raises(InstanceRunning, match=f"pid {os.getpid()}"):
        Instance("x", root=tmp_path).acquire()
    first._lock_fd and os.close(first._lock_fd)  # the holder "dies": the kernel drops the lock
    first._lock_fd = None
    (tmp_path / "rtoc-x" / "1.ring").write_bytes(b"old")
    again = Instance("x", root=tmp_path)
    again.acquire()  # a dead instance's folder: its leftovers go
    assert sorted(p.name for p in (tmp_path / "rtoc-x").iterdir()) == ["lock"]
    again.release()
    assert not (tmp_path / "rtoc-x").exists()


def test_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rtoc-y").mkdir(mode=0o777)
    os.chmod(tmp_path / "rtoc-y", 0o777)
    with pytest.raises(InstanceError, match="mode 0700"):
        Instance("y", root=tmp_path).acquire()


def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "rtoc-z").mkdir(mode=0o700)
    (tmp_path / "rtoc-z" / "lock").symlink_to(victim)
    with pytest.raises(InstanceError, match="refusing"):
        Instance("z", root=tmp_path).acquire()
    assert victim.read_text() == "precious"


def test_registry_owners(tmp_path: Path) -> None:
    reg = SignalRegistry(tmp_path)
    try:
        a, created = reg.claim("D", "S", "V", owner="D")
        assert created and a.ring.capacity >= 1 << 16
        b, created = reg.claim("D", "S", "V", owner="D")  # a restarted driver: the same ring
        assert not created and b is a
        with pytest.raises(SignalOwned):
            reg.claim("D", "S", "V", owner="client:x")
    finally:
        reg.close()


def test_remove_deletes_the_ring_and_a_new_claim_makes_a_new_signal(tmp_path: Path) -> None:
    reg = SignalRegistry(tmp_path)
    entry, _ = reg.claim("Lab", "T", "C", "websocket")
    path = entry.ring.path
    assert reg.remove("Lab.T") is entry and not path.exists() and "Lab.T" not in reg.by_name
    with pytest.raises(SignalNotFound):
        reg.remove("Lab.T")
    again, created = reg.claim("Lab", "T", "C", "websocket")
    assert created and again.id != entry.id
    reg.close()


MIB = 1 << 20
RING = file_size(1 << 16)  # the smallest ring (1 sample/s): 1 MiB and a header


def test_a_clients_rate_hint_is_capped(tmp_path: Path) -> None:
    reg = SignalRegistry(tmp_path)
    try:
        budget = RingBudget(max_rate=100_000.0, max_seconds=10.0)
        e, _ = reg.claim("C", "Huge", "", "client:ws", rate=1e12, seconds=1e6, budget=budget)
        assert e.ring.capacity == 1 << 20  # 1e5 x 10 s, not the largest ring (64 MiB)
        d, _ = reg.claim("D", "Fast", "", "D", rate=1e7, seconds=4.0, budget=budget)
        assert d.ring.capacity == 1 << 22  # a driver's rate is its own: not capped
    finally:
        reg.close()


def test_ring_budgets_per_client_for_clients_and_in_total(tmp_path: Path) -> None:
    reg = SignalRegistry(tmp_path)
    budget = RingBudget(total=10 * RING, clients=6 * RING, per_client=4 * RING)
    try:
        for i in range(4):
            reg.claim("A", f"S{i}", "", "client:a", budget=budget)
        with pytest.raises(ShmBudgetExceeded, match="client:a's rings.*shm_per_client") as info:
            reg.claim("A", "S4", "", "client:a", budget=budget)
        assert info.value.code == "shm_budget" and info.value.budget == "per_client"
        assert "A.S4" not in reg.by_name and len(list(tmp_path.glob("*.ring"))) == 4
        reg.claim("A", "S0", "", "client:a", budget=budget)  # an existing ring costs nothing
        for i in range(2):
            reg.claim("B", f"S{i}", "", "client:b", budget=budget)
        with pytest.raises(ShmBudgetExceeded, match="clients' rings") as info:
            reg.claim("B", "S2", "", "client:b", budget=budget)
        assert info.value.budget == "clients"
        # what clients may not take stays for drivers (and the engine) ...
        for i in range(4):
            reg.claim("D", f"S{i}", "", "D", budget=budget)
        with pytest.raises(ShmBudgetExceeded, match="all rings") as info:  # ... up to the total
            reg.claim("D", "S4", "", "D", budget=budget)
        assert info.value.budget == "total" and reg.refused == 3
        assert reg.used_bytes() == 10 * RING and reg.used_bytes(clients=True) == 6 * RING
        reg.remove("A.S1")  # a removed ring gives its bytes back
        reg.claim("D", "S4", "", "D", budget=budget)
    finally:
        reg.close()


def test_a_ring_is_charged_to_the_client_named_not_to_its_owner(tmp_path: Path) -> None:
    """The websocket process owns its clients' rings, but each counts against the client
    that made it: one client's rings do not use up another's budget."""
    reg = SignalRegistry(tmp_path)
    budget = RingBudget(total=10 * RING, clients=8 * RING, per_client=2 * RING)
    try:
        for i in range(2):
            reg.claim("A", f"S{i}", "", "websocket", budget=budget, charge="client:websocket/user:a")
        with pytest.raises(ShmBudgetExceeded, match="user:a"):
            reg.claim("A", "S2", "", "websocket", budget=budget, charge="client:websocket/user:a")
        entry, _ = reg.claim("B", "S0", "", "websocket", budget=budget, charge="client:websocket/user:b")
        assert entry.owner == "websocket"                      # one writer for every client
        assert reg.used_bytes(clients=True) == 3 * RING       # all three are clients' rings
        assert reg.used_bytes("client:websocket/user:a") == 2 * RING
    finally:
        reg.close()


def test_a_dead_instances_rings_are_kept_aside_with_their_manifest(tmp_path: Path) -> None:
    """Issue 13 A: the rings of an instance killed as a whole held what the archiver had
    not archived yet; the next start removed them. With their manifest they are kept in
    dead-<ns>/ (the archiver removes them once archived); other leftovers still go."""
    from rtoc.pipeline.registry import MANIFEST, dead_folders

    reg = SignalRegistry(tmp_path / "rtoc-z")
    (tmp_path / "rtoc-z").mkdir(mode=0o700)
    entry, _ = reg.claim("D", "S", "V", "D")
    assert [e["name"] for e in json.loads((tmp_path / "rtoc-z" / MANIFEST).read_text())] == ["D.S"]
    reg.close()  # the instance "dies": its files stay
    (tmp_path / "rtoc-z" / "control.sock").write_bytes(b"")
    again = Instance("z", root=tmp_path)
    again.acquire()
    (dead,) = dead_folders(tmp_path / "rtoc-z")
    assert sorted(p.name for p in dead.iterdir()) == [f"{entry.id}.ring", MANIFEST]
    assert sorted(p.name for p in (tmp_path / "rtoc-z").iterdir()) == [dead.name, "lock"]
    again.release()
