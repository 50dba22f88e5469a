"""/v1/messages streaming against /v1/chat/completions streaming, in one run, through the
same OpenAI-compatible backend: what the Messages translation costs.

Starts the mock backend and one Nexus replica (pinned to its own core, no Redis),
then drives each endpoint with wrk in turn, interleaved and repeated; the medians
give the Messages stream's throughput as a share of the chat stream's, and the
gateway's CPU per request for each.

    python benchmarks/messages_bench.py [--duration 4] [--repeats 3] [--chunks 3]

Needs wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import LOAD_CPU, PROXY_CPU, free_port, nexus_config, served_by_wrk, start
from tenant_bench import cpu_seconds

HI = [{"role": "user", "content": "hello there"}]
ENDPOINTS = {
    "chat": ("/v1/chat/completions", {"model": "mock-model", "messages": HI, "stream": True,
                                      "max_tokens": 16}),
    "messages": ("/v1/messages", {"model": "mock-model", "messages": HI, "stream": True,
                                  "max_tokens": 16}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--chunks", type=int, default=3, help="content events per answer")
    args = parser.parse_args()
    mock_port, port = free_port(), free_port()
    mock = start(["taskset", "-c", LOAD_CPU, sys.executable, "tests/support/mock_backend.py",
                  "--port", str(mock_port), "--chunks", str(args.chunks)],
                 f"http://127.0.0.1:{mock_port}/v1/models")
    config = nexus_config(port, f"http://127.0.0.1:{mock_port}", max_concurrent=4096)
    env = {**os.environ, "NEXUS_CONFIG": config}
    gateway = start(["taskset", "-c", PROXY_CPU, sys.executable, "-m", "nexus", "serve"],
                    f"http://127.0.0.1:{port}/health", env=env)
    try:
        measure(f"http://127.0.0.1:{port}", args, gateway.pid)
    finally:
        for process in (gateway, mock):
            process.terminate()
            process.wait()
        os.unlink(config)


def measure(url: str, args: argparse.Namespace, pid: int) -> None:
    rates: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
    cpu_us: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
    for path, body in ENDPOINTS.values():  # warm up both paths
        served_by_wrk(url, json.dumps(body), args.connections, 1, cpu=LOAD_CPU, path=path)
    for _ in range(args.repeats):
        for name, (path, body) in ENDPOINTS.items():
            cpu = cpu_seconds(pid)
            served = served_by_wrk(url, json.dumps(body), args.connections, args.duration,
                                   cpu=LOAD_CPU, path=path)
            rates[name].append(served / args.duration)
            cpu_us[name].append((cpu_seconds(pid) - cpu) * 1e6 / max(served, 1))
    chat, messages = (statistics.median(rates[n]) for n in ENDPOINTS)
    chat_cpu, messages_cpu = (statistics.median(cpu_us[n]) for n in ENDPOINTS)
    print(f"chat stream     {chat:8.0f} req/s {chat_cpu:6.0f} CPU-us/request")
    print(f"messages stream {messages:8.0f} req/s {messages_cpu:6.0f} CPU-us/request")
    print(f"messages/chat: throughput {messages / chat:6.1%}   (medians of {args.repeats}, "
          f"{args.connections} connections, {args.chunks} content events per answer)")


if __name__ == "__main__":
    main()
