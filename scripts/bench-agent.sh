#!/usr/bin/env bash
# Overhead of `sockwarden agent` on an idle, healthy namespace holding about
# 150,000 TCP sockets: CPU per hour and peak RSS of the tiered agent (cheap
# tick, full census only on a moving signal or every agent.full_every
# ticks) side by side with the same agent taking a full census every tick
# (node_exporter style: agent.full_every=1, diagnose.samples=1).
#
#   sudo scripts/bench-agent.sh [SECONDS]      (default 600)
#
# Everything happens in a throwaway namespace (ip netns sw-bench-agent): the
# sockets are loopback ESTAB pairs held by 10 python3 processes (15,000
# descriptors each, 75 % of the 20,000 allowed here, under diagnose.fd_use_ratio
# so that the namespace is healthy). Nothing on the host changes. Output: one line per
# agent, and the figures docs/PERFORMANCE.md quotes.
set -euo pipefail
secs=${1:-600}
ns=sw-bench-agent
per=7500            # connections per worker: 2 sockets each, 10 workers = 150,000
workers=10
work=$(mktemp -d /tmp/sw-bench-agent.XXXXXX)
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

pids=()
tiered="" everytick=""
cleanup() {
  for p in "${pids[@]}" $tiered $everytick; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/sockwarden" ./cmd/sockwarden
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
# Room for the client ports of 75,000 connections to 10 listeners, which
# listen below the range (9001-9010) so that no client port takes theirs.
ip netns exec "$ns" sh -c 'echo "10000 65001" > /proc/sys/net/ipv4/ip_local_port_range'

cat > "$work/pile.py" <<'PY'
import socket, sys, time, os
port, n = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port)); ls.listen(4096)
keep = []
for i in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = ls.accept()
    keep += [c, s]
print("ready", flush=True)
while True:
    time.sleep(3600)
PY
for i in $(seq 1 $workers); do
  ip netns exec "$ns" python3 "$work/pile.py" $((9000 + i)) $per > "$work/pile$i.out" 2>&1 &
  pids+=($!)
done
for i in $(seq 1 $workers); do
  until grep -qx ready "$work/pile$i.out" 2>/dev/null; do
    if ! kill -0 "${pids[$((i-1))]}" 2>/dev/null; then cat "$work/pile$i.out"; exit 1; fi
    sleep 0.5
  done
done
total=$(ip netns exec "$ns" ss -tanH | wc -l)
echo "namespace $ns: $total TCP sockets (ss -tan)"
ss_t=$( { /usr/bin/time -f "%e s elapsed, %U s user + %S s sys, %M KiB max RSS" ip netns exec "$ns" ss -tan >/dev/null; } 2>&1 )
echo "one ss -tan over them: $ss_t"

start_agent() { # name, extra env...
  local name=$1; shift
  mkdir -p "$work/$name"
  env "$@" SOCKWARDEN_STATE_DIR="$work/$name/state" SOCKWARDEN_AGENT_CONTROL_SOCKET="$work/$name/control.sock" \
    SOCKWARDEN_LOG_FORMAT=json ip netns exec "$ns" "$work/sockwarden" agent --config /dev/null >"$work/$name/log" 2>&1 &
  echo $! # env and ip exec: this is the agent's pid; cleanup kills it
}
# /dev/null as --config: an empty file, so only defaults and the env apply.
tiered=$(start_agent tiered)
everytick=$(start_agent everytick SOCKWARDEN_AGENT_FULL_EVERY=1 SOCKWARDEN_DIAGNOSE_SAMPLES=1)
sleep 2
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
t0=$(date +%s.%N); c0t=$(cpu "$tiered"); c0e=$(cpu "$everytick")
echo "measuring for ${secs}s ..."
sleep "$secs"
t1=$(date +%s.%N); c1t=$(cpu "$tiered"); c1e=$(cpu "$everytick")
for who in tiered everytick; do
  pid=${!who}; c0=c0${who:0:1}; c1=c1${who:0:1}
  [ "$who" = everytick ] && { c0=c0e; c1=c1e; } || { c0=c0t; c1=c1t; }
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  st=$(SOCKWARDEN_AGENT_CONTROL_SOCKET="$work/$who/control.sock" "$work/sockwarden" status --config /dev/null --json 2>/dev/null | \
       python3 -c 'import json,sys; s=json.load(sys.stdin); print("ticks=%d full=%d line=%r" % (s["ticks"], s["full_censuses"], s["line"]))' || true)
  awk -v who="$who" -v a="${!c0}" -v b="${!c1}" -v t0="$t0" -v t1="$t1" -v hz="$hz" -v hwm="$hwm" -v st="$st" 'BEGIN {
    cpu=(b-a)/hz; wall=t1-t0;
    printf "%-10s cpu %.2fs in %.0fs = %.3f%% of one core = %.1f cpu-s/hour; peak RSS %.1f MiB; %s\n", who, cpu, wall, 100*cpu/wall, 3600*cpu/wall, hwm/1024, st }'
done
