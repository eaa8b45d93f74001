"""RTOC 3.0's websocket encryption ([websocket] legacy_rtoc_encryption): the pure crypto
against vectors made with RTOC 3.0's own ``RTLogger/RTWebsocket.py`` (``send`` with its IV
fixed, ``hashPassword``), and the server's per-connection decision (``Server._legacy_in``)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest
import zmq.asyncio
from rtoc.frontends.websocket import legacy_crypto as lc
from rtoc.frontends.websocket.auth import hash_password, rtoc_token
from rtoc.frontends.websocket.binary_protocol.shell import SendQueue
from rtoc.frontends.websocket.server import (
    LEGACY_OFF,
    Client,
    Server,
    _close_reason,
    anonymous_role,
)
from rtoc.frontends.websocket.session import Session

from rtoc.config import LEGACY_USER, UserConfig, WebsocketConfig
from rtoc.errors import ConfigError

# (password, key, IV, plaintext as RTOC's json.dumps wrote it, RTOC 3.0's message)
VECTORS = [
    ("geheim", b"rdsPXngmyFfXN20b", bytes(range(16)),
     '{"authorize": "rdsPXngmyFfXN20b2bwzwMVEeQourJYUSoryKxKYyUA="}',
     "AAECAwQFBgcICQoLDA0OD5+4hTJ75R+zKdZHN9tYUAsB7MoekjInMCZMozfpx/E65i3Ut4BlqC82D3vHTjyj"
     "xRuHF0tFZaE4dn1UHwWDQOk="),
    ("Pässwort €", b"akszmwZ0t+x5R2e/", bytes(16), '{"getLatest": true, "getSignalList": true}',
     "AAAAAAAAAAAAAAAAAAAAAHaykQERgnZZ4rxNYqPJqVW985YjxlgDE4Y7yGBKooJ+rl6heEWV3zZ5PzVvdUdrpA=="),
    ("x", b"LXEWQrcmsEQBYnyp", b"\xff" * 16, '{"a": "012345"}',
     "/////////////////////9KMobYAXHVKeaazoYaa8ns="),
    # 16 bytes of text: a whole block of padding follows
    ("x", b"LXEWQrcmsEQBYnyp", bytes(range(16, 32)), '{"a": "0123456"}',
     "EBESExQVFhcYGRobHB0eH+JFV1g4S0k2O4YqCzOiL+odOnsxuAxaiYQ9aHXSHcCf"),
]
# RTOC's own test vector (RTWebsocket.py's __main__: "TYPESCRIPT ENCRYPTION OK", its web client)
TYPESCRIPT = ("geheim", "AqA9v8IMAWYhQ4fDc/p5IZJwel6zGhGtQGeR3rKqKSM=", '{"Wow":true}')


@pytest.mark.parametrize(("password", "key", "iv", "text", "sealed"), VECTORS)
def test_rtoc_30s_own_messages_decrypt_and_ours_equal_them(password, key, iv, text, sealed) -> None:
    assert lc.key_of(password) == key == rtoc_token(password)[:16].encode()
    assert lc.encrypt(key, text, iv) == sealed
    assert lc.encrypt(key, text.encode(), iv) == sealed
    assert lc.decrypt(key, sealed) == text
    assert lc.decrypt(key, sealed.encode()) == text
    assert lc.open_message(key, sealed) == text.encode()
    assert lc.looks_encrypted(sealed) and lc.looks_encrypted(sealed.encode())


def test_rtoc_30s_typescript_vector_decrypts() -> None:
    password, sealed, text = TYPESCRIPT
    assert lc.decrypt(lc.key_of(password), sealed) == text


def test_each_message_has_a_fresh_iv_and_round_trips() -> None:
    key = lc.key_of("pw")
    a, b = lc.encrypt(key, '{"x": 1}'), lc.encrypt(key, '{"x": 1}')
    assert a != b and lc.decrypt(key, a) == lc.decrypt(key, b) == '{"x": 1}'
    text = '{"y": "' + "é€" * 1000 + '"}'
    assert lc.open_message(key, lc.encrypt(key, text)) == text.encode()
    with pytest.raises(ValueError, match="IV"):
        lc.encrypt(key, "{}", b"short")


def _flip(sealed: str, at: int) -> str:
    raw = bytearray(base64.b64decode(sealed))
    raw[at] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_every_failure_raises_the_same_error() -> None:
    password, key, _, text, sealed = VECTORS[0]
    last_block_iv = len(base64.b64decode(sealed)) - 17  # flips the padding byte
    bad = {
        "wrong key": (lc.key_of("other"), sealed),
        "not base64": (key, "{" + sealed[1:]),
        "too short": (key, base64.b64encode(bytes(16)).decode()),
        "not blocks": (key, base64.b64encode(bytes(40)).decode()),
        "bad padding": (key, _flip(sealed, last_block_iv)),
        "not utf-8": (key, lc.encrypt(key, b"\xff\xfe{}")),
    }
    for what, (k, data) in bad.items():
        with pytest.raises(lc.LegacyCryptoError) as info:
            lc.open_message(k, data)
        assert str(info.value) == lc.FAILED, what
    for text in ("[1, 2]", "not json", "{", '"{}"'):  # decrypts, but is no JSON object
        with pytest.raises(lc.LegacyCryptoError):
            lc.open_message(key, lc.encrypt(key, text))
    assert lc.open_message(key, lc.encrypt(key, '{"y": NaN}')) == b'{"y": NaN}'  # as json does


def test_json_and_other_text_do_not_look_encrypted() -> None:
    for data in (b'{"authorize": true}', b"{}", b"", b"   ", b"abcd", "ü" * 44,
                 base64.b64encode(bytes(16)), base64.b64encode(bytes(40)), b"A" * 43):
        assert not lc.looks_encrypted(data), data


# -- the server's decision per connection --------------------------------------------------
@pytest.fixture
def make_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    made: list[tuple[Server, zmq.asyncio.Context]] = []

    def make(**cfg) -> Server:
        monkeypatch.setenv("RTOC_TEST_PW", "geheim")
        ctx = zmq.asyncio.Context()
        endpoints = {k: f"ipc://{tmp_path}/{k}{len(made)}" for k in ("control", "data", "inbox")}
        srv = Server(WebsocketConfig(port=5050, **cfg), endpoints, ctx)
        made.append((srv, ctx))
        return srv

    yield make
    for srv, ctx in made:
        srv.hub.close()
        srv.sub.close(0)
        ctx.term()


LEGACY = {"legacy_rtoc_encryption": True, "legacy_password_env": "RTOC_TEST_PW"}


def _client(srv: Server, address: str = "192.0.2.7") -> Client:
    session = Session(address, srv.anonymous, srv.anonymous)
    return Client(None, session, SendQueue(1 << 20, 256))  # type: ignore[arg-type]


def test_a_plain_client_stays_plain_when_the_option_is_on(make_server) -> None:
    srv = make_server(**LEGACY)
    c = _client(srv)
    batch = [b'{"authorize": true}', b'{"getLatest": true}']
    assert srv._legacy_in(c, batch) == (batch, None)
    assert not c.first and c.key is None
    assert not (c.first or c.key is not None)  # the handler does not call it again


def test_an_encrypting_client_is_decrypted_and_answered_encrypted(make_server) -> None:
    srv = make_server(**LEGACY)
    c = _client(srv)
    key = lc.key_of("geheim")
    authorize = json.dumps({"authorize": rtoc_token("geheim")})
    sealed = [lc.encrypt(key, authorize).encode(), lc.encrypt(key, '{"getSignalList": true}').encode()]
    out, refusal = srv._legacy_in(c, sealed)
    assert refusal is None and c.key == key
    assert out == [authorize.encode(), b'{"getSignalList": true}']
    assert srv.counters["legacy_connections"] == 1
    assert lc.decrypt(key, c.wrap(b'{"error": false}')) == '{"error": false}'
    out, refusal = srv._legacy_in(c, [lc.encrypt(key, "{}").encode()])
    assert out == [b"{}"] and refusal is None and srv.counters["legacy_connections"] == 1


def test_a_message_that_does_not_decrypt_closes_and_counts_as_a_failed_login(make_server) -> None:
    srv = make_server(**LEGACY, login_max_failures=2)
    key, wrong = lc.key_of("geheim"), lc.key_of("wrong")
    c = _client(srv)
    out, refusal = srv._legacy_in(c, [lc.encrypt(key, "{}").encode(), lc.encrypt(wrong, "{}").encode(),
                                      lc.encrypt(key, "{}").encode()])
    assert out == [b"{}"] and refusal == lc.FAILED  # the first is answered, the rest not
    assert c.key == key  # so its error goes out encrypted
    c2 = _client(srv)
    out, refusal = srv._legacy_in(c2, [lc.encrypt(wrong, "{}").encode()])
    assert out == [] and refusal == lc.FAILED and c2.key is None  # it has no key: plain
    assert srv.counters["legacy_failed"] == 2
    c3 = _client(srv)  # two failures: the address is locked, nothing is decrypted
    out, refusal = srv._legacy_in(c3, [lc.encrypt(key, "{}").encode()])
    assert out == [] and refusal.startswith("too many failed logins from 192.0.2.7")
    assert srv.counters["legacy_failed"] == 2 and c3.key is None
    c4 = _client(srv, "192.0.2.8")  # another address is not
    assert srv._legacy_in(c4, [lc.encrypt(key, "{}").encode()]) == ([b"{}"], None)


def test_with_the_option_off_an_encrypted_client_is_refused_with_a_hint(make_server) -> None:
    srv = make_server()
    assert srv.legacy_key is None
    c = _client(srv)
    sealed = lc.encrypt(lc.key_of("geheim"), '{"authorize": true}').encode()
    out, refusal = srv._legacy_in(c, [sealed, b'{"getLatest": true}'])
    assert out == [] and refusal == LEGACY_OFF and "legacy_rtoc_encryption = true" in refusal
    assert srv.counters["legacy_refused"] == 1
    c2 = _client(srv)  # plain JSON: as always
    assert srv._legacy_in(c2, [b"{}"]) == ([b"{}"], None)


def test_pushes_wait_for_the_first_message_only_when_the_option_is_on(make_server) -> None:
    for cfg, offered in (({}, 1), (LEGACY, 0)):
        srv = make_server(**cfg)
        c = _client(srv)
        srv._offer(c, '{"client": "newconnected"}')
        assert len(c.queue.items) == offered
        srv._legacy_in(c, [b"{}"])
        srv._offer(c, '{"client": "newconnected"}')
        assert len(c.queue.items) == offered + 1


def test_rtocs_password_is_a_user_with_legacy_role(make_server) -> None:
    srv = make_server(**LEGACY, legacy_role="admin")
    assert srv.anonymous == "read"  # RTOC's password counts as a configured user
    user = srv.hub.users.login(None, rtoc_token("geheim"), is_token=True)
    assert (user.name, user.role) == (LEGACY_USER, "admin")
    assert srv.hub.users.login(LEGACY_USER, "geheim", is_token=False) == user
    assert srv.hub.users.login(None, rtoc_token("other"), is_token=True) is None
    assert anonymous_role(WebsocketConfig()) == "admin"  # loopback, no users: as before
    assert anonymous_role(WebsocketConfig(**LEGACY)) == "read"


def test_the_option_warns_at_start_and_needs_its_environment_variable(
        make_server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        make_server(**LEGACY)
    assert "no integrity" in caplog.text and "TLS" in caplog.text
    caplog.clear()
    make_server()
    assert "legacy" not in caplog.text
    monkeypatch.delenv("RTOC_TEST_PW")
    with pytest.raises(ConfigError, match="RTOC_TEST_PW") as info:
        Server(WebsocketConfig(**LEGACY), {}, None)  # type: ignore[arg-type]
    assert info.value.key == "websocket.legacy_password_env"


def test_configured_users_still_log_in_with_the_option_on(make_server) -> None:
    srv = make_server(**LEGACY, users=(UserConfig("ann", hash_password("ann-pw", n=1024), "read"),))
    assert srv.hub.users.login(None, rtoc_token("ann-pw"), is_token=True).name == "ann"
    assert srv.hub.users.login(None, rtoc_token("geheim"), is_token=True).name == LEGACY_USER


def test_the_login_throttle_runs_on_one_clock_whatever_the_road_passes(make_server) -> None:
    """Regression: HTTP passed monotonic time, the JSON and binary roads wall time: five
    failed JSON logins locked the address out of HTTP for decades, and failed HTTP logins
    never locked the JSON road."""
    srv = make_server(login_max_failures=2, login_lockout=30.0)

    async def run() -> None:
        for _ in range(2):  # as HTTP Basic did
            assert await srv.hub.login(None, "wrong", False, "192.0.2.9", time.monotonic()) is None
        wait = await srv.hub.login(None, "wrong", False, "192.0.2.9", time.time())  # the JSON road
        assert isinstance(wait, float) and 0 < wait <= 30.0
        for _ in range(2):  # JSON failures at wall time ...
            await srv.hub.login(None, "wrong", False, "192.0.2.10", time.time())
        wait = await srv.hub.login(None, "wrong", False, "192.0.2.10", time.monotonic())
        assert isinstance(wait, float) and 0 < wait <= 30.0  # ... lock HTTP for 30 s, not decades

    asyncio.run(run())


def test_close_reasons_fit_a_close_frame_and_keep_the_point() -> None:
    for text in (LEGACY_OFF, lc.FAILED, "too many failed logins from 192.0.2.7; wait 30 s"):
        reason = _close_reason(text)
        assert len(reason.encode()) <= 123 and text.startswith(reason)
    assert "legacy_rtoc_encryption = true" in _close_reason(LEGACY_OFF)
