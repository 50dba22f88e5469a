"""Read a TOML file (or nothing) into a validated `Config`, then apply env overrides."""

from __future__ import annotations

import os
import re
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
    validate(config, source)
    return config


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
    return path, message.replace("`", "")


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
