"""The bot's users: role, notification level and shortcuts per chat, kept in one JSON file.

Roles, lowest first: ``blocked`` (nothing), ``custom`` (only their own signal shortcuts, no
notifications), ``read`` (values, plots, events), ``write`` (devices, automation), ``admin``
(users and roles). Levels say which events reach a user: ``all`` (priority 0 and up),
``warnings`` (1 and up), ``errors`` (2), ``none``.

The file is replaced atomically on every change. A file that cannot be read is moved aside
(``*.corrupt-<unix s>``) and reported, never silently reset: :attr:`UserStore.problem` says
what happened, and the bot tells its admins.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rtoc.config import TELEGRAM_LEVELS, TELEGRAM_ROLES
from rtoc.files import write_atomic

log = logging.getLogger(__name__)
ROLES = TELEGRAM_ROLES
LEVELS = TELEGRAM_LEVELS
MAX_SHORTCUTS = 24  # per user: a menu, not a database
MAX_BLOCKED = 200   # blocked newcomers kept: strangers writing to a public bot are not a database either
VERSION = 1


def rank(role: str) -> int:
    """``role``'s place in the ladder (unknown roles rank as blocked)."""
    return ROLES.index(role) if role in ROLES else 0


def level_priority(level: str) -> int:
    """The lowest event priority a user at ``level`` is sent (3: none)."""
    return LEVELS.index(level) if level in LEVELS else len(LEVELS) - 1


@dataclass
class User:
    chat_id: int
    name: str = ""
    role: str = "blocked"
    level: str = "warnings"
    signals: list[str] = field(default_factory=list)    # shortcuts: "Device.Signal"
    functions: list[str] = field(default_factory=list)  # shortcuts: "Device.function"
    asked: bool = False  # the admins were asked to approve this newcomer

    def may(self, role: str) -> bool:
        return rank(self.role) >= rank(role)


class UserStore:
    """Users by chat id, persisted in ``path``; ``admins`` (from the config) are always
    admins whatever the file says."""

    def __init__(self, path: Path, admins: tuple[int, ...] = (), default_role: str = "blocked",
                 default_level: str = "warnings"):
        self.path, self.admins = path, set(admins)
        self.default_role, self.default_level = default_role, default_level
        self.users: dict[int, User] = {}
        self.problem = ""  # a file set aside at load, for the admins to hear about
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            if not isinstance(raw, dict) or raw.get("version") != VERSION:
                raise ValueError(f"not a version-{VERSION} user file")
            for key, u in raw["users"].items():
                user = User(**{k: v for k, v in u.items() if k in User.__dataclass_fields__})
                if user.chat_id != int(key) or user.role not in ROLES or user.level not in LEVELS:
                    raise ValueError(f"bad entry for chat {key}")
                self.users[user.chat_id] = user
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            try:
                self.path.rename(aside)
            except OSError:
                aside = self.path
            self.users = {}
            self.problem = f"the user file {self.path} could not be read ({exc}); kept as {aside}"
            log.error("telegram: %s; starting with no users but the configured admins", self.problem)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(
            {"version": VERSION, "users": {str(k): asdict(u) for k, u in self.users.items()}}, indent=1))

    def get(self, chat_id: int) -> User | None:
        user = self.users.get(chat_id)
        if chat_id in self.admins:
            if user is None:
                user = self.users[chat_id] = User(chat_id, role="admin", level=self.default_level)
            user.role = "admin"
        return user

    def join(self, chat_id: int, name: str) -> User:
        """The user of ``chat_id`` (a newcomer gets the default role and level)."""
        user = self.get(chat_id)
        if user is None:
            user = self.users[chat_id] = User(chat_id, name[:64], self.default_role, self.default_level)
            self._forget_strangers()
            self.save()
        elif name and user.name != name[:64]:
            user.name = name[:64]
            self.save()
        return user

    def _forget_strangers(self) -> None:
        """Past ``MAX_BLOCKED`` blocked users, the ones who wrote first are forgotten (they
        are asked about again if they write again)."""
        blocked = [c for c, u in self.users.items() if u.role == "blocked" and c not in self.admins]
        for chat in blocked[:max(0, len(blocked) - MAX_BLOCKED)]:
            del self.users[chat]

    def set_role(self, chat_id: int, role: str) -> User:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        user = self.users.setdefault(chat_id, User(chat_id, level=self.default_level))
        user.role = "admin" if chat_id in self.admins else role
        self.save()
        return user

    def admin_ids(self) -> list[int]:
        return sorted({*self.admins, *(c for c, u in self.users.items() if u.role == "admin")})

    def listening(self, priority: int) -> list[User]:
        """Users an event of ``priority`` goes to: read role or more, level at or below it."""
        return [u for u in (self.get(c) for c in list(self.users)) if u is not None
                and u.may("read") and level_priority(u.level) <= priority]
