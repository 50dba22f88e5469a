"""Configuration errors that name the file, the key path and what was expected."""

from __future__ import annotations


class ConfigError(Exception):
    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {message}")
