#!/usr/bin/env bash
# Benchmark: any commands side by side. Each NAME=COMMAND is run ROUNDS
# times, the order rotated each round, timed by scripts/cmdstat; prints
# the median wall and CPU ms and the median and max peak RSS (KiB).
#
#   scripts/bench-commands.sh 11 "ss=sh -c 'ss -tan | wc -l'" \
#     "old=/tmp/sw-main version" "new=/tmp/sw-branch version"
#
# For before/after pairs of one-shot commands (docs/PERFORMANCE.md,
# session 5); build both binaries as packaging/build.sh does
# (scripts/build-shipped.sh OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
[ $# -ge 2 ] || { echo "usage: $0 ROUNDS NAME=COMMAND..." >&2; exit 2; }
R=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/cmdstat" ./scripts/cmdstat
names=(); cmds=()
for a in "$@"; do names+=("${a%%=*}"); cmds+=("${a#*=}"); done
n=${#names[@]}
declare -A W C M
for r in $(seq "$R"); do
  k=$((r % n))
  for ((j = 0; j < n; j++)); do
    i=$(((j + k) % n))
    read -r w c m < <(eval "$tmp/cmdstat" "${cmds[$i]}")
    W[$i]+="$w "; C[$i]+="$c "; M[$i]+="$m "
  done
done
med() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '%-12s %9s %9s %10s %10s\n' name wall_ms cpu_ms rss_KiB max_rss_KiB
for ((i = 0; i < n; i++)); do
  printf '%-12s %9s %9s %10s %10s\n' "${names[$i]}" "$(med "${W[$i]}")" "$(med "${C[$i]}")" \
    "$(med "${M[$i]}")" "$(printf '%s\n' ${M[$i]} | sort -n | tail -n1)"
done
echo "== $R rounds, order rotated; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
