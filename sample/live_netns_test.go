package sample

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/internal/netns"
)

var nsSeq atomic.Int32

// newTestNetns makes a throwaway namespace or skips the test.
func newTestNetns(t *testing.T) (path, name string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("needs iproute2's ss as the oracle")
	}
	name = fmt.Sprintf("sw-live-%d-%d", os.Getpid(), nsSeq.Add(1))
	path, release, err := netns.New(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Error(err)
		}
	})
	return path, name
}

// ssOracle is what iproute2 prints for a namespace.
type ssOracle struct {
	States, V4, V6 map[string]int
	Listeners      map[string][2]uint32 // local -> Recv-Q, Send-Q
}

func runSS(t *testing.T, args ...string) [][]string {
	t.Helper()
	out, err := exec.Command("ss", args...).Output()
	if err != nil {
		t.Fatalf("ss %v: %v", args, err)
	}
	var rows [][]string
	for i, line := range strings.Split(string(out), "\n") {
		// With a state filter ss leaves out the State column.
		if f := strings.Fields(line); i > 0 && len(f) >= 4 {
			rows = append(rows, f)
		}
	}
	return rows
}

func readOracle(t *testing.T, name string) ssOracle {
	o := ssOracle{States: NewStates(), V4: NewStates(), V6: NewStates(), Listeners: map[string][2]uint32{}}
	for _, c := range []struct {
		flag string
		m    map[string]int
	}{{"-tan", o.States}, {"-4tan", o.V4}, {"-6tan", o.V6}} {
		for _, f := range runSS(t, "-N", name, c.flag) {
			if _, ok := c.m[f[0]]; !ok {
				t.Fatalf("ss printed unknown state %q", f[0])
			}
			c.m[f[0]]++
		}
	}
	for _, f := range runSS(t, "-N", name, "-tln") {
		r, _ := strconv.ParseUint(f[1], 10, 32)
		s, _ := strconv.ParseUint(f[2], 10, 32)
		o.Listeners[f[3]] = [2]uint32{uint32(r), uint32(s)}
	}
	return o
}

func oracleOf(s *Sample) ssOracle {
	o := ssOracle{States: s.States, V4: s.StatesV4, V6: s.StatesV6, Listeners: map[string][2]uint32{}}
	for _, l := range s.Listeners {
		o.Listeners[l.Local] = [2]uint32{l.RecvQ, l.SendQ}
	}
	return o
}

// quiesce waits until two ss readings 300ms apart agree, so that the
// sample and the oracle look at the same thing.
func quiesce(t *testing.T, name string) ssOracle {
	t.Helper()
	prev := readOracle(t, name)
	for range 30 {
		time.Sleep(300 * time.Millisecond)
		cur := readOracle(t, name)
		if cmp.Equal(prev, cur) {
			return cur
		}
		prev = cur
	}
	t.Fatal("socket states never settled")
	return ssOracle{}
}

// pile holds the sockets of a scenario open until the test ends.
type pile struct {
	t     *testing.T
	fds   []int
	conns []net.Conn
	lns   []net.Listener
}

func (p *pile) close() {
	for _, c := range p.conns {
		c.Close()
	}
	for _, l := range p.lns {
		l.Close()
	}
	for _, fd := range p.fds {
		unix.Close(fd)
	}
}

// rawListen listens with an explicit backlog (and IPV6_V6ONLY) through
// syscalls, as net.Listen picks its own backlog.
func rawListen(family int, addr unix.Sockaddr, backlog int, v6only bool) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if v6only {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return -1, err
		}
	}
	if err := unix.Bind(fd, addr); err != nil {
		return -1, err
	}
	return fd, unix.Listen(fd, backlog)
}

func port(fd int) int {
	sa, _ := unix.Getsockname(fd)
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

// buildStates creates, inside the namespace, real sockets in LISTEN (v4,
// dual-stack, v6-only), ESTAB, TIME-WAIT, CLOSE-WAIT, FIN-WAIT-2 (orphaned
// and shutdown-only), an accept queue that overflows (a backlog-1 listener
// that never accepts: Recv-Q = Send-Q + 1, TcpExtListenOverflows) and
// SYN-RECV (half-open handshakes: an iptables-legacy rule in the namespace
// drops one listener's SYN-ACKs, as KERNEL-NOTES describes).
func buildStates(t *testing.T, path, name string) *pile {
	p := &pile{t: t}
	t.Cleanup(p.close)
	var lnV4, lnDual net.Listener
	var over, halfOpen int
	err := netns.Do(path, func() error {
		var err error
		if lnV4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		if lnDual, err = net.Listen("tcp", "[::]:0"); err != nil {
			return err
		}
		p.lns = append(p.lns, lnV4, lnDual)
		v6only, err := rawListen(unix.AF_INET6, &unix.SockaddrInet6{}, 7, true)
		if err != nil {
			return err
		}
		over, err = rawListen(unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}, 1, false)
		if err != nil {
			return err
		}
		if halfOpen, err = rawListen(unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}, 16, false); err != nil {
			return err
		}
		p.fds = append(p.fds, v6only, over, halfOpen)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(network, addr string) net.Conn {
		var c net.Conn
		if err := netns.Do(path, func() (err error) { c, err = net.Dial(network, addr); return err }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	accept := func(ln net.Listener) net.Conn {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// 5 ESTAB pairs over IPv4.
	for range 5 {
		c := dial("tcp4", lnV4.Addr().String())
		p.conns = append(p.conns, c, accept(lnV4))
	}
	// 4 TIME-WAIT: the client closes first, the server follows.
	for range 4 {
		c := dial("tcp4", lnV4.Addr().String())
		s := accept(lnV4)
		c.Close()
		io.Copy(io.Discard, s)
		s.Close()
	}
	dualPort := lnDual.Addr().(*net.TCPAddr).Port
	// 3 CLOSE-WAIT (server, v4-mapped) + orphaned FIN-WAIT-2 (client).
	for range 3 {
		c := dial("tcp4", fmt.Sprintf("127.0.0.1:%d", dualPort))
		p.conns = append(p.conns, accept(lnDual))
		c.Close()
	}
	// 2 CLOSE-WAIT + FIN-WAIT-2 with a descriptor (shutdown, no close).
	for range 2 {
		c := dial("tcp6", fmt.Sprintf("[::1]:%d", dualPort))
		p.conns = append(p.conns, c, accept(lnDual))
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	// Overflow: non-blocking connects to the backlog-1 listener that never
	// accepts; SYN-RECV: to the listener whose SYN-ACKs are dropped.
	out, err := exec.Command("ip", "netns", "exec", name, "iptables-legacy", "-A", "OUTPUT", "-p", "tcp",
		"--sport", strconv.Itoa(port(halfOpen)), "--tcp-flags", "SYN,ACK", "SYN,ACK", "-j", "DROP").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-legacy in the namespace (Debian package iptables): %v: %s", err, out)
	}
	connect := func(lfd, n int) error {
		for range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			p.fds = append(p.fds, fd)
			err = unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port(lfd)})
			if err != nil && err != unix.EINPROGRESS {
				return err
			}
		}
		return nil
	}
	err = netns.Do(path, func() error { return errors.Join(connect(over, 4), connect(halfOpen, 6)) })
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNetnsTakeMatchesSS(t *testing.T) {
	path, name := newTestNetns(t)
	buildStates(t, path, name)
	// The oracle is read before and after the sample; on a loaded machine
	// a retransmission can move a socket in between, so try again then.
	var before ssOracle
	var s *Sample
	for attempt := 1; ; attempt++ {
		before = quiesce(t, name)
		var err error
		if s, err = Take(context.Background(), Options{Netns: path, Owners: true, kmsgPath: os.DevNull}); err != nil {
			t.Fatal(err)
		}
		after := readOracle(t, name)
		if cmp.Equal(before, after) {
			break
		}
		if attempt == 3 {
			t.Fatalf("sockets moved while sampling: (-before +after)\n%s", cmp.Diff(before, after))
		}
	}
	if d := cmp.Diff(before, oracleOf(s)); d != "" {
		t.Errorf("sample differs from ss (-ss +sample):\n%s", d)
	}
	// The scenario really made every state the issue names.
	for _, st := range []string{StateEstab, StateListen, StateTimeWait, StateCloseWait, StateFinWait2, StateSynRecv} {
		if s.States[st] == 0 {
			out, _ := exec.Command("ss", "-N", name, "-tan").CombinedOutput()
			fw, _ := exec.Command("ip", "netns", "exec", name, "iptables-legacy", "-L", "OUTPUT", "-v", "-n").CombinedOutput()
			t.Errorf("no %s socket in the scenario: %v\n%s\n%s", st, s.States, out, fw)
		}
	}
	if s.Total != liveSumStates(s.States) {
		t.Errorf("Total %d != sum of states %d", s.Total, liveSumStates(s.States))
	}
	if s.NetnsID == 0 || s.Source != "live" || s.Schema != Schema || s.Sysctls["net.core.somaxconn"] == "" || s.Counters["TcpPassiveOpens"] == 0 {
		t.Errorf("header, sysctls or counters not filled: id=%d source=%q somaxconn=%q passive=%d",
			s.NetnsID, s.Source, s.Sysctls["net.core.somaxconn"], s.Counters["TcpPassiveOpens"])
	}
	// The global sysctls, which the namespace's /proc/sys lacks, are the
	// ones this (initial) namespace shows; in a child namespace of its
	// own the test expects them missing instead.
	for _, k := range []string{"net.ipv4.tcp_mem", "net.ipv4.tcp_max_orphans"} {
		host, err := readSysctl("/proc", k)
		if err != nil {
			if _, ok := s.Sysctls[k]; ok || !hasMissing(s, "sysctl "+k, "global") {
				t.Errorf("%s: %v here, yet the sample has %q, missing %v", k, err, s.Sysctls[k], s.Missing)
			}
			continue
		}
		if s.Sysctls[k] != host || hasMissing(s, "sysctl "+k, "") {
			t.Errorf("%s = %q in the sample, %q in the initial namespace; missing %v", k, s.Sysctls[k], host, s.Missing)
		}
	}
	// Overflowing the accept queue counted in this namespace's TcpExt.
	if s.Counters["TcpExtListenOverflows"] == 0 {
		t.Errorf("TcpExtListenOverflows = 0 after an accept-queue overflow")
	}

	// Owners: this test process holds every listener, and is the top
	// process with its CLOSE-WAIT sockets named.
	me := os.Getpid()
	comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(me), "comm"))
	for _, l := range s.Listeners {
		if len(l.Owners) != 1 || l.Owners[0].PID != me || l.Owners[0].Comm != strings.TrimSpace(string(comm)) ||
			l.Owners[0].FDs == 0 || l.Owners[0].FDLimit == 0 {
			t.Errorf("listener %s owners = %+v, want this process (pid %d) with fd counts", l.Local, l.Owners, me)
		}
	}
	if len(s.Processes) != 1 || s.Processes[0].PID != me || s.Processes[0].States[StateCloseWait] != 5 {
		t.Errorf("processes = %+v, want pid %d with 5 CLOSE-WAIT", s.Processes, me)
	}
	// Outbound connections only: 5 ESTAB + 2 FIN-WAIT-2 (the shutdown
	// ones) to the v4 and dual listeners, plus TIME-WAIT and orphans, and
	// the SYN-SENT/ESTAB clients of the overflowing listener.
	if len(s.Destinations) == 0 || s.Destinations[0].Src != "127.0.0.1" {
		t.Errorf("destinations = %+v", s.Destinations)
	}
	for _, d := range s.Destinations {
		if d.States[StateCloseWait] != 0 || d.States[StateSynRecv] != 0 {
			t.Errorf("inbound sockets counted as a destination: %+v", d)
		}
	}
}

func liveSumStates(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestNetnsDumpStateFilter(t *testing.T) {
	path, name := newTestNetns(t)
	buildStates(t, path, name)
	quiesce(t, name)
	for _, tc := range []struct {
		states []string
		filter string // ss state filter
	}{
		{[]string{StateTimeWait}, "time-wait"},
		{[]string{StateSynRecv}, "syn-recv"},
		{[]string{StateCloseWait, StateFinWait2}, "close-wait state fin-wait-2"},
	} {
		n := 0
		err := Dump(context.Background(), path, tc.states, func(sk Socket) error {
			for _, st := range tc.states {
				if sk.State == st {
					n++
					return nil
				}
			}
			return fmt.Errorf("kernel filter let a %s socket through for %v", sk.State, tc.states)
		})
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"-N", name, "-tan", "state"}, strings.Fields(tc.filter)...)
		if want := len(runSS(t, args...)); n != want || n == 0 {
			t.Errorf("Dump(%v) = %d sockets, ss %s says %d", tc.states, n, tc.filter, want)
		}
	}
}

func TestNetnsTakeCheapAndWatch(t *testing.T) {
	path, name := newTestNetns(t)
	buildStates(t, path, name)
	want := quiesce(t, name)

	s, err := TakeCheap(context.Background(), Options{Netns: path, Owners: true, kmsgPath: os.DevNull})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Partial || len(s.States) != 0 || len(s.Destinations) != 0 || len(s.Processes) != 0 {
		t.Errorf("cheap sample not partial: partial=%v states=%v dests=%d procs=%d", s.Partial, s.States, len(s.Destinations), len(s.Processes))
	}
	if d := cmp.Diff(want.Listeners, oracleOf(s).Listeners); d != "" {
		t.Errorf("cheap listeners differ from ss (-ss +sample):\n%s", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	w, err := WatchListeners(ctx, Options{Netns: path}, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if w.Polls < 3 || len(w.Peaks) != len(want.Listeners) {
		t.Fatalf("watch: %d polls, %d listeners (want >= 3, %d)", w.Polls, len(w.Peaks), len(want.Listeners))
	}
	for _, p := range w.Peaks {
		q := want.Listeners[p.Local]
		if p.PeakRecvQ != q[0] || p.SendQ != q[1] || p.Polls != w.Polls {
			t.Errorf("peak %+v, ss says Recv-Q %d Send-Q %d", p, q[0], q[1])
		}
		full := q[0] > 0 && q[0] >= q[1]
		if full && p.AtLimit != w.Polls || !full && p.AtLimit != 0 {
			t.Errorf("peak %+v: AtLimit %d of %d polls, queue full=%v", p, p.AtLimit, w.Polls, full)
		}
	}
}

// TestNetnsTakeUnprivileged runs Take as user nobody (a child process with
// dropped credentials): the census is still taken, and what an unprivileged
// reader cannot see (/dev/kmsg, other users' descriptors) is listed once
// each in Missing.
func TestNetnsTakeUnprivileged(t *testing.T) {
	if os.Getenv("SW_UNPRIVILEGED_CHILD") == "1" {
		s, err := Take(context.Background(), Options{Owners: true})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(s)
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a child as nobody")
	}
	// The go tool's build directory is private: run a copy nobody can read.
	dir, err := os.MkdirTemp("", "sw-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "sample.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^TestNetnsTakeUnprivileged$")
	cmd.Env = append(os.Environ(), "SW_UNPRIVILEGED_CHILD=1")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
	var s Sample
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("child output: %v\n%s", err, out)
	}
	if len(s.States) != len(States) || s.Counters["TcpActiveOpens"] == 0 || s.Sysctls["net.core.somaxconn"] == "" {
		t.Errorf("unprivileged sample incomplete: states=%v somaxconn=%q", s.States, s.Sysctls["net.core.somaxconn"])
	}
	seen := map[string]int{}
	for _, m := range s.Missing {
		seen[m.Source]++
	}
	for _, src := range []string{"/dev/kmsg", "process owners"} {
		if seen[src] != 1 {
			t.Errorf("Missing lists %q %d times, want once: %+v", src, seen[src], s.Missing)
		}
	}
}

func TestNetnsSeries(t *testing.T) {
	path, name := newTestNetns(t)
	buildStates(t, path, name)
	quiesce(t, name)
	start := time.Now()
	series, err := Series(context.Background(), Options{Netns: path, Owners: true}, 2, 400*time.Millisecond, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 2 {
		t.Fatalf("%d samples, want 2", len(series))
	}
	if series[0].Watch != nil {
		t.Errorf("first sample has a watch: %+v", series[0].Watch)
	}
	w := series[1].Watch
	if w == nil || w.Polls < 5 || len(w.Peaks) != len(series[1].Listeners) {
		t.Fatalf("second sample's watch = %+v, want >= 5 polls over %d listeners", w, len(series[1].Listeners))
	}
	if gap := series[1].Time.Sub(series[0].Time); gap < 400*time.Millisecond || time.Since(start) > 20*time.Second {
		t.Errorf("samples %v apart, want >= 400ms", gap)
	}
	// The overflowing listener (backlog 1, never accepts) is full at
	// every poll of the watch.
	full := 0
	for _, p := range w.Peaks {
		if p.SendQ == 1 && p.PeakRecvQ == 2 && p.AtLimit == p.Polls {
			full++
		}
	}
	if full != 1 {
		t.Errorf("watch peaks %+v: want the backlog-1 listener at its limit at every poll", w.Peaks)
	}
	d := Diff(series[0], series[1])
	if d.Seconds <= 0 || len(d.Counters) == 0 {
		t.Errorf("Diff between the samples: %+v", d)
	}
	for _, ev := range series[1].Kernel {
		if ev.Seq != 0 && len(series[0].Kernel) > 0 && ev.Seq <= series[0].Kernel[len(series[0].Kernel)-1].Seq {
			t.Errorf("kernel line %d reported again in the second sample", ev.Seq)
		}
	}
}

func TestNetnsTakeCancelled(t *testing.T) {
	path, _ := newTestNetns(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Take(ctx, Options{Netns: path}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Take with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := Take(context.Background(), Options{Netns: "/run/netns/does-not-exist"}); !errors.Is(err, netns.ErrNetns) || !strings.Contains(err.Error(), "does-not-exist") {
		t.Fatalf("Take in a missing namespace: err = %v, want ErrNetns naming the path", err)
	}
}

// TestNetnsKernelSynFlood makes the kernel log a real SYN-flooding line in
// a throwaway namespace (a backlog-2 listener whose SYN-ACKs are dropped, so
// its SYN queue fills) and finds it, with its port, in that namespace's
// sample, and not in another namespace's.
func TestNetnsKernelSynFlood(t *testing.T) {
	path, name := newTestNetns(t)
	other, _ := newTestNetns(t)
	var lfd int
	err := netns.Do(path, func() (err error) {
		lfd, err = rawListen(unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}, 2, false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	p := port(lfd)
	out, err := exec.Command("ip", "netns", "exec", name, "iptables-legacy", "-A", "OUTPUT", "-p", "tcp",
		"--sport", strconv.Itoa(p), "--tcp-flags", "SYN,ACK", "SYN,ACK", "-j", "DROP").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-legacy: %v: %s", err, out)
	}
	_, last, err := readKmsg("/dev/kmsg", 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = netns.Do(path, func() error {
		for range 8 {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: p}); err != nil && err != unix.EINPROGRESS {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev *KernelEvent
	for deadline := time.Now().Add(3 * time.Second); ev == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		s, err := Take(context.Background(), Options{Netns: path, KmsgAfter: last})
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range s.Kernel {
			if e.Kind == KernelSynFlood && e.Port == uint16(p) {
				ev = &s.Kernel[i]
			}
		}
	}
	if ev == nil {
		t.Fatalf("no SYN-flooding line for 127.0.0.1:%d in the sample (kernel log rate-limited by other floods?)", p)
	}
	if ev.Addr != "127.0.0.1" || ev.Action != "cookies" || ev.Seq <= last ||
		ev.Time.Before(start.Add(-2*time.Second)) || ev.Time.After(time.Now().Add(2*time.Second)) {
		t.Errorf("event %+v: want 127.0.0.1, cookies, a new sequence number and a time near %v", *ev, start)
	}
	s, err := Take(context.Background(), Options{Netns: other, KmsgAfter: last})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s.Kernel {
		if e.Kind == KernelSynFlood && e.Port == uint16(p) {
			t.Errorf("another namespace's sample holds this namespace's flood line: %+v", e)
		}
	}
}

// TestNetnsOwnerScanPaths takes the same namespace with each owner scan:
// the BPF iterator, /proc, and auto, which for a namespace this small
// against the host's open files reads /proc (procCheaper) and, since the
// owner (this test process) lives in another namespace, finds it in its
// second pass. All three must name the same owners.
func TestNetnsOwnerScanPaths(t *testing.T) {
	path, name := newTestNetns(t)
	p := buildStates(t, path, name)
	defer p.close()
	type view struct {
		Listeners map[string][]int
		Processes map[int]map[string]int
		Via       string
	}
	var used int
	take := func(scan OwnerScanMode) view {
		s, err := Take(context.Background(), Options{Netns: path, Owners: true, OwnerScan: scan, kmsgPath: os.DevNull})
		if err != nil {
			t.Fatalf("owner_scan %s: %v", scan, err)
		}
		used = s.Sockstat.SocketsUsed
		v := view{Listeners: map[string][]int{}, Processes: map[int]map[string]int{}, Via: s.OwnersVia}
		for _, l := range s.Listeners {
			for _, o := range l.Owners {
				v.Listeners[l.Local] = append(v.Listeners[l.Local], o.PID)
			}
		}
		for _, pr := range s.Processes {
			v.Processes[pr.PID] = pr.States
		}
		return v
	}
	// The three takes must see the same sockets: on a loaded machine a
	// FIN's ACK or a SYN retransmission can move one between them (CI saw
	// FIN-WAIT-1 in the first and FIN-WAIT-2 in the next), so wait for the
	// states to settle and take all three again if ss saw a move.
	var bpf, proc, auto view
	for attempt := 1; ; attempt++ {
		before := quiesce(t, name)
		bpf = take("bpf")
		// The rule itself, not procCheaper, decides what auto must do here.
		nr, _ := os.ReadFile("/proc/sys/fs/file-nr")
		if files := openFiles(string(nr)); used*10 >= files {
			t.Skipf("this host has only %d open files for the namespace's %d sockets: auto would pick the iterator", files, used)
		}
		proc, auto = take("proc"), take("auto")
		after := readOracle(t, name)
		if cmp.Equal(before, after) {
			break
		}
		if attempt == 3 {
			t.Fatalf("sockets moved while sampling: (-before +after)\n%s", cmp.Diff(before, after))
		}
	}
	if bpf.Via != "bpf-iter" || proc.Via != "proc" || auto.Via != "proc" {
		t.Errorf("owners_via: bpf %q, proc %q, auto %q; want bpf-iter, proc, proc", bpf.Via, proc.Via, auto.Via)
	}
	if len(bpf.Listeners) == 0 || len(bpf.Processes) == 0 {
		t.Fatalf("no owners found by the iterator: %+v", bpf)
	}
	bpf.Via, proc.Via, auto.Via = "", "", ""
	if d := cmp.Diff(bpf, proc); d != "" {
		t.Errorf("owners differ (-bpf +proc):\n%s", d)
	}
	if d := cmp.Diff(bpf, auto); d != "" {
		t.Errorf("owners differ (-bpf +auto):\n%s", d)
	}
}
