"""Where RTOC keeps things: config and data folders (XDG), the /dev/shm instance folder.

What RTOC writes into the data folder is private: folders 0700, files 0600 (the archive,
driver parameters and rules say what was measured and how the instance is controlled)."""

from __future__ import annotations

import os
from pathlib import Path

SHM_ROOT = Path("/dev/shm")
PRIVATE_DIR = 0o700   # the data folder and its sub-folders: archive, params, rules, spool
PRIVATE_FILE = 0o600  # the files in them


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents readable by this user only (0700); folders
    that exist are left as they are (a ``data_dir`` may be shared on purpose)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            pass
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    return path


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rtoc"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rtoc"


def default_config_file() -> Path | None:
    """``$RTOC_CONFIG``, else ``rtoc.toml`` in the user config folder when it exists."""
    env = os.environ.get("RTOC_CONFIG")
    if env:
        return Path(env)
    path = config_dir() / "rtoc.toml"
    return path if path.exists() else None


def instance_dir(instance: str) -> Path:
    """The instance's folder in shared memory: rings, ipc sockets, the lock."""
    return SHM_ROOT / f"rtoc-{instance}"


def endpoints(instance: str, control: str = "", data: str = "", inbox: str = "") -> dict[str, str]:
    """The instance's ZeroMQ endpoints; empty ones default to ipc:// in its shm folder."""
    folder = instance_dir(instance)
    return {
        "control": control or f"ipc://{folder}/control.sock",
        "data": data or f"ipc://{folder}/data.sock",
        "inbox": inbox or f"ipc://{folder}/inbox.sock",
    }
