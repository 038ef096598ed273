#!/usr/bin/env bash
# Benchmark: a full census (`sockwarden sample --json`) against `ss -tan`
# on a namespace holding >= 150,000 TCP sockets. Root only; everything
# happens in a throwaway namespace that is deleted at the end.
#
#   sudo scripts/bench-census.sh            # defaults below
#   ROUNDS=9 PAIRS=40000 TW=70000 scripts/bench-census.sh
#
# Prints each round, then the median wall time of each side, the median
# ratio census/ss and the census's peak RSS (/usr/bin/time -f %M).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

ROUNDS=${ROUNDS:-7}
PAIRS=${PAIRS:-40000}   # established pairs: 2 sockets each
PROCS=${PROCS:-5}       # helper processes holding them (<= 20000 fds each)
TW=${TW:-70000}         # TIME-WAIT sockets (no descriptor)
NS=sw-bench-$$
tmp=$(mktemp -d)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "bench-census: needs root (namespaces)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "bench-census: needs /usr/bin/time (Debian package time)" >&2; exit 2; }

echo "== build"
go build -o "$tmp/sockwarden" ./cmd/sockwarden
go build -o "$tmp/census-load" ./scripts/census-load

echo "== namespace $NS: $PAIRS established pairs in $PROCS processes, $TW TIME-WAIT"
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
# Inside the throwaway namespace only: room for the 4-tuples and TIME-WAITs.
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_max_tw_buckets=262144

per=$((PAIRS / PROCS))
for i in $(seq "$PROCS"); do
  mkfifo "$tmp/in$i"
  ip netns exec "$NS" "$tmp/census-load" -pairs "$per" <"$tmp/in$i" >"$tmp/out$i" &
  pids+=($!)
  exec {fd}>"$tmp/in$i"   # hold stdin open: the helper exits when it closes
done
for i in $(seq "$PROCS"); do
  until grep -q ready "$tmp/out$i" 2>/dev/null; do
    kill -0 "${pids[$((i-1))]}" 2>/dev/null || { echo "helper $i died" >&2; exit 1; }
    sleep 0.2
  done
done
ip netns exec "$NS" "$tmp/census-load" -timewait "$TW" -ports 8 >/dev/null
sleep 1
total=$(( $(ss -N "$NS" -tan | wc -l) - 1 ))
echo "sockets in the namespace: $total"
ss -N "$NS" -s | sed -n '1,3p'
[ "$total" -ge 150000 ] || echo "WARNING: fewer than 150000 sockets"

now() { date +%s%N; }
census=() ssw=() rss=() ratios=()
for r in $(seq "$ROUNDS"); do
  run_census() {
    local t0 t1
    t0=$(now)
    /usr/bin/time -f %M -o "$tmp/rss" "$tmp/sockwarden" sample --json --netns "/run/netns/$NS" >/dev/null
    t1=$(now)
    c=$(( (t1 - t0) / 1000 ))
    m=$(tail -n1 "$tmp/rss")
  }
  run_ss() {
    local t0 t1
    t0=$(now)
    ss -N "$NS" -tan | wc -l >/dev/null
    t1=$(now)
    s=$(( (t1 - t0) / 1000 ))
  }
  # Alternate the order so neither side always runs on a warm cache.
  if (( r % 2 )); then run_census; run_ss; else run_ss; run_census; fi
  census+=("$c"); ssw+=("$s"); rss+=("$m")
  ratios+=("$(awk -v a="$c" -v b="$s" 'BEGIN{printf "%.3f", a/b}')")
  printf 'round %d: census %6.1f ms  ss %6.1f ms  ratio %s  census peak RSS %d KiB\n' \
    "$r" "$(awk -v x="$c" 'BEGIN{print x/1000}')" "$(awk -v x="$s" 'BEGIN{print x/1000}')" "${ratios[-1]}" "$m"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "== result ($ROUNDS rounds, $total sockets, kernel $(uname -r), $(nproc) CPUs)"
echo "median census wall: $(awk -v x="$(median "${census[@]}")" 'BEGIN{printf "%.1f", x/1000}') ms"
echo "median ss -tan | wc -l wall: $(awk -v x="$(median "${ssw[@]}")" 'BEGIN{printf "%.1f", x/1000}') ms"
echo "median ratio census/ss: $(median "${ratios[@]}") (target <= 0.35)"
echo "peak RSS of the census: max $(printf '%s\n' "${rss[@]}" | sort -n | tail -n1) KiB, median $(median "${rss[@]}") KiB (target < 30720 KiB)"
