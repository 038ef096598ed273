#!/usr/bin/env bash
# Benchmark: a full census (`sockwarden sample -o json`) against `ss -tan`
# on a namespace holding >= 150,000 TCP sockets. Root only; everything
# happens in a throwaway namespace that is deleted at the end.
#
#   sudo scripts/bench-census.sh            # defaults below
#   ROUNDS=9 PAIRS=40000 TW=70000 scripts/bench-census.sh
#
# Each round times, in alternating order, the census with owners (the
# default), the census with sample.owners=false, and `ss -tan | wc -l`:
# wall time, CPU time (user+sys, less sensitive to a shared machine) and
# peak RSS (/usr/bin/time -f %M). Prints every round, then the medians and
# the median ratios census/ss.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

ROUNDS=${ROUNDS:-7}
PAIRS=${PAIRS:-40000}   # established pairs: 2 sockets each
PROCS=${PROCS:-5}       # helper processes holding them (<= 20000 fds each)
TW=${TW:-75000}         # TIME-WAIT sockets (no descriptor)
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
# The binary users run, built as the package builds it (build-shipped.sh
# says why).
scripts/build-shipped.sh "$tmp/sockwarden"
go build -o "$tmp/census-load" ./scripts/census-load

echo "== namespace $NS: $PAIRS established pairs in $PROCS processes, $TW TIME-WAIT"
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
# Inside the throwaway namespace only: room for the 4-tuples and TIME-WAITs.
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_max_tw_buckets=262144 net.ipv4.tcp_tw_reuse=0

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

# One measurement: wall ms (date, ns resolution), cpu ms (user+sys) and peak
# RSS KiB (/usr/bin/time) of a command whose stdout goes to /dev/null.
measure() {
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f '%U %S %M' -o "$tmp/time" "$@" >/dev/null
  t1=$(date +%s%N)
  read -r u s m <"$tmp/time"
  echo "$(( (t1 - t0) / 1000 )) $(awk -v u="$u" -v s="$s" 'BEGIN{print (u+s)*1000}') $m"
}
ss_pipe() { ss -N "$NS" -tan | wc -l; }
ssp_pipe() { ss -N "$NS" -tanp | wc -l; }
export -f ss_pipe ssp_pipe; export NS

census_cmd=("$tmp/sockwarden" sample -o json --netns "/run/netns/$NS")
declare -a cw cc cr nw nc nr sw sc pw pc ratio ratio_no ratio_p
for r in $(seq "$ROUNDS"); do
  # Alternate the order so that neither side always runs first.
  if (( r % 2 )); then
    read -r a b c < <(measure "${census_cmd[@]}")
    read -r d e f < <(SOCKWARDEN_SAMPLE_OWNERS=false measure "${census_cmd[@]}")
    read -r g h _ < <(measure bash -c ss_pipe)
    read -r p q _ < <(measure bash -c ssp_pipe)
  else
    read -r p q _ < <(measure bash -c ssp_pipe)
    read -r g h _ < <(measure bash -c ss_pipe)
    read -r d e f < <(SOCKWARDEN_SAMPLE_OWNERS=false measure "${census_cmd[@]}")
    read -r a b c < <(measure "${census_cmd[@]}")
  fi
  cw+=("$a"); cc+=("$b"); cr+=("$c"); nw+=("$d"); nc+=("$e"); nr+=("$f"); sw+=("$g"); sc+=("$h"); pw+=("$p"); pc+=("$q")
  ratio+=("$(awk -v a="$a" -v b="$g" 'BEGIN{printf "%.3f", a/b}')")
  ratio_no+=("$(awk -v a="$d" -v b="$g" 'BEGIN{printf "%.3f", a/b}')")
  ratio_p+=("$(awk -v a="$a" -v b="$p" 'BEGIN{printf "%.3f", a/b}')")
  printf 'round %d: census %7.1f ms (cpu %4.0f ms, %5d KiB) | census, owners off %7.1f ms (cpu %4.0f ms, %5d KiB) | ss -tan|wc -l %7.1f ms (cpu %4.0f ms) | ss -tanp|wc -l %7.1f ms | ratios %s %s (vs -tanp %s)\n' \
    "$r" "$(awk -v x="$a" 'BEGIN{print x/1000}')" "$b" "$c" "$(awk -v x="$d" 'BEGIN{print x/1000}')" "$e" "$f" \
    "$(awk -v x="$g" 'BEGIN{print x/1000}')" "$h" "$(awk -v x="$p" 'BEGIN{print x/1000}')" "${ratio[-1]}" "${ratio_no[-1]}" "${ratio_p[-1]}"
done
left=$(( $(ss -N "$NS" -tan | wc -l) - 1 ))

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ms() { awk -v x="$1" 'BEGIN{printf "%.1f", x/1000}'; }
echo "== result: $ROUNDS rounds, $total sockets at the start, $left at the end; kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "census (owners on, the default):  median wall $(ms "$(median "${cw[@]}")") ms, cpu $(median "${cc[@]}") ms, peak RSS max $(printf '%s\n' "${cr[@]}" | sort -n | tail -n1) KiB"
echo "census (sample.owners=false):     median wall $(ms "$(median "${nw[@]}")") ms, cpu $(median "${nc[@]}") ms, peak RSS max $(printf '%s\n' "${nr[@]}" | sort -n | tail -n1) KiB"
echo "ss -tan | wc -l:                  median wall $(ms "$(median "${sw[@]}")") ms, cpu $(median "${sc[@]}") ms"
echo "ss -tanp | wc -l (owners, like the census): median wall $(ms "$(median "${pw[@]}")") ms, cpu $(median "${pc[@]}") ms"
echo "median ratio census (owners on) / ss -tanp wall: $(median "${ratio_p[@]}")"
echo "median ratio census/ss wall: owners on $(median "${ratio[@]}"), owners off $(median "${ratio_no[@]}") (target <= 0.35)"
echo "cpu ratio (medians): owners on $(awk -v a="$(median "${cc[@]}")" -v b="$(median "${sc[@]}")" 'BEGIN{printf "%.2f", a/b}'), owners off $(awk -v a="$(median "${nc[@]}")" -v b="$(median "${sc[@]}")" 'BEGIN{printf "%.2f", a/b}')"
