"""What tracing costs: one replica's throughput with tracing off, on at 100 % sampling
and on at 1 %, in one run, spans going to a local OTLP/HTTP receiver.

The replica is pinned to its own core; wrk, the mock backend and the receiver share the
other. Each variant is measured `--repeats` times, interleaved, and the median printed
with its share of the tracing-off throughput.

    python benchmarks/tracing_bench.py [--duration 4] [--repeats 3] [--connections 64]

Needs wrk and the `otel` extra.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import (
    BODY,
    LOAD_CPU,
    PROXY_CPU,
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
VARIANTS = {"off": None, "on, 100 %": 1.0, "on, 1 %": 0.01}


def main() -> None:
    args = run_args(__doc__)
    mock_port, receiver_port = free_port(), free_port()
    mock = start_mock(mock_port)
    receiver = start(pinned(LOAD_CPU, [sys.executable, "-c", RECEIVER, str(receiver_port)]),
                     f"http://127.0.0.1:{receiver_port}/")
    replicas, configs = {}, []
    try:
        for name, ratio in VARIANTS.items():
            port = free_port()
            path = nexus_config(port, f"http://127.0.0.1:{mock_port}")
            configs.append(path)
            if ratio is not None:
                with open(path, "a") as config:
                    config.write(f'[tracing]\nenabled = true\nsample_ratio = {ratio}\n'
                                 f'endpoint = "http://127.0.0.1:{receiver_port}"\n')
            replicas[name] = (start(pinned(PROXY_CPU, [sys.executable, "-m", "nexus", "serve",
                                                       "--config", path]),
                                    f"http://127.0.0.1:{port}/health"), port)
        body = BODY % ""
        rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _, port in replicas.values():  # warm up
            served_by_wrk(f"http://127.0.0.1:{port}", body, args.connections, 1, cpu=LOAD_CPU)
        for _ in range(args.repeats):
            for name, (_, port) in replicas.items():
                served = served_by_wrk(f"http://127.0.0.1:{port}", body, args.connections,
                                       args.duration, cpu=LOAD_CPU)
                rates[name].append(served / args.duration)
        base = statistics.median(rates["off"])
        for name, values in rates.items():
            rate = statistics.median(values)
            print(f"tracing {name:<10} {rate:8.0f} req/s  {rate / base:6.1%} of off")
    finally:
        for process, _ in replicas.values():
            process.terminate()
        receiver.terminate()
        mock.terminate()
        for path in configs:
            os.unlink(path)


if __name__ == "__main__":
    main()
