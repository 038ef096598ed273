package sample

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/internal/netns"
)

// quietNetns makes a throwaway namespace holding a fixed set of real TCP
// sockets that do not change while the test looks at them: listeners with
// and without a queue (IPv4 and dual-stack IPv6), ESTAB pairs, a
// CLOSE-WAIT/FIN-WAIT-2 pair and TIME-WAIT sockets.
func quietNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := fmt.Sprintf("sw-bundle-%d", os.Getpid())
	path, release, err := netns.New(name)
	if err != nil {
		t.Fatal(err)
	}
	var closers []interface{ Close() error }
	t.Cleanup(func() {
		for _, c := range closers {
			c.Close()
		}
		if err := release(); err != nil {
			t.Error(err)
		}
	})
	keep := func(c interface{ Close() error }) { closers = append(closers, c) }
	// No keepalive probes: they would move the counters mid-test.
	d := net.Dialer{KeepAlive: -1}
	lc := net.ListenConfig{KeepAlive: -1}
	ctx := context.Background()
	err = netns.Do(path, func() error {
		// A listener nobody accepts from: Recv-Q 3.
		l1, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		keep(l1)
		for range 3 {
			c, err := d.Dial("tcp4", l1.Addr().String())
			if err != nil {
				return err
			}
			keep(c)
		}
		// A dual-stack listener ("*:PORT") with accepted ESTAB
		// pairs, an IPv4 client among them.
		l2, err := lc.Listen(ctx, "tcp", "[::]:0")
		if err != nil {
			return err
		}
		keep(l2)
		port := l2.Addr().(*net.TCPAddr).Port
		for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port), fmt.Sprintf("[::1]:%d", port)} {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return err
			}
			keep(c)
			s, err := l2.Accept()
			if err != nil {
				return err
			}
			keep(s)
		}
		// CLOSE-WAIT on the server, FIN-WAIT-2 on the client.
		c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		s, err := l2.Accept()
		if err != nil {
			return err
		}
		keep(s)
		c.Close()
		// TIME-WAIT on the client: it closes first, then the server.
		for range 4 {
			c, err := d.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return err
			}
			s, err := l2.Accept()
			if err != nil {
				return err
			}
			c.Close()
			time.Sleep(10 * time.Millisecond)
			s.Close()
		}
		// A process of the namespace's own holding a listener, with
		// a limit of its own: unlike this test process, its
		// descriptors do not move while the samplers run.
		return startHolder(t)
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // FINs and ACKs settle
	return path
}

// holderNofile is the soft RLIMIT_NOFILE the holder process sets itself.
const holderNofile = 77

// startHolder starts this test binary again as a holder process (see
// holder), from the calling thread, so in its network namespace, and
// waits until it listens. It exits when the test ends (its stdin closes).
func startHolder(t *testing.T) error {
	cmd := exec.Command(os.Args[0], "-test.run", "^TestNetnsCollectMatchesLive$")
	cmd.Env = append(os.Environ(), "SW_HOLDER_CHILD=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		return fmt.Errorf("holder process: %q, %w", line, err)
	}
	return nil
}

// holder is the holder process: it lowers its descriptor limit, listens
// on 127.0.0.1, says "ready", and waits for its stdin to close.
func holder() {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	lim.Cur = holderNofile
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	defer l.Close()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// comparable keeps what a bundle and a live sample must agree on. Owners
// carry their descriptor counts, limits and units (processes.txt in a
// bundle), except the descriptor count of this test process, which runs
// the samplers and so opens and closes descriptors of its own while they
// look (the holder process's count must agree exactly). Sockstat's TCP memory,
// orphan and alloc counts and fs.file-nr are host-wide (global kernel
// counters) and move with the rest of the machine.
type comparable struct {
	States, StatesV4, StatesV6 map[string]int
	Total                      int
	Listeners                  []string
	Destinations               []Destination
	DestinationGroups          int
	Processes                  []string
	Orphans                    map[string]int
	Sysctls                    map[string]string
	Sockstat                   Sockstat
	TCPCounters                map[string]uint64
}

// ownerString prints an owner for comparable: comm/pid unit fds/limit,
// with "self" for this process's descriptor count.
func ownerString(o Owner) string {
	fds := strconv.Itoa(o.FDs)
	if o.PID == os.Getpid() && o.FDs > 0 {
		fds = "self"
	}
	return fmt.Sprintf("%s/%d unit=%q fds=%s/%d", o.Comm, o.PID, o.Unit, fds, o.FDLimit)
}

func toComparable(s *Sample) comparable {
	c := comparable{
		States: s.States, StatesV4: s.StatesV4, StatesV6: s.StatesV6, Total: s.Total,
		Destinations: s.Destinations, DestinationGroups: s.DestinationGroups, Orphans: s.Orphans,
		Sysctls: map[string]string{}, Sockstat: s.Sockstat, TCPCounters: map[string]uint64{},
	}
	for _, l := range s.Listeners {
		var ow []string
		for _, o := range l.Owners {
			ow = append(ow, ownerString(o))
		}
		c.Listeners = append(c.Listeners, fmt.Sprintf("%s %d/%d %s", l.Local, l.RecvQ, l.SendQ, strings.Join(ow, ",")))
	}
	for _, p := range s.Processes {
		c.Processes = append(c.Processes, fmt.Sprintf("%s %d %v", ownerString(p.Owner), p.Total, p.States))
	}
	for k, v := range s.Sysctls {
		if k != "fs.file-nr" {
			c.Sysctls[k] = v
		}
	}
	c.Sockstat.TCPMemPages, c.Sockstat.TCPOrphan, c.Sockstat.TCPAlloc = 0, 0, 0
	// "sockets: used" counts every socket of the namespace, the
	// samplers' own netlink sockets included (and, for a moment after
	// close, the ones ss just used): it differs by one or two between
	// any two readers, so it is no measure of agreement.
	c.Sockstat.SocketsUsed = 0
	for k, v := range s.Counters {
		if strings.HasPrefix(k, "Tcp") {
			c.TCPCounters[k] = v
		}
	}
	return c
}

// A live sample and a Collect bundle of the same quiescent namespace give
// the same census: the netlink path and the ss-text path agree.
func TestNetnsCollectMatchesLive(t *testing.T) {
	if os.Getenv("SW_HOLDER_CHILD") == "1" {
		holder()
	}
	path := quietNetns(t)
	if _, err := lookTool("ss"); err != nil {
		t.Skip("needs iproute2's ss (apt-get install iproute2)")
	}
	ctx := context.Background()
	opts := Options{Netns: path, Owners: true}
	live, err := Take(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := Collect(ctx, opts, out, 2, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	after, err := Take(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(toComparable(live), toComparable(after)); diff != "" {
		t.Fatalf("namespace not quiescent during the test (-before +after):\n%s", diff)
	}
	bundle, err := FromBundle(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(bundle) != 2 {
		t.Fatalf("%d snapshots, want 2", len(bundle))
	}
	if gap := bundle[1].Time.Sub(bundle[0].Time); gap < 300*time.Millisecond || gap > 30*time.Second {
		t.Errorf("snapshots %s apart, want about 300ms", gap)
	}
	want := toComparable(live)
	_, err = os.Stat("/proc/sys/net/ipv4/tcp_mem")
	initialNetns := err == nil
	holders := 0
	for _, l := range live.Listeners {
		for _, o := range l.Owners {
			if o.PID != os.Getpid() && o.FDLimit == holderNofile && o.FDs > 0 {
				holders++
			}
			if o.FDs == 0 || o.FDLimit == 0 {
				t.Errorf("live owner of %s without descriptor count or limit: %+v", l.Local, o)
			}
		}
	}
	if holders != 1 {
		t.Errorf("live listeners %v: want one owned by the holder process (limit %d)", want.Listeners, holderNofile)
	}
	if want.States[StateListen] != 3 || want.States[StateTimeWait] != 4 || want.States[StateCloseWait] != 1 || want.States[StateFinWait2] != 1 || want.States[StateEstab] != 12 {
		t.Fatalf("live census is not the scenario: %v", want.States)
	}
	for i, b := range bundle {
		if b.Netns != path || b.Host == "" || b.Time.IsZero() {
			t.Errorf("snapshot %d: netns %q host %q time %v", i+1, b.Netns, b.Host, b.Time)
		}
		if diff := cmp.Diff(want, toComparable(b)); diff != "" {
			t.Errorf("snapshot %d (-live +bundle):\n%s", i+1, diff)
		}
		// tcp_mem and tcp_max_orphans are host-wide: the namespace's
		// sysctl -a lacks them, and collect adds them from this
		// namespace when it is the initial one, as a live sample does
		// (the comparison above holds them).
		for _, m := range b.Missing {
			if !(strings.HasSuffix(m.Source, "sysctl.txt") && !initialNetns) {
				t.Errorf("snapshot %d: unexpected missing %+v", i+1, m)
			}
		}
		if initialNetns && (b.Sysctls["net.ipv4.tcp_mem"] == "" || b.Sysctls["net.ipv4.tcp_max_orphans"] == "") {
			t.Errorf("snapshot %d: global sysctls not in the bundle: %v", i+1, b.Sysctls)
		}
	}
	if t.Failed() {
		if live.Missing != nil {
			t.Logf("live missing: %v", live.Missing)
		}
	}
}

// The fallback used when ss is absent writes a table that reads back to
// the live census too.
func TestNetnsSSFromDump(t *testing.T) {
	path := quietNetns(t)
	ctx := context.Background()
	opts := Options{Netns: path, Owners: true}
	live, err := Take(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ssFromDump(ctx, opts, filepath.Join(dir, "ss-tan.txt")); err != nil {
		t.Fatal(err)
	}
	var cl collectLog
	if err := collectProcesses(opts, dir, &cl); err != nil {
		t.Fatal(err)
	}
	got, err := FromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, g := toComparable(live), toComparable(got[0])
	// Only the socket table is in this bundle.
	g.Sysctls, g.Sockstat, g.TCPCounters = w.Sysctls, w.Sockstat, w.TCPCounters
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("(-live +ss-from-dump):\n%s", diff)
	}
}

func TestCollectArgs(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	for _, tc := range []struct {
		n   int
		gap time.Duration
		out string
	}{{0, time.Second, out}, {101, time.Second, out}, {2, -time.Second, out}, {2, time.Second, ""}} {
		if err := Collect(ctx, Options{}, tc.out, tc.n, tc.gap); err == nil {
			t.Errorf("Collect(%d, %s, %q): no error", tc.n, tc.gap, tc.out)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("bad arguments left %s behind: %v", out, err)
	}
	// An output directory that does not exist fails at once, before
	// any snapshot (the gap would make this test take an hour).
	start := time.Now()
	err := Collect(ctx, Options{}, filepath.Join(t.TempDir(), "no", "such", "dir", "b.tar.gz"), 2, time.Hour)
	if err == nil || !strings.Contains(err.Error(), "cannot write") || time.Since(start) > time.Minute {
		t.Errorf("Collect into a missing directory: %v after %s", err, time.Since(start))
	}
}

// A failed collect leaves no partial file where the bundle was to go.
func TestCollectAtomic(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "b.tar.gz")
	if err := os.WriteFile(out, []byte("previous bundle"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A cancelled context fails between snapshots, before the archive.
	if err := Collect(ctx, Options{Netns: "/nonexistent/netns"}, out, 2, time.Hour); err == nil {
		t.Fatal("no error")
	}
	b, err := os.ReadFile(out)
	if err != nil || string(b) != "previous bundle" {
		t.Errorf("out changed: %q, %v", b, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}
