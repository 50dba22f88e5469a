"""The gateway's throughput with one dashboard open and streaming, against none, in one run.

Starts a redis-server, the mock backend and one Nexus replica (pinned to its own core,
sharing the fleet's state through Redis as in production), then drives it with wrk:
in turn with no dashboard open and with one reading /dashboard/api/stream (a second
process, on the load core), interleaved and repeated. Prints the medians, the ratio,
and the page's weight.

    python benchmarks/dashboard_bench.py [--duration 4] [--repeats 5]

Needs wrk and redis-server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import (
    LOAD_CPU,
    PROXY_CPU,
    free_port,
    run_args,
    served_by_wrk,
    start,
    start_mock,
    start_redis,
)
from tenant_bench import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "nexus" / "dashboard" / "static"
# A dashboard: reads the pushed states until killed, counting them.
READER = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/dashboard/api/stream") as stream:
    for line in stream:
        pass
"""


def main() -> None:
    args = run_args(__doc__, repeats=5)
    weight = sum(p.stat().st_size for p in STATIC.iterdir())
    print(f"page weight (HTML + JS + CSS, uncompressed): {weight / 1024:.1f} KB")
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, mock_port, port = free_port(), free_port(), free_port()
        server = start_redis(tmp, redis_port)
        mock = start_mock(mock_port)
        path = Path(tmp) / "nexus.toml"
        path.write_text(f'[server]\nport = {port}\n[redis]\n'
                        f'url = "redis://127.0.0.1:{redis_port}/0"\nprefix = "dash-bench"\n'
                        f'[[backends]]\nname = "gpu"\nurl = "http://127.0.0.1:{mock_port}"\n'
                        'type = "vllm"\nmax_concurrent = 4096\n')
        gateway = start(["taskset", "-c", PROXY_CPU, sys.executable, "-m", "nexus", "serve",
                         "--config", str(path)], f"http://127.0.0.1:{port}/health",
                        env=dict(os.environ))
        try:
            measure(f"http://127.0.0.1:{port}", args, gateway.pid)
        finally:
            for process in (gateway, mock, server):
                process.terminate()
                process.wait()


def measure(url: str, args: argparse.Namespace, pid: int) -> None:
    body = json.dumps({"model": "mock-model", "messages": [{"role": "user",
                                                             "content": "hello there"}]})
    rates: dict[str, list[float]] = {"none open": [], "one open": []}
    cpu_us: dict[str, list[float]] = {name: [] for name in rates}
    served_by_wrk(url, body, args.connections, 1, cpu=LOAD_CPU)  # warm up
    for _ in range(args.repeats):
        for name in rates:
            reader = subprocess.Popen(["taskset", "-c", LOAD_CPU, sys.executable, "-c",
                                       READER, url]) if name == "one open" else None
            cpu = cpu_seconds(pid)
            try:
                served = served_by_wrk(url, body, args.connections, args.duration,
                                       cpu=LOAD_CPU)
            finally:
                if reader is not None:
                    reader.kill()
                    reader.wait()
            rates[name].append(served / args.duration)
            cpu_us[name].append((cpu_seconds(pid) - cpu) * 1e6 / max(served, 1))
    none, one = (statistics.median(rates[n]) for n in rates)
    cpu_none, cpu_one = (statistics.median(cpu_us[n]) for n in rates)
    print(f"no dashboard open   {none:8.0f} req/s {cpu_none:6.0f} gateway CPU-us/request")
    print(f"one dashboard open  {one:8.0f} req/s {cpu_one:6.0f} gateway CPU-us/request")
    print(f"open/none: throughput {one / none:6.1%}, gateway CPU per request "
          f"{cpu_one / cpu_none:6.1%}   (medians of {args.repeats}, {args.connections} "
          "connections, non-streaming chat)")


if __name__ == "__main__":
    main()
