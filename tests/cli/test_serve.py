"""`nexus serve` as a newcomer runs it: no config file, no Redis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_health(url: str, process: subprocess.Popen[bytes], deadline_s: float) -> bytes:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nexus serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bytes(response.read())
        except OSError:
            time.sleep(0.05)  # polling with a deadline, not a fixed wait
    pytest.fail("nexus serve did not answer /health in time")


def test_serve_with_no_config_and_no_redis_answers_health(tmp_path: object) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env["NEXUS_PORT"] = str(port)
    process = subprocess.Popen([sys.executable, "-m", "nexus", "serve"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = wait_for_health(f"http://127.0.0.1:{port}/health", process, 30)
        assert b'"backends":{"total":1' in body
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output.decode()
    assert b"Traceback" not in output


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_serve_routes_on_either_event_loop(tmp_path: Path, loop: str) -> None:
    """uvloop (the `fast` extra, installed with the tests) when present; asyncio's when
    NEXUS_EVENT_LOOP=asyncio. A request goes through a real mock backend on each."""
    mock_port, port = free_port(), free_port()
    mock = subprocess.Popen([sys.executable, "tests/support/mock_backend.py", "--port",
                             str(mock_port), "--models", "m"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = tmp_path / "nexus.toml"
    config.write_text(f'[[backends]]\nname = "gpu"\nurl = "http://127.0.0.1:{mock_port}"\n'
                      'models = ["m"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(NEXUS_PORT=str(port), NEXUS_EVENT_LOOP=loop, NEXUS_CONFIG=str(config))
    process = subprocess.Popen([sys.executable, "-m", "nexus", "serve"], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_health(f"http://127.0.0.1:{port}/health", process, 30)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions", method="POST",
            data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            .encode(), headers={"Content-Type": "application/json"})
        deadline = time.monotonic() + 30
        while True:  # the mock may still be starting: polling with a deadline
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.headers["X-Nexus-Backend"] == "gpu"
                    break
            except urllib.error.HTTPError:
                assert time.monotonic() < deadline, "no answer through the mock"
                time.sleep(0.05)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
        mock.terminate()
        mock.wait()
    assert f"{loop} event loop".encode() in output
    assert b"Traceback" not in output
