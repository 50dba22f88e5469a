"""What tracing costs: one replica's throughput with tracing off, on at 100 % sampling
and on at 1 %, in one run, spans going to a local OTLP/HTTP receiver; against the same
code with the `otel` extra hidden (as if not installed) and, with --before REF, the
gateway as it was at a git revision before tracing existed.

The replicas are pinned to one core; wrk, the mock backend and the receiver share the
other. Each variant is measured `--repeats` times, interleaved, and the median printed
with its share of the no-extra throughput, and the replica's CPU time per request (the
steadier figure: throughput swings with whatever else the machine does).

    python benchmarks/tracing_bench.py [--duration 4] [--repeats 3] [--connections 64]
    python benchmarks/tracing_bench.py --before 78d3aaa   # the commit before tracing

Needs wrk and the `otel` extra.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import (
    BODY,
    LOAD_CPU,
    PROXY_CPU,
    ROOT,
    free_port,
    nexus_config,
    pinned,
    run_args,
    served_by_wrk,
    start,
    start_mock,
)

RECEIVER = """
from aiohttp import web
async def traces(request):
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")
app = web.Application()
app.router.add_post("/v1/traces", traces)
app.router.add_get("/", lambda r: web.Response(text="up"))
web.run_app(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), print=None)
"""
# a sitecustomize that makes `import opentelemetry` fail, as with the extra not installed
HIDE_OTEL = """
import sys
class Hidden:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Hidden())
"""
VARIANTS = {"no extra": None, "off": None, "on, 100 %": 1.0, "on, 1 %": 0.01}


def with_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--before", metavar="REF",
                        help="also measure the gateway at this git revision")


def source_path(name: str, before: str | None, scratch: str) -> str | None:
    """The PYTHONPATH a variant runs under: the hidden extra, or the old revision's tree
    (the replicas run with -P, so the working directory's own tree does not win)."""
    if name == "no extra":
        with open(os.path.join(scratch, "sitecustomize.py"), "w") as hide:
            hide.write(HIDE_OTEL)
        return scratch
    if name == "before" and before:
        tree = os.path.join(scratch, "before")
        os.mkdir(tree)
        archive = subprocess.run(["git", "archive", before], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        return tree
    return None


def start_replica(name: str, ratio: float | None, mock_port: int, receiver_port: int,
                  python_path: str | None,
                  configs: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    path = nexus_config(port, f"http://127.0.0.1:{mock_port}")
    configs.append(path)
    if ratio is not None:
        with open(path, "a") as config:
            config.write(f'[tracing]\nenabled = true\nsample_ratio = {ratio}\n'
                         f'endpoint = "http://127.0.0.1:{receiver_port}"\n')
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = python_path
    command = [sys.executable, "-P", "-m", "nexus", "serve", "--config", path]
    return start(pinned(PROXY_CPU, command), f"http://127.0.0.1:{port}/health", env), port


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used (user + system), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(rates: dict[str, list[float]], costs: dict[str, list[float]]) -> None:
    """Throughput swings with what else the machine does; the replica's CPU time per
    request swings far less, and is the figure to compare variants by."""
    base_rate = statistics.median(rates["no extra"])
    base_cost = statistics.median(costs["no extra"])
    for name in rates:
        rate, cost = statistics.median(rates[name]), statistics.median(costs[name])
        print(f"tracing {name:<10} {rate:8.0f} req/s ({rate / base_rate:6.1%})  "
              f"{cost:6.1f} µs CPU/request ({cost / base_cost - 1:+6.1%})  "
              f"runs: {', '.join(f'{c:.1f}' for c in costs[name])} µs")


def main() -> None:
    args = run_args(__doc__, more=with_options)
    variants = dict(VARIANTS)
    if args.before:
        variants["before"] = None
    scratch = tempfile.mkdtemp(prefix="nexus-tracing-bench-")
    mock_port, receiver_port = free_port(), free_port()
    mock = start_mock(mock_port)
    receiver = start(pinned(LOAD_CPU, [sys.executable, "-c", RECEIVER, str(receiver_port)]),
                     f"http://127.0.0.1:{receiver_port}/")
    replicas: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    configs: list[str] = []
    try:
        for name, ratio in variants.items():
            replicas[name] = start_replica(name, ratio, mock_port, receiver_port,
                                           source_path(name, args.before, scratch), configs)
        body = BODY % ""
        rates: dict[str, list[float]] = {name: [] for name in variants}
        costs: dict[str, list[float]] = {name: [] for name in variants}
        for _, port in replicas.values():  # warm up
            served_by_wrk(f"http://127.0.0.1:{port}", body, args.connections, 1, cpu=LOAD_CPU)
        for _ in range(args.repeats):
            for name, (process, port) in replicas.items():
                before = cpu_seconds(process.pid)
                served = served_by_wrk(f"http://127.0.0.1:{port}", body, args.connections,
                                       args.duration, cpu=LOAD_CPU)
                rates[name].append(served / args.duration)
                costs[name].append((cpu_seconds(process.pid) - before) / served * 1e6)
        report(rates, costs)
    finally:
        for process, _ in replicas.values():
            process.terminate()
        receiver.terminate()
        mock.terminate()
        for path in configs:
            os.unlink(path)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
