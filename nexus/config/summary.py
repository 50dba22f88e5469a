"""`nexus check`: what a valid configuration will do, in a few lines."""

from __future__ import annotations

import sys

import msgspec

from nexus.config.errors import ConfigError
from nexus.config.schema import Config
from nexus.core.masking import mask_url, mask_urls_in


def summarize(config: Config, source: str, *, as_json: bool) -> None:
    if as_json:
        data = msgspec.to_builtins(config)
        if config.redis is not None:  # a password in the URL is a secret like any key
            data["redis"]["url"] = mask_url(config.redis.url)
        print(msgspec.json.encode({"valid": True, "source": source, "config": data}).decode())
        return
    store = "in-process (one replica)"
    if config.redis is not None:
        store = f"redis at {mask_url(config.redis.url)} (prefix {config.redis.prefix!r})"
    print(f"{source}: valid")
    print(f"  listen    {config.server.host}:{config.server.port}")
    print(f"  store     {store}")
    print(f"  routing   strategy={config.routing.strategy} max_retries={config.routing.max_retries}"
          f" aliases={len(config.routing.aliases)} fallbacks={len(config.routing.fallbacks)}"
          f" policies={len(config.routing.policies)}")
    print(f"  backends  {len(config.backends)}")
    for b in config.backends:
        models = ", ".join(b.models) if b.models else "discovered"
        print(f"    - {b.name:<16} {b.type:<9} zone={b.zone:<10} tier={b.tier} "
              f"priority={b.priority} {mask_url(b.url)} models: {models}")


def print_problems(source: str, in_file: list[ConfigError], in_env: list[ConfigError], *,
                   as_json: bool) -> None:
    """`nexus check` on a file `serve` would refuse: what is wrong in the file, and what
    is missing in this environment, each said as such."""
    if as_json:
        print(msgspec.json.encode({"valid": False, "source": source, "errors": [
            {"kind": kind, "key": e.key, "message": mask_urls_in(e.message)}
            for kind, found in (("file", in_file), ("environment", in_env))
            for e in found]}).decode())
        return
    print(f"nexus: {source}: not valid", file=sys.stderr)
    for title, found in (("in the file", in_file), ("missing in this environment", in_env)):
        if found:
            print(f"  {title}:", file=sys.stderr)
            for error in found:
                print(f"    {error.key}: {mask_urls_in(error.message)}", file=sys.stderr)


def print_invalid(error: ConfigError) -> None:
    """`nexus check --json` on a file that does not load: the error, for scripts."""
    print(msgspec.json.encode({"valid": False, "source": error.source, "error": {
        "key": error.key, "message": mask_urls_in(error.message)}}).decode())
