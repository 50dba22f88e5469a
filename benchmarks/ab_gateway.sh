#!/usr/bin/env bash
# Two versions of the gateway side by side, against one mock and the bare proxy:
# interleaved wrk runs at 64 connections, non-streaming and streaming.
#   bash benchmarks/ab_gateway.sh REV [RUNS]     e.g. REV=822b107 (before the pipeline)
# Needs wrk. The other version is checked out with `git worktree` under /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: ab_gateway.sh REV [RUNS]}; runs=${2:-3}
py=${PYTHON:-.venv/bin/python}
other=/tmp/nexus-ab-$rev
[ -d "$other" ] || git worktree add -q "$other" "$rev"
work=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mock=$(port); old=$(port); new=$(port); bare=$(port)
config() { printf '[server]\nport = %s\n[[backends]]\nname = "mock"\nurl = "http://127.0.0.1:%s"\ntype = "vllm"\nzone = "restricted"\nmax_concurrent = 1024\n' "$1" "$mock"; }
config "$old" > "$work/old.toml"; config "$new" > "$work/new.toml"
taskset -c 0 "$py" tests/mock_backend.py --port "$mock" >/dev/null 2>&1 &
(cd "$other" && NEXUS_CONFIG="$work/old.toml" taskset -c 1 "$OLDPWD/$py" -m nexus serve >/dev/null 2>&1) &
NEXUS_CONFIG="$work/new.toml" taskset -c 1 "$py" -m nexus serve >/dev/null 2>&1 &
taskset -c 1 "$py" benchmarks/bare_proxy.py --port "$bare" --upstream "http://127.0.0.1:$mock" >/dev/null 2>&1 &
sleep 3
for stream in false true; do
  printf 'wrk.method="POST"\nwrk.body=[[{"model":"mock-model","messages":[{"role":"user","content":"hello there"}],"stream":%s}]]\nwrk.headers["Content-Type"]="application/json"\n' "$stream" > "$work/body.lua"
  for i in $(seq "$runs"); do
    for target in "bare:$bare" "$rev:$old" "HEAD:$new"; do
      rps=$(taskset -c 0 wrk -t1 -c64 -d4s -s "$work/body.lua" "http://127.0.0.1:${target#*:}/v1/chat/completions" | awk '/Requests\/sec/ {print $2}')
      echo "stream=$stream run=$i ${target%%:*} $rps req/s"
    done
  done
done
