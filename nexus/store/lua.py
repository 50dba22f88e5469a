"""Load the Lua scripts, one per file: `lua/` in the repository, shipped in the wheel as
the package data `nexus.lua` and read with importlib.resources."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

SOURCE_TREE = Path(__file__).resolve().parents[2] / "lua"  # running from a checkout


def scripts() -> Traversable:
    try:
        return resources.files("nexus.lua")
    except ModuleNotFoundError:  # `nexus` imported from the source tree itself
        return SOURCE_TREE


def lua_script(name: str) -> str:
    return scripts().joinpath(f"{name}.lua").read_text("utf-8")
