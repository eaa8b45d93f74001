"""The instance folder: locking, leftovers, and refusing folders that are not ours."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rtoc.pipeline.registry import Instance, SignalRegistry

from rtoc.errors import InstanceError, InstanceRunning, SignalNotFound, SignalOwned


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
