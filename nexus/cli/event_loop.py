"""The event loop a replica serves on: uvloop when it is installed (the `fast` extra,
`pip install 'nexus-gateway[fast]'`), asyncio's own otherwise. NEXUS_EVENT_LOOP=asyncio
forces asyncio's (for comparisons), =uvloop insists on uvloop."""

from __future__ import annotations

import asyncio
import importlib
import os

from nexus.config.errors import ConfigError


def new_event_loop(choice: str | None = None) -> tuple[asyncio.AbstractEventLoop, str]:
    """(the loop, its name)."""
    wanted = (choice if choice is not None else os.environ.get("NEXUS_EVENT_LOOP", "")).lower()
    if wanted not in ("", "uvloop", "asyncio"):
        raise ConfigError("environment", "NEXUS_EVENT_LOOP",
                          f"expected 'uvloop' or 'asyncio', got {wanted!r}")
    if wanted != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if wanted == "uvloop":
                raise ConfigError("environment", "NEXUS_EVENT_LOOP", "uvloop is not installed: "
                                  "pip install 'nexus-gateway[fast]'") from None
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop, "uvloop"
    return asyncio.new_event_loop(), "asyncio"
