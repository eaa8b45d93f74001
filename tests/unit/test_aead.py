"""Unit tests of rtoc.client.aead: AES-GCM frames of the binary subprotocol and their keys."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from Cryptodome.Hash import SHA256
from Cryptodome.Protocol.KDF import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from rtoc.client.aead import (
    KEY_INFO,
    OVERHEAD,
    Channel,
    FrameRefused,
    derive_key,
    new_salt,
    rtoc_token,
    scrypt_digest,
    session_key,
)
from rtoc.errors import RtocError

SALT = bytes(range(16))
KEY = derive_key("geheim", SALT)  # once per module: scrypt takes ~50 ms


def _pair(key: bytes = KEY) -> tuple[Channel, Channel]:
    return Channel(key, "server"), Channel(key, "client")


def _refused(channel: Channel, frame: bytes) -> FrameRefused:
    with pytest.raises(FrameRefused) as info:
        channel.open(frame)
    return info.value


def test_derive_key_is_scrypt_of_the_password() -> None:
    assert KEY == hashlib.scrypt(b"geheim", salt=SALT, n=2**14, r=8, p=1, dklen=32)
    assert len(KEY) == 32
    with pytest.raises(ValueError, match="salt must be at least 16 bytes, got 8 bytes"):
        derive_key("geheim", b"12345678")
    assert len(new_salt()) == 16 and new_salt() != new_salt()


def test_frame_refused_is_an_rtoc_value_error() -> None:
    assert issubclass(FrameRefused, RtocError) and issubclass(FrameRefused, ValueError)
    assert FrameRefused.code == "bad_frame"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.lists(st.binary(max_size=300), max_size=8))
def test_round_trip_both_directions(to_client: list[bytes], to_server: list[bytes]) -> None:
    server, client = _pair()
    for payload in to_client:
        frame = server.seal(payload)
        assert len(frame) == len(payload) + OVERHEAD and frame[0] == 1
        assert client.open(frame) == payload
    for payload in to_server:
        assert server.open(client.seal(payload)) == payload
    assert (server.sent, server.received) == (len(to_client), len(to_server))
    assert (client.sent, client.received) == (len(to_server), len(to_client))


def test_payload_is_not_in_the_clear_and_nonces_differ() -> None:
    server, _ = _pair()
    payload = b"secret measurement " * 4
    frames = [server.seal(payload) for _ in range(50)]
    assert all(payload[:16] not in frame for frame in frames)
    assert len({frame[1:13] for frame in frames}) == 50
    assert len({frame[13:-16] for frame in frames}) == 50


def test_every_byte_tampered_is_refused() -> None:
    server, client = _pair()
    frame = server.seal(b"hi")
    for i in range(len(frame)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(frame)
            bad[i] ^= flip
            err = _refused(client, bytes(bad))
            assert err.reason == ("version" if i == 0 else "authentication")
    assert client.open(frame) == b"hi"  # the refusals changed nothing


def test_truncated_and_extended_frames_are_refused() -> None:
    server, client = _pair()
    frame = server.seal(b"payload")
    for cut in range(len(frame)):
        err = _refused(client, frame[:cut])
        assert err.reason in {"truncated", "authentication"}
    assert str(_refused(client, b"")) == "truncated frame (0 bytes, at least 37)"
    assert str(_refused(client, frame[:36])) == "truncated frame (36 bytes, at least 37)"
    assert _refused(client, frame + b"\0").reason == "authentication"
    assert client.open(frame) == b"payload"


def test_unknown_version_is_named() -> None:
    server, client = _pair()
    frame = server.seal(b"x")
    assert str(_refused(client, b"\x02" + frame[1:])) == "unknown version 2 (expected 1)"


def test_replayed_frame_is_refused() -> None:
    server, client = _pair()
    frames = [server.seal(bytes([i])) for i in range(6)]
    for frame in frames:
        client.open(frame)
    err = _refused(client, frames[3])
    assert err.reason == "replayed" and str(err) == "replayed frame (counter 3, expected 6)"
    assert client.open(server.seal(b"next")) == b"next"


def test_reordered_or_dropped_frames_are_refused() -> None:
    server, client = _pair()
    first, second, third = server.seal(b"1"), server.seal(b"2"), server.seal(b"3")
    err = _refused(client, second)
    assert err.reason == "skipped" and "counter 1, expected 0" in str(err)
    assert client.open(first) == b"1"
    assert _refused(client, third).reason == "skipped"  # "second" was lost
    assert client.open(second) == b"2" and client.open(third) == b"3"


def test_reflected_frame_is_refused() -> None:
    server, client = _pair()
    frame = server.seal(b"to the client")
    assert _refused(server, frame).reason == "authentication"
    assert _refused(client, client.seal(b"to the server")).reason == "authentication"
    assert client.open(frame) == b"to the client"


def test_a_channel_of_the_same_role_cannot_open_it() -> None:
    frame = Channel(KEY, "server").seal(b"x")
    assert _refused(Channel(KEY, "server"), frame).reason == "authentication"


def test_wrong_key_is_refused() -> None:
    server, _ = _pair()
    other = Channel(bytes(32), "client")
    assert str(_refused(other, server.seal(b"x"))).startswith("authentication failed")


def test_frames_of_another_session_are_refused() -> None:
    other_key = derive_key("geheim", bytes(range(1, 17)))  # same password, other salt
    assert other_key != KEY
    server_a, _ = _pair()
    _, client_b = _pair(other_key)
    assert _refused(client_b, server_a.seal(b"x")).reason == "authentication"


@pytest.mark.parametrize(("key", "role", "says"), [
    (b"short", "server", "key must be 32 bytes, got 5 bytes"),
    ("k" * 32, "server", "key must be 32 bytes, got str"),
    (bytes(32), "peer", "role must be 'server' or 'client'"),
])
def test_bad_channel_arguments(key: bytes, role: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Channel(key, role)  # type: ignore[arg-type]


def test_repr_shows_no_key() -> None:
    server, _ = _pair()
    assert KEY.hex() not in repr(server) and str(KEY) not in repr(server)
    assert repr(server) == "Channel(role='server', sent=0, received=0)"


def test_session_key_is_hkdf_sha256_of_the_stored_digest() -> None:
    secret, salt = bytes(range(32)), b"t" * 16
    want = HKDF(secret, 32, salt, SHA256, context=KEY_INFO)  # pycryptodome's RFC 5869
    assert session_key(secret, salt) == want and KEY_INFO == b"rtoc.bin.v1 session key"
    assert session_key(secret, b"u" * 16) != want


def test_the_secret_is_scrypt_of_the_rtoc_token() -> None:
    token = rtoc_token("w-pass")
    assert token == base64.b64encode(hashlib.sha256(b"w-pass").digest()).decode()
    assert scrypt_digest(token, b"s" * 16, 16, 1, 1, 32) == hashlib.scrypt(
        token.encode(), salt=b"s" * 16, n=16, r=1, p=1, dklen=32)
    assert len(scrypt_digest("\ud800", b"s" * 16, 16, 1, 1, 16)) == 16  # lone surrogates hash


def _hkdf_by_hand(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 written out, as rtoc.client.aead had it before pycryptodomex's (one block
    there; any length here, for the RFC's vectors)."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes((i,)), hashlib.sha256).digest()
        okm += block
    return okm[:length]


RFC5869_SHA256 = [  # RFC 5869 appendix A, test cases 1-3: IKM, salt, info, OKM
    (b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA)),
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
    (bytes(range(0x50)), bytes(range(0x60, 0xB0)), bytes(range(0xB0, 0x100)),
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c6"
     "5e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"),
    (b"\x0b" * 22, b"", b"",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "okm"), RFC5869_SHA256)
def test_hkdf_as_called_gives_the_rfc_5869_vectors(ikm: bytes, salt: bytes, info: bytes,
                                                   okm: str) -> None:
    """session_key's call (master, length, salt, SHA256, context=info) is RFC 5869's HKDF,
    and so is the hand-written one it replaced."""
    assert HKDF(ikm, len(okm) // 2, salt, SHA256, context=info).hex() == okm
    assert _hkdf_by_hand(ikm, salt, info, len(okm) // 2).hex() == okm


SESSION_KEYS = [  # (secret, salt, key) as the hand-written HKDF derived them: the wire's keys
    (bytes(range(32)), b"t" * 16, "9dd0a88d74077c0ac7840847442804cd7d081c7e18a78b6adf51119c4a1fedf8"),
    (bytes(32), bytes(16), "289e8f0e8c1aec3afc54a9a926601505f87eb75f6800a436787cb55fe3ce9814"),
    (bytes(range(255, 223, -1)), bytes(range(16)),
     "2936106ca315b9c3ba1d200e35f580c24a05b2ea8ea7edcae0ca94be16643aa9"),
]


@pytest.mark.parametrize(("secret", "salt", "key"), SESSION_KEYS)
def test_session_keys_are_those_of_the_hand_written_hkdf(secret: bytes, salt: bytes, key: str) -> None:
    assert session_key(secret, salt).hex() == key
    assert _hkdf_by_hand(secret, salt, KEY_INFO, 32).hex() == key
    assert session_key(bytearray(secret), bytearray(salt)).hex() == key


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=16, max_size=16))
def test_session_key_equals_the_hand_written_hkdf(secret: bytes, salt: bytes) -> None:
    assert session_key(secret, salt) == _hkdf_by_hand(secret, salt, KEY_INFO, 32)
