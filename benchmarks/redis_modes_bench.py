"""Paid requests through one replica on each Redis topology, in one run: standalone,
standalone with a replica and `wait_replicas = 1` (what WAIT costs), and a Cluster
of three masters.

Each paid answer's cost goes through spend.lua before its last byte leaves (batched
across the requests in flight), so the store's round trip is on every request's path.
The replica is pinned to its own core; wrk, the mock backend and the Redis servers
share the other. Prints req/s and the gateway's CPU per request, medians.

    python benchmarks/redis_modes_bench.py [--duration 4] [--repeats 3]

Needs wrk, redis-server and redis-cli.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gateway_bench import LOAD_CPU, PROXY_CPU, free_port, run_args, served_by_wrk, start  # noqa: E402
from tenant_bench import cpu_seconds  # noqa: E402

from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.redis_topologies import RedisClusterServers  # noqa: E402

BODY = json.dumps({"model": "gpt-x", "messages": [{"role": "user", "content": "hello"}]})


def replica_config(port: int, mock_port: int, redis_table: str) -> str:
    return (f'[server]\nport = {port}\n[redis]\n{redis_table}prefix = "modes-bench"\n'
            f'[[backends]]\nname = "paid"\nurl = "http://127.0.0.1:{mock_port}"\n'
            'type = "openai"\napi_key_env = "BENCH_KEY"\nmax_concurrent = 4096\n'
            'models = ["gpt-x"]\n[backends.pricing.gpt-x]\ninput = 1.0\noutput = 2.0\n')


def measure(name: str, text: str, tmp: Path, args: argparse.Namespace) -> tuple[float, float]:
    port = free_port()
    path = tmp / f"{name}.toml"
    path.write_text(text.replace("PORT", str(port)))
    env = {**os.environ, "BENCH_KEY": "sk-bench"}
    gateway = start(["taskset", "-c", PROXY_CPU, sys.executable, "-m", "nexus", "serve",
                     "--config", str(path)], f"http://127.0.0.1:{port}/health", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        served_by_wrk(url, BODY, args.connections, 1, cpu=LOAD_CPU)  # warm up
        rates, costs = [], []
        for _ in range(args.repeats):
            cpu = cpu_seconds(gateway.pid)
            served = served_by_wrk(url, BODY, args.connections, args.duration, cpu=LOAD_CPU)
            rates.append(served / args.duration)
            costs.append((cpu_seconds(gateway.pid) - cpu) * 1e6 / max(served, 1))
    finally:
        gateway.terminate()
        gateway.wait()
    return statistics.median(rates), statistics.median(costs)


def main() -> None:
    args = run_args(__doc__, repeats=3)
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        mock_port = free_port()
        mock = start(["taskset", "-c", LOAD_CPU, sys.executable, "tests/support/mock_backend.py",
                      "--port", str(mock_port), "--models", "gpt-x"],
                     f"http://127.0.0.1:{mock_port}/v1/models")
        (tmp / "m").mkdir()
        (tmp / "r").mkdir()
        master = RedisServer(tmp / "m", appendonly=False).start()
        replica = RedisServer(tmp / "r", appendonly=False).start()
        replica.client().execute_command("REPLICAOF", "127.0.0.1", str(master.port))
        cluster = RedisClusterServers(tmp / "c").start()
        modes = {
            "standalone": f'url = "{master.url}"\n',
            "standalone, wait_replicas = 1": f'url = "{master.url}"\nwait_replicas = 1\n',
            "cluster of 3 masters": f'mode = "cluster"\nurl = "{cluster.url}"\n',
        }
        try:
            results = {name: measure(name.split(",")[0].replace(" ", "-") + str(i),
                                     replica_config(0, mock_port, table).replace(
                                         "port = 0", "port = PORT"), tmp, args)
                       for i, (name, table) in enumerate(modes.items())}
        finally:
            for process in (mock,):
                process.terminate()
            master.kill()
            replica.kill()
            cluster.kill()
    base_rate, base_cpu = results["standalone"]
    for name, (rate, cpu) in results.items():
        print(f"{name:32} {rate:8.0f} req/s ({rate / base_rate:6.1%}) "
              f"{cpu:6.0f} gateway CPU-us/paid request (+{cpu - base_cpu:4.0f})")
    print(f"(medians of {args.repeats} runs of {args.duration} s, {args.connections} "
          "connections, every request paid)")


if __name__ == "__main__":
    main()
