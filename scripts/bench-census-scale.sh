#!/usr/bin/env bash
# Benchmark: census scaling. For each size in SIZES and each layout in
# LAYOUTS, a throwaway namespace is filled with that many TCP sockets and a
# full census with owners on (`sockwarden sample -o json`, the default) is
# timed against `sh -c 'ss -tan | wc -l'` over ROUNDS rounds, the order of
# the commands rotated each round: median wall ratio census/ss, median CPU
# ratio, and the census's peak RSS (max over rounds). In the same rounds
# it times scripts/census-floor (floor/ss): the Go runtime's start plus
# one bare sock_diag dump, the least a Go census can cost. Root only;
# every namespace is deleted.
#
#   sudo scripts/bench-census-scale.sh
#   SIZES="10000 50000 150000 500000 1000000" LAYOUTS="one many" scripts/bench-census-scale.sh
#   OLD=/tmp/sockwarden-main scripts/bench-census-scale.sh   # also time another build
#   ALT_ENV=GOMEMLIMIT=24MiB scripts/bench-census-scale.sh   # and this build with this environment
#
# Layouts (a process here may hold at most 20,000 descriptors, so the
# rest of a size is TIME-WAIT sockets, which have no descriptor):
#   one   one process holds min(size/2, 18,000) established sockets
#         (9,000 loopback pairs); the rest are TIME-WAIT
#   many  size/2 established sockets (at most MAXEST) held by processes of
#         at most 16,000 sockets each (at least 4); the rest TIME-WAIT
#   est   every socket established, in processes of at most 16,000 (no
#         TIME-WAIT: for 500,000 and more, where making the TIME-WAITs
#         takes longer than the minute they live; ~3.5 KiB of kernel
#         memory a socket)
# TIME-WAIT sockets live 60 s: they are made just before the rounds, by
# several processes at once, and the rounds must end within the minute
# (the script reports the sockets at the start and the end: a drop means
# TIME-WAITs expired and that size's figures are not steady).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

SIZES=${SIZES:-"10000 50000 150000"}
LAYOUTS=${LAYOUTS:-"one many"}
ROUNDS=${ROUNDS:-9}
MAXEST=${MAXEST:-160000}
OLD=${OLD:-}
ALT_ENV=${ALT_ENV:-}
tmp=$(mktemp -d)
pids=()
holders=()
NS=""

teardown() {
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  for fd in ${holders[@]+"${holders[@]}"}; do eval "exec $fd>&-" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=(); holders=()
  [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null || true
  NS=""
}
trap 'teardown; rm -rf "$tmp"' EXIT

[ "$(id -u)" = 0 ] || { echo "bench-census-scale: needs root (namespaces)" >&2; exit 2; }
# The binary users run, built as the package builds it (build-shipped.sh
# says why, and how to build OLD the same way).
scripts/build-shipped.sh "$tmp/sockwarden"
go build -o "$tmp/census-load" ./scripts/census-load
go build -o "$tmp/cmdstat" ./scripts/cmdstat
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/census-floor" ./scripts/census-floor

# fill SIZE LAYOUT: a new namespace $NS holding the sockets.
fill() {
  local size=$1 layout=$2 est procs per tw i fd
  NS=sw-scale-$$-$size-$layout
  ip netns add "$NS"
  ip netns exec "$NS" ip link set lo up
  # Inside the throwaway namespace only: room for the 4-tuples and
  # TIME-WAITs.
  ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" \
    net.ipv4.tcp_max_tw_buckets=2000000 net.ipv4.tcp_tw_reuse=0 net.core.somaxconn=4096
  if [ "$layout" = one ]; then
    est=$(( size / 2 < 18000 ? size / 2 : 18000 )); procs=1
  elif [ "$layout" = est ]; then
    est=$size; procs=$(( (est + 15999) / 16000 ))
  else
    est=$(( size / 2 < MAXEST ? size / 2 : MAXEST ))
    procs=$(( (est + 15999) / 16000 )); (( procs >= 4 )) || procs=4
  fi
  per=$(( est / 2 / procs ))
  for i in $(seq "$procs"); do
    mkfifo "$tmp/in$i"
    ip netns exec "$NS" "$tmp/census-load" -pairs "$per" <"$tmp/in$i" >"$tmp/out$i" &
    pids+=($!)
    exec {fd}>"$tmp/in$i"   # the helper exits when its stdin closes
    holders+=("$fd")
  done
  for i in $(seq "$procs"); do
    until grep -q ready "$tmp/out$i" 2>/dev/null; do
      kill -0 "${pids[$((i-1))]}" 2>/dev/null || { echo "helper $i died: $(cat "$tmp/out$i")" >&2; exit 1; }
      sleep 0.2
    done
    rm -f "$tmp/in$i"
  done
  tw=$(( size - 2 * per * procs ))
  if (( tw > 0 )); then
    # 50,000 TIME-WAITs a listener port at most (4-tuples), 4 makers at once.
    local makers=4 each=$(( (tw + 3) / 4 ))
    local ports=$(( each / 50000 + 1 ))
    for i in $(seq "$makers"); do
      ip netns exec "$NS" "$tmp/census-load" -timewait "$each" -ports "$ports" >/dev/null &
      twp[$i]=$!
    done
    for i in $(seq "$makers"); do wait "${twp[$i]}"; done
  fi
  echo "layout $layout: $((2 * per * procs)) established in $procs processes, ${tw#-} TIME-WAIT made"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
count() { ip netns exec "$NS" awk '/^TCP:/{print $3 + $7}' /proc/net/sockstat; }

printf '%-8s %-5s %8s %10s %10s %8s %8s %10s %8s %s\n' size layout sockets census_ms ss_ms wall/ss cpu/ss rss_KiB floor/ss "old wall/ss, rss | alt wall/ss, rss"
results=()
for size in $SIZES; do
  for layout in $LAYOUTS; do
    fill "$size" "$layout" >&2
    have=$(count)
    declare -a cw=() cc=() cr=() sw=() sc=() ratio=() cratio=() ow=() or=() oratio=() ar=() aratio=() fratio=()
    census=("$tmp/sockwarden" sample -o json --netns "/run/netns/$NS")
    ssc=(sh -c "ss -N $NS -tan | wc -l")
    # The commands of a round, rotated each round: none always runs first
    # or right after another (a census warms what the next one reads).
    cmds=(new ss floor)
    [ -n "$OLD" ] && cmds+=(old)
    [ -n "$ALT_ENV" ] && cmds+=(alt)
    for r in $(seq "$ROUNDS"); do
      k=$(( r % ${#cmds[@]} ))
      for c in "${cmds[@]:k}" "${cmds[@]:0:k}"; do
        case $c in
          new) read -r a b cm < <("$tmp/cmdstat" "${census[@]}") ;;
          ss) read -r d e _ < <("$tmp/cmdstat" "${ssc[@]}") ;;
          floor) read -r fl _ < <("$tmp/cmdstat" "$tmp/census-floor" "/run/netns/$NS") ;;
          old) read -r g _ h < <("$tmp/cmdstat" "$OLD" sample -o json --netns "/run/netns/$NS") ;;
          alt) read -r x _ y < <("$tmp/cmdstat" env "$ALT_ENV" "${census[@]}") ;;
        esac
      done
      cw+=("$a"); cc+=("$b"); cr+=("$cm"); sw+=("$d"); sc+=("$e")
      ratio+=("$(awk -v a="$a" -v b="$d" 'BEGIN{printf "%.3f", a/b}')")
      cratio+=("$(awk -v a="$b" -v b="$e" 'BEGIN{printf "%.3f", a/b}')")
      fratio+=("$(awk -v a="$fl" -v b="$d" 'BEGIN{printf "%.3f", a/b}')")
      if [ -n "$OLD" ]; then
        ow+=("$g"); or+=("$h"); oratio+=("$(awk -v a="$g" -v b="$d" 'BEGIN{printf "%.3f", a/b}')")
      fi
      if [ -n "$ALT_ENV" ]; then
        ar+=("$y"); aratio+=("$(awk -v a="$x" -v b="$d" 'BEGIN{printf "%.3f", a/b}')")
      fi
    done
    left=$(count)
    old="-"
    [ -n "$OLD" ] && old="$(median "${oratio[@]}"), $(printf '%s\n' "${or[@]}" | sort -n | tail -n1)"
    [ -n "$ALT_ENV" ] && old="$old | $ALT_ENV: $(median "${aratio[@]}"), $(printf '%s\n' "${ar[@]}" | sort -n | tail -n1)"
    line=$(printf '%-8s %-5s %8s %10.1f %10.1f %8.3f %8.3f %10s %8.3f %s' "$size" "$layout" "$have->$left" \
      "$(median "${cw[@]}")" "$(median "${sw[@]}")" "$(median "${ratio[@]}")" "$(median "${cratio[@]}")" \
      "$(printf '%s\n' "${cr[@]}" | sort -n | tail -n1)" "$(median "${fratio[@]}")" "$old")
    echo "$line"
    results+=("$line")
    teardown
  done
done
echo "== $ROUNDS rounds each, order rotated each round; kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(sockets: TCP in use + TIME-WAIT in the namespace before -> after the rounds; ratios are medians of per-round ratios)"
