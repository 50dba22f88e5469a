"""The layers import only downward: checked over the source, transitively."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nexus"
# What the routing pipeline must never reach, directly or through what it imports.
PIPELINE_FORBIDDEN = ("aiohttp", "redis", "nexus.server", "nexus.store", "nexus.fleet")


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


GRAPH = {module_of(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def reached_from(start: str) -> set[str]:
    """Every module `start` imports, directly or not (ours followed, others listed)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for name in GRAPH.get(todo.pop(), set()):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def offending(start: str, forbidden: tuple[str, ...]) -> set[str]:
    return {name for name in reached_from(start)
            if any(name == f or name.startswith(f + ".") for f in forbidden)}


def test_the_pipeline_imports_no_http_redis_server_store_or_fleet() -> None:
    pipeline = [m for m in GRAPH if m.startswith("nexus.pipeline")]
    assert pipeline
    for module in pipeline:
        assert offending(module, PIPELINE_FORBIDDEN) == set(), module


def test_only_the_store_speaks_redis_exceptions() -> None:
    for module, names in GRAPH.items():
        if not module.startswith("nexus.store"):
            assert not {n for n in names if n.startswith("redis.exceptions")}, module


def test_the_checker_finds_what_it_forbids() -> None:  # the test itself can fail
    assert "aiohttp" in offending("nexus.server.forwarder", ("aiohttp",))
    assert "nexus.store.base" in offending("nexus.server.forwarder", ("nexus.store",))
