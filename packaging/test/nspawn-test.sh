#!/usr/bin/env bash
# Boots a real systemd as PID 1 in a container (systemd-nspawn, a cached
# debootstrapped Debian bookworm), installs the sockwarden deb in it and
# checks the agent as a systemd service:
#
#   1. the package installs the unit, config and tmpfiles and enables nothing;
#      systemd-analyze verify passes and security --offline rates the unit;
#   2. the unit becomes active only after READY=1 (the first good sample);
#   3. STATUS= text shows in `systemctl status`;
#   4. a stalled sampling loop is killed by the watchdog and restarted;
#   5. SIGHUP (systemctl reload) reloads the config (agent.mode observe shows
#      in `sockwarden status`), a bad config is refused with the old one
#      kept, and a reload back to the packaged config restores propose mode;
#   6. with the lab's somaxconn-capped scenario built in the container's OWN
#      network namespace (`lab run --in-netns /proc/self/ns/net`), the agent,
#      watching its own namespace, proposes, `sockwarden approve` is given,
#      the agent writes the container's net.core.somaxconn (the host's stays
#      untouched) and journald has the change with
#      SOCKWARDEN_KEY/OLD/NEW/PROPOSAL/APPROVER/REASON;
#   7. SIGTERM (systemctl stop) during the verification rolls it back to the
#      exact old value; stopping the lab restores the container's own value;
#   8. an upgrade of the package (a second deb built with a higher version)
#      restarts the running agent, which then runs the new version;
#   9. purge removes the state (/var/lib/sockwarden), the configuration and
#      the unit, and stops the agent;
#  10. the lab scenario's finding is in the journal with its fields:
#      journalctl -u sockwarden SOCKWARDEN_KIND=accept-queue-overflow.
#
# Usage (root): packaging/test/nspawn-test.sh [--files] [--keep]
#   --files  install the binary, unit, config and tmpfiles directly instead
#            of building and installing the deb (faster, no nfpm)
#   --keep   leave the container running at the end (prints how to enter it)
# Environment: SWTEST_NSPAWN_CACHE (default /var/cache/sockwarden/nspawn)
# holds the root file system, built once (about 60 s, 210 MB).
#
# Nothing on the host changes: the container has its own network namespace
# (--private-network) and a volatile overlay over the cached rootfs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=/usr/local/go/bin:$PATH
CACHE=${SWTEST_NSPAWN_CACHE:-/var/cache/sockwarden/nspawn}
ROOTFS=$CACHE/bookworm
NAME=swtest-$$
use_deb=1 keep=0
for a in "$@"; do
  case $a in
    --files) use_deb=0 ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--files] [--keep]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "nspawn-test: needs root" >&2; exit 2; }

work=$(mktemp -d /tmp/sw-nspawn.XXXXXX)
t_start=$(date +%s)
say() { printf '== %s (+%ss)\n' "$*" $(($(date +%s) - t_start)); }
passed=0
pass() { passed=$((passed + 1)); printf 'PASS %s\n' "$*"; }
fail() {
  printf 'FAIL %s\n' "$*"
  if [ -n "${leader:-}" ]; then
    echo "--- systemctl status"; in_ct systemctl --no-pager status sockwarden 2>&1 | tail -20 || true
    echo "--- journal"; in_ct journalctl --no-pager -u sockwarden -n 60 2>&1 || true
  fi
  exit 1
}

# --- packages and root file system ------------------------------------
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v nsenter >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mirror() {
  local m=""
  [ -r /etc/apt/sources.list.d/debian.sources ] &&
    m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  echo "${m:-http://deb.debian.org/debian}"
}
if [ ! -x "$ROOTFS/lib/systemd/systemd" ]; then
  say "debootstrap bookworm into $ROOTFS (once)"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
  if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2 bookworm "$tmp/rootfs" "$(mirror)" >"$tmp/log" 2>&1; then
    tail -20 "$tmp/log"; rm -rf "$tmp"; echo "debootstrap failed" >&2; exit 1
  fi
  rm -f "$tmp/rootfs/var/cache/apt/archives/"*.deb
  mv "$tmp/rootfs" "$ROOTFS"   # atomic: an interrupted build leaves no half rootfs
  rm -rf "$tmp"
fi

# --- build ---------------------------------------------------------------
# The binary under test carries the test-only stall hook (SWTEST_STALL_FILE,
# agent/stall_testhooks.go) for checks 2 and 4; release builds do not.
export SW_BUILD_TAGS=sockwarden_testhooks
if [ $use_deb = 1 ]; then
  say "building the deb (packaging/build.sh)"
  "$repo/packaging/build.sh" 0.0.0~nspawn >"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; exit 1; }
  deb=$work/$(basename "$(ls "$repo"/dist/sockwarden_*_*.deb)")
  cp "$repo"/dist/sockwarden_*_*.deb "$deb"
  # The upgrade (check 8): the same tree built with a higher version.
  say "building the upgrade's deb (0.0.1~nspawn)"
  "$repo/packaging/build.sh" 0.0.1~nspawn >"$work/build2.log" 2>&1 || { tail -20 "$work/build2.log"; exit 1; }
  deb2=$work/$(basename "$(ls "$repo"/dist/sockwarden_*_*.deb)")
  cp "$repo"/dist/sockwarden_*_*.deb "$deb2"
else
  say "building the binary"
  (cd "$repo" && CGO_ENABLED=0 go build -tags "sockwarden_lean,$SW_BUILD_TAGS" -ldflags "-X main.version=0.0.0~nspawn" -o "$work/sockwarden" ./cmd/sockwarden)
  (cd "$repo" && CGO_ENABLED=0 go build -tags "$SW_BUILD_TAGS" -ldflags "-X main.version=0.0.0~nspawn" -o "$work/sockwarden-full" ./cmd/sockwarden)
fi

# --- boot ------------------------------------------------------------------
cg=""
cleanup() {
  set +e
  if [ $keep = 1 ] && [ -n "${nspawn_pid:-}" ]; then
    echo "container left running: nsenter -t $leader -a bash   (stop: kill $nspawn_pid)"
    return
  fi
  if [ -n "${nspawn_pid:-}" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid"
    for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$nspawn_pid" 2>/dev/null
  fi
  rm -rf "/run/systemd/nspawn/propagate/$NAME"
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say "booting systemd in $NAME"
# Without a host systemd, nspawn makes payload/ and supervisor/ cgroups under
# the cgroup it runs in: give it one of its own and remove it afterwards.
if [ -d /sys/fs/cgroup/systemd ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
  cg=/sys/fs/cgroup/systemd/$NAME
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  cg=/sys/fs/cgroup/$NAME
fi
[ -n "$cg" ] && mkdir -p "$cg"
(
  [ -n "$cg" ] && echo $BASHPID >"$cg/cgroup.procs"
  exec systemd-nspawn -D "$ROOTFS" --machine="$NAME" --register=no --keep-unit --volatile=overlay \
    --private-network --console=read-only -q --boot
) >"$work/console.log" 2>&1 &
nspawn_pid=$!
leader=""
for _ in $(seq 100); do
  leader=$(pgrep -P "$nspawn_pid" | head -1 || true)
  [ -n "$leader" ] && [ "$(cat /proc/$leader/comm 2>/dev/null)" = systemd ] && break
  leader=""
  sleep 0.1
done
[ -n "$leader" ] || { cat "$work/console.log"; fail "container did not start"; }
in_ct() { nsenter -t "$leader" -a -- "$@"; }
put() { in_ct sh -c "cat > '$1' && chmod $2 '$1'"; } # dst mode < src
state=""
for _ in $(seq 150); do
  state=$(in_ct systemctl is-system-running 2>/dev/null || true)
  case $state in running|degraded) break ;; esac
  sleep 0.2
done
case $state in running|degraded) ;; *) fail "container systemd is $state" ;; esac
say "container up ($state), systemd $(in_ct systemctl --version | awk 'NR==1 {print $2}')"

# --- 1. install ------------------------------------------------------------
if [ $use_deb = 1 ]; then
  put /tmp/sockwarden.deb 0644 <"$deb"
  in_ct dpkg -i /tmp/sockwarden.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
  for f in /usr/bin/sockwarden /usr/libexec/sockwarden/sockwarden-full /usr/lib/systemd/system/sockwarden.service /etc/sockwarden/config.yaml \
    /usr/lib/tmpfiles.d/sockwarden.conf /usr/share/man/man8/sockwarden.8.gz /usr/share/bash-completion/completions/sockwarden; do
    in_ct test -e "$f" || fail "package did not install $f"
  done
  [ "$(in_ct stat -c %a /var/lib/sockwarden)" = 700 ] || fail "tmpfiles did not create /var/lib/sockwarden 0700"
  en=$(in_ct systemctl is-enabled sockwarden 2>/dev/null || true)
  act=$(in_ct systemctl is-active sockwarden 2>/dev/null || true)
  [ "$en" = disabled ] && [ "$act" = inactive ] || fail "after install the unit is $en/$act, want disabled/inactive"
  pass "deb installs both binaries, unit, config, tmpfiles, man page, completions; unit disabled and inactive"
else
  put /usr/bin/sockwarden 0755 <"$work/sockwarden"
  in_ct mkdir -p /usr/libexec/sockwarden
  put /usr/libexec/sockwarden/sockwarden-full 0755 <"$work/sockwarden-full"
  put /usr/lib/systemd/system/sockwarden.service 0644 <"$repo/packaging/sockwarden.service"
  in_ct mkdir -p /etc/sockwarden
  put /etc/sockwarden/config.yaml 0644 <"$repo/packaging/config.yaml"
  put /usr/lib/tmpfiles.d/sockwarden.conf 0644 <"$repo/packaging/tmpfiles.d/sockwarden.conf"
  in_ct systemd-tmpfiles --create sockwarden.conf
  in_ct systemctl daemon-reload
fi
# --man=no: the minimal rootfs has no man(1) to check Documentation=man:... with.
out=$(in_ct systemd-analyze verify --man=no /usr/lib/systemd/system/sockwarden.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify printed: $out"
pass "systemd-analyze verify sockwarden.service: clean"
expo=$(in_ct systemd-analyze security --offline=yes /usr/lib/systemd/system/sockwarden.service 2>/dev/null | tail -1)
echo "     $expo"

# The test's drop-in: fast ticks, a short watchdog, the test-only stall
# file. The agent watches only its own namespace (the container's), so the
# unit's capabilities stay as shipped (no CAP_SYS_ADMIN, no setns).
in_ct mkdir -p /etc/systemd/system/sockwarden.service.d
put /etc/systemd/system/sockwarden.service.d/test.conf 0644 <<'EOF'
[Service]
Environment=SWTEST_STALL_FILE=/var/lib/sockwarden/stall
Environment=SOCKWARDEN_AGENT_TICK=1s SOCKWARDEN_DIAGNOSE_INTERVAL=2s
Environment=SOCKWARDEN_VERIFY_INTERVAL=2s SOCKWARDEN_VERIFY_WINDOW=90s
WatchdogSec=8s
RestartSec=1s
TimeoutStartSec=30s
EOF
in_ct systemctl daemon-reload
show() { in_ct systemctl show -P "$1" sockwarden; }
journal_has() { in_ct journalctl --no-pager -u sockwarden -o cat 2>/dev/null | grep -q -- "$1"; }
wait_until() { # seconds description command...
  local secs=$1 what=$2; shift 2
  local end=$(($(date +%s) + secs))
  until "$@"; do
    [ "$(date +%s)" -lt $end ] || fail "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}
is() { [ "$(show "$1")" = "$2" ]; }

# --- 2. active only after READY ------------------------------------------
say "start with the loop stalled before its first sample"
in_ct touch /var/lib/sockwarden/stall
in_ct systemctl start --no-block sockwarden
wait_until 10 "the agent process" journal_has "test stall file present"
sleep 2
[ "$(show ActiveState)" = activating ] || fail "unit is $(show ActiveState) before READY, want activating"
in_ct rm -f /var/lib/sockwarden/stall
wait_until 15 "active after READY" is ActiveState active
journal_has "first sample taken: ready" || fail "no 'first sample taken: ready' in the journal"
# ExecStart is /usr/bin/sockwarden agent, the lean build: it execs the full
# one in the same process (same PID, so READY=1 came from the main PID),
# which keeps the name operators grep for.
mp=$(show MainPID)
exe=$(in_ct readlink "/proc/$mp/exe"); comm=$(in_ct cat "/proc/$mp/comm")
[ "$exe" = /usr/libexec/sockwarden/sockwarden-full ] && [ "$comm" = sockwarden ] ||
  fail "the agent's main process $mp runs $exe named $comm, want /usr/libexec/sockwarden/sockwarden-full named sockwarden"
pass "unit stays activating until the first good sample, active after READY=1 (MainPID $mp: $exe, comm $comm)"

# --- 3. STATUS= ---------------------------------------------------------------
has_status() { [ -n "$(show StatusText)" ]; }
wait_until 10 "a STATUS= line" has_status
st=$(in_ct systemctl --no-pager status sockwarden 2>&1 | grep 'Status:' || true)
[ -n "$st" ] || fail "systemctl status shows no Status: line"
pass "systemctl status shows $(echo "$st" | sed 's/^ *//')"

# --- 4. watchdog ----------------------------------------------------------------
say "stalling the loop: the watchdog must kill and restart it"
r0=$(show NRestarts)
in_ct touch /var/lib/sockwarden/stall
wait_until 20 "the watchdog to fire" journal_has "Watchdog timeout"
in_ct rm -f /var/lib/sockwarden/stall
restarted() { [ "$(show NRestarts)" -gt "$r0" ]; }
wait_until 20 "the restart" restarted
wait_until 20 "active again" is ActiveState active
pass "watchdog killed the stalled loop ($(in_ct journalctl --no-pager -u sockwarden -o cat | grep -m1 'Watchdog timeout' | sed 's/^ *//')), NRestarts $r0 -> $(show NRestarts), active again"

# --- 5. SIGHUP --------------------------------------------------------------------
say "reloading a config that switches the agent to observe mode"
in_ct cat /etc/sockwarden/config.yaml >"$work/config.orig.yaml"
# The client reads no config: the file may be a bad one on purpose.
agent_mode() { in_ct sockwarden --config /dev/null status --json 2>/dev/null | grep -m1 '"mode"' | tr -d ' ",' || true; }
mode_is() { [ "$(agent_mode)" = "mode:$1" ]; }
printf 'agent:\n  mode: observe\n' | put /etc/sockwarden/config.yaml 0644
in_ct systemctl reload sockwarden
wait_until 15 "the reload" journal_has "configuration reloaded.*mode=observe"
wait_until 10 "sockwarden status to say mode observe" mode_is observe
[ "$(show ActiveState)" = active ] || fail "not active after reload"
printf 'agent:\n  mode: bogus\n' | put /etc/sockwarden/config.yaml 0644
in_ct systemctl reload sockwarden
wait_until 15 "the bad reload to be refused" journal_has "config reload refused"
sleep 1
[ "$(show ActiveState)" = active ] || fail "not active after a bad reload"
mode_is observe || fail "after a refused reload the agent says $(agent_mode), want mode:observe (the old config kept)"
put /etc/sockwarden/config.yaml 0644 <"$work/config.orig.yaml"
in_ct systemctl reload sockwarden
wait_until 15 "the packaged config's propose mode" mode_is propose
pass "SIGHUP reloads (sockwarden status: mode propose -> observe); a bad config is refused, observe kept; the packaged config reloaded: propose again"

# --- 6. a kernel change in the container's own namespace, journaled --------------
ct_somaxconn() { in_ct cat /proc/sys/net/core/somaxconn; }
ct_is() { [ "$(ct_somaxconn)" = "$1" ]; }
ct0=$(ct_somaxconn)
host0=$(cat /proc/sys/net/core/somaxconn)
[ "$(readlink /proc/$leader/ns/net)" != "$(readlink /proc/self/ns/net)" ] || fail "the container shares the host's network namespace"
say "starting the lab scenario somaxconn-capped in the container's own network namespace (somaxconn $ct0 there, $host0 on the host)"
in_ct systemd-run --quiet --unit=swlab --collect /usr/bin/sockwarden lab run somaxconn-capped --relisten --duration 4m --in-netns /proc/self/ns/net
listener_capped() { [ "$(in_ct ss -Htln 'sport = :8082' | awk '{print $3}')" = 64 ]; }
wait_until 20 "the lab's listener (Send-Q 64) in the container's namespace" listener_capped
ct_is 64 || fail "the container's somaxconn is $(ct_somaxconn) with the lab running, want 64"
if in_ct sh -c 'ls /run/netns/sw-lab-* >/dev/null 2>&1'; then fail "the lab made a namespace of its own"; fi
[ "$(cat /proc/sys/net/core/somaxconn)" = "$host0" ] || fail "the host's somaxconn changed when the lab started"

say "waiting for the agent to propose a somaxconn change for its own namespace"
id=""
find_pending() {
  id=$(in_ct sockwarden status --json 2>/dev/null | tr -d '\n ' | grep -o '"pending":\[{"id":"[^"]*"' | sed 's/.*"id":"//; s/"$//' || true)
  [ -n "$id" ]
}
wait_until 90 "a pending proposal" find_pending
in_ct sockwarden approve "$id" --comment "nspawn test" >/dev/null
wait_until 60 "the change to be applied" journal_has "kernel change applied"
v=$(in_ct journalctl --no-pager -u sockwarden -o verbose SOCKWARDEN_KEY=net.core.somaxconn SOCKWARDEN_PROPOSAL="$id" SOCKWARDEN_STATE=applied)
for f in SOCKWARDEN_KEY=net.core.somaxconn SOCKWARDEN_OLD=64 SOCKWARDEN_NEW= SOCKWARDEN_PROPOSAL="$id" SOCKWARDEN_APPROVER= SOCKWARDEN_REASON=; do
  echo "$v" | grep -q -- "$f" || fail "journal entry lacks $f"
done
echo "$v" | grep -E '^ *(MESSAGE|SOCKWARDEN_(KEY|OLD|NEW|PROPOSAL|APPROVER|REASON))=' | sed 's/^ */     /'
new=$(echo "$v" | grep -m1 -o 'SOCKWARDEN_NEW=[0-9]*' | cut -d= -f2)
live=$(ct_somaxconn)
[ "$live" = "$new" ] || fail "the container's own somaxconn is $live, want $new"
hostv=$(cat /proc/sys/net/core/somaxconn)
[ "$hostv" = "$host0" ] || fail "the host's somaxconn changed: $host0 -> $hostv"
pass "net.core.somaxconn 64 -> $new in the container's own network namespace (nsenter reads $live; the host's stays $hostv); journalctl SOCKWARDEN_KEY=net.core.somaxconn shows KEY, OLD, NEW, PROPOSAL, APPROVER, REASON"

# --- 7. SIGTERM during the verification -------------------------------------------
wait_until 20 "the verification to be in flight" sh -c "nsenter -t $leader -a -- sockwarden status --json 2>/dev/null | grep -q '\"verifying\"'"
say "stopping the agent during the verification"
in_ct systemctl stop --no-block sockwarden
wait_until 30 "the agent to stop" is ActiveState inactive
# journald may index the last lines of a stopped unit a moment after
# systemd reports it inactive: wait for them rather than read once.
wait_until 10 "the journal to show that SIGTERM interrupted the apply" journal_has "stopping during an apply"
wait_until 10 "a 'kernel change rolled-back' journal entry after SIGTERM" journal_has "kernel change rolled-back"
live=$(ct_somaxconn)
[ "$live" = 64 ] || fail "after SIGTERM the container's somaxconn is $live, want 64"
[ "$(show Result)" = success ] || fail "stop result $(show Result), want success (within TimeoutStopSec)"
[ "$(cat /proc/sys/net/core/somaxconn)" = "$host0" ] || fail "the host's somaxconn changed"
pass "SIGTERM during verification: apply interrupted, change rolled back (the container's somaxconn 64 again), clean stop within TimeoutStopSec"

say "stopping the lab: it restores the container's own somaxconn"
in_ct systemctl stop swlab 2>/dev/null || true
wait_until 10 "the container's somaxconn back to $ct0" ct_is "$ct0"
in_ct journalctl --no-pager -u swlab -o cat | grep -q "sysctls restored" || fail "the lab did not log 'sysctls restored'"
[ "$(cat /proc/sys/net/core/somaxconn)" = "$host0" ] || fail "the host's somaxconn changed"
pass "lab stopped: the container's somaxconn is $ct0 again, the host's $host0 throughout"

if [ $use_deb = 1 ]; then
  # --- 8. upgrade ---------------------------------------------------------------
  say "upgrading the package while the agent runs"
  in_ct systemctl start sockwarden
  wait_until 30 "active before the upgrade" is ActiveState active
  pid1=$(show MainPID)
  put /tmp/sockwarden2.deb 0644 <"$deb2"
  in_ct dpkg -i /tmp/sockwarden2.deb >"$work/dpkg2.log" 2>&1 || { cat "$work/dpkg2.log"; fail "dpkg -i (upgrade)"; }
  grep -q "restarting the running agent" "$work/dpkg2.log" || { cat "$work/dpkg2.log"; fail "the upgrade did not say it restarts the agent"; }
  wait_until 30 "active after the upgrade" is ActiveState active
  pid2=$(show MainPID)
  [ "$pid2" != "$pid1" ] && [ "$pid2" != 0 ] || fail "the agent was not restarted by the upgrade (MainPID $pid1 -> $pid2)"
  new_started() { in_ct journalctl --no-pager -u sockwarden -o cat SOCKWARDEN_VERSION=0.0.1~nspawn 2>/dev/null | grep -q "agent starting"; }
  wait_until 10 "the new version's start in the journal (SOCKWARDEN_VERSION=0.0.1~nspawn)" new_started
  v=$(in_ct dpkg-query -W -f '${Version}' sockwarden)
  pass "upgrade to $v restarted the running agent (MainPID $pid1 -> $pid2; dpkg said: $(grep -m1 'restarting the running agent' "$work/dpkg2.log"))"

  # --- 9. purge -------------------------------------------------------------------
  say "purging the package"
  in_ct touch /var/lib/sockwarden/purge-marker
  in_ct dpkg --purge sockwarden >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
  for f in /var/lib/sockwarden /etc/sockwarden /usr/bin/sockwarden /usr/libexec/sockwarden /lib/systemd/system/sockwarden.service; do
    if in_ct test -e "$f"; then fail "after purge $f is still there"; fi
  done
  act=$(in_ct systemctl is-active sockwarden 2>/dev/null || true)
  [ "$act" = inactive ] || [ "$act" = unknown ] || fail "after purge the agent is $act"
  pass "purge stopped the agent ($act) and removed /var/lib/sockwarden, /etc/sockwarden, both binaries and the unit"
fi

# --- 10. the finding in the journal --------------------------------------------------
# The lab's somaxconn-capped scenario overflowed an accept queue while the
# agent watched (check 6): each finding that appears is one journal entry
# with its fields, whatever the package's state now.
fv=$(in_ct journalctl --no-pager -u sockwarden -o verbose SOCKWARDEN_KIND=accept-queue-overflow 2>/dev/null || true)
echo "$fv" | grep -q 'SOCKWARDEN_KIND=accept-queue-overflow' ||
  fail "journalctl -u sockwarden SOCKWARDEN_KIND=accept-queue-overflow finds no entry"
for f in SOCKWARDEN_SIDE= SOCKWARDEN_SUBJECT= SOCKWARDEN_SEVERITY= SOCKWARDEN_NETNS=; do
  echo "$fv" | grep -q -- "$f" || fail "the finding's journal entry lacks $f"
done
echo "$fv" | grep -E '^ *(MESSAGE|SOCKWARDEN_(KIND|SIDE|SUBJECT|SEVERITY|NETNS|PROPOSAL))=' | head -8 | sed 's/^ */     /'
pass "journalctl -u sockwarden SOCKWARDEN_KIND=accept-queue-overflow: $(echo "$fv" | grep -c 'SOCKWARDEN_KIND=') entries with SIDE, SUBJECT, SEVERITY, NETNS"
say "all $passed checks passed"
