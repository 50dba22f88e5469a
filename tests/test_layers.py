"""The house plan holds: the import-linter contracts, what only some rooms may import,
and every module importable on its own in a fresh interpreter (as aiohttp checks)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nexus"
# What the routing pipeline must never reach, directly or through what it imports.
ROUTING_FORBIDDEN = ("aiohttp", "redis", "nexus.http", "nexus.proxy", "nexus.store",
                     "nexus.fleet")
# Who may serve or answer HTTP requests: the surface, one call's trip, and `nexus serve`.
AIOHTTP_WEB_ALLOWED = ("nexus.http", "nexus.proxy", "nexus.cli.serve")


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


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def offending(start: str, forbidden: tuple[str, ...]) -> set[str]:
    return {name for name in reached_from(start) if within(name, forbidden)}


def test_the_import_contracts_hold() -> None:
    """The layer order, Redis only in its rooms, routing on snapshots, no circles."""
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_routing_imports_no_http_redis_store_fleet_or_proxy() -> None:
    routing = [m for m in GRAPH if m.startswith("nexus.routing")]
    assert routing
    for module in routing:
        assert offending(module, ROUTING_FORBIDDEN) == set(), module


def test_only_the_surface_the_proxy_and_serve_import_aiohttp_web() -> None:
    for module, names in GRAPH.items():
        if within(module, AIOHTTP_WEB_ALLOWED):
            continue
        assert not {n for n in names if within(n, ("aiohttp.web",))}, module


def test_only_the_store_speaks_redis_exceptions() -> None:
    for module, names in GRAPH.items():
        if not module.startswith("nexus.store"):
            assert not {n for n in names if n.startswith("redis.exceptions")}, module


def test_no_module_lies_loose_but_the_composition_root() -> None:
    loose = {p.name for p in PACKAGE.glob("*.py")}
    assert loose == {"__init__.py", "__main__.py", "replica.py"}


def test_the_checker_finds_what_it_forbids() -> None:  # the test itself can fail
    assert "aiohttp" in offending("nexus.proxy.forwarder", ("aiohttp",))
    assert "nexus.store.base" in offending("nexus.proxy.forwarder", ("nexus.store",))
    assert "aiohttp.web" in GRAPH["nexus.http.app"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_each_module_imports_alone(module: str) -> None:
    """No module leans on another having been imported first, and none warns."""
    done = subprocess.run([sys.executable, "-W", "error", "-c", f"import {module}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
