"""Load the Lua scripts, one per file, shipped beside this module as package data
(`nexus/store/scripts/NAME.lua`) and read with importlib.resources."""

from __future__ import annotations

from importlib import resources


def lua_script(name: str) -> str:
    return resources.files("nexus.store").joinpath("scripts", f"{name}.lua").read_text("utf-8")
