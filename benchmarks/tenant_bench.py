"""Tenant limits: what a rate-limited key costs against an unlimited one, in one run.

Starts a redis-server, a mock backend and one Nexus replica (pinned to its own core)
with keys from the config: `limited` (rpm and tpm far above the load, so nothing is
refused and every request pays the fleet-wide check), `unlimited`, and `--spread`
more limited keys that wrk takes in turn (`spread`: each key at a modest pace, so it
earns only the smallest allowances and more of its requests go to Redis). wrk drives each in
turn, interleaved and repeated; the medians give the limited traffic's throughput as
a share of the unlimited key's, and `INFO commandstats` gives the Redis commands each
limited request sent. Last, the key table's lookup cost with 10 and 10,000 keys.

    python benchmarks/tenant_bench.py [--duration 4] [--repeats 3] [--spread 1000]

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
LIMITS = 'rpm = 1000000000\ntpm = 1000000000000\n'


def config(backend_url: str, redis_url: str, spread: int) -> str:
    return (f'[redis]\nurl = "{redis_url}"\nprefix = "tenant-bench"\n'
            f'[[backends]]\nname = "gpu"\nurl = "{backend_url}"\ntype = "vllm"\n'
            'max_concurrent = 4096\n'
            f'[[keys]]\nname = "limited"\nsecret_sha256 = "{sha256_of(KEYS["limited"])}"\n'
            + LIMITS +
            f'[[keys]]\nname = "unlimited"\nsecret_sha256 = "{sha256_of(KEYS["unlimited"])}"\n'
            + "".join(f'[[keys]]\nname = "spread-{n}"\n'
                      f'secret_sha256 = "{sha256_of(f"spread-{n}")}"\n' + LIMITS
                      for n in range(1, spread + 1)))


def wrk(url: str, secret: str, connections: int, duration: int, spread: int = 0) -> int:
    """Served requests of one key, or with `spread`, of keys spread-1 .. spread-N in turn."""
    body = json.dumps({"model": "mock-model", "max_tokens": 16,
                       "messages": [{"role": "user", "content": "hello there"}]})
    rotate = ("local n = 0\nrequest = function()\n"
              f"  n = n % {spread} + 1\n"
              '  wrk.headers["Authorization"] = "Bearer spread-" .. n\n'
              "  return wrk.format()\nend\n") if spread else ""
    return served_by_wrk(url, body, connections, duration,
                         {} if spread else {"Authorization": f"Bearer {secret}"},
                         cpu=LOAD_CPU, lua=rotate)


def lookup_ns(keys: int, rounds: int = 200_000) -> float:
    table = TenantTable([KeyRecord(name=f"k{i}", secret_sha256=sha256_of(f"s{i}"))
                         for i in range(keys)])
    secret = f"s{keys // 2}"
    started = time.perf_counter_ns()
    for _ in range(rounds):
        table.authenticate(secret)
    return (time.perf_counter_ns() - started) / rounds


def main() -> None:
    args = run_args(__doc__, repeats=3, more=lambda parser: parser.add_argument(
        "--spread", type=int, default=1000, help="limited keys taken in turn (0: none)"))
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, mock_port, port = free_port(), free_port(), free_port()
        server = start_redis(tmp, redis_port)
        mock = start_mock(mock_port)
        path = Path(tmp) / "nexus.toml"
        path.write_text(config(f"http://127.0.0.1:{mock_port}",
                               f"redis://127.0.0.1:{redis_port}/0", args.spread))
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
    runs = [*KEYS, *(["spread"] if args.spread else [])]
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpu_us: dict[str, list[float]] = {name: [] for name in runs}
    redis_us: dict[str, list[float]] = {name: [] for name in runs}  # Redis's own CPU
    sent_per_request: dict[str, list[float]] = {name: [] for name in runs}
    wrk(url, KEYS["unlimited"], args.connections, 1)  # warm up
    for repeat in range(args.repeats):
        # each goes first in every other round: whatever the order does cancels
        for name in runs[::-1] if repeat % 2 else runs:
            before, cpu, redis_cpu = commands(client), cpu_seconds(pid), cpu_seconds(redis_pid)
            served = wrk(url, KEYS.get(name, ""), args.connections, args.duration,
                         args.spread if name == "spread" else 0)
            after = commands(client)
            rates[name].append(served / args.duration)
            cpu_us[name].append((cpu_seconds(pid) - cpu) * 1e6 / max(served, 1))
            redis_us[name].append((cpu_seconds(redis_pid) - redis_cpu) * 1e6 / max(served, 1))
            sent = sum(after.get(k, 0) - before.get(k, 0)  # scripts are what clients send;
                       for k in ("evalsha", "eval", "hgetall"))  # what runs inside them is
            sent_per_request[name].append(sent / max(served, 1))  # counted apart by Redis
    rate, cpu = ({n: statistics.median(figures[n]) for n in runs} for figures in (rates, cpu_us))
    print(f"unlimited key {rate['unlimited']:8.0f} req/s {cpu['unlimited']:6.0f} CPU-us/request"
          f"   limited key {rate['limited']:8.0f} req/s {cpu['limited']:6.0f} CPU-us/request")
    print(f"limited/unlimited: throughput {rate['limited'] / rate['unlimited']:6.1%}, gateway "
          f"CPU per request {cpu['limited'] / cpu['unlimited']:6.1%}   (medians of "
          f"{args.repeats}, {args.connections} connections)")
    if args.spread:
        print(f"{args.spread} limited keys in turn {rate['spread']:8.0f} req/s "
              f"{cpu['spread']:6.0f} CPU-us/request: throughput "
              f"{rate['spread'] / rate['unlimited']:6.1%} of the unlimited key's, Redis "
              f"commands sent per request {statistics.median(sent_per_request['spread']):.3f}")
    print(f"redis-server CPU per request: limited {statistics.median(redis_us['limited']):.1f} us,"
          f" unlimited {statistics.median(redis_us['unlimited']):.1f} us (it shares the load's"
          " core)")
    scripts = {k[8:]: v for k, v in client.info("commandstats").items()
               if k.startswith("cmdstat_ev")}
    print("script calls in Redis: " + ", ".join(
        f"{k} {v['calls']} calls, {v['usec_per_call']:.0f} us each" for k, v in scripts.items()))
    print("Redis commands sent per limited request: "
          f"{statistics.median(sent_per_request['limited']):.3f}"
          " (script calls and the snapshot's reads)")
    with urllib.request.urlopen(f"{url}/metrics") as response:
        judged = [line.split("{", 1)[1] for line in response.read().decode().splitlines()
                  if line.startswith("nexus_rate_checks_total{")]
    print("limited requests (both runs) judged by: " + ", ".join(
        line.replace('by="', "").replace('"} ', " ") for line in judged))


if __name__ == "__main__":
    main()
