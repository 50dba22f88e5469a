"""Load the Lua scripts kept in `lua/`, one per file, beside the package."""

from __future__ import annotations

from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2] / "lua"


def lua_script(name: str) -> str:
    path = SOURCE_DIR / f"{name}.lua"
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        raise RuntimeError(f"{path} is missing: install Nexus from its source tree "
                           "(pip install -e .), which keeps lua/ beside nexus/") from None
