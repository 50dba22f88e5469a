"""docker-compose.yml is the Procfile's cluster in containers: checked with `docker-compose
config` (no daemon is needed for that), service by service."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.support.cluster import ROOT


def compose() -> dict[str, Any]:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed (.ci/run installs it)")
        pytest.skip("docker-compose is not installed")
    out = subprocess.run([binary, "config"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    services: dict[str, Any] = yaml.safe_load(out)["services"]
    return services


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_compose_has_the_procfiles_services() -> None:
    assert set(compose()) == set(procfile())


def test_each_replica_has_the_procfiles_port_and_id() -> None:
    services = compose()
    for name, command in procfile().items():
        if not name.startswith("nexus"):
            continue
        env = services[name]["environment"]
        for key in ("NEXUS_PORT", "NEXUS_REPLICA_ID"):
            assert re.search(rf"{key}=(\S+)", command)[1] == str(env[key]), (name, key)  # type: ignore[index]
        assert services[name]["command"][:2] == ["nexus", "serve"]
        port = int(env["NEXUS_PORT"])
        assert services[name]["ports"] == [{"published": port, "target": port}]


def test_each_mock_gpu_serves_what_the_procfile_says() -> None:
    services = compose()
    for name, command in procfile().items():
        if not name.startswith("gpu"):
            continue
        words = command.split()
        args = words[words.index("tests/support/mock_backend.py"):]
        flags = dict(zip(args[1::2], args[2::2], strict=False))
        compose_args = services[name]["command"][1:]
        compose_flags = dict(zip(compose_args[1::2], compose_args[2::2], strict=False))
        for flag in ("--port", "--name", "--models"):
            assert compose_flags[flag] == flags[flag], (name, flag)
