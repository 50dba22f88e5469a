#!/usr/bin/env bash
# Two versions of the gateway (REV and the working tree) side by side, against one
# mock and the bare proxy: interleaved wrk runs at 64 connections, non-streaming and
# streaming. Prints req/s and the CPU time each proxy spent per request (from
# /proc/PID/stat): the steadier figure on a shared machine, where req/s swings.
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
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
mock=$(port); old=$(port); new=$(port); bare=$(port)
config() { printf '[server]\nport = %s\n[[backends]]\nname = "mock"\nurl = "http://127.0.0.1:%s"\ntype = "vllm"\nzone = "restricted"\nmax_concurrent = 1024\n' "$1" "$mock"; }
config "$old" > "$work/old.toml"; config "$new" > "$work/new.toml"
taskset -c 0 "$py" tests/support/mock_backend.py --port "$mock" >/dev/null 2>&1 &
(cd "$other" && NEXUS_CONFIG="$work/old.toml" exec taskset -c 1 "$OLDPWD/$py" -m nexus serve >/dev/null 2>&1) &
old_pid=$!
NEXUS_CONFIG="$work/new.toml" taskset -c 1 "$py" -m nexus serve >/dev/null 2>&1 &
new_pid=$!
taskset -c 1 "$py" benchmarks/bare_proxy.py --port "$bare" --upstream "http://127.0.0.1:$mock" >/dev/null 2>&1 &
bare_pid=$!
sleep 3
hz=$(getconf CLK_TCK)
for stream in false true; do
  printf 'wrk.method="POST"\nwrk.body=[[{"model":"mock-model","messages":[{"role":"user","content":"hello there"}],"stream":%s}]]\nwrk.headers["Content-Type"]="application/json"\n' "$stream" > "$work/body.lua"
  for i in $(seq "$runs"); do
    targets=("bare:$bare:$bare_pid" "$rev:$old:$old_pid" "worktree:$new:$new_pid")
    # rotate the order each run: whoever goes first meets a freshly idle mock
    for k in 0 1 2; do
      IFS=: read -r name target_port pid <<< "${targets[$(( (k + i) % 3 ))]}"
      before=$(cpu_ticks "$pid")
      out=$(taskset -c 0 wrk -t1 -c64 -d4s -s "$work/body.lua" "http://127.0.0.1:$target_port/v1/chat/completions")
      spent=$(( $(cpu_ticks "$pid") - before ))
      echo "$out" | awk -v name="$name" -v stream="$stream" -v run="$i" -v t="$spent" -v hz="$hz" '
        /requests in/ {n = $1} /Requests\/sec/ {rps = $2}
        END {printf "stream=%s run=%s %-9s %8.0f req/s %7.1f cpu-us/req\n", stream, run, name, rps, t / hz / n * 1e6}'
    done
  done
done
