"""Codex CLI, which speaks only the Responses API, completes a turn through the gateway
to a backend that speaks only chat. `bash scripts/test` installs the pinned Codex
with npm into .tools/; without npm the test is skipped."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.support.helpers import GatewayFactory, MockFactory, backend, make_config

ROOT = Path(__file__).resolve().parents[2]


def codex_binary() -> str | None:
    for candidate in (os.environ.get("NEXUS_CODEX"),
                      str(ROOT / ".tools/node_modules/.bin/codex"), shutil.which("codex")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


async def test_codex_exec_completes_a_turn_through_a_chat_only_backend(
        mock_backend: MockFactory, gateway: GatewayFactory, tmp_path: Path) -> None:
    codex = codex_binary()
    if codex is None:
        pytest.skip("Codex CLI is not installed (bash scripts/test installs it with npm)")
    mock = await mock_backend("chat-only", reply="codex got through nexus")
    gw = await gateway(make_config([backend(mock, type="llamacpp")]))
    provider = (f'model_providers.nexus={{name="Nexus",base_url="{gw.url}/v1",'
                'wire_api="responses",env_key="NEXUS_KEY"}')
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "CODEX_HOME": str(home),
           "NEXUS_KEY": "unused"}
    process = await asyncio.create_subprocess_exec(
        codex, "exec", "--skip-git-repo-check", "-c", "model_provider=nexus", "-c", provider,
        "-c", "model=mock-model", "say hi", cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=600)  # a bound, not a speed
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "codex got through nexus" in text
    (sent,) = mock.chat_requests()  # one turn, one try: no 404s and retries before it
    assert sent.path == "/v1/chat/completions"
    assert sent.body["stream"] is True
    assert any("say hi" in str(m.get("content")) for m in sent.body["messages"])
    assert sent.body["tools"], "Codex's function tools reach the backend as chat tools"
