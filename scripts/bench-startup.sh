#!/usr/bin/env bash
# Benchmark: where the fixed cost of a small census goes. Times, in
# alternating order over ROUNDS rounds, on the namespace NETNS (a path;
# default: this one):
#
#   ss        sh -c 'ss -tan | wc -l'             (the reference)
#   hello     a Go program that prints one line   (the Go runtime's start)
#   etcd      hello + import go.etcd.io/etcd/client/v3   (package init)
#   prom      hello + import prometheus/client_golang    (package init)
#   version   sockwarden version                  (start + every init)
#   lean      a census alone: sample.Take and JSON, owners on, in a binary
#             without the CLI, config, etcd or Prometheus (what the census
#             would cost if the sockwarden binary did not carry them)
#   off       sockwarden sample -o json, sample.owners=false
#   on        sockwarden sample -o json (owners on, sample.owner_scan auto)
#   bpf       ... with sample.owner_scan=bpf
#   old-*     the last two with the binary OLD, when set (before/after)
#
# Each: wall ms and CPU ms (user+sys, children included) from
# scripts/cmdstat. Prints the medians and the ratios to ss. Root for
# --netns.
#
#   scripts/bench-startup.sh
#   ROUNDS=31 NETNS=/run/netns/web OLD=/tmp/sockwarden-main scripts/bench-startup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
ROUNDS=${ROUNDS:-21}
NETNS=${NETNS:-}
OLD=${OLD:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The binary users run, built as the package builds it (build-shipped.sh
# says why, and how to build OLD the same way).
scripts/build-shipped.sh "$tmp/sockwarden"
go build -o "$tmp/cmdstat" ./scripts/cmdstat
mkdir -p "$tmp/src/hello" "$tmp/src/etcd" "$tmp/src/prom" "$tmp/src/lean"
printf 'package main\n\nimport "os"\n\nfunc main() { os.Stdout.WriteString("hi\\n") }\n' >"$tmp/src/hello/main.go"
printf 'package main\n\nimport (\n\t"os"\n\n\t_ "go.etcd.io/etcd/client/v3"\n)\n\nfunc main() { os.Stdout.WriteString("hi\\n") }\n' >"$tmp/src/etcd/main.go"
printf 'package main\n\nimport (\n\t"os"\n\n\t_ "github.com/prometheus/client_golang/prometheus"\n)\n\nfunc main() { os.Stdout.WriteString("hi\\n") }\n' >"$tmp/src/prom/main.go"
cat >"$tmp/src/lean/main.go" <<'GO'
package main

import (
	"context"
	"encoding/json"
	"os"
	"runtime/debug"

	"github.com/sockwarden/sockwarden/sample"
)

func main() {
	debug.SetGCPercent(400) // as the CLI's short-lived commands
	opts := sample.Options{Owners: true}
	if len(os.Args) > 1 {
		opts.Netns = os.Args[1]
	}
	s, err := sample.Take(context.Background(), opts)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(3)
	}
	e := json.NewEncoder(os.Stdout)
	e.SetIndent("", "  ")
	e.Encode(s)
}
GO
# Built inside the module (for its go.mod), from a directory go ignores.
for p in hello etcd prom lean; do
  mkdir -p "_bench_startup_$p" && cp "$tmp/src/$p/main.go" "_bench_startup_$p/"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/$p" "./_bench_startup_$p"
  rm -rf "_bench_startup_$p"
done

nsflag=()
[ -n "$NETNS" ] && nsflag=(--netns "$NETNS")
ssns=()
[ -n "$NETNS" ] && ssns=(-N "$(basename "$NETNS")")
export SSNS="${ssns[*]}"

names=(ss hello etcd prom version lean off on bpf)
# argv NAME: sets the array run to the command line (env sets the
# variables: no shell in between but for ss, which the reference runs
# through sh -c).
argv() {
  case $1 in
    ss) run=(sh -c "ss $SSNS -tan | wc -l") ;;
    hello|etcd|prom) run=("$tmp/$1") ;;
    version) run=("$tmp/sockwarden" version) ;;
    lean) run=("$tmp/lean" ${NETNS:+"$NETNS"}) ;;
    off) run=(env SOCKWARDEN_SAMPLE_OWNERS=false "$tmp/sockwarden" sample -o json ${nsflag[@]+"${nsflag[@]}"}) ;;
    on) run=("$tmp/sockwarden" sample -o json ${nsflag[@]+"${nsflag[@]}"}) ;;
    bpf) run=(env SOCKWARDEN_SAMPLE_OWNER_SCAN=bpf "$tmp/sockwarden" sample -o json ${nsflag[@]+"${nsflag[@]}"}) ;;
    old-on) run=("$OLD" sample -o json ${nsflag[@]+"${nsflag[@]}"}) ;;
    old-bpf) run=(env SOCKWARDEN_SAMPLE_OWNER_SCAN=bpf "$OLD" sample -o json ${nsflag[@]+"${nsflag[@]}"}) ;;
  esac
}
[ -n "$OLD" ] && names+=(old-on old-bpf)
# measure NAME: prints "wall_ms cpu_ms peak_rss_kib" (scripts/cmdstat).
measure() {
  argv "$1"
  "$tmp/cmdstat" "${run[@]}"
}

declare -A wall cpu
for r in $(seq "$ROUNDS"); do
  order=("${names[@]}")
  (( r % 2 )) || order=($(printf '%s\n' "${names[@]}" | tac))
  for n in "${order[@]}"; do
    read -r w c _ < <(measure "$n")
    wall[$n]+="$w "; cpu[$n]+="$c "
  done
done
median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "== $ROUNDS rounds, alternating order; kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); namespace ${NETNS:-own}, $(( $(ss ${ssns[@]+"${ssns[@]}"} -tan | wc -l) - 1 )) sockets"
sw=$(median "${wall[ss]}"); sc=$(median "${cpu[ss]}")
printf '%-8s %10s %10s %10s %10s\n' name wall_ms cpu_ms wall/ss cpu/ss
for n in "${names[@]}"; do
  w=$(median "${wall[$n]}"); c=$(median "${cpu[$n]}")
  printf '%-8s %10.1f %10.1f %10.2f %10.2f\n' "$n" "$w" "$c" "$(awk -v a="$w" -v b="$sw" 'BEGIN{print a/b}')" "$(awk -v a="$c" -v b="$sc" 'BEGIN{print a/b}')"
done
