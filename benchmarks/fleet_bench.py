"""Redis commands per routed request, and two replicas behind one Redis versus one.

Starts a redis-server on a free port, a mock backend and one or two Nexus replicas,
drives them with wrk, and reads `INFO commandstats` before and after each run. Two
workloads: a local (free) model, and a paid one (priced in the config), where each
request's cost is one write. With two replicas wrk spreads its connections over
both through a small Lua round-robin.

    python benchmarks/fleet_bench.py [--duration 5]

Needs wrk and redis-server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import free_port, start

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("local-model", "paid-model")


# Commands our scripts run inside Redis; clients never send them directly. commandstats
# counts them too, so they are reported apart from what replicas send.
LUA_INNER = {"hget", "hincrby", "incrby", "set", "pexpire", "hexists", "zadd", "zrem",
             "decrby", "del", "hdel", "zscore", "incr"}


def config(local_url: str, paid_url: str, redis_url: str) -> str:
    return (f'[redis]\nurl = "{redis_url}"\nprefix = "bench"\n'
            '[[backends]]\nname = "local"\n'
            f'url = "{local_url}"\ntype = "vllm"\nzone = "restricted"\nmax_concurrent = 4096\n'
            '[[backends]]\nname = "paid"\n'
            f'url = "{paid_url}"\ntype = "generic"\nmax_concurrent = 4096\n'
            '[backends.pricing."paid-model"]\ninput = 1.0\noutput = 2.0\n')


def commands(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def run_wrk(urls: list[str], model: str, connections: int, duration: int) -> int:
    """Requests completed (2xx) over the run."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
    hosts = ", ".join(f'"{u}"' for u in urls)
    script = (f'local hosts = {{{hosts}}}\nlocal n = 0\n'
              'request = function()\n  n = n + 1\n'
              '  return wrk.format("POST", hosts[(n % #hosts) + 1] .. "/v1/chat/completions", '
              '{["Content-Type"]="application/json"}, [[' + body + ']])\nend\n')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s",
                          handle.name, urls[0]], capture_output=True, text=True,
                         check=True).stdout
    os.unlink(handle.name)
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total - (int(non_2xx[1]) if non_2xx else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, local_port, paid_port = free_port(), free_port(), free_port()
        server = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                                   "--appendonly", "no", "--dir", tmp],
                                  stdout=subprocess.DEVNULL)
        mocks = [start([sys.executable, "tests/support/mock_backend.py", "--port", str(port),
                        "--models", model], f"http://127.0.0.1:{port}/v1/models")
                 for port, model in ((local_port, "local-model"), (paid_port, "paid-model"))]
        path = Path(tmp) / "nexus.toml"
        path.write_text(config(f"http://127.0.0.1:{local_port}",
                               f"http://127.0.0.1:{paid_port}",
                               f"redis://127.0.0.1:{redis_port}/0"))
        client = redis.Redis(port=redis_port, decode_responses=True)
        replicas: list[subprocess.Popen[bytes]] = []
        try:
            for count in (1, 2):
                while len(replicas) < count:
                    port = free_port()
                    env = {**os.environ, "NEXUS_CONFIG": str(path), "NEXUS_PORT": str(port),
                           "NEXUS_REPLICA_ID": f"bench-{len(replicas)}"}
                    replicas.append(start([sys.executable, "-m", "nexus", "serve"],
                                          f"http://127.0.0.1:{port}/health", env=env))
                    replicas[-1].port = port  # type: ignore[attr-defined]
                urls = [f"http://127.0.0.1:{r.port}" for r in replicas]  # type: ignore[attr-defined]
                for model in PATHS:
                    before = commands(client)
                    served = run_wrk(urls, model, args.connections, args.duration)
                    after = commands(client)
                    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                    sent = {k: v for k, v in delta.items()
                            if v and k != "info" and k not in LUA_INNER}
                    inner = sum(v for k, v in delta.items() if k in LUA_INNER)
                    total = sum(sent.values())
                    print(f"{count} replica(s) {model:<11} {served / args.duration:7.0f} req/s "
                          f"{total / max(served, 1):6.3f} commands sent/request "
                          f"(+{inner / max(served, 1):.2f} run inside Lua)  "
                          f"{dict(sorted(sent.items()))}")
        finally:
            for process in (*replicas, *mocks, server):
                process.terminate()
                process.wait()


if __name__ == "__main__":
    main()
