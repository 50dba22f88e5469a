"""`nexus serve --workers 2` against `--workers 1` on this machine: throughput and the
CPU each request costs the workers (summed over the worker processes, so the load
generator's share does not blur it).

Starts a redis-server, the mock backend and the gateway with 1 and then 2 workers, and
drives each with wrk at 64 connections (new connections spread over the workers).

    python benchmarks/workers_bench.py [--duration 4] [--repeats 3]

Needs wrk and redis-server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import free_port, run_args, served_by_wrk, start

ROOT = Path(__file__).resolve().parents[1]


def children_cpu(parent: int) -> float:
    """CPU seconds of the serving processes: the parent (which serves itself with one
    worker and only supervises with more) and its live children (the workers)."""
    pids = [str(parent)]
    for task in Path(f"/proc/{parent}/task").iterdir():
        pids += (task / "children").read_text().split()
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def wrk(url: str, connections: int, duration: int) -> int:
    body = json.dumps({"model": "mock-model",
                       "messages": [{"role": "user", "content": "hello there"}]})
    return served_by_wrk(url, body, connections, duration)


def main() -> None:
    args = run_args(__doc__, repeats=3)
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, mock_port = free_port(), free_port()
        server = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                                   "--appendonly", "no", "--dir", tmp],
                                  stdout=subprocess.DEVNULL)
        mock = start([sys.executable, "tests/support/mock_backend.py", "--port", str(mock_port)],
                     f"http://127.0.0.1:{mock_port}/v1/models")
        try:
            for workers in (1, 2):
                measure(workers, tmp, mock_port, redis_port, args)
        finally:
            mock.terminate()
            server.terminate()


def measure(workers: int, tmp: str, mock_port: int, redis_port: int,
            args: argparse.Namespace) -> None:
    port = free_port()
    path = Path(tmp) / f"nexus-{workers}.toml"
    path.write_text(f'[server]\nport = {port}\n[redis]\nurl = "redis://127.0.0.1:{redis_port}/0"\n'
                    f'prefix = "workers-bench-{workers}"\n[[backends]]\nname = "gpu"\n'
                    f'url = "http://127.0.0.1:{mock_port}"\ntype = "vllm"\n'
                    'max_concurrent = 4096\n')
    parent = start([sys.executable, "-m", "nexus", "serve", "--workers", str(workers),
                    "--config", str(path)], f"http://127.0.0.1:{port}/health")
    url = f"http://127.0.0.1:{port}"
    try:
        wrk(url, args.connections, 1)  # warm up: every worker up and connected
        rates, costs = [], []
        for _ in range(args.repeats):
            cpu = children_cpu(parent.pid)
            served = wrk(url, args.connections, args.duration)
            costs.append((children_cpu(parent.pid) - cpu) * 1e6 / max(served, 1))
            rates.append(served / args.duration)
        print(f"--workers {workers}: {statistics.median(rates):8.0f} req/s  "
              f"{statistics.median(costs):6.0f} gateway CPU-us/request  "
              f"(medians of {args.repeats}, {args.connections} connections)")
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=60)


if __name__ == "__main__":
    main()
