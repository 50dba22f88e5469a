"""Tenant limits: what a rate-limited key costs against an unlimited one, in one run.

Starts a redis-server, a mock backend and one Nexus replica (pinned to its own core)
with two keys from the config: `limited` (rpm and tpm far above the load, so nothing is
refused and every request pays the fleet-wide check) and `unlimited`. wrk drives each
key in turn, interleaved and repeated; the medians give the limited key's throughput as
a share of the unlimited one's, and `INFO commandstats` gives the Redis commands each
limited request sent. Last, the key table's lookup cost with 10 and 10,000 keys.

    python benchmarks/tenant_bench.py [--duration 4] [--repeats 3]

Needs wrk and redis-server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import commands
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nexus.tenants.model import KeyRecord, sha256_of  # noqa: E402
from nexus.tenants.table import TenantTable  # noqa: E402

KEYS = {"limited": "limited-secret", "unlimited": "unlimited-secret"}


def config(backend_url: str, redis_url: str) -> str:
    return (f'[redis]\nurl = "{redis_url}"\nprefix = "tenant-bench"\n'
            f'[[backends]]\nname = "gpu"\nurl = "{backend_url}"\ntype = "vllm"\n'
            'max_concurrent = 4096\n'
            f'[[keys]]\nname = "limited"\nsecret_sha256 = "{sha256_of(KEYS["limited"])}"\n'
            'rpm = 1000000000\ntpm = 1000000000000\n'
            f'[[keys]]\nname = "unlimited"\nsecret_sha256 = "{sha256_of(KEYS["unlimited"])}"\n')


def wrk(url: str, secret: str, connections: int, duration: int) -> int:
    body = json.dumps({"model": "mock-model", "max_tokens": 16,
                       "messages": [{"role": "user", "content": "hello there"}]})
    return served_by_wrk(url, body, connections, duration,
                         {"Authorization": f"Bearer {secret}"}, cpu=LOAD_CPU)


def lookup_ns(keys: int, rounds: int = 200_000) -> float:
    table = TenantTable([KeyRecord(name=f"k{i}", secret_sha256=sha256_of(f"s{i}"))
                         for i in range(keys)])
    secret = f"s{keys // 2}"
    started = time.perf_counter_ns()
    for _ in range(rounds):
        table.authenticate(secret)
    return (time.perf_counter_ns() - started) / rounds


def main() -> None:
    args = run_args(__doc__, repeats=3)
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, mock_port, port = free_port(), free_port(), free_port()
        server = start_redis(tmp, redis_port)
        mock = start_mock(mock_port)
        path = Path(tmp) / "nexus.toml"
        path.write_text(config(f"http://127.0.0.1:{mock_port}",
                               f"redis://127.0.0.1:{redis_port}/0"))
        env = {**os.environ, "NEXUS_CONFIG": str(path), "NEXUS_PORT": str(port)}
        gateway = start(["taskset", "-c", PROXY_CPU, sys.executable, "-m", "nexus", "serve"],
                        f"http://127.0.0.1:{port}/health", env=env)
        client = redis.Redis(port=redis_port, decode_responses=True)
        url = f"http://127.0.0.1:{port}"
        try:
            measure(client, url, args, gateway.pid, server.pid)
        finally:
            for process in (gateway, mock, server):
                process.terminate()
                process.wait()
    for keys in (10, 10_000):
        print(f"key table lookup (sha256 + dict), {keys:>6} keys: {lookup_ns(keys):6.0f} ns")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(client: redis.Redis, url: str, args: argparse.Namespace, pid: int,
            redis_pid: int) -> None:
    rates: dict[str, list[float]] = {name: [] for name in KEYS}
    cpu_us: dict[str, list[float]] = {name: [] for name in KEYS}
    redis_us: dict[str, list[float]] = {name: [] for name in KEYS}  # Redis's own CPU
    sent_per_request: list[float] = []
    wrk(url, KEYS["unlimited"], args.connections, 1)  # warm up
    for repeat in range(args.repeats):
        order = list(KEYS.items())  # each key goes first in every other round: whatever
        for name, secret in order[::-1] if repeat % 2 else order:  # the order does cancels
            before, cpu, redis_cpu = commands(client), cpu_seconds(pid), cpu_seconds(redis_pid)
            served = wrk(url, secret, args.connections, args.duration)
            after = commands(client)
            rates[name].append(served / args.duration)
            cpu_us[name].append((cpu_seconds(pid) - cpu) * 1e6 / max(served, 1))
            redis_us[name].append((cpu_seconds(redis_pid) - redis_cpu) * 1e6 / max(served, 1))
            if name == "limited":  # scripts are what clients send; what runs inside them
                sent = sum(after.get(k, 0) - before.get(k, 0)  # is counted apart by Redis
                           for k in ("evalsha", "eval", "hgetall"))
                sent_per_request.append(sent / max(served, 1))
    limited, unlimited = (statistics.median(rates[n]) for n in ("limited", "unlimited"))
    cpu_limited, cpu_unlimited = (statistics.median(cpu_us[n]) for n in ("limited",
                                                                         "unlimited"))
    print(f"unlimited key {unlimited:8.0f} req/s {cpu_unlimited:6.0f} CPU-us/request   "
          f"limited key {limited:8.0f} req/s {cpu_limited:6.0f} CPU-us/request")
    print(f"limited/unlimited: throughput {limited / unlimited:6.1%}, gateway CPU per request "
          f"{cpu_limited / cpu_unlimited:6.1%}   (medians of {args.repeats}, "
          f"{args.connections} connections)")
    print(f"redis-server CPU per request: limited {statistics.median(redis_us['limited']):.1f} us,"
          f" unlimited {statistics.median(redis_us['unlimited']):.1f} us (it shares the load's"
          " core)")
    scripts = {k[8:]: v for k, v in client.info("commandstats").items()
               if k.startswith("cmdstat_ev")}
    print("script calls in Redis: " + ", ".join(
        f"{k} {v['calls']} calls, {v['usec_per_call']:.0f} us each" for k, v in scripts.items()))
    print(f"Redis commands sent per limited request: {statistics.median(sent_per_request):.3f}"
          " (script calls and the snapshot's reads)")
    with urllib.request.urlopen(f"{url}/metrics") as response:
        judged = [line.split("{", 1)[1] for line in response.read().decode().splitlines()
                  if line.startswith("nexus_rate_checks_total{")]
    print("limited requests judged by: " + ", ".join(
        line.replace('by="', "").replace('"} ', " ") for line in judged))


if __name__ == "__main__":
    main()
