"""The ``rtoc`` command: run an instance, and look at or steer a running one.

Exit status: 0 ok, 1 a runtime error (not running, a refused request), 2 a bad config or
bad arguments.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import math
import sys
import time
from pathlib import Path

from rtoc import config as config_mod
from rtoc import log as log_mod
from rtoc.app import cli_archive, cli_events
from rtoc.errors import ConfigError, ControlError, InstanceError, RtocError
from rtoc.paths import default_config_file, endpoints


def _config(args) -> config_mod.Config:
    path = args.config or default_config_file()
    cfg = config_mod.load(path)
    return cfg


def _endpoints(args) -> dict:
    cfg = _config(args)
    instance = args.instance or cfg.instance
    return endpoints(instance, cfg.bus.control, cfg.bus.data, cfg.bus.inbox)


def _client(args):
    from rtoc.pipeline.control import ControlClient

    return ControlClient(_endpoints(args)["control"], timeout=args.timeout,
                         curve=_config(args).bus)


def _parse_value(text: str):
    """A command-line value: JSON when it parses (numbers, true, [..]), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _target(text: str, what: str) -> tuple[str, str]:
    driver, dot, name = text.partition(".")
    if not dot or not driver or not name:
        raise SystemExit(f"rtoc: expected DRIVER.{what}, got {text!r}")
    return driver, name


def _fmt(v, width: int = 12) -> str:
    if v is None:
        return "-".rjust(width)
    if isinstance(v, float):
        return (f"{v:.6g}" if math.isfinite(v) else str(v)).rjust(width)
    return str(v).rjust(width)


def _table(rows: list[list], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


# -- commands ----------------------------------------------------------------------
def cmd_run(args) -> int:
    from rtoc.app.supervisor import Supervisor

    cfg = _config(args)
    if args.instance:
        import dataclasses

        cfg = dataclasses.replace(cfg, instance=args.instance)
    log_mod.configure(cfg.log_level, "supervisor")
    return Supervisor(cfg).run()


def cmd_config(args) -> int:
    sys.stdout.write(config_mod.to_toml(_config(args)))
    return 0


def cmd_view(args) -> int:
    """The viewer on the local instance, or on ``args.url`` (a password prompt with --user)."""
    import getpass
    import os

    from rtoc.frontends import viewer

    try:
        viewer.check_installed()
    except ConfigError as exc:
        print(f"rtoc: {exc.reason}", file=sys.stderr)
        return 2
    password = None
    if args.user:
        password = os.environ.get("RTOC_PASSWORD") or getpass.getpass(f"password of {args.user}: ")
    return viewer.run(_config(args), args.url, args.user, password, args.instance)


def cmd_telegram_pair(args) -> int:
    from rtoc.frontends.telegram import pairing

    cfg = _config(args)
    code = pairing.new_code(cfg.telegram_path, time.time())
    print(f"Send this to the bot within {pairing.VALID / 60:.0f} minutes (it works once):\n\n"
          f"    /pair {code}\n\nThe chat that sends it becomes an admin of instance {cfg.instance!r}.")
    if not cfg.telegram.enabled:
        print("\nNote: the bot is not configured yet: set [telegram] token (or token_env) in "
              f"{cfg.source or 'rtoc.toml'} and start rtoc.")
    return 0


def cmd_status(args) -> int:
    with _client(args) as c:
        st = c.request("status")
    print(f"instance {st['instance']}  pid {st['pid']}  up {st['uptime']:.0f} s  rtoc {st['version']}\n")
    rows = [[p["name"], p["kind"], p["state"], p["pid"] or "-", f"{p['uptime']:.0f} s", p["restarts"],
             "-" if p["last_exit"] is None else p["last_exit"]] for p in st["processes"]]
    print(_table(rows, ["process", "kind", "state", "pid", "uptime", "restarts", "last exit"]))
    print()
    rows = [[p["name"], name, repr(r.get("value")), r.get("reason", "")]
            for p in st["processes"] for name, r in p.get("rejected", {}).items()]
    if rows:
        print("persisted parameter values set aside (the defaults are used; params/NAME.rejected.json):")
        print(_table(rows, ["driver", "parameter", "value", "reason"]))
        print()
    for p in st["processes"]:
        if p.get("stats"):
            print(f"{p['name']}: " + ", ".join(f"{k} {v:g}" for k, v in sorted(p["stats"].items())))
            print()
    rows = [[s["name"], f"{s['rate']:.6g}/s", s["written"], s["lost"]] for s in st["signals"]]
    print(_table(rows, ["signal", "rate", "written", "lost"]))
    return 0


def cmd_signals(args) -> int:
    with _client(args) as c:
        sigs = c.request("signals")["signals"]
    rows = [[s["name"], s["unit"] or "-", _fmt(s["latest"]["y"] if s["latest"] else None).strip(),
             f"{s['rate']:.6g}/s", s["written"], s["lost"]] for s in sigs]
    print(_table(rows, ["signal", "unit", "latest", "rate", "written", "lost"]))
    return 0


def cmd_drivers(args) -> int:
    with _client(args) as c:
        drivers = c.request("drivers")["drivers"]
    for d in drivers:
        print(f"{d['name']} ({d['driver']}): {d['state']}, pid {d['pid'] or '-'}, restarts {d['restarts']}")
        for p in d["parameters"]:
            print(f"    {p['name']} = {p['value']!r}  ({p['type']}) {p['doc']}")
        for f in d["functions"]:
            print(f"    {f['signature']}  {f['doc'].splitlines()[0] if f['doc'] else ''}")
    return 0


def cmd_tail(args) -> int:
    from rtoc.pipeline.bus import DataBatch, Subscriber

    ep = _endpoints(args)
    lines = 0
    deadline = time.monotonic() + args.duration if args.duration else None
    with Subscriber(ep["data"], args.signals, curve=_config(args).bus) as sub:
        while args.count is None or lines < args.count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            msg = sub.recv(timeout=min(left, 1.0) if left is not None else 1.0)
            if not isinstance(msg, DataBatch):
                continue
            idx = range(msg.n) if msg.n <= args.max_per_batch else [msg.n - 1]
            for i in idx:
                if args.count is not None and lines >= args.count:
                    break
                stamp = time.strftime("%H:%M:%S", time.localtime(msg.t[i])) + f"{msg.t[i] % 1:.6f}"[1:]
                more = f"  (+{msg.n - 1} more)" if msg.n > args.max_per_batch else ""
                print(f"{stamp}  {msg.name}  {msg.y[i]:.6g}  seq {msg.seq + i}{more}", flush=True)
                lines += 1
            if msg.gap or msg.lost:
                print(f"# {msg.name}: {msg.lost} lost before the engine, {msg.gap} on the bus", flush=True)
    return 0


def cmd_call(args) -> int:
    driver, fn = _target(args.target, "FUNCTION")
    pos, kw = [], {}
    for a in args.args:
        key, eq, value = a.partition("=")
        if eq and key.isidentifier():
            kw[key] = _parse_value(value)
        else:
            pos.append(_parse_value(a))
    with _client(args) as c:
        result = c.request("call", driver=driver, function=fn, args=pos, kwargs=kw)["result"]
    print(json.dumps(result))
    return 0


def cmd_set(args) -> int:
    driver, param = _target(args.target, "PARAM")
    with _client(args) as c:
        value = c.request("set", driver=driver, param=param, value=_parse_value(args.value))["value"]
    print(f"{driver}.{param} = {value!r}")
    return 0


def _lifecycle(op: str):
    def cmd(args) -> int:
        with _client(args) as c:
            state = c.request(op, driver=args.driver)["state"]
        print(f"{args.driver}: {state}")
        return 0

    return cmd


GLOBALS_NOTE = "global options go before or after the command: rtoc run --config FILE"


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--config, --instance and --timeout. The main parser holds the defaults; every
    sub-command takes them too, with no default of its own (SUPPRESS), so a value given
    after the command replaces one given before it and an absent one changes nothing."""
    def default(value):
        return value if defaults else argparse.SUPPRESS

    g = parser.add_argument_group("global options")
    g.add_argument("--config", type=Path, default=default(None),
                   help="rtoc.toml (default: $RTOC_CONFIG or the user config folder)")
    g.add_argument("--instance", default=default(None), help="instance name (default: from the config)")
    g.add_argument("--timeout", type=float, default=default(5.0), help="seconds to wait for a reply")


class _CommandParser(argparse.ArgumentParser):
    """A sub-command's parser (and its own sub-commands'): takes the global options too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("epilog", GLOBALS_NOTE)
        super().__init__(*args, **kwargs)
        _add_global_options(self, defaults=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rtoc", description="RTOC real-time measurement server",
                                epilog=GLOBALS_NOTE)
    _add_global_options(p, defaults=True)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_CommandParser)
    sub.add_parser("run", help="run RTOC in the foreground (Ctrl-C stops)").set_defaults(fn=cmd_run)
    sub.add_parser("config", help="print the effective configuration").set_defaults(fn=cmd_config)
    sub.add_parser("status", help="processes, uptime, restarts, signal rates").set_defaults(fn=cmd_status)
    sub.add_parser("signals", help="table of signals").set_defaults(fn=cmd_signals)
    sub.add_parser("drivers", help="drivers with parameters and functions").set_defaults(fn=cmd_drivers)
    t = sub.add_parser("tail", help="print live values of signals")
    t.add_argument("signals", nargs="+", metavar="SIGNAL", help="Device.Signal")
    t.add_argument("-n", "--count", type=int, help="stop after this many lines")
    t.add_argument("--duration", type=float, help="stop after this many seconds")
    t.add_argument("--max-per-batch", type=int, default=20, help="print at most this many samples of a batch")
    t.set_defaults(fn=cmd_tail)
    c = sub.add_parser("call", help="call a driver function: rtoc call Generator.set_frequency 2")
    c.add_argument("target", metavar="DRIVER.FUNCTION")
    c.add_argument("args", nargs="*", help="arguments (JSON values or text; key=value for keywords)")
    c.set_defaults(fn=cmd_call)
    s = sub.add_parser("set", help="set a driver parameter: rtoc set Generator.frequency 2")
    s.add_argument("target", metavar="DRIVER.PARAM")
    s.add_argument("value")
    s.set_defaults(fn=cmd_set)
    for op in ("start", "stop", "restart"):
        x = sub.add_parser(op, help=f"{op} a driver process")
        x.add_argument("driver")
        x.set_defaults(fn=_lifecycle(op))
    pw = sub.add_parser("passwd", help="make a password hash for [[websocket.users]]")
    pw.add_argument("user", nargs="?", default="", help="user name (printed into the TOML snippet)")
    pw.add_argument("--role", default="read", choices=("read", "write", "admin"))
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw.set_defaults(fn=cmd_passwd)
    v = sub.add_parser("view", help="the viewer window on this instance, or on ws://host:port/")
    v.add_argument("url", nargs="?", help="a remote instance (ws:// or wss://); default: the local one")
    v.add_argument("--user", help="log in as this user (the password is asked, or $RTOC_PASSWORD)")
    v.set_defaults(fn=cmd_view)
    tg = sub.add_parser("telegram", help="the Telegram bot").add_subparsers(dest="telegram_cmd", required=True)
    tg.add_parser("pair", help="print a one-time code that makes the chat sending it an admin"
                  ).set_defaults(fn=cmd_telegram_pair)
    sub.add_parser("keys", help="make CURVE keys for [bus] (needed for tcp:// endpoints)"
                   ).set_defaults(fn=cmd_keys)
    cli_events.add_parsers(sub, _client, _endpoints)
    cli_archive.add_parsers(sub, _client)
    return p


def cmd_passwd(args) -> int:
    """Print a ``[[websocket.users]]`` entry with an scrypt hash; the password is never stored."""
    from rtoc.frontends.websocket.auth import hash_password

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("rtoc: the passwords differ", file=sys.stderr)
            return 2
    if not password:
        print("rtoc: an empty password is not allowed", file=sys.stderr)
        return 2
    print("[[websocket.users]]")
    print(f'name = "{args.user or "user"}"')
    print(f'role = "{args.role}"')
    print(f'password_hash = "{hash_password(password)}"')
    return 0


def cmd_keys(args) -> int:
    """Print a new ``[bus]`` CURVE key set; the secrets are printed once, never stored."""
    from rtoc.pipeline.curve import new_keys

    keys = new_keys()
    print("# rtoc keys: CURVE keys for tcp:// endpoints. Where rtoc runs, all four;")
    print("# on a machine that only connects (rtoc status, scripts), all but curve_server_secret.")
    print("# Keep the secrets as secret as a password; rtoc.toml should be readable by you only.")
    print("[bus]")
    for key, value in keys.items():
        print(f'{key} = "{value}"')
    return 0


def _relative_times(argv: list[str]) -> list[str]:
    """``--from -1h`` as ``--from=-1h``: argparse would take ``-1h`` for an option."""
    out: list[str] = []
    for i, a in enumerate(argv):
        if i and argv[i - 1] in ("--from", "--to", "--since") and a.startswith("-") and out:
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(_relative_times(sys.argv[1:] if argv is None else argv))
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"rtoc: config error: {exc}", file=sys.stderr)
        return 2
    except (ControlError, InstanceError, RtocError) as exc:
        print(f"rtoc: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        logging.shutdown()


if __name__ == "__main__":
    sys.exit(main())
