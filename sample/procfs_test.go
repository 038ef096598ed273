package sample

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func openCapture(t testing.TB, names ...string) io.Reader {
	t.Helper()
	var rs []io.Reader
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", "proc", n))
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, strings.NewReader(string(b)))
	}
	return io.MultiReader(rs...)
}

// TestParseNetstatCaptures checks the parser against nstat on the same
// namespace: every Tcp, TcpExt, Ip, IpExt, Udp and Icmp counter nstat
// printed must be there with the same value (the captures were taken one
// after the other in a quiet namespace; see testdata/proc/README.md).
func TestParseNetstatCaptures(t *testing.T) {
	got, err := ParseNetstat(openCapture(t, "netstat-synflood.txt", "snmp-synflood.txt"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("testdata", "proc", "nstat-az.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	checked := 0
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 || strings.HasPrefix(fs[0], "#") {
			continue
		}
		name := fs[0]
		if strings.HasPrefix(name, "Ip6") || strings.HasPrefix(name, "Udp6") || strings.HasPrefix(name, "Icmp6") || strings.HasPrefix(name, "UdpLite6") {
			continue // /proc/net/snmp6 has another format, not parsed here
		}
		want, err := strconv.ParseUint(fs[1], 10, 64)
		if err != nil {
			t.Fatalf("nstat line %q: %v", sc.Text(), err)
		}
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %d (present %v), nstat says %d", name, v, ok, want)
		}
		checked++
	}
	if checked < 250 {
		t.Fatalf("only %d counters compared; capture truncated?", checked)
	}
	for name, want := range map[string]uint64{
		"TcpExtListenDrops": 34, "TcpExtTCPReqQFullDrop": 34, "TcpExtTCPReqQFullDoCookies": 68,
		"TcpExtSyncookiesSent": 68, "TcpActiveOpens": 60, "TcpExtListenOverflows": 0,
	} {
		if got[name] != want {
			t.Errorf("%s = %d, want %d", name, got[name], want)
		}
	}
	if _, ok := got["TcpMaxConn"]; ok {
		t.Errorf("TcpMaxConn (-1, not a counter) was kept")
	}
}

func TestParseNetstatHostCaptures(t *testing.T) {
	for _, name := range []string{"netstat-host.txt", "snmp-host.txt"} {
		got, err := ParseNetstat(openCapture(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) < 30 {
			t.Errorf("%s: %d counters, want many", name, len(got))
		}
	}
}

func TestParseNetstatErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, wantErr string
	}{
		{"truncated", "TcpExt: A B\nTcpExt: 1 2\nIpExt: C D\n", "line 3: IpExt names without a values line"},
		{"count mismatch", "TcpExt: A B C\nTcpExt: 1 2\n", "line 2: 2 values for 3 TcpExt names"},
		{"not a number", "Tcp: A B\nTcp: 1 x\n", `line 2: TcpB: "x" is not a number`},
		{"header mismatch", "Tcp: A\nUdp: 1\n", `line 2: values for "Udp" follow names for "Tcp"`},
		{"no header", "TcpExt: A\njust words\n", `line 2: want "Header: fields"`},
		{"bad negative", "Tcp: A\nTcp: -x\n", `line 2: TcpA: "-x" is not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNetstat(strings.NewReader(tc.in))
			if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrParse containing %q", err, tc.wantErr)
			}
		})
	}
	got, err := ParseNetstat(strings.NewReader("Tcp: RtoMin MaxConn CurrEstab\nTcp: 200 -1 7\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]uint64{"TcpRtoMin": 200, "TcpCurrEstab": 7}, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestParseSockstat(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  Sockstat
	}{
		{"host", []string{"sockstat-host.txt", "sockstat6-host.txt"}, Sockstat{SocketsUsed: 15, TCPInUse: 1, TCPTimeWait: 140, TCPAlloc: 1, TCPMemPages: 344}},
		{"namespace", []string{"sockstat-ns.txt"}, Sockstat{SocketsUsed: 1, TCPAlloc: 1, TCPMemPages: 344}},
		{"ipv6 sockets", []string{"sockstat-orphan.txt", "sockstat6-orphan.txt"}, Sockstat{SocketsUsed: 5, TCPTimeWait: 2, TCPAlloc: 6, TCPMemPages: 108, TCP6InUse: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSockstat(openCapture(t, tc.files...))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	for _, tc := range []struct{ name, in, wantErr string }{
		{"odd fields", "TCP: inuse 1 orphan\n", "line 1: TCP: odd number of fields"},
		{"bad count", "sockets: used 1\nTCP: inuse x\n", `line 2: TCP inuse: "x" is not a count`},
		{"no colon", "garbage\n", "line 1: want"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSockstat(strings.NewReader(tc.in))
			if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrParse containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestReadCountersFixture(t *testing.T) {
	// A fixture tree shaped like /proc, as readCounters sees it.
	root := t.TempDir()
	net := filepath.Join(root, "thread-self", "net")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(net, 0o755))
	for src, dst := range map[string]string{"netstat-synflood.txt": "netstat", "snmp-synflood.txt": "snmp", "sockstat-orphan.txt": "sockstat"} {
		b, err := os.ReadFile(filepath.Join("testdata", "proc", src))
		must(err)
		must(os.WriteFile(filepath.Join(net, dst), b, 0o644))
	}
	must(os.MkdirAll(filepath.Join(root, "sys", "net", "core"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "sys", "net", "ipv4"), 0o755))
	must(os.WriteFile(filepath.Join(root, "sys", "net", "core", "somaxconn"), []byte("4096\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "sys", "net", "ipv4", "ip_local_port_range"), []byte("32768\t60999\n"), 0o644))

	var s Sample
	readCounters(&s, root, net)
	if s.Counters["TcpExtSyncookiesSent"] != 68 || s.Counters["TcpActiveOpens"] != 60 {
		t.Errorf("counters not read: SyncookiesSent=%d ActiveOpens=%d", s.Counters["TcpExtSyncookiesSent"], s.Counters["TcpActiveOpens"])
	}
	if s.Sockstat.TCPAlloc != 6 {
		t.Errorf("sockstat not read: %+v", s.Sockstat)
	}
	if d := cmp.Diff(map[string]string{"net.core.somaxconn": "4096", "net.ipv4.ip_local_port_range": "32768 60999"}, s.Sysctls); d != "" {
		t.Errorf("sysctls (-want +got):\n%s", d)
	}
	// Every other sysctl is missing, once each, as ErrNoData.
	if len(s.Missing) != len(SysctlKeys)-2 {
		t.Errorf("Missing has %d entries, want %d: %+v", len(s.Missing), len(SysctlKeys)-2, s.Missing)
	}
	for _, m := range s.Missing {
		if !strings.HasPrefix(m.Source, "sysctl ") || !strings.Contains(m.Reason, ErrNoData.Error()) {
			t.Errorf("unexpected missing entry %+v", m)
		}
	}
}

// A child namespace's /proc/sys has no tcp_mem or tcp_max_orphans; the
// sampler fills them from its own namespace when that one has them (the
// initial namespace does), and keeps them missing otherwise.
func TestFillGlobalSysctls(t *testing.T) {
	child := t.TempDir() // a namespace's /proc: no global sysctls
	var s Sample
	readCounters(&s, child, filepath.Join(child, "thread-self", "net"))
	for _, k := range []string{"net.ipv4.tcp_mem", "net.ipv4.tcp_max_orphans"} {
		if !hasMissing(&s, "sysctl "+k, "") {
			t.Fatalf("%s not listed missing in a child namespace: %+v", k, s.Missing)
		}
	}
	before := len(s.Missing)

	if got := fillGlobalSysctls(&s, t.TempDir()); len(got) != 0 || len(s.Missing) != before {
		t.Errorf("filled %v from a namespace without them; missing %d -> %d", got, before, len(s.Missing))
	}

	host := t.TempDir()
	ipv4 := filepath.Join(host, "sys", "net", "ipv4")
	if err := os.MkdirAll(ipv4, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ipv4, "tcp_mem"), []byte("94401\t125868\t188802\n"), 0o644)
	os.WriteFile(filepath.Join(ipv4, "tcp_max_orphans"), []byte("65536\n"), 0o644)
	os.WriteFile(filepath.Join(ipv4, "tcp_fin_timeout"), []byte("60\n"), 0o644) // per namespace: not taken
	s.Sysctls["net.ipv4.tcp_max_orphans"] = "4096"                              // already read: kept
	got := fillGlobalSysctls(&s, host)
	if d := cmp.Diff([]string{"net.ipv4.tcp_mem"}, got); d != "" {
		t.Errorf("filled (-want +got):\n%s", d)
	}
	if s.Sysctls["net.ipv4.tcp_mem"] != "94401 125868 188802" || s.Sysctls["net.ipv4.tcp_max_orphans"] != "4096" {
		t.Errorf("sysctls after fill: %v", s.Sysctls)
	}
	if _, ok := s.Sysctls["net.ipv4.tcp_fin_timeout"]; ok || !hasMissing(&s, "sysctl net.ipv4.tcp_fin_timeout", "") {
		t.Errorf("a per-namespace sysctl was taken from another namespace: %v", s.Sysctls)
	}
	if hasMissing(&s, "sysctl net.ipv4.tcp_mem", "") || len(s.Missing) != before-1 {
		t.Errorf("missing after fill (%d, want %d): %+v", len(s.Missing), before-1, s.Missing)
	}
}

func FuzzParseNetstat(f *testing.F) {
	for _, n := range []string{"netstat-host.txt", "snmp-host.txt", "netstat-synflood.txt", "snmp-synflood.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", "proc", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("Tcp: A\nTcp: -1\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseNetstat(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error %v is not ErrParse", err)
			}
			return
		}
		for k := range m {
			if k == "" || strings.ContainsAny(k, " \t\n:") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}

func FuzzParseSockstat(f *testing.F) {
	for _, n := range []string{"sockstat-host.txt", "sockstat6-host.txt", "sockstat-ns.txt", "sockstat-orphan.txt", "sockstat6-orphan.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", "proc", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSockstat(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error %v is not ErrParse", err)
			}
			return
		}
		if s.TCPInUse < 0 || s.TCPTimeWait < 0 || s.TCPMemPages < 0 {
			t.Fatalf("negative count in %+v", s)
		}
	})
}

// BenchmarkReadCounters reads this host's counters, sockstat and sysctls
// as a live census does (read-only: /proc is readable without root).
func BenchmarkReadCounters(b *testing.B) {
	for b.Loop() {
		var s Sample
		readCounters(&s, "/proc", "/proc/thread-self/net")
		if len(s.Counters) == 0 {
			b.Fatal("no counters read")
		}
	}
}
