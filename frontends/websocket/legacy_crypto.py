"""RTOC 3.0's websocket encryption (its ``RTLogger/RTWebsocket.py``), for
``[websocket] legacy_rtoc_encryption`` only. Pure: bytes and text in and out, no sockets.

RTOC's client encrypts every message when it talks to a host other than ``localhost`` or
``127.0.0.1`` and a password is set, and decrypts everything it receives then:

* key = the first 16 characters of ``base64(sha256(password))`` (the RTOC token that
  ``authorize`` carries) as an AES-128 key: no salt, no key derivation;
* message = ``base64(IV || AES-CBC(key, IV, PKCS#7-padded UTF-8 JSON))``, a random IV each.

There is no MAC: anyone on the path can replay or alter messages, and the key is a prefix of
the replayable token. It exists so that an existing RTOC deployment can move over; TLS
(``tls_cert``/``tls_key``) or the rtoc.bin.v1 subprotocol is the answer.

Every way a message can fail to open (not base64, a bad length, bad padding, not UTF-8, not
a JSON object) raises the same :class:`LegacyCryptoError` with the same text, so that the
server's answer says nothing about which step failed (no padding oracle).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re

from Cryptodome.Cipher import AES

from rtoc.client.aead import rtoc_token

__all__ = ["BLOCK", "LegacyCryptoError", "decrypt", "encrypt", "key_of", "looks_encrypted",
           "open_message"]

BLOCK = 16
FAILED = ("cannot decrypt: not an RTOC 3.0 message encrypted with this server's legacy "
          "password ([websocket] legacy_password_env)")
_B64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


class LegacyCryptoError(ValueError):
    """A message that does not open with the key (one text for every reason)."""

    def __init__(self) -> None:
        super().__init__(FAILED)


def key_of(password: str) -> bytes:
    """RTOC's AES-128 key of ``password``: ``base64(sha256(password))[:16]``."""
    return rtoc_token(password)[:BLOCK].encode("ascii")


def looks_encrypted(data: bytes | str) -> bool:
    """True if ``data`` has the shape of an RTOC 3.0 encrypted message: base64 of 32 bytes
    or more, a multiple of 16 (an IV and at least one block). JSON text never has it (an
    object starts with ``{``)."""
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    data = data.strip()
    if len(data) % 4 or not _B64.fullmatch(data):
        return False
    size = len(data) // 4 * 3 - data.count(b"=")
    return size >= 2 * BLOCK and size % BLOCK == 0


def encrypt(key: bytes, text: str | bytes, iv: bytes | None = None) -> str:
    """``text`` (JSON) as RTOC sends it: ``base64(IV || AES-CBC(PKCS#7(text)))``; ``iv``
    defaults to 16 random bytes (pass one only for test vectors)."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    iv = os.urandom(BLOCK) if iv is None else iv
    if len(iv) != BLOCK:
        raise ValueError(f"the IV must be {BLOCK} bytes, got {len(iv)}")
    n = BLOCK - len(data) % BLOCK
    sealed = AES.new(key, AES.MODE_CBC, iv).encrypt(data + bytes((n,)) * n)
    return base64.b64encode(iv + sealed).decode("ascii")


def decrypt(key: bytes, text: str | bytes) -> str:
    """The text an RTOC message carries; :class:`LegacyCryptoError` if it does not decrypt
    with ``key`` (not base64, a bad length, bad padding, not UTF-8)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise LegacyCryptoError() from None
    if len(raw) < 2 * BLOCK or len(raw) % BLOCK:
        raise LegacyCryptoError()
    plain = AES.new(key, AES.MODE_CBC, raw[:BLOCK]).decrypt(raw[BLOCK:])
    n = plain[-1]
    if not 1 <= n <= BLOCK or plain[-n:] != bytes((n,)) * n:
        raise LegacyCryptoError()
    try:
        return plain[:-n].decode("utf-8")
    except UnicodeDecodeError:
        raise LegacyCryptoError() from None


def open_message(key: bytes, data: bytes | str) -> bytes:
    """An encrypted client message as the JSON text (UTF-8) the protocol core reads;
    :class:`LegacyCryptoError` unless it decrypts to a JSON object. (Checking the JSON here
    too means that a message altered on the way, whose padding happens to fit, fails like
    any other: the answer tells an attacker nothing about the padding.)"""
    text = decrypt(key, data)
    try:  # json, not orjson: NaN and Infinity are numbers here as in the protocol core
        ok = isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        ok = False
    if not ok:
        raise LegacyCryptoError()
    return text.encode("utf-8")
