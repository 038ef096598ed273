package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/internal/netns"
)

// These tests check each scenario against the kernel itself, with iproute2
// `ss` and the namespace's own /proc/net counters as the oracle. The
// diagnose verdicts on the same scenarios are checked in diagnose_test.go.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

func startScenario(t *testing.T, name string, opts Options) *Env {
	t.Helper()
	if opts.Duration == 0 {
		opts.Duration = 2 * time.Minute
	}
	env, err := Start(context.Background(), name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
		if _, err := os.Stat(env.Netns); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still there after Stop: %v", env.Netns, err)
		}
	})
	return env
}

// ssSock is one line of `ss -Htanp`.
type ssSock struct {
	State        string
	RecvQ, SendQ int
	Local, Peer  string
	Users        string
}

// ss lists the namespace's TCP sockets in the given state ("" for all)
// that match the ss filter. (ss drops its State column when the filter
// names a single state, so states are filtered here.)
func ss(t *testing.T, env *Env, state string, filter ...string) []ssSock {
	t.Helper()
	return ssRun(t, env, "-Htan", state, filter)
}

// ssp is ss with -p (owners): slower, it reads every process's fds.
func ssp(t *testing.T, env *Env, state string, filter ...string) []ssSock {
	t.Helper()
	return ssRun(t, env, "-Htanp", state, filter)
}

func ssRun(t *testing.T, env *Env, flags, state string, filter []string) []ssSock {
	t.Helper()
	args := append([]string{"-N", env.Name, flags}, filter...)
	out, err := exec.Command("ss", args...).Output()
	if err != nil {
		t.Fatalf("ss %s: %v", strings.Join(args, " "), err)
	}
	var socks []ssSock
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		r, _ := strconv.Atoi(f[1])
		s, _ := strconv.Atoi(f[2])
		sk := ssSock{State: f[0], RecvQ: r, SendQ: s, Local: f[3], Peer: f[4]}
		if len(f) > 5 {
			sk.Users = strings.Join(f[5:], " ")
		}
		if state == "" || sk.State == state {
			socks = append(socks, sk)
		}
	}
	return socks
}

func listener(t *testing.T, env *Env) ssSock {
	t.Helper()
	for _, s := range ssRun(t, env, "-Hltn", "LISTEN", nil) {
		if s.Local == env.Listen {
			return s
		}
	}
	t.Fatalf("no listener on %s in %s", env.Listen, env.Name)
	return ssSock{}
}

// counters reads the namespace's Tcp and TcpExt counters (nstat names).
func counters(t *testing.T, env *Env) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	err := env.Do(func() error {
		for _, f := range []string{"netstat", "snmp"} {
			b, err := os.ReadFile(netns.ProcNet + "/" + f)
			if err != nil {
				return err
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			for i := 0; i+1 < len(lines); i += 2 {
				names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
				if len(names) != len(vals) || len(names) == 0 {
					return fmt.Errorf("%s: bad pair at line %d", f, i+1)
				}
				prefix := strings.TrimSuffix(names[0], ":")
				for j := 1; j < len(names); j++ {
					v, err := strconv.ParseInt(vals[j], 10, 64)
					if err != nil {
						continue
					}
					m[prefix+names[j]] = uint64(v)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rises returns the counter's increase in each of n intervals of d.
func rises(t *testing.T, env *Env, counter string, n int, d time.Duration) []uint64 {
	t.Helper()
	prev := counters(t, env)[counter]
	var out []uint64
	for range n {
		time.Sleep(d)
		cur := counters(t, env)[counter]
		out = append(out, cur-prev)
		prev = cur
	}
	return out
}

func allPositive(v []uint64) bool {
	for _, x := range v {
		if x == 0 {
			return false
		}
	}
	return len(v) > 0
}

func writeSysctl(t *testing.T, env *Env, key, value string) {
	t.Helper()
	err := env.Do(func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("after %s: %s", d, what)
}

// waitRelisten waits for the lab application (Options.Relisten) to call
// listen() again after a somaxconn change, so that its listener's Send-Q
// is want. It polls every 100 ms; the wait is long because a loaded
// machine starves the application, and on failure its log says whether
// it saw the change.
func waitRelisten(t *testing.T, env *Env, want int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if listener(t, env).SendQ == want {
			return
		}
	}
	t.Fatalf("after 10s: Send-Q %d, want %d after listen() again; the application said:\n%s", listener(t, env).SendQ, want, env.stderr.String())
}

func TestNetnsKernelAcceptQueue(t *testing.T) {
	needRoot(t)
	t.Parallel()
	tests := []struct {
		name      string
		sendQ     int
		saturated bool // the queue is at its limit in (nearly) every poll
	}{
		{BacklogCapped, AppBacklogSmall, false},
		{SomaxconnCapped, SomaxconnCap, false},
		{SlowAcceptor, SlowSomaxconn, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := startScenario(t, tc.name, Options{})
			if l := ssRun(t, env, "-Hltnp", "LISTEN", []string{"sport", "=", env.Listen[strings.LastIndexByte(env.Listen, ':'):]}); len(l) != 1 || l[0].SendQ != tc.sendQ || !strings.Contains(l[0].Users, env.Comm) {
				t.Fatalf("listener %+v, want Send-Q %d owned by %s", l, tc.sendQ, env.Comm)
			}
			// 2 s intervals (four bursts each): a starved machine can
			// send one burst too slowly to overflow, not four.
			if d := rises(t, env, "TcpExtListenOverflows", 2, 2*time.Second); !allPositive(d) {
				t.Errorf("ListenOverflows per interval %v, want rising in every interval", d)
			}
			// Poll the queue like the sampler's watch does.
			atLimit, polls, drained := 0, 0, 0
			for range 40 {
				l := listener(t, env)
				polls++
				if l.RecvQ >= l.SendQ {
					atLimit++
				} else if l.RecvQ < l.SendQ/2 {
					drained++
				}
				time.Sleep(25 * time.Millisecond)
			}
			t.Logf("%s: %d polls, %d at limit, %d below half", tc.name, polls, atLimit, drained)
			if tc.saturated && atLimit < polls*9/10 {
				t.Errorf("saturated acceptor at its limit in %d of %d polls", atLimit, polls)
			}
			if !tc.saturated && (drained == 0 || atLimit == polls) {
				t.Errorf("burst: %d of %d polls at limit, %d drained; want the queue to drain between bursts", atLimit, polls, drained)
			}
		})
	}
}

// TestNetnsKernelSomaxconnRelisten proves what remediate relies on: raising
// somaxconn changes nothing until the application listens again; with
// Relisten it does, Send-Q rises and the bursts stop overflowing.
func TestNetnsKernelSomaxconnRelisten(t *testing.T) {
	needRoot(t)
	t.Parallel()
	for _, relisten := range []bool{true, false} {
		t.Run(fmt.Sprintf("relisten=%v", relisten), func(t *testing.T) {
			t.Parallel()
			env := startScenario(t, SomaxconnCapped, Options{Relisten: relisten})
			if d := rises(t, env, "TcpExtListenOverflows", 1, 2*time.Second); !allPositive(d) {
				t.Fatalf("no overflows before the change: %v", d)
			}
			writeSysctl(t, env, "net.core.somaxconn", "128")
			if !relisten {
				time.Sleep(time.Second)
				if l := listener(t, env); l.SendQ != SomaxconnCap {
					t.Fatalf("Send-Q %d after somaxconn 128 without listen(): want it still %d", l.SendQ, SomaxconnCap)
				}
				// Any overflow at all says they did not stop (with
				// listen() again there are none, below). Not one in
				// every second: a starved CI machine sent a burst too
				// slowly to overflow in one of two seconds ([17 0]).
				if d := rises(t, env, "TcpExtListenOverflows", 3, time.Second); d[0]+d[1]+d[2] == 0 {
					t.Errorf("overflows stopped without listen() again: %v per second", d)
				}
				return
			}
			waitRelisten(t, env, 128)
			time.Sleep(300 * time.Millisecond) // connects already in flight
			if d := rises(t, env, "TcpExtListenOverflows", 2, time.Second); d[0]+d[1] != 0 {
				t.Errorf("overflows per interval after somaxconn 128 and listen(): %v, want none", d)
			}
			if d := rises(t, env, "TcpActiveOpens", 1, time.Second); d[0] < BurstSize {
				t.Errorf("load went away: %d connects in 1s", d[0])
			}
		})
	}
}

func TestNetnsKernelPiles(t *testing.T) {
	needRoot(t)
	t.Parallel()
	tests := []struct {
		name  string
		check func(t *testing.T, env *Env)
	}{
		{CloseWait, func(t *testing.T, env *Env) {
			socks := ssp(t, env, "CLOSE-WAIT")
			owned := 0
			for _, s := range socks {
				if strings.Contains(s.Users, `"leaky-app"`) {
					owned++
				}
			}
			if owned < CloseWaitStart {
				t.Errorf("%d CLOSE-WAIT owned by leaky-app of %d, want >= %d", owned, len(socks), CloseWaitStart)
			}
			time.Sleep(2 * time.Second) // tcp_fin_timeout 1 in the namespace
			if fw2 := len(ss(t, env, "FIN-WAIT-2")); fw2 > 100 {
				t.Errorf("%d FIN-WAIT-2: the peers should be gone after tcp_fin_timeout 1", fw2)
			}
		}},
		{TimeWait, func(t *testing.T, env *Env) {
			// Above diagnose's default pile size (5000) even when a
			// loaded machine loses a few of the first connects.
			if n := len(ss(t, env, "TIME-WAIT")); n < 5000 || n > TimeWaitStart+1000 {
				t.Errorf("%d TIME-WAIT, want about %d", n, TimeWaitStart)
			}
			if err := connectOnce(env); err != nil {
				t.Errorf("connect with plenty of ports: %v", err)
			}
		}},
		{EphemeralPorts, func(t *testing.T, env *Env) {
			tw := ss(t, env, "TIME-WAIT", "dst", env.Listen)
			if len(tw) < 950 {
				t.Errorf("%d TIME-WAIT to %s, want nearly the 1000 ports of %s", len(tw), env.Listen, PortRange)
			}
			for _, s := range tw {
				p, _ := strconv.Atoi(s.Local[strings.LastIndexByte(s.Local, ':')+1:])
				if p < 40000 || p > 40999 {
					t.Fatalf("TIME-WAIT from port %d, outside %s", p, PortRange)
				}
			}
			if err := connectOnce(env); !errors.Is(err, unix.EADDRNOTAVAIL) {
				t.Errorf("connect to %s: %v, want EADDRNOTAVAIL", env.Listen, err)
			}
		}},
		{SynRecvCookies, func(t *testing.T, env *Env) {
			waitFor(t, 5*time.Second, "SYN-RECV pile", func() bool {
				return len(ss(t, env, "SYN-RECV")) >= SynBacklog*3/4
			})
			if d := rises(t, env, "TcpExtTCPReqQFullDoCookies", 2, 2*time.Second); !allPositive(d) {
				t.Errorf("TCPReqQFullDoCookies per interval %v, want rising", d)
			}
			c := counters(t, env)
			if c["TcpExtTCPReqQFullDrop"] != 0 || c["TcpExtSyncookiesSent"] == 0 {
				t.Errorf("with cookies on: TCPReqQFullDrop %d (want 0), SyncookiesSent %d (want > 0)", c["TcpExtTCPReqQFullDrop"], c["TcpExtSyncookiesSent"])
			}
		}},
		{SynRecvNoCookies, func(t *testing.T, env *Env) {
			waitFor(t, 5*time.Second, "SYN-RECV pile", func() bool {
				return len(ss(t, env, "SYN-RECV")) >= SynBacklog*3/4
			})
			if d := rises(t, env, "TcpExtTCPReqQFullDrop", 2, 2*time.Second); !allPositive(d) {
				t.Errorf("TCPReqQFullDrop per interval %v, want rising", d)
			}
			if c := counters(t, env); c["TcpExtSyncookiesSent"] != 0 {
				t.Errorf("SyncookiesSent %d with cookies off", c["TcpExtSyncookiesSent"])
			}
		}},
		{FinWait2, func(t *testing.T, env *Env) {
			fw2 := ssp(t, env, "FIN-WAIT-2")
			orphans := 0
			for _, s := range fw2 {
				if s.Users == "" {
					orphans++
				}
			}
			if orphans < FinWait2Start {
				t.Errorf("%d orphaned FIN-WAIT-2 of %d, want >= %d", orphans, len(fw2), FinWait2Start)
			}
			cw := ssp(t, env, "CLOSE-WAIT")
			if len(cw) < FinWait2Start || !strings.Contains(cw[0].Users, `"stuck-peer"`) {
				t.Errorf("%d CLOSE-WAIT on the peer side, want >= %d owned by stuck-peer", len(cw), FinWait2Start)
			}
		}},
		{FDLimit, func(t *testing.T, env *Env) {
			ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", env.PID))
			if err != nil {
				t.Fatal(err)
			}
			limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", env.PID))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("Max open files            %d                  %d", FDLimitNofile, FDLimitNofile)
			if !strings.Contains(string(limits), want) {
				t.Errorf("limits of fd-hog lack %q:\n%s", want, limits)
			}
			if n := len(ents); n < FDLimitNofile-FDLimitSlack-2 || n > FDLimitNofile {
				t.Errorf("fd-hog holds %d descriptors, want about %d of %d", n, FDLimitNofile-FDLimitSlack, FDLimitNofile)
			}
			if est := len(ss(t, env, "ESTAB")); est < FDLimitNofile-20 {
				t.Errorf("%d ESTAB sockets, want the held pairs (about %d)", est, FDLimitNofile-FDLimitSlack)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := startScenario(t, tc.name, Options{})
			tc.check(t, env)
		})
	}
}

// connectOnce makes one connection to the scenario's listener from inside
// its namespace and closes it.
func connectOnce(env *Env) error {
	return env.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		tv := unix.Timeval{Sec: 1}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		ap := netip.MustParseAddrPort(env.Listen)
		return unix.Connect(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
	})
}

func TestStartUnknown(t *testing.T) {
	_, err := Start(context.Background(), "no-such", Options{})
	if !errors.Is(err, ErrUnknownScenario) || !strings.Contains(err.Error(), SomaxconnCapped) {
		t.Fatalf("got %v, want ErrUnknownScenario listing the names", err)
	}
}

func TestScenarioNames(t *testing.T) {
	want := []string{BacklogCapped, SomaxconnCapped, SlowAcceptor, CloseWait, TimeWait, EphemeralPorts,
		SynRecvCookies, SynRecvNoCookies, FinWait2, FDLimit}
	got := Names()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("names (-want +got):\n-%v\n+%v", want, got)
	}
	for _, s := range Scenarios() {
		if s.Summary == "" || s.Expect == "" || len(s.app.Comm) > 15 || s.app.Role == "" {
			t.Errorf("%s: incomplete scenario (summary, expect, comm <= 15 bytes, role)", s.Name)
		}
	}
}

// TestNetnsKernelPauseLoad: PauseLoad stops the clients (no connects, no
// overflows) and ResumeLoad brings the overflows back.
func TestNetnsKernelPauseLoad(t *testing.T) {
	needRoot(t)
	t.Parallel()
	env := startScenario(t, BacklogCapped, Options{})
	if err := env.PauseLoad(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // connects in flight time out (300ms) or end (200ms hold); slower when starved
	if d := rises(t, env, "TcpActiveOpens", 1, 1500*time.Millisecond); d[0] != 0 {
		t.Errorf("%d connects while the load is paused", d[0])
	}
	if err := env.ResumeLoad(); err != nil {
		t.Fatal(err)
	}
	if d := rises(t, env, "TcpExtListenOverflows", 1, 1500*time.Millisecond); !allPositive(d) {
		t.Errorf("no overflows after ResumeLoad: %v", d)
	}
}

// TestNetnsHostUntouched: scenarios change sysctls and firewall rules in
// their own namespaces only; the host's stay as they were.
func TestNetnsHostUntouched(t *testing.T) {
	needRoot(t)
	t.Parallel()
	keys := map[string]bool{}
	for _, s := range Scenarios() {
		for _, kv := range s.Sysctls {
			keys[kv.Key] = true
		}
	}
	host := func() map[string]string {
		m := map[string]string{}
		for k := range keys {
			b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
			if err != nil {
				t.Fatal(err)
			}
			m[k] = strings.Join(strings.Fields(string(b)), " ")
		}
		out, err := exec.Command("iptables-legacy", "-w", "5", "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables-legacy -S: %v: %s", err, out)
		}
		m["iptables-legacy -S"] = string(out)
		return m
	}
	before := host()
	var during map[string]string
	func() {
		for _, name := range []string{SomaxconnCapped, EphemeralPorts, SynRecvNoCookies, CloseWait} {
			env := startScenario(t, name, Options{})
			defer env.Stop()
		}
		during = host()
	}()
	after := host()
	for _, got := range []map[string]string{during, after} {
		for k, v := range before {
			if got[k] != v {
				t.Errorf("host %s changed: %q -> %q", k, v, got[k])
			}
		}
	}
}
