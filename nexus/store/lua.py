"""Load the Lua scripts shipped in `lua/` (next to the package, or inside it when installed)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2] / "lua"


def lua_script(name: str) -> str:
    path = SOURCE_DIR / f"{name}.lua"
    if path.exists():
        return path.read_text("utf-8")
    return resources.files("nexus").joinpath("lua", f"{name}.lua").read_text("utf-8")
