"""``rtoc passwd``: a [[websocket.users]] entry whose hash the config and the server accept."""

from __future__ import annotations

import io

from rtoc.frontends.websocket.auth import verify_password

from rtoc import config
from rtoc.app import cli


def test_passwd_prints_an_entry_the_config_loads_and_the_hash_verifies(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert cli.main(["passwd", "ann", "--role", "write", "--password-stdin"]) == 0
    out = capsys.readouterr().out
    assert "correct horse" not in out
    (user,) = config.loads(out).websocket.users
    assert (user.name, user.role) == ("ann", "write")
    assert verify_password(user.password_hash, "correct horse")
    assert not verify_password(user.password_hash, "correct horsE")


def test_passwd_refuses_an_empty_password(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert cli.main(["passwd", "--password-stdin"]) == 2
    assert "empty password" in capsys.readouterr().err
