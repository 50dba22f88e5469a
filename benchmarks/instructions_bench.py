"""CPU instructions per request: the gateway against the bare proxy, under callgrind.

Throughput on a shared 2-core machine swings by 10-20 % from run to run; the
instructions a process executes per request do not (two runs agree within
about 1 %). Each proxy runs under `valgrind --tool=callgrind` with
instrumentation off while it starts and warms up, then on for N requests sent
by 16 concurrent clients, non-streaming and streaming. Cache misses are not in
the count, so this is the work done, not the time it takes: use it to compare
versions of the code, and gateway_bench.py for throughput.

    python benchmarks/instructions_bench.py [--requests 400]

Needs valgrind (Debian: apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
from gateway_bench import free_port, nexus_config, pinned, start

BODY = {"model": "mock-model", "messages": [{"role": "user", "content": "hello there"}]}
WARM_UP = 50
CLIENTS = 16


async def drive(url: str, requests: int, stream: bool) -> None:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        left = requests

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url + "/v1/chat/completions",
                                        json={**BODY, "stream": stream}) as response:
                    await response.read()
                    assert response.status == 200, response.status

        await asyncio.gather(*(client() for _ in range(CLIENTS)))


def instructions_per_request(command: list[str], ready: str, url: str, requests: int,
                             stream: bool, env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        dump = f"{out}/callgrind.%p"
        process = start(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                         f"--callgrind-out-file={dump}", *command], ready, env, within=180)
        try:
            asyncio.run(drive(url, WARM_UP, stream))
            control(process.pid, "--instr=on")
            asyncio.run(drive(url, requests, stream))
            control(process.pid, "--instr=off")
            control(process.pid, "--dump")
            totals = [int(m[1]) for f in Path(out).glob("callgrind.*")
                      for m in re.finditer(r"^totals: (\d+)", f.read_text(), re.M)]
        finally:
            process.terminate()
            process.wait(30)
    return max(totals) / requests


def control(pid: int, option: str) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    mock_port, bare_port, nexus_port = free_port(), free_port(), free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    config = nexus_config(nexus_port, mock_url)
    env = {**os.environ, "NEXUS_CONFIG": config}
    mock = start(pinned("0", [sys.executable, "tests/support/mock_backend.py", "--port",
                              str(mock_port)]), mock_url + "/v1/models")
    bare = ([sys.executable, "benchmarks/bare_proxy.py", "--port", str(bare_port),
             "--upstream", mock_url], f"http://127.0.0.1:{bare_port}/",
            f"http://127.0.0.1:{bare_port}")
    nexus = ([sys.executable, "-m", "nexus", "serve"], f"http://127.0.0.1:{nexus_port}/health",
             f"http://127.0.0.1:{nexus_port}")
    try:
        print(f"{'mode':<11}{'bare proxy':>12}{'nexus':>12}{'bare / nexus':>14}")
        for stream in (False, True):
            counts = [instructions_per_request(*target, args.requests, stream, env)
                      for target in (bare, nexus)]
            print(f"{'stream' if stream else 'non-stream':<11}{counts[0]:>12,.0f}"
                  f"{counts[1]:>12,.0f}{counts[0] / counts[1]:>13.0%}", flush=True)
    finally:
        mock.terminate()
        mock.wait(10)
        os.unlink(config)


if __name__ == "__main__":
    main()
