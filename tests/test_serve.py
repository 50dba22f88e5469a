"""`nexus serve` as a newcomer runs it: no config file, no Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


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
