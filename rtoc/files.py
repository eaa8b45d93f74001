"""Small file helpers shared by the stores that persist state in the data folder."""

from __future__ import annotations

import os
from pathlib import Path

from rtoc.paths import PRIVATE_FILE, make_private_dir


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (see :func:`write_atomic_bytes`)."""
    write_atomic_bytes(path, text.encode())


def write_atomic_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file,
    never a torn one: write a temporary file, fsync it, rename it over, fsync the folder.
    The file is readable by this user only (0600); missing folders are made 0700."""
    make_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, PRIVATE_FILE)  # an old temporary file left by a crash kept its mode
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
