#!/usr/bin/env bash
# `promtool check metrics` on a live scrape of the agent: builds sockwarden,
# runs `sockwarden agent` with metrics on in a throwaway network namespace
# (unshare -n, loopback only), scrapes /metrics once the first full census
# is in, and lints the exposition with promtool (Prometheus's own naming and
# type rules). Also checks the series the rules and dashboard rely on.
#
# Usage (root): packaging/test/metrics-check.sh PROMTOOL
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=/usr/local/go/bin:$PATH
promtool=${1:?usage: $0 PROMTOOL}
[ "$(id -u)" = 0 ] || { echo "metrics-check: needs root (unshare -n)" >&2; exit 2; }
tmp=$(mktemp -d /tmp/sw-metrics.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && go build -o "$tmp/sockwarden" ./cmd/sockwarden)
mkdir -m 0700 "$tmp/state" "$tmp/run"
cat >"$tmp/config.yaml" <<CFG
state_dir: $tmp/state
agent:
  mode: observe
  tick: 1s
  full_every: 1
  control_socket: $tmp/run/control.sock
metrics:
  enabled: true
  listen: 127.0.0.1:9872
CFG
chmod 0600 "$tmp/config.yaml"
# In the namespace: loopback up, the agent in the background, scrape until
# a full census shows (sockwarden_tcp_sockets), stop the agent.
unshare -n bash -c '
  set -e
  ip link set lo up
  "$1/sockwarden" agent --config "$1/config.yaml" 2>"$1/agent.log" &
  pid=$!
  for _ in $(seq 100); do
    if curl -fsS -o "$1/scrape" http://127.0.0.1:9872/metrics 2>/dev/null &&
      grep -q "^sockwarden_tcp_sockets{" "$1/scrape"; then
      kill -TERM $pid; wait $pid || true
      exit 0
    fi
    sleep 0.2
  done
  kill -TERM $pid; wait $pid || true
  echo "no scrape with sockwarden_tcp_sockets after 20 s; agent log:" >&2
  tail -20 "$1/agent.log" >&2
  exit 1
' _ "$tmp"
echo "scraped $(grep -vc '^#' "$tmp/scrape") series"
if ! out=$("$promtool" check metrics <"$tmp/scrape" 2>&1); then
  echo "promtool check metrics failed:"; echo "$out"; exit 1
fi
[ -z "$out" ] || { echo "promtool check metrics: $out"; exit 1; }
for want in '^sockwarden_build_info{goversion="go' '^sockwarden_tcp_sockets{netns="host",state="established"} ' \
  '^sockwarden_tcp_sockets{netns="host",state="listen"} ' '^sockwarden_sample_errors_total{netns="host"} 0$' \
  '^sockwarden_sockstat_tcp_mem_bytes{netns="host"} ' '^sockwarden_last_sample_timestamp_seconds{netns="host"} ' \
  '^sockwarden_agent_info{mode="observe"} 1$'; do
  grep -q "$want" "$tmp/scrape" || { echo "scrape lacks $want"; exit 1; }
done
echo "promtool check metrics: clean"
