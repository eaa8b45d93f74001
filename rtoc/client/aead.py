"""AES-GCM sealing of ``rtoc.bin.v1`` frames, and the keys it uses.

The one implementation of both ends: the server (:mod:`rtoc.frontends.websocket.binary_protocol.protocol`,
its password hashes in :mod:`rtoc.frontends.websocket.auth`) and the client
(:mod:`rtoc.client`). Pure apart from ``os.urandom`` for nonces and salts.

Keys. The server stores per user ``scrypt(rtoc_token(password), hash_salt, n, r, p)``
(:func:`rtoc_token`, :func:`scrypt_digest`); that digest is the secret both ends share. A
session's key is ``HKDF-SHA256(secret, salt, info="rtoc.bin.v1 session key")``
(:func:`session_key`), ``salt`` being 16 fresh random bytes the server sends in the clear
(a salt is no secret). HKDF and not a second scrypt: the secret already is a 32-byte scrypt
output, so scrypt would add no strength but cost the server ~50 ms and 16 MiB per
handshake from anyone, before any authentication. :func:`derive_key` (scrypt straight
from a password) is for keys that have no stored hash behind them.

Threat model. Against an attacker on the network who knows neither the password nor the
stored hash, passive (reading) or active (changing, dropping, replaying, reordering,
injecting or reflecting frames), a :class:`Channel` gives confidentiality and integrity of
every payload, and refuses any frame that was not sealed by the other end of this very
session: replayed, reordered or dropped frames (a strictly increasing counter inside the
ciphertext), frames of another session (each session has its own key, from a fresh salt)
and frames reflected back to their sender (the direction is authenticated data). It does
NOT protect against a compromised server or client (they hold the key), against guessing
a weak password offline from a recorded session (one scrypt per guess), or against
traffic analysis (frame sizes and timing show). A refused frame leaves the channel as it
was, but the connection should be closed: the peer or the path is not to be trusted.

Sealed frame (bytes)::

    version 1 (1) | nonce (12, random) | ciphertext of [counter (8, little-endian) | payload]
    | GCM tag (16)

with the sender's direction, ``b"S"`` (server) or ``b"C"`` (client), as the associated
data. Each side counts the frames it sends from 0. Random 96-bit nonces are safe for well
over 2**32 frames per key, more than any session will send.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Literal

from Cryptodome.Cipher import AES
from Cryptodome.Hash import SHA256
from Cryptodome.Protocol.KDF import HKDF

from rtoc.client.frames import FrameError

__all__ = ["FrameRefused", "Channel", "session_key", "derive_key", "new_salt", "rtoc_token",
           "scrypt_digest", "VERSION", "OVERHEAD", "KEY_INFO"]

VERSION = 1
_NONCE, _COUNTER, _TAG = 12, 8, 16
OVERHEAD = 1 + _NONCE + _COUNTER + _TAG
"""Bytes a sealed frame has beyond its payload (37)."""
SALT_BYTES = 16
KEY_INFO = b"rtoc.bin.v1 session key"
_DIRECTION = {"server": b"S", "client": b"C"}
_MAX_COUNTER = 2**64 - 1


class FrameRefused(FrameError):
    """A frame that :meth:`Channel.open` will not accept (code ``bad_frame``, as FrameError).

    ``reason`` is one of "truncated", "version", "authentication", "replayed", "skipped".
    """

    def __init__(self, message: str, reason: str):
        self.reason = reason
        super().__init__(message)

    @classmethod
    def from_reply(cls, message: str) -> FrameRefused:
        return cls(message, "")


# -- keys ---------------------------------------------------------------------------------------
def rtoc_token(password: str) -> str:
    """What an original RTOC client sends for ``password``: base64 of its SHA-256 (44 chars)."""
    digest = hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()
    return base64.b64encode(digest).decode("ascii")


def scrypt_digest(secret: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    """scrypt of ``secret`` (UTF-8; lone surrogates hash, they do not raise), with memory
    enough for the cost ``n``, ``r``, ``p``. Check the costs before: they are the caller's."""
    return hashlib.scrypt(secret.encode("utf-8", "surrogatepass"), salt=bytes(salt), n=n, r=r,
                          p=p, dklen=dklen, maxmem=128 * r * (n + p + 2) + (1 << 20))


def session_key(secret: bytes, salt: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869, pycryptodomex's): the 32-byte AES key of a session from the
    user's stored scrypt digest ``secret`` and the session's ``salt``."""
    return HKDF(bytes(secret), 32, bytes(salt), SHA256, context=KEY_INFO)


def new_salt() -> bytes:
    """A fresh random salt for one session (16 bytes)."""
    return os.urandom(SALT_BYTES)


def derive_key(password: str, salt: bytes) -> bytes:
    """A 32-byte AES key straight from a password: scrypt(password UTF-8, salt, n=2**14,
    r=8, p=1). ``salt`` must be at least 16 bytes. Takes about 50 ms and 16 MiB, on purpose.
    """
    if not isinstance(salt, bytes | bytearray) or len(salt) < SALT_BYTES:
        raise ValueError(f"salt must be at least {SALT_BYTES} bytes, got {_describe(salt)}")
    return scrypt_digest(password, salt, 2**14, 8, 1, 32)


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    return type(value).__name__


# -- the channel --------------------------------------------------------------------------------
class Channel:
    """One end of an encrypted session: seals what it sends, opens what it receives.

    ``key`` is 32 bytes (:func:`session_key`); ``role`` is "server" or "client". Not
    thread-safe; one instance per connection.
    """

    def __init__(self, key: bytes, role: Literal["server", "client"]):
        if not isinstance(key, bytes | bytearray) or len(key) != 32:
            raise ValueError(f"key must be 32 bytes, got {_describe(key)}")
        if role not in _DIRECTION:
            raise ValueError(f"role must be 'server' or 'client', got {role!r}")
        self._key = bytes(key)
        self.role = role
        self._send_aad = _DIRECTION[role]
        self._recv_aad = _DIRECTION["client" if role == "server" else "server"]
        self._sent = 0  # counter of the next frame sealed
        self._expected = 0  # counter of the next frame opened

    def __repr__(self) -> str:  # never the key
        return f"Channel(role={self.role!r}, sent={self._sent}, received={self._expected})"

    @property
    def sent(self) -> int:
        """Frames sealed so far."""
        return self._sent

    @property
    def received(self) -> int:
        """Frames opened (accepted) so far."""
        return self._expected

    def seal(self, plaintext: bytes) -> bytes:
        """The frame carrying ``plaintext``, ``OVERHEAD`` bytes longer."""
        if self._sent > _MAX_COUNTER:
            raise OverflowError("this channel has sealed 2**64 frames; start a new session")
        nonce = os.urandom(_NONCE)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG)
        cipher.update(self._send_aad)
        body, tag = cipher.encrypt_and_digest(self._sent.to_bytes(_COUNTER, "little") + plaintext)
        self._sent += 1
        return b"".join((bytes((VERSION,)), nonce, body, tag))

    def open(self, frame: bytes) -> bytes:
        """The payload of ``frame``; raise FrameRefused, and change nothing, if it is not the
        next frame the peer sealed in this session."""
        if len(frame) < 1:
            raise FrameRefused(f"truncated frame (0 bytes, at least {OVERHEAD})", "truncated")
        if frame[0] != VERSION:
            raise FrameRefused(f"unknown version {frame[0]} (expected {VERSION})", "version")
        if len(frame) < OVERHEAD:
            raise FrameRefused(f"truncated frame ({len(frame)} bytes, at least {OVERHEAD})",
                               "truncated")
        view = memoryview(frame)
        nonce, body, tag = view[1:1 + _NONCE], view[1 + _NONCE:-_TAG], view[-_TAG:]
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG)
        cipher.update(self._recv_aad)
        try:
            plain = cipher.decrypt_and_verify(body, tag)
        except ValueError:
            raise FrameRefused(
                "authentication failed (wrong key or session, altered or reflected frame)",
                "authentication",
            ) from None
        counter = int.from_bytes(plain[:_COUNTER], "little")
        if counter < self._expected:
            raise FrameRefused(
                f"replayed frame (counter {counter}, expected {self._expected})", "replayed"
            )
        if counter > self._expected:
            raise FrameRefused(
                f"frame out of order (counter {counter}, expected {self._expected}): "
                "frames were dropped or reordered", "skipped",
            )
        self._expected += 1
        return plain[_COUNTER:]
