#!/usr/bin/env bash
# Regenerates testdata/bundles/<scenario>.tar.gz: for each lab scenario, run
# it in its throwaway namespace (`sockwarden lab run`), let its load reach its
# pace, capture a bundle of that namespace with `sockwarden collect --netns`
# (3 snapshots 2s apart), stop the scenario, and print what `sockwarden
# diagnose --from` makes of the bundle. Needs root; changes nothing outside
# the namespaces it creates.
#
#   sudo scripts/capture-bundles.sh                 # every scenario
#   sudo scripts/capture-bundles.sh close-wait ...  # some
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

if [ "$(id -u)" != 0 ]; then
  echo "capture-bundles: needs root (network namespaces)" >&2
  exit 2
fi

out=testdata/bundles
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=$tmp/sockwarden
go build -o "$bin" ./cmd/sockwarden

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  mapfile -t scenarios < <("$bin" lab list | awk 'NR > 1 { print $1 }')
fi

for sc in "${scenarios[@]}"; do
  log=$tmp/$sc.log
  "$bin" lab run "$sc" --duration 60s --log-level warn >"$log" 2>&1 &
  pid=$!
  ns=
  for _ in $(seq 100); do
    ns=$(sed -n 's/^scenario .* running in network namespace \(.*\)$/\1/p' "$log")
    [ -n "$ns" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.2
  done
  if [ -z "$ns" ]; then
    echo "capture-bundles: $sc did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 2 # let the load reach its pace
  "$bin" collect --log-level warn --netns "$ns" --snapshots 3 --gap 2s "$out/$sc.tar.gz"
  kill -INT "$pid"
  wait "$pid" || true
  chmod 0644 "$out/$sc.tar.gz"
  printf '%-20s %6s bytes  ' "$sc" "$(stat -c %s "$out/$sc.tar.gz")"
  "$bin" diagnose --from "$out/$sc.tar.gz" --format text 2>/dev/null | sed -n 's/^  *1\. \[\([a-z]*\)\] \(.*\)$/\1 \2/p' | head -1 || true
done
