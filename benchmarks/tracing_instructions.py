"""What tracing off costs, counted in instructions rather than seconds.

Throughput on a shared two-core machine swings by 10 % from run to run, too much to
see a 1 % difference. valgrind's callgrind counts the instructions a replica executes,
which does not depend on what else the machine is doing. Each variant's replica runs
under callgrind with collection off; after a warm-up, collection is switched on for a
fixed number of requests (sent by a client outside valgrind), and the count per
request is printed with its difference from the replica without the `otel` extra.

    python benchmarks/tracing_instructions.py [--requests 2000] [--before 78d3aaa]

Needs valgrind (callgrind_control comes with it). Slow: a replica under valgrind runs
about fifty times slower, so a variant takes a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import BODY, free_port, nexus_config, start, start_mock
from tracing_bench import source_path

VARIANTS = ("no extra", "off", "before")


async def send(url: str, count: int, concurrency: int = 8) -> int:
    """`count` chat requests, `concurrency` at a time; how many got a 200."""
    body = (BODY % "").encode()
    served = 0
    queue = iter(range(count))
    async with aiohttp.ClientSession() as http:
        async def worker() -> None:
            nonlocal served
            for _ in queue:
                async with http.post(url + "/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    served += r.status == 200
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return served


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                   capture_output=True)


def instructions(directory: str) -> int:
    """The instruction total of the last dump callgrind wrote."""
    dumps = sorted(glob.glob(os.path.join(directory, "callgrind.out.*")),
                   key=os.path.getmtime)
    with open(dumps[-1]) as dump:
        for line in dump:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {dumps[-1]}")


def measure(name: str, requests: int, mock_url: str, before: str | None,
            scratch: str) -> float:
    port = free_port()
    config = nexus_config(port, mock_url)
    out = tempfile.mkdtemp(dir=scratch)
    env = dict(os.environ)
    python_path = source_path(name, before, tempfile.mkdtemp(dir=scratch))
    if python_path is not None:
        env["PYTHONPATH"] = python_path
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={out}/callgrind.out.%p", sys.executable, "-P", "-m",
               "nexus", "serve", "--config", config]
    replica = start(command, f"http://127.0.0.1:{port}/health", env, within=300)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(send(url, 300))  # warm up: imports, caches, pools
        control(replica.pid, "--instr=on")
        served = asyncio.run(send(url, requests))
        control(replica.pid, "--dump")
        control(replica.pid, "--instr=off")
        return instructions(out) / served
    finally:
        replica.terminate()
        replica.wait()
        os.unlink(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--before", metavar="REF", help="the gateway at a git revision")
    args = parser.parse_args()
    if not shutil.which("callgrind_control"):
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    scratch = tempfile.mkdtemp(prefix="nexus-instructions-")
    mock_port = free_port()
    mock = start_mock(mock_port)
    try:
        counts = {name: measure(name, args.requests, f"http://127.0.0.1:{mock_port}",
                                args.before, scratch)
                  for name in VARIANTS if name != "before" or args.before}
    finally:
        mock.terminate()
        shutil.rmtree(scratch, ignore_errors=True)
    base = counts["no extra"]
    for name, count in counts.items():
        label = f"before ({args.before})" if name == "before" else name
        print(f"{label:<18} {count:12,.0f} instructions/request  {count / base - 1:+7.2%}")


if __name__ == "__main__":
    main()
