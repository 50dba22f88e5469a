"""Read a TOML file (or nothing) into a validated `Config`, then apply env overrides."""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path

import msgspec

from nexus.config.errors import ConfigError
from nexus.config.schema import Config, RedisConfig, default_backend
from nexus.config.validate import validate

_AT_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")
DEFAULT_SOURCE = "<defaults>"


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Load the file at `path` (or `NEXUS_CONFIG`, or defaults) and apply env overrides."""
    config, source = read_config(path, env)
    validate(config, source)
    return config


def read_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> tuple[Config, str]:
    """The config as the schema takes it, with env overrides, not yet validated (for
    `nexus check`, which reports every problem rather than the first); its source."""
    env = os.environ if env is None else env
    path = path or env.get("NEXUS_CONFIG") or None
    if path is None:
        config, source = Config(), DEFAULT_SOURCE
    else:
        source = str(path)
        config = decode_toml(_read(source), source)
    config = _apply_env(config, env)
    if not config.backends:
        config.backends = [default_backend()]
    return config, source


def decode_toml(text: bytes, source: str) -> Config:
    try:
        return msgspec.toml.decode(text, type=Config)
    except msgspec.ValidationError as exc:
        key, message = _split_validation_error(str(exc))
        raise ConfigError(source, key, message) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(source, "", f"invalid TOML: {exc}") from None


def _read(source: str) -> bytes:
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read file: {exc.strerror}") from None


def _split_validation_error(text: str) -> tuple[str, str]:
    """Turn msgspec's "Expected `int`, got `str` - at `$.server.port`" into (key, message)."""
    match = _AT_PATH.match(text)
    assert match is not None  # the pattern matches any string
    message, path = match["msg"], (match["path"] or "").lstrip(".")
    unknown = _UNKNOWN_FIELD.match(message)
    if unknown:
        field = unknown["field"]
        path = f"{path}.{field}" if path else field
        message = "unknown key (check the spelling against `nexus config init`)"
    elif message.startswith("Invalid enum value"):
        allowed = allowed_values(path)
        if allowed:
            message += "; expected one of: " + ", ".join(repr(v) for v in allowed)
    return path, message.replace("`", "")


def allowed_values(path: str) -> tuple[object, ...]:
    """The values a Literal-typed key takes, found by walking the schema along `path`
    ("backends[0].type" -> BackendConfig.type); () when the key is not a Literal."""
    node: object = Config
    for part in re.sub(r"\[\d+\]", "", path).split("."):
        hints = typing.get_type_hints(node) if isinstance(node, type) else {}
        node = _unwrap(hints.get(part))
    return typing.get_args(node) if typing.get_origin(node) is typing.Literal else ()


def _unwrap(hint: object) -> object:
    """list[X], X | None and Annotated[X, ...] down to X."""
    while True:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is typing.Annotated or origin is list:
            hint = args[0]
        elif origin in (typing.Union, types.UnionType):
            hint = next(a for a in args if a is not type(None))
        else:
            return hint


def _apply_env(config: Config, env: Mapping[str, str]) -> Config:
    if host := env.get("NEXUS_HOST"):
        config.server.host = host
    if port := env.get("NEXUS_PORT"):
        config.server.port = _parse_port(port)
    if redis_url := env.get("NEXUS_REDIS_URL"):
        config.redis = config.redis or RedisConfig()
        config.redis.url = redis_url
    if replica := env.get("NEXUS_REPLICA_ID"):
        config.fleet.replica_id = replica
    return config


def _parse_port(value: str) -> int:
    if value.isdigit() and 1 <= int(value) <= 65535:
        return int(value)
    raise ConfigError("environment", "NEXUS_PORT", f"expected a port 1..65535, got {value!r}")
