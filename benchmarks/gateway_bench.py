"""Gateway vs a bare aiohttp pass-through proxy vs direct, under the same load, same run.

Starts the mock backend, the bare proxy and a Nexus replica as subprocesses on loopback,
drives each with wrk (non-streaming and streaming, 1 and 64 connections) and prints
requests/s, p50 and p99, the gateway's added p50 latency over direct, its throughput as a
share of the bare proxy's, and its peak RSS.

The proxy under test runs pinned to its own core, the mock and wrk share the other, and
every measurement is repeated (interleaved) and its median reported: on a small machine
the processes otherwise steal each other's CPU and the figures swing from run to run.

    python benchmarks/gateway_bench.py [--duration 4] [--repeats 3]
    python benchmarks/gateway_bench.py --same-core --connections 1
    python benchmarks/gateway_bench.py --loops --connections 64

--loops runs the bare proxy on uvloop and two Nexus replicas, one on asyncio's loop and
one on uvloop, in one run: each replica's share of the bare proxy's throughput.

--same-core puts the proxies on the load's core too: at one connection the chain is
serial, and on a VM each hop to an idle core waits for it to wake, which the direct
path (wrk and the mock on one core) never pays; this shows the latency without it.

Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BODY = '{"model":"mock-model","messages":[{"role":"user","content":"hello there"}]%s}'
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
LOAD_CPU, PROXY_CPU = "0", "1"


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def run_args(doc: str, repeats: int = 3,
             more: Callable[[argparse.ArgumentParser], object] = lambda _: None) -> \
        argparse.Namespace:
    """The arguments every load benchmark takes: --duration, --repeats, --connections;
    `more` adds a benchmark's own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--connections", type=int, default=64)
    more(parser)
    return parser.parse_args()


def start_redis(directory: str, port: int) -> subprocess.Popen[bytes]:
    """A throwaway redis-server on the load core (nothing kept on disk)."""
    return subprocess.Popen(["taskset", "-c", LOAD_CPU, "redis-server", "--port", str(port),
                             "--save", "", "--appendonly", "no", "--dir", directory],
                            stdout=subprocess.DEVNULL)


def start_mock(port: int, *extra: str) -> subprocess.Popen[bytes]:
    """The mock backend on the load core, up and answering."""
    return start(["taskset", "-c", LOAD_CPU, sys.executable, "tests/support/mock_backend.py",
                  "--port", str(port), *extra], f"http://127.0.0.1:{port}/v1/models")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nexus_config(port: int, backend_url: str, max_concurrent: int = 1024) -> str:
    """A one-backend gateway configuration in a temporary file; the caller removes it."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write(f'[server]\nport = {port}\n[[backends]]\nname = "mock"\n'
                     f'url = "{backend_url}"\ntype = "vllm"\nzone = "restricted"\n'
                     f"max_concurrent = {max_concurrent}\n")
    return config.name


def pinned(cpu: str, args: list[str]) -> list[str]:
    pin = shutil.which("taskset") and (os.cpu_count() or 1) >= 2
    return ["taskset", "-c", cpu, *args] if pin else args


def start(args: list[str], ready_url: str, env: dict[str, str] | None = None,
          within: float = 20) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(ready_url, timeout=1).read()
            return process
        except urllib.error.HTTPError:
            return process  # answering at all means it is up
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"{args} did not come up")


def served_by_wrk(url: str, body: str, connections: int, duration: int,
                  headers: dict[str, str] | None = None, cpu: str | None = None,
                  path: str = "/v1/chat/completions", lua: str = "") -> int:
    """Requests of `body` sent by wrk for `duration` seconds: how many got a 2xx. `lua`
    is more of wrk's script (a `request` function, say)."""
    lines = ['wrk.method = "POST"', f"wrk.body = [[{body}]]",
             'wrk.headers["Content-Type"] = "application/json"',
             *(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items()), lua]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", script.name,
               url + path]
    out = subprocess.run(pinned(cpu, command) if cpu else command, capture_output=True,
                         text=True, check=True).stdout
    os.unlink(script.name)
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total - (int(non_2xx[1]) if non_2xx else 0)


def wrk(url: str, connections: int, duration: int, stream: bool) -> Result:
    body = BODY % (',"stream":true' if stream else "")
    script = (f'wrk.method="POST"\nwrk.body=[[{body}]]\n'
              'wrk.headers["Content-Type"]="application/json"\n')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    command = pinned(LOAD_CPU, ["wrk", "-t1", f"-c{connections}", f"-d{duration}s",
                                "--latency", "-s", handle.name, url + "/v1/chat/completions"])
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps, out
    return Result(rps=float(rps[1]), p50_ms=_percentile(out, "50"),
                  p99_ms=_percentile(out, "99"), errors=_errors(out))


def _percentile(out: str, pct: str) -> float:
    match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    assert match, out
    return float(match[1]) * UNITS[match[2]]


def _errors(out: str) -> int:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        out)
    return (int(non_2xx[1]) if non_2xx else 0) + (sum(map(int, sockets.groups()))
                                                   if sockets else 0)


def median(results: list[Result]) -> Result:
    return Result(rps=statistics.median(r.rps for r in results),
                  p50_ms=statistics.median(r.p50_ms for r in results),
                  p99_ms=statistics.median(r.p99_ms for r in results),
                  errors=sum(r.errors for r in results))


def cpu_ticks() -> tuple[int, int]:
    """(steal, all) jiffies of the whole machine: on a shared VM, the share of time the
    host gave to someone else says how far to trust a run's req/s."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--same-core", action="store_true",
                        help="pin the proxies to the load's core (latency at 1 connection)")
    parser.add_argument("--loops", action="store_true",
                        help="bare proxy on uvloop; Nexus on asyncio and on uvloop")
    args = parser.parse_args()
    proxy_cpu = LOAD_CPU if args.same_core else PROXY_CPU
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    mock_port, bare_port = free_port(), free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    mock = start(pinned(LOAD_CPU, [sys.executable, "tests/support/mock_backend.py", "--port",
                                   str(mock_port)]), mock_url + "/v1/models")
    bare = start(pinned(proxy_cpu, [sys.executable, "benchmarks/bare_proxy.py", "--port",
                                    str(bare_port), "--upstream", mock_url,
                                    *(["--uvloop"] if args.loops else [])]),
                 f"http://127.0.0.1:{bare_port}/")
    targets = {"direct": mock_url,
               "bare proxy" + (" (uvloop)" if args.loops else ""): f"http://127.0.0.1:{bare_port}"}
    loops = {"nexus asyncio": "asyncio", "nexus uvloop": "uvloop"} if args.loops \
        else {"nexus": os.environ.get("NEXUS_EVENT_LOOP", "")}
    processes, configs = [mock, bare], []
    steal, total = cpu_ticks()
    try:
        for name, loop in loops.items():
            port = free_port()
            configs.append(nexus_config(port, mock_url))
            env = {**os.environ, "NEXUS_CONFIG": configs[-1], "NEXUS_EVENT_LOOP": loop}
            processes.append(start(pinned(proxy_cpu, [sys.executable, "-m", "nexus", "serve"]),
                                   f"http://127.0.0.1:{port}/health", env=env))
            targets[name] = f"http://127.0.0.1:{port}"
        report(targets, args.duration, args.repeats, args.connections, processes[-1].pid)
        steal_after, total_after = cpu_ticks()
        print(f"CPU steal during the run: "
              f"{(steal_after - steal) / max(1, total_after - total) * 100:.1f}%")
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        for config in configs:
            os.unlink(config)


def report(targets: dict[str, str], duration: int, repeats: int, connection_counts: list[int],
           nexus_pid: int) -> None:
    print(f"{'mode':<11}{'conns':>6}  {'target':<20}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'errors':>8}")
    for stream in (False, True):
        for connections in connection_counts:
            runs: dict[str, list[Result]] = {name: [] for name in targets}
            for _ in range(repeats):  # interleaved, so drift hits every target alike
                for name, url in targets.items():
                    runs[name].append(wrk(url, connections, duration, stream))
            results = {name: median(r) for name, r in runs.items()}
            mode = "stream" if stream else "non-stream"
            for name, r in results.items():
                print(f"{mode:<11}{connections:>6}  {name:<20}{r.rps:>9.0f}{r.p50_ms:>9.2f}"
                      f"{r.p99_ms:>9.2f}{r.errors:>8}")
            bare = next(r for name, r in results.items() if name.startswith("bare proxy"))
            for name, r in results.items():
                if name.startswith("nexus"):
                    print(f"  -> {name} throughput {r.rps / bare.rps * 100:.0f}% of bare proxy; "
                          f"added p50 vs direct {r.p50_ms - results['direct'].p50_ms:.2f} ms",
                          flush=True)
    print(f"nexus peak RSS: {peak_rss_mb(nexus_pid):.1f} MB")


if __name__ == "__main__":
    main()
