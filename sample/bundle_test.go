package sample

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// tarDir writes dir as a .tar.gz (gz) or .tar under prefix, the way
// `tar czf out -C parent dir` does.
func tarDir(t testing.TB, dir, out, prefix string, gz bool) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tw *tar.Writer
	if gz {
		zw := gzip.NewWriter(f)
		defer zw.Close()
		tw = tar.NewWriter(zw)
	} else {
		tw = tar.NewWriter(f)
	}
	defer tw.Close()
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(filepath.Join(prefix, rel)), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// copyDir copies a testdata tree so a test can change it.
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFromBundleCapture(t *testing.T) {
	got, err := FromBundle("testdata/bundle/ns")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d snapshots, want 2", len(got))
	}
	s := got[0]
	if !got[0].Time.Before(got[1].Time) || got[0].Source != "bundle:testdata/bundle/ns#1" || got[1].Source != "bundle:testdata/bundle/ns#2" {
		t.Errorf("snapshots out of order: %v %s, %v %s", got[0].Time, got[0].Source, got[1].Time, got[1].Source)
	}
	// Checked by hand against 1/ss-tan.txt, 1/ss-tlnp.txt, 1/sockstat.txt,
	// 1/netstat.txt and 1/sysctl.txt.
	wantStates := map[string]int{
		StateEstab: 18, StateSynSent: 3, StateSynRecv: 3, StateFinWait1: 0, StateFinWait2: 5, StateTimeWait: 8,
		StateClose: 0, StateCloseWait: 5, StateLastAck: 0, StateListen: 9, StateClosing: 0,
	}
	if diff := cmp.Diff(wantStates, s.States); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	type lq struct {
		Local        string
		RecvQ, SendQ uint32
		Owner        string
	}
	var ls []lq
	for _, l := range s.Listeners {
		o := ""
		for _, ow := range l.Owners {
			o += ow.Comm + "/" + itoa(ow.PID)
		}
		ls = append(ls, lq{l.Local, l.RecvQ, l.SendQ, o})
	}
	wantL := []lq{
		{"*:2222", 0, 4096, "python3/17366"}, {"127.0.0.1:5353", 0, 64, "python3/17366"},
		{"[::1]:7000", 0, 511, "python3/17366"}, {"0.0.0.0:8080", 7, 128, "python3/17366"},
		{"127.0.0.1:8081", 0, 16, "python3/18147"}, {"127.0.0.1:8082", 0, 16, "python3/18249"},
		{"10.9.9.1:8443", 0, 128, "python3/18147"}, {"10.9.9.1:8444", 0, 128, "python3/18249"},
		{"127.0.0.1:9000", 3, 2, "python3/17366"},
	}
	if diff := cmp.Diff(wantL, ls); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	if s.Total != 51 || s.Host != "vm" || s.Time.UnixNano() != 1795479192923360473 {
		t.Errorf("total %d host %q time %v", s.Total, s.Host, s.Time)
	}
	wantCtr := map[string]uint64{"TcpExtListenOverflows": 30, "TcpActiveOpens": 25, "TcpCurrEstab": 23}
	for k, v := range wantCtr {
		if s.Counters[k] != v {
			t.Errorf("counter %s = %d, want %d", k, s.Counters[k], v)
		}
	}
	if want := (Sockstat{SocketsUsed: 37, TCPInUse: 28, TCPOrphan: 0, TCPTimeWait: 13, TCPAlloc: 36, TCPMemPages: 344, TCP6InUse: 7}); s.Sockstat != want {
		t.Errorf("sockstat %+v, want %+v", s.Sockstat, want)
	}
	if s.Sysctls["net.ipv4.ip_local_port_range"] != "32768 60999" || s.Sysctls["fs.file-nr"] != "1078 0 2466177" || len(s.Sysctls) != 11 {
		t.Errorf("sysctls %v", s.Sysctls)
	}
	if len(s.Kernel) != 4 || s.Kernel[0].Kind != KernelSynFlood || s.Kernel[0].Port != 8080 {
		t.Errorf("kernel %+v", s.Kernel)
	}
	// boot = date - uptime; the first flood line is 524.253683 s after it.
	boot := time.Unix(1795479192, 923360473).Add(-625120 * time.Millisecond)
	if want := boot.Add(524253683 * time.Microsecond).Round(time.Millisecond); !s.Kernel[0].Time.Equal(want) {
		t.Errorf("kernel line time %v, want %v", s.Kernel[0].Time, want)
	}
	wantMissing := []Missing{
		{Source: "1/ss-tan.txt", Reason: "captured without -e: socket inodes unknown, orphaned sockets not counted"},
		{Source: "owners", Reason: "captured text has no open-fd counts, RLIMIT_NOFILE or systemd units for owning processes (capture processes.txt with the /proc loop of README.md, Captured bundles)"},
		{Source: "1/sysctl.txt", Reason: "lacks net.ipv4.tcp_max_orphans, net.ipv4.tcp_mem"},
	}
	if diff := cmp.Diff(wantMissing, s.Missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	if len(s.Processes) == 0 || s.Processes[0].PID != 17366 || s.Processes[0].Total != 21 {
		t.Errorf("processes %+v", s.Processes)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// A bundle read from a directory, a .tar.gz of it (with or without a
// top-level folder) and a .tar gives the same samples.
func TestFromBundleArchives(t *testing.T) {
	want, err := FromBundle("testdata/bundle/ns")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := map[string]func() string{
		"tar.gz": func() string {
			p := filepath.Join(dir, "b.tar.gz")
			tarDir(t, "testdata/bundle/ns", p, "", true)
			return p
		},
		"tar.gz with top folder": func() string {
			p := filepath.Join(dir, "c.tar.gz")
			tarDir(t, "testdata/bundle/ns", p, "bundle-web1", true)
			return p
		},
		"tar": func() string {
			p := filepath.Join(dir, "d.tar")
			tarDir(t, "testdata/bundle/ns", p, "", false)
			return p
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := FromBundle(mk())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Sample{}, "Source", "Missing")); diff != "" {
				t.Errorf("(-dir +archive):\n%s", diff)
			}
			if len(got) != 2 || len(got[0].Missing) != len(want[0].Missing) {
				t.Errorf("missing %v, want %v", got[0].Missing, want[0].Missing)
			}
		})
	}
}

func TestFromBundleOneSnapshot(t *testing.T) {
	dir := t.TempDir()
	// Only ss -tan (no -p, no -e) and a sysctl subset, at the top.
	if err := os.WriteFile(filepath.Join(dir, "ss-tan.txt"), []byte(readTestdata(t, "ss", "tan-6.1.txt")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sysctl.txt"), []byte(readTestdata(t, "sysctl", "subset-written.txt")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.md"), []byte("not a capture\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := FromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Source != "bundle:"+dir || got[0].Total != 51 || !got[0].Time.IsZero() {
		t.Fatalf("got %d samples, %+v", len(got), got[0])
	}
	var sources []string
	for _, m := range got[0].Missing {
		sources = append(sources, m.Source)
	}
	want := []string{"sysctl.txt:4", "date.txt", "ss-tan.txt", "ss-tan.txt", "nstat.txt", "sockstat.txt", "sysctl.txt", "dmesg.txt"}
	if diff := cmp.Diff(want, sources); diff != "" {
		t.Errorf("missing sources (-want +got):\n%s\n%v", diff, got[0].Missing)
	}
	if got[0].Listeners[0].Owners != nil {
		t.Errorf("owners without -p: %v", got[0].Listeners[0].Owners)
	}
}

// A bundle of a namespace (netns.txt) keeps, like a live sample of one, only
// the SYN-flooding lines that name one of its listeners: dmesg is host-wide.
func TestFromBundleNetnsKernelLines(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/bundle/ns", dir)
	for _, snap := range []string{"1", "2"} {
		// One flood line for a listener of the capture (10.9.9.1:8444).
		f, err := os.OpenFile(filepath.Join(dir, snap, "dmesg.txt"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("[  600.000000] TCP: request_sock_TCP: Possible SYN flooding on port 10.9.9.1:8444. Sending cookies.\n"); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	kinds := func(ss []*Sample) []string {
		var out []string
		for _, ev := range ss[0].Kernel {
			out = append(out, fmt.Sprintf("%s %s:%d", ev.Kind, ev.Addr, ev.Port))
		}
		return out
	}
	host, err := FromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"syn-flood 127.0.0.1:8080", "syn-flood ::1:8443", "syn-flood 127.0.0.1:9090", "port-range-parity :0", "syn-flood 10.9.9.1:8444"}
	if diff := cmp.Diff(want, kinds(host)); diff != "" {
		t.Errorf("host bundle (-want +got):\n%s", diff)
	}
	for _, snap := range []string{"1", "2"} {
		if err := os.WriteFile(filepath.Join(dir, snap, "netns.txt"), []byte("/run/netns/swcap-b\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := FromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"port-range-parity :0", "syn-flood 10.9.9.1:8444"}
	if diff := cmp.Diff(want, kinds(ns)); diff != "" {
		t.Errorf("namespace bundle (-want +got):\n%s", diff)
	}
	if ns[0].Netns != "/run/netns/swcap-b" {
		t.Errorf("netns %q", ns[0].Netns)
	}
}

// collect.txt says why a file is absent; the sample's Missing repeats it.
func TestFromBundleCollectLog(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/bundle/ns/1", dir)
	if err := os.Remove(filepath.Join(dir, "dmesg.txt")); err != nil {
		t.Fatal(err)
	}
	log := "#              written by sockwarden collect\n" +
		"ss-tan.txt     ss -tanpe (0.10s)\n" +
		"dmesg.txt      not written: /dev/kmsg: operation not permitted\n"
	if err := os.WriteFile(filepath.Join(dir, "collect.txt"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := FromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Missing{Source: "dmesg.txt", Reason: "absent: kernel log lines (SYN flooding, TCP OOM, orphans, conntrack) unknown (capture: dmesg); collect.txt: not written: /dev/kmsg: operation not permitted"}
	if !slices.Contains(got[0].Missing, want) {
		t.Errorf("missing %v, want it to hold %v", got[0].Missing, want)
	}
}

// A single capture file is a bundle of one file.
func TestFromBundleSingleFile(t *testing.T) {
	got, err := FromBundle("testdata/bundle/ns/2/ss-tan.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Total != 51 || got[0].Listener("0.0.0.0:8080") == nil {
		t.Fatalf("got %d samples, %+v", len(got), got)
	}
	if _, err := FromBundle("testdata/ss/s-6.1.txt"); !errors.Is(err, ErrParse) {
		t.Errorf("a file not named as a bundle file: %v, want ErrParse", err)
	}
}

func TestFromBundleErrors(t *testing.T) {
	mk := func(t *testing.T, edit func(dir string)) string {
		dir := t.TempDir()
		copyDir(t, "testdata/bundle/ns", dir)
		edit(dir)
		return dir
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		path func(t *testing.T) string
		want string
	}{
		{"truncated ss-tan", func(t *testing.T) string {
			return mk(t, func(d string) {
				b := readTestdata(t, "bundle", "ns", "2", "ss-tan.txt")
				write(filepath.Join(d, "2", "ss-tan.txt"), b[:len(b)-30])
			})
		}, "2/ss-tan.txt: line 52: file ends in the middle of a line"},
		{"sysctl output as ss-tlnp", func(t *testing.T) string {
			return mk(t, func(d string) {
				write(filepath.Join(d, "1", "ss-tlnp.txt"), readTestdata(t, "bundle", "ns", "1", "sysctl.txt"))
			})
		}, "1/ss-tlnp.txt: line 1: not ss socket output"},
		{"bad date", func(t *testing.T) string {
			return mk(t, func(d string) { write(filepath.Join(d, "1", "date.txt"), "yesterday\n") })
		}, "1/date.txt: line 1: not a date"},
		{"bad netstat", func(t *testing.T) string {
			return mk(t, func(d string) { write(filepath.Join(d, "2", "netstat.txt"), "TcpExt: A B\nTcpExt: 1\n") })
		}, "2/netstat.txt: parse error: line 2"},
		{"netstat without its final newline", func(t *testing.T) string {
			return mk(t, func(d string) {
				b := readTestdata(t, "bundle", "ns", "1", "netstat.txt")
				write(filepath.Join(d, "1", "netstat.txt"), b[:len(b)-1])
			})
		}, "1/netstat.txt: line 6: file ends in the middle of a line"},
		{"truncated archive", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "b.tar.gz")
			tarDir(t, "testdata/bundle/ns", p, "", true)
			b, _ := os.ReadFile(p)
			write(p, string(b[:len(b)/2]))
			return p
		}, "truncated"},
		{"not an archive", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "b.tar.gz")
			write(p, "hello\n")
			return p
		}, "not a directory, .tar.gz or .tar"},
		{"no snapshot", func(t *testing.T) string { return t.TempDir() }, "no snapshot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.path(t)
			_, err := FromBundle(p)
			if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want ErrParse naming %s and %q", err, p, tt.want)
			}
		})
	}
	if _, err := FromBundle(filepath.Join(t.TempDir(), "absent.tar.gz")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent bundle: %v", err)
	}
}

func TestNaturalCompare(t *testing.T) {
	in := []string{"snap-10", "snap-2", "1", "10", "2", "a", ""}
	want := []string{"", "1", "2", "10", "a", "snap-2", "snap-10"}
	got := append([]string(nil), in...)
	slices.SortFunc(got, naturalCompare)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func FuzzFromBundleTar(f *testing.F) {
	// A small plain tar (gzip's checksum would reject nearly every
	// mutation, and Go's fuzzer crawls on inputs of tens of KiB): one
	// snapshot of three short files.
	dir := f.TempDir()
	for _, snap := range []string{"1"} {
		files := map[string]string{
			"date.txt":   "1795479192.923360473\n",
			"ss-tan.txt": strings.Join(strings.SplitAfter(readTestdata(f, "ss", "tanp-6.1.txt"), "\n")[:5], ""),
			"sysctl.txt": "net.core.somaxconn = 4096\n",
		}
		if err := os.MkdirAll(filepath.Join(dir, snap), 0o755); err != nil {
			f.Fatal(err)
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, snap, name), []byte(body), 0o644); err != nil {
				f.Fatal(err)
			}
		}
	}
	p := filepath.Join(f.TempDir(), "seed.tar")
	tarDir(f, dir, p, "", false)
	b, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "f.tar")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ss, err := FromBundle(p)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not wrap ErrParse: %v", err)
			}
			return
		}
		for _, s := range ss {
			if s.Schema != Schema || len(s.States) != len(States) {
				t.Fatalf("bad sample %+v", s)
			}
		}
	})
}
