"""What RTOC writes into the data folder is private: folders 0700, files 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from rtoc.frontends.archive.backend import ArchiveBatch
from rtoc.frontends.archive.duck import DuckBackend
from rtoc.frontends.archive.spool import Spool

from rtoc.files import write_atomic
from rtoc.params import ParamStore
from rtoc.paths import make_private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask():
    old = os.umask(0o022)  # the usual one, which made 0755 folders and 0644 files
    yield
    os.umask(old)


def test_new_folders_and_their_parents_are_private(tmp_path: Path) -> None:
    folder = make_private_dir(tmp_path / "data" / "rtoc" / "params")
    for p in (folder, folder.parent, folder.parent.parent):
        assert mode(p) == 0o700, p
    tmp_path.chmod(0o755)
    make_private_dir(tmp_path / "more")
    assert mode(tmp_path) == 0o755  # an existing folder is left as it is (maybe shared)
    make_private_dir(folder)  # again: no error


def test_atomic_writes_are_private_even_over_an_open_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "rules" / "default.json"
    write_atomic(path, "{}")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    path.chmod(0o644)  # a file an older RTOC wrote
    write_atomic(path, "[]")
    assert mode(path) == 0o600 and path.read_text() == "[]"


def test_params_are_private(tmp_path: Path) -> None:
    store = ParamStore(tmp_path / "data" / "params" / "Gen.json")
    store.save("samplerate", 10.0, 1.0)
    assert mode(store.path) == 0o600 and mode(store.path.parent) == 0o700


def test_the_archive_and_spool_are_private(tmp_path: Path) -> None:
    backend = DuckBackend(tmp_path / "data" / "archive" / "default.duckdb")
    backend.connect()
    try:
        assert mode(backend.path) == 0o600 and mode(backend.path.parent) == 0o700
    finally:
        backend.close()
    spool = Spool(tmp_path / "data" / "spool" / "default")
    path = spool.put(ArchiveBatch(1, []))
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700


def test_an_older_archive_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    old = DuckBackend(path)
    old.connect()
    old.close()
    path.chmod(0o644)
    backend = DuckBackend(path)
    backend.connect()
    backend.close()
    assert mode(path) == 0o600
