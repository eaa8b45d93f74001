"""One-time pairing codes: ``rtoc telegram pair`` makes the chat that sends the code an admin.

RTOC made the first person who wrote to the bot its admin; anyone who found the bot first
owned the instance. Here a person at the machine runs ``rtoc telegram pair``, which prints a
code valid for ``VALID`` seconds, and sends ``/start CODE`` (or ``/pair CODE``) to the bot.
Only the code's SHA-256 is stored (``pair.json`` in the bot's folder, mode 0600), it works
once, and a chat gets ``MAX_TRIES`` wrong codes per code before it is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from rtoc.files import write_atomic

VALID = 600.0        # s a code may be used
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a terminal, typed on a phone
LENGTH = 10          # 50 bits: out of reach at Telegram's message rate
MAX_TRIES = 5


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def new_code(folder: Path, now: float) -> str:
    """A fresh code (the previous one no longer works); ``now`` unix s."""
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pair.json"
    write_atomic(path, json.dumps({"sha256": _digest(code), "expires": now + VALID, "tries": {}}))
    os.chmod(path, 0o600)
    return code


def redeem(folder: Path, chat_id: int, code: str, now: float) -> str:
    """``ok`` (the code was right: it is used up), ``wrong``, ``expired`` (or none made),
    or ``locked`` (this chat has tried too often)."""
    path = folder / "pair.json"
    try:
        state = json.loads(path.read_text())
        digest, expires, tries = state["sha256"], float(state["expires"]), dict(state["tries"])
    except (OSError, ValueError, KeyError, TypeError):
        return "expired"
    if now > expires:
        path.unlink(missing_ok=True)
        return "expired"
    if tries.get(str(chat_id), 0) >= MAX_TRIES:
        return "locked"
    if hmac.compare_digest(digest, _digest(code)):
        path.unlink(missing_ok=True)
        return "ok"
    tries[str(chat_id)] = tries.get(str(chat_id), 0) + 1
    write_atomic(path, json.dumps({**state, "tries": tries}))
    return "wrong"
