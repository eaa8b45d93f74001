"""A ring on a real tmpfs that is too small: ShmFull, never SIGBUS. Mounts a 256 KiB tmpfs
(root only; skipped elsewhere)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rtoc.pipeline import ring as ring_mod
from rtoc.pipeline.ring import MIN_CAPACITY, Ring, RingReader, RingWriter

from rtoc.errors import ShmFull

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ring_checks import FakeStatvfs, assert_seq_batch, new_path, write_seq  # noqa: E402

CAP = MIN_CAPACITY  # 1024


@pytest.fixture
def tiny_tmpfs(shm_dir: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs mounted for the test (skipped where mounting is not allowed)."""
    mnt = new_path(shm_dir)
    mnt.mkdir()
    mount = shutil.which("mount")
    umount = shutil.which("umount")
    try:
        if os.geteuid() != 0 or mount is None or umount is None:
            pytest.skip("mounting a tmpfs needs root")
        done = subprocess.run([mount, "-t", "tmpfs", "-o", "size=256k", "rtoc-test", str(mnt)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
        try:
            yield mnt
        finally:
            if subprocess.run([umount, str(mnt)], capture_output=True).returncode != 0:
                subprocess.run([umount, "-l", str(mnt)], capture_output=True)
    finally:
        mnt.rmdir()


def test_shm_full_real_tmpfs(tiny_tmpfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tiny_tmpfs / "big.ring"
    with pytest.raises(ShmFull, match="no room"):
        Ring.create(big, 1 << 15, 1)  # 512 KiB into 256 KiB
    assert not big.exists()
    r = Ring.create(tiny_tmpfs / "small.ring", CAP, 1)  # 16 KiB fits
    try:
        write_seq(RingWriter(r), 3 * CAP)
        assert_seq_batch(RingReader(r, cursor=0).read(), 2 * CAP, CAP, 2 * CAP)
    finally:
        r.close()
    # statvfs fooled: the real fallocate fails and is reported as ShmFull, no SIGBUS
    monkeypatch.setattr(ring_mod.os, "statvfs", FakeStatvfs(1 << 30))
    with pytest.raises(ShmFull, match="no room"):
        Ring.create(big, 1 << 15, 1)
    assert not big.exists()
