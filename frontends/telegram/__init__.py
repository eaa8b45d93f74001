"""The Telegram bot: a frontend process on python-telegram-bot (issue 14).

A pure core (updates in, actions out; the menu state machine, the permission checks, the
notification queue) with a thin python-telegram-bot shell. Started by the supervisor only
when ``[telegram] token`` or ``token_env`` is set.
"""

from __future__ import annotations

import importlib.util

from rtoc.errors import ConfigError


def check_installed() -> None:
    """ConfigError naming the extra to install when the bot's libraries are missing."""
    missing = [m for m in ("telegram", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"[telegram] needs {' and '.join(missing)}: pip install 'rtoc[telegram]'",
                          "telegram")


def main(spec) -> None:
    """Entry point of the Telegram process (spawned by the supervisor); the libraries are
    imported here, not when the supervisor imports this package."""
    import os

    os.environ.setdefault("PTB_TIMEDELTA", "true")  # RetryAfter.retry_after as a timedelta, no deprecation warning
    from .process import main as run

    run(spec)
