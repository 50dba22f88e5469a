"""The `nexus` command: serve, check, config init, backends, models, budget, explain,
keys, teams.

Exit status: 0 ok; 1 the answer is a refusal or an error (a gateway or Redis that
cannot be reached, a request that would be rejected); 2 a usage or configuration
error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from importlib import resources

from nexus import __version__
from nexus.cli.remote import DEFAULT_KEY_ENV
from nexus.config.errors import ConfigError
from nexus.core.masking import mask_urls_in

EXIT_CONFIG = 2
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except ConfigError as exc:
        if getattr(args, "json", False) and args.command is _check:
            from nexus.config.summary import print_invalid

            print_invalid(exc)
        print(f"nexus: configuration error: {mask_urls_in(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(command=lambda _: _help(parser))
    parser.add_argument("--version", action="version", version=f"nexus {__version__}")
    sub = parser.add_subparsers(title="commands")

    serve = sub.add_parser("serve", help="start one gateway replica")
    serve.add_argument("--config", help="TOML file (default: $NEXUS_CONFIG, else built-in)")
    serve.add_argument("--workers", type=_workers, default=1, metavar="N|auto",
                       help="replica processes on one port (default 1; auto: one per core; "
                            "more than one needs [redis])")
    serve.set_defaults(command=_serve)

    check = sub.add_parser("check", help="validate a configuration file")
    check.add_argument("path")
    check.add_argument("--json", action="store_true")
    check.set_defaults(command=_check)

    config = sub.add_parser("config", help="configuration helpers")
    config_sub = config.add_subparsers(title="config commands", required=True)
    init = config_sub.add_parser("init", help="print (or write) an annotated example")
    init.add_argument("--output", "-o", help="write to this file instead of stdout")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(command=_config_init)

    for name, helptext in (("backends", "backends and their health: the fleet's view from "
                                        "Redis, or a running gateway's (--url)"),
                           ("models", "models the fleet serves, from a running gateway; "
                                      "load, unload, migrate, ops: their placement")):
        inspect = _gateway_arguments(sub.add_parser(name, help=helptext))
        inspect.set_defaults(command=_inspect, what=name)
        if name == "models":
            from nexus.cli.models import add_actions

            add_actions(inspect)
        else:
            from nexus.cli.backends import add_actions as add_fleet_actions

            add_fleet_actions(inspect)

    budget = _gateway_arguments(sub.add_parser(
        "budget", help="the month's spend and budget status: the fleet's from Redis, or, "
                       "without [redis] or with --url, a running gateway's own"))
    budget.add_argument("--month", type=_month, help="YYYY-MM (default: this month, UTC)")
    budget.add_argument("--by", choices=["backend", "model", "key", "team"],
                        help="show only this breakdown")
    budget.set_defaults(command=_budget)
    _explain_parser(sub)
    from nexus.cli.tenants import add_parsers

    add_parsers(sub)
    return parser


def _gateway_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of every command that may ask a running gateway."""
    parser.add_argument("--config", help="TOML file naming the gateway's address (and Redis)")
    parser.add_argument("--url", help="gateway URL (default: from the config)")
    parser.add_argument("--api-key-env", default=DEFAULT_KEY_ENV, metavar="NAME",
                        help="environment variable holding a client key (default "
                             f"{DEFAULT_KEY_ENV}; never the key itself: flags show in the "
                             "process list)")
    parser.add_argument("--json", action="store_true")
    return parser


def _month(value: str) -> str:
    if not _MONTH.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected a month as YYYY-MM (01-12), got {value!r}")
    return value


def _explain_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = _gateway_arguments(sub.add_parser(
        "explain", help="dry-run a request through a running gateway's routing pipeline and "
                        "print every stage's effect (exit 1 when it would be refused)"))
    explain.add_argument("--model", "-m", required=True)
    explain.add_argument("--message", default="Hello", help="the user message to route")
    explain.add_argument("--max-tokens", type=int)
    explain.add_argument("--body", help="a JSON chat request body to use instead")
    explain.add_argument("--privacy", choices=["restricted", "unrestricted"])
    explain.add_argument("--strict", action="store_true", help="send X-Nexus-Strict")
    explain.add_argument("--flexible", action="store_true", help="send X-Nexus-Flexible")
    explain.set_defaults(command=_explain)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def _serve(args: argparse.Namespace) -> int:
    from nexus.cli.serve import serve, serve_workers

    return serve(args.config) if args.workers == 1 else serve_workers(args.config, args.workers)


def _workers(value: str) -> int:
    from nexus.cli.workers import worker_count

    try:
        return worker_count(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check(args: argparse.Namespace) -> int:
    """Every problem `serve` would refuse, in one run: the file's, then what this
    environment lacks; 2 when there is any."""
    from nexus.config.loader import read_config
    from nexus.config.summary import print_problems, summarize
    from nexus.config.validate import environment_problems, problems

    config, source = read_config(args.path)
    in_file, in_env = problems(config, source), environment_problems(config, os.environ)
    if in_file or in_env:
        print_problems(source, in_file, in_env, as_json=args.json)
        return EXIT_CONFIG
    summarize(config, args.path, as_json=args.json)
    return 0


def _config_init(args: argparse.Namespace) -> int:
    text = resources.files("nexus.config").joinpath("example.toml").read_text("utf-8")
    if not args.output:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w" if args.force else "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        print(f"nexus: {args.output} exists; pass --force to overwrite", file=sys.stderr)
        return EXIT_CONFIG
    print(f"wrote {args.output}; validate it with: nexus check {args.output}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from nexus.cli.explain import explain_command

    return explain_command(args)


def _inspect(args: argparse.Namespace) -> int:
    from nexus.cli.inspect import inspect
    from nexus.config.loader import load_config

    if args.what == "backends" and args.url is None and load_config(args.config).redis:
        return _from_redis(args)  # a fleet: read its shared view rather than one replica's
    return inspect(args.what, args.config, args.url, args.api_key_env, as_json=args.json)


def _budget(args: argparse.Namespace) -> int:
    from nexus.config.loader import load_config

    if args.url is None and load_config(args.config).redis:
        return _from_redis(args)
    from nexus.cli.budget import gateway_budget  # one replica: its own, in-process budget

    return gateway_budget(args)


def _from_redis(args: argparse.Namespace) -> int:
    from nexus.cli.fleet import fleet_command
    from nexus.config.loader import load_config

    what = "budget" if args.command is _budget else "backends"
    return fleet_command(what, load_config(args.config), getattr(args, "month", None),
                         as_json=args.json, by=getattr(args, "by", None))
