package sample

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Benchmarks of the text readers, so that a change to their shape (issue
// 13 split them into smaller functions) shows whether it cost time or
// allocations: the ss parser is allocation-free per field on purpose
// (4e7e946: 13 -> 3 allocations per socket line).

// benchSSLines builds n socket lines in the `ss -tanpe` layout of iproute2
// 6.1, the mix of scripts/bench-bundle.sh: owned ESTAB pairs, TIME-WAIT
// without owners, a CLOSE-WAIT pile, two listeners.
func benchSSLines(n int) string {
	var sb strings.Builder
	sb.WriteString("State      Recv-Q Send-Q      Local Address:Port        Peer Address:Port Process\n")
	sb.WriteString("LISTEN     0      4096              0.0.0.0:8080             0.0.0.0:*     users:((\"server\",pid=100,fd=3)) ino:1000 sk:1 cgroup:/ <->\n")
	sb.WriteString("LISTEN     0      511                     *:443                    *:*     users:((\"server\",pid=100,fd=4)) ino:1001 sk:2 cgroup:/ <->\n")
	for i := 0; i < n-2; i++ {
		switch i % 4 {
		case 0, 1:
			fmt.Fprintf(&sb, "ESTAB      0      0           127.0.0.1:%d       127.0.0.%d:8080  users:((\"client\",pid=%d,fd=%d)) uid:1000 ino:%d sk:%x cgroup:/ <->\n", 32768+i%28000, 10+i%20, 200+i%5, 10+i%19000, 2000+i, 16+i)
		case 2:
			fmt.Fprintf(&sb, "TIME-WAIT  0      0           127.0.0.1:%d       127.0.0.%d:9090  timer:(timewait,%dsec,0) ino:0 sk:%x\n", 32768+i%28000, 30+i%20, i%60, 20000000+i)
		default:
			fmt.Fprintf(&sb, "CLOSE-WAIT 1      0           127.0.0.1:8080       127.0.0.1:%d  users:((\"server\",pid=100,fd=%d)) ino:%d sk:%x cgroup:/ -->\n", 40000+i%20000, 20000+i, 3000000+i, 30000000+i)
		}
	}
	return sb.String()
}

func BenchmarkParseSS(b *testing.B) {
	const lines = 10000
	text := benchSSLines(lines)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if _, err := ParseSS(strings.NewReader(text), "ss-tan.txt", func(SSEntry) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != lines {
			b.Fatalf("%d sockets, want %d", n, lines)
		}
	}
}

func BenchmarkParseSSSummary(b *testing.B) {
	text, err := os.ReadFile(filepath.Join("testdata", "ss", "s-6.1.txt"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSSSummary(strings.NewReader(string(text)), "ss-s.txt"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFromBundle reads the two-snapshot fixture bundle with a
// 10,000-line socket table in each snapshot (bundleSnap.read and finish).
func BenchmarkFromBundle(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join("testdata", "bundle", "ns")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if filepath.Base(p) == "ss-tan.txt" {
			data = []byte(benchSSLines(10000))
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), data, 0o644)
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromBundle(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFromPaste reads a paste of ss -tlnp, ss -tanp (2,000 lines),
// ss -s, sysctl and netstat -s blocks (pasteReader.snapshot, recSSTable).
func BenchmarkFromPaste(b *testing.B) {
	read := func(name string) string {
		t, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			b.Fatal(err)
		}
		return string(t)
	}
	text := "$ ss -tlnp\n" + read("ss/tlnp-6.1.txt") +
		"\n$ ss -tanpe\n" + benchSSLines(2000) +
		"\n$ ss -s\n" + read("ss/s-6.1.txt") +
		"\n$ sysctl net.core.somaxconn net.ipv4.tcp_max_syn_backlog\nnet.core.somaxconn = 4096\nnet.ipv4.tcp_max_syn_backlog = 1024\n"
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromPaste("paste.txt", strings.NewReader(text), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseDmesg: a ring of 10,000 chatter lines and 10 SYN-flood
// warnings, as a bundle's dmesg.txt holds. Chatter skipping the prefix
// expressions took it from 10 ms and 70,000 allocations to 1.2 ms and
// 10,000 (one per line, the lineReader's string).
func BenchmarkParseDmesg(b *testing.B) {
	var sb strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&sb, "[%6d.%06d] usb 1-1: new high-speed USB device number %d using xhci_hcd\n", i, i, i)
		if i%1000 == 0 {
			fmt.Fprintf(&sb, "[%6d.%06d] TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:8080. Sending cookies.\n", i, i)
		}
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := ParseDmesg(strings.NewReader(text), "dmesg.txt")
		if err != nil {
			b.Fatal(err)
		}
		if len(ev) != 10 {
			b.Fatalf("%d events, want 10", len(ev))
		}
	}
}
