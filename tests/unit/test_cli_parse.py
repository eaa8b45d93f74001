"""The ``rtoc`` command line: parsing only, no processes. Global options (--config,
--instance, --timeout) go before or after the sub-command; after wins."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rtoc.app import cli

COMMANDS = {  # each sub-command with the least it needs
    "run": [], "config": [], "status": [], "signals": [], "drivers": [],
    "tail": ["Gen.Sine"], "call": ["Gen.f"], "set": ["Gen.p", "1"],
    "start": ["Gen"], "stop": ["Gen"], "restart": ["Gen"], "passwd": [], "keys": [],
    "events": [], "rules": [], "rules list": [], "rules enable": ["event", "x"],
    "rules put": ["event", "{}"],
    "export": ["Gen.Sine", "-o", "out.csv"], "import": ["in.csv", "--device", "D", "--columns", "a"],
    "query": ["select 1"], "view": [], "telegram pair": [], "snapshots": ["Scope.Trace", "-o", "s.csv"],
}
GLOBALS = [("--config", "a.toml", "config", Path("a.toml"), Path("b.toml")),
           ("--instance", "lab", "instance", "lab", "b"),
           ("--timeout", "2.5", "timeout", 2.5, 7.0)]
DEFAULTS = {"config": None, "instance": None, "timeout": 5.0}


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(cli._relative_times(list(argv)))


def _command_argv(name: str) -> list[str]:
    return [*name.split(), *COMMANDS[name]]


def test_every_command_is_covered() -> None:
    (sub,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == {c.split()[0] for c in COMMANDS}


@pytest.mark.parametrize("command", COMMANDS)
def test_without_global_options_the_defaults_hold(command: str) -> None:
    args = parse(*_command_argv(command))
    assert {k: getattr(args, k) for k in DEFAULTS} == DEFAULTS


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("option", "text", "dest", "value", "other"), GLOBALS,
                         ids=[g[0] for g in GLOBALS])
def test_a_global_option_before_or_after_the_command(command: str, option: str, text: str,
                                                      dest: str, value: object, other: object) -> None:
    argv = _command_argv(command)
    before = parse(option, text, *argv)
    after = parse(*argv, option, text)
    assert getattr(before, dest) == getattr(after, dest) == value
    for args in (before, after):  # the others keep their defaults
        assert {k: getattr(args, k) for k in DEFAULTS if k != dest} == \
            {k: v for k, v in DEFAULTS.items() if k != dest}
    both = parse(option, str(other), *argv, option, text)
    assert getattr(both, dest) == value  # after the command wins


def test_after_a_nested_command_and_between_the_two() -> None:
    assert parse("rules", "--config", "x.toml", "enable", "event", "e").config == Path("x.toml")
    args = parse("--instance", "a", "rules", "--instance", "b", "list", "--instance", "c")
    assert (args.instance, args.action) == ("c", "list")


def test_options_of_the_command_still_parse_beside_them() -> None:
    args = parse("tail", "Gen.Sine", "--timeout", "1", "-n", "3", "--config", "c.toml")
    assert (args.signals, args.count, args.timeout, args.config) == (["Gen.Sine"], 3, 1.0, Path("c.toml"))
    args = parse("export", "Gen.Sine", "--from", "-1h", "--instance", "x", "-o", "o.csv")
    assert (args.t_from, args.instance, args.output) == ("-1h", "x", "o.csv")
    assert parse("call", "Gen.f", "2", "k=3", "--timeout", "9").args == ["2", "k=3"]


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["status", "-h"],
                                  ["rules", "list", "--help"]])
def test_help_lists_the_global_options(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--config", "--instance", "--timeout"):
        assert option in out
    assert "before or after the command" in out


def test_main_uses_the_config_given_after_the_command(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text('instance = "first"\ndrivers = []\n')
    second.write_text('instance = "second"\ndrivers = []\n')
    assert cli.main(["--config", str(first), "config", "--config", str(second)]) == 0
    assert 'instance = "second"' in capsys.readouterr().out
