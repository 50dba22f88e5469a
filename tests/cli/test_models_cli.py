"""`nexus models load|unload|migrate|ops` against a running gateway: the operation is
followed to its end with a progress bar, a failed one exits 1 with its reason."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tests.support.helpers import GatewayFactory, MockFactory, backend, make_config


async def nexus(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "NEXUS_ADMIN_KEY": ""}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nexus", *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)  # a bound only
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_load_follows_the_operation_and_ops_lists_it(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    ollama = await mock_backend("gpu", flavor="ollama", pull_fails=["nope:1b"])
    gw = await gateway(make_config([backend(ollama, type="ollama")]))
    code, _, err = await nexus("models", "load", "qwen3:8b", "--backend", "gpu",
                               "--url", gw.url)
    assert code == 0, err
    assert "load qwen3:8b on gpu [" in err
    assert err.rstrip().endswith("100% done")
    code, out, _ = await nexus("models", "ops", "--url", gw.url, "--json")
    (listed,) = json.loads(out)
    assert (listed["model"], listed["state"]) == ("qwen3:8b", "done")
    code, _, err = await nexus("models", "load", "nope:1b", "--backend", "gpu",
                               "--url", gw.url)
    assert code == 1
    assert "failed: " in err
    assert "file does not exist" in err
    code, out, _ = await nexus("models", "unload", "qwen3:8b", "--backend", "gpu",
                               "--url", gw.url, "--json")
    assert code == 0
    assert json.loads(out)["state"] == "done"
    code, _, err = await nexus("models", "load", "m", "--backend", "nowhere", "--url", gw.url)
    assert code == 1
    assert "404" in err
    assert "nowhere" in err
