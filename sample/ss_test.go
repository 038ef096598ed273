package sample

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseSSFile parses a capture and returns the sockets and stats.
func parseSSFile(t *testing.T, name string) ([]SSEntry, SSStats) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "ss", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []SSEntry
	st, err := ParseSS(f, name, func(e SSEntry) error { got = append(got, e); return nil })
	if err != nil {
		t.Fatalf("ParseSS(%s): %v", name, err)
	}
	return got, st
}

func stateCounts(es []SSEntry) map[string]int {
	m := map[string]int{}
	for _, e := range es {
		m[e.Socket.State]++
	}
	return m
}

func TestParseSSCaptures(t *testing.T) {
	// Counts checked by hand against the captures (awk over the state
	// column), see testdata/README.
	ns := map[string]int{StateSynRecv: 3, StateSynSent: 3, StateEstab: 18, StateListen: 9, StateCloseWait: 5, StateFinWait2: 5, StateTimeWait: 8}
	tests := []struct {
		file      string
		states    map[string]int
		owners    bool
		inodes    bool
		skipped   int
		wantNotes int
	}{
		{"tan-6.1.txt", ns, false, false, 0, 0},
		{"tanp-6.1.txt", ns, true, false, 0, 0},
		{"tane-6.1.txt", ns, false, true, 0, 0},
		{"tani-6.1.txt", ns, false, false, 35, 0},
		{"an-netid-6.1.txt", ns, false, false, 11, 0},
		{"tlnp-6.1.txt", map[string]int{StateListen: 9}, true, false, 0, 0},
		{"tanp-5.10-written.txt", map[string]int{StateListen: 5, StateEstab: 3, StateCloseWait: 1, StateTimeWait: 1, StateSynSent: 1}, true, false, 0, 0},
		{"tlnp-5.4-written.txt", map[string]int{StateListen: 3}, true, false, 0, 0},
		{"tanp-4.15-written.txt", map[string]int{StateListen: 3, StateEstab: 1}, true, false, 0, 0},
		{"tuanp-netid-5.10-written.txt", map[string]int{StateListen: 3, StateEstab: 1}, true, false, 2, 0},
		// A terminal capture (script(1)): CRLF line ends, ss's wide tty
		// spacing, and ss's stderr mixed in before the header.
		{"tanpe-6.1-tty.txt", map[string]int{StateListen: 2, StateEstab: 2}, true, true, 0, 5},
		// Owners and -e fields wrapped onto indented lines.
		{"tanpe-wrapped-written.txt", map[string]int{StateListen: 1, StateEstab: 1, StateTimeWait: 1}, true, true, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, st := parseSSFile(t, tt.file)
			if diff := cmp.Diff(tt.states, stateCounts(got)); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
			if st.Sockets != len(got) || st.HasOwners != tt.owners || st.HasInodes != tt.inodes || st.Skipped != tt.skipped || len(st.Notes) != tt.wantNotes {
				t.Errorf("stats = %+v, want owners=%v inodes=%v skipped=%d notes=%d", st, tt.owners, tt.inodes, tt.skipped, tt.wantNotes)
			}
		})
	}
}

func TestParseSSCaptureDetails(t *testing.T) {
	find := func(es []SSEntry, local, state string) []SSEntry {
		var out []SSEntry
		for _, e := range es {
			if FormatLocal(e.Socket.Local, e.Socket.V6Only) == local && e.Socket.State == state {
				out = append(out, e)
			}
		}
		return out
	}
	ap := netip.MustParseAddrPort
	tanp, _ := parseSSFile(t, "tanp-6.1.txt")
	tane, _ := parseSSFile(t, "tane-6.1.txt")
	w5, _ := parseSSFile(t, "tanp-5.10-written.txt")
	wrapped, _ := parseSSFile(t, "tanpe-wrapped-written.txt")
	tty, _ := parseSSFile(t, "tanpe-6.1-tty.txt")
	tests := []struct {
		name  string
		from  []SSEntry
		local string
		want  SSEntry
	}{
		{"listener with queue", tanp, "0.0.0.0:8080", SSEntry{Socket: Socket{State: StateListen, Family: "ipv4", Local: ap("0.0.0.0:8080"), Remote: ap("0.0.0.0:0"), RecvQ: 7, SendQ: 128}, Owners: []Owner{{PID: 17366, Comm: "python3"}}}},
		{"bound to device", tanp, "127.0.0.1:5353", SSEntry{Socket: Socket{State: StateListen, Family: "ipv4", Local: ap("127.0.0.1:5353"), Remote: ap("0.0.0.0:0"), RecvQ: 0, SendQ: 64}, Owners: []Owner{{PID: 17366, Comm: "python3"}}}},
		{"dual-stack wildcard", tanp, "*:2222", SSEntry{Socket: Socket{State: StateListen, Family: "ipv6", Local: ap("[::]:2222"), Remote: ap("[::]:0"), SendQ: 4096}, Owners: []Owner{{PID: 17366, Comm: "python3"}}}},
		{"v6 loopback", tanp, "[::1]:7000", SSEntry{Socket: Socket{State: StateListen, Family: "ipv6", Local: ap("[::1]:7000"), Remote: ap("[::]:0"), SendQ: 511}, Owners: []Owner{{PID: 17366, Comm: "python3"}}}},
		{"inode from -e", tane, "10.9.9.1:8444", SSEntry{Socket: Socket{State: StateListen, Family: "ipv4", Local: ap("10.9.9.1:8444"), Remote: ap("0.0.0.0:0"), SendQ: 128, Inode: 28435}, HasInode: true}},
		{"owners deduplicated by pid, in order", w5, "0.0.0.0:80", SSEntry{Socket: Socket{State: StateListen, Family: "ipv4", Local: ap("0.0.0.0:80"), Remote: ap("0.0.0.0:0"), RecvQ: 12, SendQ: 511}, Owners: []Owner{{PID: 901, Comm: "nginx"}, {PID: 900, Comm: "nginx"}, {PID: 899, Comm: "nginx"}}}},
		{"command with a space", w5, "10.0.2.15:43210", SSEntry{Socket: Socket{State: StateCloseWait, Family: "ipv4", Local: ap("10.0.2.15:43210"), Remote: ap("93.184.216.34:443"), RecvQ: 1}, Owners: []Owner{{PID: 2210, Comm: "Web Content"}}}},
		{"v4-mapped", w5, "[::ffff:10.0.2.15]:9100", SSEntry{Socket: Socket{State: StateEstab, Family: "ipv6", Local: ap("[::ffff:10.0.2.15]:9100"), Remote: ap("[::ffff:10.0.2.2]:51000")}, Owners: []Owner{{PID: 700, Comm: "node_exporter"}}}},
		{"v6 scope", w5, "[fe80::a00:27ff:fe4e:66a1]:22", SSEntry{Socket: Socket{State: StateEstab, Family: "ipv6", Local: ap("[fe80::a00:27ff:fe4e:66a1]:22"), Remote: ap("[fe80::1]:60000")}, Owners: []Owner{{PID: 1300, Comm: "sshd"}}}},
		{"owners on a wrapped line", wrapped, "0.0.0.0:8080", SSEntry{Socket: Socket{State: StateListen, Family: "ipv4", Local: ap("0.0.0.0:8080"), Remote: ap("0.0.0.0:0"), SendQ: 128, Inode: 26264}, Owners: []Owner{{PID: 17366, Comm: "python3"}}, HasInode: true}},
		{"tty capture, CRLF", tty, "*:2222", SSEntry{Socket: Socket{State: StateListen, Family: "ipv6", Local: ap("[::]:2222"), Remote: ap("[::]:0"), SendQ: 5, Inode: 9348128}, Owners: []Owner{{PID: 5790, Comm: "python3"}}, HasInode: true}},
		{"v6only wildcard", w5, "[::]:22", SSEntry{Socket: Socket{State: StateListen, Family: "ipv6", Local: ap("[::]:22"), Remote: ap("[::]:0"), SendQ: 128, V6Only: true}, Owners: []Owner{{PID: 642, Comm: "sshd"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := find(tt.from, tt.local, tt.want.Socket.State)
			if len(got) != 1 {
				t.Fatalf("%d sockets with local %s, want 1", len(got), tt.local)
			}
			if diff := cmp.Diff(tt.want, got[0], cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSSLine(t *testing.T) {
	tests := []struct {
		line   string
		skip   bool
		why    string // substring; "" = parses
		state  string
		local  string
		owners int
	}{
		{line: "ESTAB 0 0 127.0.0.1:22 127.0.0.1:5000", state: StateEstab, local: "127.0.0.1:22"},
		{line: "tcp   ESTAB 0 0 127.0.0.1:22 127.0.0.1:5000", state: StateEstab, local: "127.0.0.1:22"},
		{line: "udp   UNCONN 0 0 127.0.0.1:53 0.0.0.0:*", skip: true},
		{line: "u_str ESTAB 0 0 * 1234 * 5678", skip: true},
		{line: "NEW-SYN-RECV 0 0 10.0.0.1:80 10.0.0.2:5000", state: StateSynRecv, local: "10.0.0.1:80"},
		{line: "LISTEN 0 128 :::22 :::*", state: StateListen, local: "*:22"},
		{line: `ESTAB 0 0 1.2.3.4:80 5.6.7.8:9 users:(("a b,c",pid=7,fd=3),("x",pid=8,fd=4))`, state: StateEstab, local: "1.2.3.4:80", owners: 2},
		{line: "ESTAB 0 0 1.2.3.4:http 5.6.7.8:9", why: "not a number (capture with ss -n)"},
		{line: "ESTAB 0 0 host.example:80 5.6.7.8:9", why: "bad address"},
		{line: "WEIRD 0 0 1.2.3.4:80 5.6.7.8:9", why: "unknown state"},
		{line: "ESTAB x 0 1.2.3.4:80 5.6.7.8:9", why: "Recv-Q/Send-Q"},
		{line: "ESTAB 0 0 1.2.3.4:80", why: "want State"},
		{line: `ESTAB 0 0 1.2.3.4:80 5.6.7.8:9 users:(("a",pid=x,fd=3))`, why: "pid is not a number"},
		{line: `ESTAB 0 0 1.2.3.4:80 5.6.7.8:9 users:(("a",pid=7,fd=3)`, why: "not closed"},
		{line: "ESTAB 0 0 1.2.3.4:80 5.6.7.8:9 ino:abc", why: "ino:"},
		{line: "ESTAB 0 0 [zz]:80 5.6.7.8:9", why: "bad IPv6"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			e, skip, why := parseSSLine(tt.line)
			if skip != tt.skip {
				t.Fatalf("skip = %v, want %v", skip, tt.skip)
			}
			if tt.why != "" {
				if !strings.Contains(why, tt.why) {
					t.Fatalf("why = %q, want it to contain %q", why, tt.why)
				}
				return
			}
			if why != "" {
				t.Fatalf("unexpected failure: %s", why)
			}
			if skip {
				return
			}
			if e.Socket.State != tt.state || FormatLocal(e.Socket.Local, e.Socket.V6Only) != tt.local || len(e.Owners) != tt.owners {
				t.Errorf("got state %s local %s owners %v", e.Socket.State, FormatLocal(e.Socket.Local, e.Socket.V6Only), e.Owners)
			}
		})
	}
}

func TestParseSSErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/ss/tan-6.1.txt")
	if err != nil {
		t.Fatal(err)
	}
	sysctl, err := os.ReadFile("testdata/sysctl/sysctl-a-ns-6.18.txt")
	if err != nil {
		t.Fatal(err)
	}
	// Cut in the middle of the peer address of the last line.
	cut := string(good[:len(good)-40])
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "x.txt: line 1: empty"},
		{"sysctl given as ss", string(sysctl), "x.txt: line 1: not ss socket output"},
		{"truncated", cut, "x.txt: line 52: file ends in the middle of a line"},
		{"garbage", "hello\nworld\n", "x.txt: line 1: not ss socket output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSS(strings.NewReader(tt.in), "x.txt", func(SSEntry) error { return nil })
			if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrParse containing %q", err, tt.want)
			}
		})
	}
}

func TestParseSSNotes(t *testing.T) {
	in := "State Recv-Q Send-Q Local Address:Port Peer Address:Port\n" +
		"ESTAB 0 0 1.2.3.4:80 5.6.7.8:9\n" +
		"ESTAB 0 0 1.2.3.4:http 5.6.7.8:9\n" +
		strings.Repeat("BOGUS 0 0 1.2.3.4:80 5.6.7.8:9\n", 7)
	var n int
	st, err := ParseSS(strings.NewReader(in), "x.txt", func(SSEntry) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []Missing{
		{Source: "x.txt:3", Reason: `line not understood (local address: port "http" is not a number (capture with ss -n)): "ESTAB 0 0 1.2.3.4:http 5.6.7.8:9"`},
		{Source: "x.txt:4", Reason: `line not understood (unknown state "BOGUS"): "BOGUS 0 0 1.2.3.4:80 5.6.7.8:9"`},
		{Source: "x.txt:5", Reason: `line not understood (unknown state "BOGUS"): "BOGUS 0 0 1.2.3.4:80 5.6.7.8:9"`},
		{Source: "x.txt:6", Reason: `line not understood (unknown state "BOGUS"): "BOGUS 0 0 1.2.3.4:80 5.6.7.8:9"`},
		{Source: "x.txt:7", Reason: `line not understood (unknown state "BOGUS"): "BOGUS 0 0 1.2.3.4:80 5.6.7.8:9"`},
		{Source: "x.txt", Reason: "3 more lines not understood"},
	}
	if diff := cmp.Diff(want, st.Notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
	if n != 1 {
		t.Errorf("%d sockets, want 1", n)
	}
}

func TestParseSSSummary(t *testing.T) {
	tests := []struct {
		file string
		want SSSummary
	}{
		{"s-6.1.txt", SSSummary{Sockstat: Sockstat{SocketsUsed: 41, TCPAlloc: 36, TCPOrphan: 0, TCPTimeWait: 13, TCPInUse: 28, TCP6InUse: 7}, Estab: 23}},
		{"s-5.10-written.txt", SSSummary{Sockstat: Sockstat{SocketsUsed: 180, TCPAlloc: 11, TCPTimeWait: 1, TCPInUse: 8, TCP6InUse: 3}, Estab: 4}},
		{"s-4.x-written.txt", SSSummary{Sockstat: Sockstat{SocketsUsed: 1013, TCPAlloc: 11, TCPTimeWait: 1, TCPInUse: 8, TCP6InUse: 3}, Estab: 4}}, // TCP: 12 = alloc 11 + synrecv 0 + timewait 1 (misc/ss.c before 5.x)
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "ss", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseSSSummary(f, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", "Total: x\nTCP: 1 (estab 1, closed 0, orphaned 0, timewait 0)\n", "Total: 3\n", "Total: 3\nTCP: 1 (estab"} {
		if _, err := ParseSSSummary(strings.NewReader(bad), "s.txt"); !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "s.txt: line") {
			t.Errorf("ParseSSSummary(%q) = %v, want ErrParse naming s.txt and a line", bad, err)
		}
	}
}

func FuzzParseSS(f *testing.F) {
	for _, name := range []string{"tan-6.1.txt", "tanp-6.1.txt", "tane-6.1.txt", "tani-6.1.txt", "an-netid-6.1.txt", "tlnp-6.1.txt", "tanp-5.10-written.txt", "tanp-4.15-written.txt", "tuanp-netid-5.10-written.txt", "tanpe-6.1-tty.txt", "tanpe-wrapped-written.txt"} {
		addCaptureSeeds(f, readTestdata(f, "ss", name))
	}
	f.Add([]byte("State Recv-Q Send-Q Local Address:Port Peer Address:Port\nLISTEN 0 128 *:22 *:*\nESTAB 0 0 [::ffff:1.2.3.4]:22 [::ffff:5.6.7.8]:9 users:((\"a\",pid=1,fd=2))\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		st, err := ParseSS(strings.NewReader(string(b)), "f.txt", func(e SSEntry) error {
			n++
			if stateIndex(e.Socket.State) == 0 {
				t.Fatalf("socket with unknown state %q", e.Socket.State)
			}
			if e.Socket.Family != "ipv4" && e.Socket.Family != "ipv6" {
				t.Fatalf("family %q", e.Socket.Family)
			}
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not wrap ErrParse: %v", err)
			}
			return
		}
		if st.Sockets != n || len(st.Notes) > keptNotes+1 {
			t.Fatalf("stats %+v for %d sockets", st, n)
		}
	})
}

func FuzzParseSSSummary(f *testing.F) {
	for _, name := range []string{"s-6.1.txt", "s-5.10-written.txt", "s-4.x-written.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", "ss", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseSSSummary(strings.NewReader(string(b)), "f.txt"); err != nil && !errors.Is(err, ErrParse) {
			t.Fatalf("error does not wrap ErrParse: %v", err)
		}
	})
}
