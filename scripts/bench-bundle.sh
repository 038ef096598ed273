#!/usr/bin/env bash
# Benchmark: reading a captured bundle (`sockwarden sample --from DIR --json`)
# whose ss-tan.txt holds many sockets, to show that reading streams: time
# grows with the lines, memory does not. No root needed: the bundle is
# synthetic, written in the `ss -tanpe` layout of iproute2 6.1 (the layout of
# sample/testdata/ss/tane-6.1.txt plus users:((...)) on owned sockets).
#
#   scripts/bench-bundle.sh                      # 15,000 and 150,000 sockets, 5 rounds
#   ROUNDS=9 SIZES="10000 100000 300000" scripts/bench-bundle.sh
#
# Prints per size: socket lines, file size, the median wall time, CPU time
# (user+sys, steadier than wall time on a shared machine) and peak RSS
# (/usr/bin/time -f %M) of sockwarden, and the median CPU time of the
# smallest script that reads the file at all, an awk count of the state
# column (`awk '{n[$1]++}'`), as a yardstick, with the CPU ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

ROUNDS=${ROUNDS:-5}
SIZES=${SIZES:-"15000 150000"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v /usr/bin/time >/dev/null || { echo "bench-bundle: needs /usr/bin/time (Debian package time)" >&2; exit 2; }

go build -o "$tmp/sockwarden" ./cmd/sockwarden

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# mkbundle N DIR: N sockets, about 27% ESTAB pairs (client and server side),
# 47% TIME-WAIT, listeners and a CLOSE-WAIT pile, spread over 20 destinations.
mkbundle() {
  local n=$1 d=$2
  mkdir -p "$d"
  date +%s.%N > "$d/date.txt"
  awk -v n="$n" 'BEGIN {
    printf "State      Recv-Q Send-Q      Local Address:Port        Peer Address:Port Process\n"
    printf "LISTEN     0      4096              0.0.0.0:8080             0.0.0.0:*     users:((\"server\",pid=100,fd=3)) ino:1000 sk:1 cgroup:/ <->\n"
    printf "LISTEN     0      511                     *:443                    *:*     users:((\"server\",pid=100,fd=4)) ino:1001 sk:2 cgroup:/ <->\n"
    pairs = int(n * 0.135); tw = int(n * 0.47); cw = n - 2 - 2 * pairs - tw
    for (i = 0; i < pairs; i++) {
      p = 32768 + i % 28000; dst = 10 + i % 20
      printf "ESTAB      0      0           127.0.0.1:%d       127.0.0.%d:8080  users:((\"client\",pid=%d,fd=%d)) uid:1000 ino:%d sk:%x cgroup:/ <->\n", p, dst, 200 + i % 5, 10 + i % 19000, 2000 + i, 16 + i
      printf "ESTAB      0      0           127.0.0.%d:8080       127.0.0.1:%d  users:((\"server\",pid=100,fd=%d)) ino:%d sk:%x cgroup:/ <->\n", dst, p, 10 + i % 19000, 900000 + i, 8000000 + i
    }
    for (i = 0; i < tw; i++)
      printf "TIME-WAIT  0      0           127.0.0.1:%d       127.0.0.%d:9090  timer:(timewait,%dsec,0) ino:0 sk:%x\n", 32768 + i % 28000, 30 + i % 20, i % 60, 20000000 + i
    for (i = 0; i < cw; i++)
      printf "CLOSE-WAIT 1      0           127.0.0.1:8080       127.0.0.1:%d  users:((\"server\",pid=100,fd=%d)) ino:%d sk:%x cgroup:/ -->\n", 40000 + i % 20000, 20000 + i, 3000000 + i, 30000000 + i
  }' > "$d/ss-tan.txt"
}

printf "%-9s %-5s %-8s %-8s %-8s %-7s %s\n" sockets MB wall_s cpu_s awk_cpu ratio peak_RSS_MiB
for n in $SIZES; do
  d="$tmp/b$n"
  mkbundle "$n" "$d"
  lines=$(($(wc -l < "$d/ss-tan.txt") - 1))
  mb=$(du -m "$d/ss-tan.txt" | cut -f1)
  ts=(); cs=(); ws=(); rss=()
  for _ in $(seq "$ROUNDS"); do
    /usr/bin/time -f "%e %U %S %M" -o "$tmp/t" "$tmp/sockwarden" sample --json --from "$d" > /dev/null
    read -r e u s m < "$tmp/t"; ts+=("$e"); cs+=("$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')"); rss+=("$m")
    /usr/bin/time -f "%U %S" -o "$tmp/w" awk '{n[$1]++} END {for (k in n) print k, n[k]}' "$d/ss-tan.txt" > /dev/null
    read -r u s < "$tmp/w"; ws+=("$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')")
  done
  t=$(printf '%s\n' "${ts[@]}" | median); c=$(printf '%s\n' "${cs[@]}" | median)
  w=$(printf '%s\n' "${ws[@]}" | median)
  r=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
  ratio=$(awk -v a="$c" -v b="$w" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }')
  printf "%-9s %-5s %-8s %-8s %-8s %-7s %.1f\n" "$lines" "$mb" "$t" "$c" "$w" "$ratio" "$(awk -v k="$r" 'BEGIN{print k/1024}')"
done
