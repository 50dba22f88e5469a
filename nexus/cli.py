"""The `nexus` command: serve, check, config init, backends, models, explain."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import resources

from nexus.config.errors import ConfigError
from nexus.masking import mask_urls_in

EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except ConfigError as exc:
        print(f"nexus: configuration error: {mask_urls_in(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexus", description=__doc__)
    parser.set_defaults(command=lambda _: _help(parser))
    sub = parser.add_subparsers(title="commands")

    serve = sub.add_parser("serve", help="start one gateway replica")
    serve.add_argument("--config", help="TOML file (default: $NEXUS_CONFIG, else built-in)")
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
                           ("models", "models the fleet serves, from a running gateway")):
        inspect = sub.add_parser(name, help=helptext)
        inspect.add_argument("--config", help="TOML file naming the gateway's address")
        inspect.add_argument("--url", help="gateway URL (default: from the config)")
        inspect.add_argument("--json", action="store_true")
        inspect.set_defaults(command=_inspect, what=name)

    budget = sub.add_parser("budget", help="the fleet's spend and budget status, from Redis")
    budget.add_argument("--config", help="TOML file with [redis] and [routing.budget]")
    budget.add_argument("--month", help="YYYY-MM (default: this month, UTC)")
    budget.add_argument("--json", action="store_true")
    budget.set_defaults(command=_fleet, what="budget")
    _explain_parser(sub)
    return parser


def _explain_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = sub.add_parser("explain", help="dry-run a request through a running gateway's "
                             "routing pipeline and print every stage's effect")
    explain.add_argument("--config", help="TOML file naming the gateway's address")
    explain.add_argument("--url", help="gateway URL (default: from the config)")
    explain.add_argument("--model", "-m", required=True)
    explain.add_argument("--message", default="Hello", help="the user message to route")
    explain.add_argument("--max-tokens", type=int)
    explain.add_argument("--body", help="a JSON chat request body to use instead")
    explain.add_argument("--privacy", choices=["restricted", "unrestricted"])
    explain.add_argument("--strict", action="store_true", help="send X-Nexus-Strict")
    explain.add_argument("--flexible", action="store_true", help="send X-Nexus-Flexible")
    explain.add_argument("--api-key-env", default="NEXUS_API_KEY",
                         help="environment variable holding a client key (never a flag: "
                              "flags show in the process list)")
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(command=_explain)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def _serve(args: argparse.Namespace) -> int:
    from nexus.serve import serve

    return serve(args.config)


def _check(args: argparse.Namespace) -> int:
    from nexus.config.loader import load_config
    from nexus.config.summary import summarize

    config = load_config(args.path)
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
        return 1
    print(f"wrote {args.output}; validate it with: nexus check {args.output}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from nexus.explain_cli import explain_command

    return explain_command(args)


def _inspect(args: argparse.Namespace) -> int:
    from nexus.config.loader import load_config
    from nexus.inspect import inspect

    if args.what == "backends" and args.url is None and load_config(args.config).redis:
        return _fleet(args)  # a fleet: read its shared view rather than one replica's
    return inspect(args.what, args.config, args.url, as_json=args.json)


def _fleet(args: argparse.Namespace) -> int:
    from nexus.config.loader import load_config
    from nexus.fleet_view import fleet_command

    return fleet_command(args.what, load_config(args.config), getattr(args, "month", None),
                         as_json=args.json)
