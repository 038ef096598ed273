package sample

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func readTestdata(t testing.TB, parts ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"testdata"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseSysctlText(t *testing.T) {
	tests := []struct {
		file      string
		want      map[string]string // a subset of what must be there
		size      int
		wantNotes []Missing
	}{
		{"sysctl-a-ns-6.18.txt", map[string]string{
			"net.core.somaxconn": "4096", "net.ipv4.ip_local_port_range": "32768 60999",
			"fs.file-nr": "636 0 2466177", "net.ipv4.ip_local_reserved_ports": "", "net.ipv4.tcp_syncookies": "1",
			"kernel.core_modes": "file pipe socket",
		}, 827, nil},
		{"subset-written.txt", map[string]string{
			"net.core.somaxconn": "4096", "net.ipv4.ip_local_port_range": "32768 60999", "net.ipv4.tcp_syncookies": "1",
		}, 3, []Missing{{Source: "subset-written.txt:4", Reason: `line not understood (sysctl error message): "sysctl: cannot stat /proc/sys/net/ipv4/tcp_tw_recycle: No such file or directory"`}}},
		{"grep-proc-sys-host.txt", map[string]string{
			"net.core.somaxconn": "4096", "net.ipv4.ip_local_port_range": "32768 60999",
			"net.ipv4.tcp_mem": "287901 383868 575802", "fs.file-nr": "524 0 2466177",
		}, 4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, notes, err := ParseSysctlText(strings.NewReader(readTestdata(t, "sysctl", tt.file)), tt.file)
			if err != nil {
				t.Fatal(err)
			}
			sub := map[string]string{}
			for k := range tt.want {
				if v, ok := got[k]; ok {
					sub[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, sub); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			if len(got) != tt.size {
				t.Errorf("%d keys, want %d", len(got), tt.size)
			}
			if diff := cmp.Diff(tt.wantNotes, notes); diff != "" {
				t.Errorf("notes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTextErrors(t *testing.T) {
	nstat := readTestdata(t, "nstat", "nstat-asz-ns.txt")
	sysctl := readTestdata(t, "sysctl", "sysctl-a-ns-6.18.txt")
	ss := readTestdata(t, "ss", "tan-6.1.txt")
	sysctlParse := func(s string) error { _, _, err := ParseSysctlText(strings.NewReader(s), "x.txt"); return err }
	nstatParse := func(s string) error { _, _, err := ParseNstat(strings.NewReader(s), "x.txt"); return err }
	dmesgParse := func(s string) error { _, err := ParseDmesg(strings.NewReader(s), "x.txt"); return err }
	tests := []struct {
		name  string
		parse func(string) error
		in    string
		want  string
	}{
		{"sysctl empty", sysctlParse, "", "x.txt: line 1: empty"},
		{"sysctl given ss", sysctlParse, ss, "x.txt: line 1: not sysctl output"},
		{"sysctl truncated", sysctlParse, "a.b = 1\nc.d", "x.txt: line 2: file ends in the middle of a line"},
		{"sysctl bad key", sysctlParse, "a b = 1\n", "x.txt: line 1: not sysctl output"},
		{"nstat empty", nstatParse, "#kernel\n", "x.txt: line 1: empty"},
		{"nstat given sysctl", nstatParse, sysctl, "x.txt: line 1: not nstat output"},
		{"nstat truncated", nstatParse, nstat[:len(nstat)-20], "x.txt: line 391: file ends in the middle of a line"},
		{"dmesg truncated", dmesgParse, "[ 1.0] a\n[ 2.0] TCP: too many orph", "x.txt: line 2: file ends in the middle"},
		{"long line", nstatParse, strings.Repeat("x", maxLine+10), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse(tt.in)
			if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrParse containing %q", err, tt.want)
			}
		})
	}
}

func TestParseNstat(t *testing.T) {
	got, notes, err := ParseNstat(strings.NewReader(readTestdata(t, "nstat", "nstat-asz-ns.txt")), "nstat.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"TcpActiveOpens": 25, "TcpExtListenOverflows": 30, "Ip6InReceives": 5, "TcpExtSyncookiesSent": 0}
	sub := map[string]uint64{}
	for k := range want {
		sub[k] = got[k]
	}
	if diff := cmp.Diff(want, sub); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if len(got) != 390 || len(notes) != 0 {
		t.Errorf("%d counters, notes %v; want 390 and none", len(got), notes)
	}
	_, notes, err = ParseNstat(strings.NewReader("#kernel\nTcpActiveOpens 3 0.0\nTcp ActiveOpens 3\nTcpX -1 0.0\n"), "n.txt")
	if err != nil {
		t.Fatal(err)
	}
	wantNotes := []Missing{
		{Source: "n.txt:3", Reason: `line not understood (value is not a number): "Tcp ActiveOpens 3"`},
		{Source: "n.txt:4", Reason: `line not understood (value is not a number): "TcpX -1 0.0"`},
	}
	if diff := cmp.Diff(wantNotes, notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
}

func TestParseDmesg(t *testing.T) {
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	flood := KernelEvent{Kind: KernelSynFlood, Addr: "127.0.0.1", Port: 8080, Action: "cookies", Line: "TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:8080. Sending cookies."}
	flood6 := KernelEvent{Kind: KernelSynFlood, Addr: "::1", Port: 8443, Action: "cookies", Line: "TCP: request_sock_TCPv6: Possible SYN flooding on port [::1]:8443. Sending cookies."}
	drop := KernelEvent{Kind: KernelSynFlood, Addr: "127.0.0.1", Port: 9090, Action: "drop", Line: "TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:9090. Dropping request."}
	parity := KernelEvent{Kind: KernelPortRangeParity, Line: "ip_local_port_range: prefer different parity for start/end values."}
	at := func(ev KernelEvent, tm time.Time) KernelEvent { ev.Time = tm; return ev }
	tests := []struct {
		file string
		want []DmesgEvent
	}{
		{"dmesg-6.18.txt", []DmesgEvent{
			{Event: flood, SinceBoot: 524253683 * time.Microsecond, HasSinceBoot: true},
			{Event: flood6, SinceBoot: 525980002 * time.Microsecond, HasSinceBoot: true},
			{Event: drop, SinceBoot: 527715611 * time.Microsecond, HasSinceBoot: true},
			{Event: parity, SinceBoot: 529230163 * time.Microsecond, HasSinceBoot: true},
		}},
		{"dmesg-iso-6.18.txt", []DmesgEvent{
			{Event: at(flood, utc("2026-11-24T00:11:31.253683Z"))},
			{Event: at(flood6, utc("2026-11-24T00:11:32.980002Z"))},
			{Event: at(drop, utc("2026-11-24T00:11:34.715611Z"))},
			{Event: at(parity, utc("2026-11-24T00:11:36.230163Z"))},
		}},
		{"dmesg-x-6.18.txt", []DmesgEvent{
			{Event: flood, SinceBoot: 524253683 * time.Microsecond, HasSinceBoot: true},
			{Event: flood6, SinceBoot: 525980002 * time.Microsecond, HasSinceBoot: true},
			{Event: drop, SinceBoot: 527715611 * time.Microsecond, HasSinceBoot: true},
			{Event: parity, SinceBoot: 529230163 * time.Microsecond, HasSinceBoot: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseDmesg(strings.NewReader(readTestdata(t, "dmesg", tt.file)), tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDmesgForms(t *testing.T) {
	loc := time.Local
	tests := []struct {
		line string
		want DmesgEvent
	}{
		{"[Tue Nov 24 00:11:33 2026] TCP: too many orphaned sockets", DmesgEvent{Event: KernelEvent{Kind: KernelTooManyOrphans, Line: "TCP: too many orphaned sockets", Time: time.Date(2026, 11, 24, 0, 11, 33, 0, loc)}}},
		{"<4>[  12.500000] TCP: out of memory -- consider tuning tcp_mem", DmesgEvent{Event: KernelEvent{Kind: KernelTCPOOM, Line: "TCP: out of memory -- consider tuning tcp_mem"}, SinceBoot: 12500 * time.Millisecond, HasSinceBoot: true}},
		{"Nov 24 00:11:33 web1 kernel: nf_conntrack: table full, dropping packet", DmesgEvent{Event: KernelEvent{Kind: KernelConntrackFull, Line: "nf_conntrack: table full, dropping packet"}}},
		{"nf_conntrack: table full, dropping packet", DmesgEvent{Event: KernelEvent{Kind: KernelConntrackFull, Line: "nf_conntrack: table full, dropping packet"}}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, ok := parseDmesgLine(tt.line)
			if !ok {
				t.Fatal("not classified")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDate(t *testing.T) {
	want := time.Unix(1795479192, 923360473).UTC()
	for _, in := range []string{"1795479192.923360473", "2026-11-24T00:13:12,923360473+00:00", "2026-11-24T00:13:12.923360473Z", "2026-11-24T01:13:12,923360473+01:00"} {
		got, err := ParseDate(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseDate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, w := range map[string]time.Time{"1795479192": time.Unix(1795479192, 0).UTC(), "Tue Nov 24 00:13:12 UTC 2026": time.Unix(1795479192, 0).UTC()} {
		got, err := ParseDate(in)
		if err != nil || !got.Equal(w) {
			t.Errorf("ParseDate(%q) = %v, %v; want %v", in, got, err, w)
		}
	}
	for _, in := range []string{"", "yesterday", "12.", "12.1234567890", "-5", "99999999999999999"} {
		if _, err := ParseDate(in); err == nil {
			t.Errorf("ParseDate(%q): no error", in)
		}
	}
}

func FuzzParseSysctlText(f *testing.F) {
	for _, name := range []string{"sysctl-a-ns-6.18.txt", "subset-written.txt", "grep-proc-sys-host.txt"} {
		addCaptureSeeds(f, readTestdata(f, "sysctl", name))
	}
	f.Add([]byte("net.core.somaxconn = 4096\nnet.ipv4.ip_local_port_range = 32768\t60999\n"))
	f.Add([]byte("/proc/sys/fs/file-nr:1 0 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := ParseSysctlText(strings.NewReader(string(b)), "f.txt")
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not wrap ErrParse: %v", err)
			}
			return
		}
		for k, v := range m {
			if checkSysctlKey(k) != "" || v != foldSpace(v) {
				t.Fatalf("bad pair %q = %q", k, v)
			}
		}
	})
}

func FuzzParseNstat(f *testing.F) {
	addCaptureSeeds(f, readTestdata(f, "nstat", "nstat-asz-ns.txt"))
	f.Add([]byte("#kernel\nTcpExtListenOverflows 30 0.0\nTcpActiveOpens 25 0.0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, _, err := ParseNstat(strings.NewReader(string(b)), "f.txt"); err != nil && !errors.Is(err, ErrParse) {
			t.Fatalf("error does not wrap ErrParse: %v", err)
		}
	})
}

func FuzzParseDmesg(f *testing.F) {
	for _, name := range []string{"dmesg-6.18.txt", "dmesg-T-6.18.txt", "dmesg-iso-6.18.txt", "dmesg-x-6.18.txt"} {
		addCaptureSeeds(f, readTestdata(f, "dmesg", name))
	}
	f.Add([]byte("[  524.253683] TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:8080. Sending cookies.\n"))
	f.Add([]byte("2026-11-24T00:11:36,230163+00:00 ip_local_port_range: prefer different parity for start/end values.\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := ParseDmesg(strings.NewReader(string(b)), "f.txt")
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not wrap ErrParse: %v", err)
			}
			return
		}
		for _, e := range evs {
			if e.Event.Kind == "" {
				t.Fatalf("event without kind: %+v", e)
			}
		}
	})
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"1795479192.923360473", "2026-11-24T00:13:12,923360473+00:00", "Tue Nov 24 00:13:12 UTC 2026"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseDate(s)
	})
}

// addCaptureSeeds seeds a fuzz test with a capture cut into pieces of 30
// lines: Go's fuzzer makes a few executions a minute on inputs of tens of
// KiB, while these pieces hold every line shape of the capture. The whole
// captures are checked by the table tests.
func addCaptureSeeds(f *testing.F, capture string) {
	lines := strings.SplitAfter(capture, "\n")
	for i := 0; i < len(lines); i += 30 {
		f.Add([]byte(strings.Join(lines[i:min(i+30, len(lines))], "")))
	}
}
