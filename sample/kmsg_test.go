package sample

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sockwarden/sockwarden/internal/netns"
)

func TestClassifyKernelLine(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       *KernelEvent // nil: not a line that matters
	}{
		{"syn flood v4 cookies (6.x, captured)", "TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:8080. Sending cookies.",
			&KernelEvent{Kind: KernelSynFlood, Addr: "127.0.0.1", Port: 8080, Action: "cookies"}},
		{"syn flood v6 cookies (6.x, captured)", "TCP: request_sock_TCPv6: Possible SYN flooding on port [::1]:8443. Sending cookies.",
			&KernelEvent{Kind: KernelSynFlood, Addr: "::1", Port: 8443, Action: "cookies"}},
		{"syn flood drop (6.x, captured)", "TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:9090. Dropping request.",
			&KernelEvent{Kind: KernelSynFlood, Addr: "127.0.0.1", Port: 9090, Action: "drop"}},
		{"syn flood dmesg line", "[  524.253683] TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:8080. Sending cookies.",
			&KernelEvent{Kind: KernelSynFlood, Addr: "127.0.0.1", Port: 8080, Action: "cookies"}},
		{"syn flood dmesg -T line", "[Tue Nov 24 00:11:32 2026] TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:80. Dropping request.",
			&KernelEvent{Kind: KernelSynFlood, Addr: "0.0.0.0", Port: 80, Action: "drop"}},
		{"syn flood 4.x", "TCP: request_sock_TCP: Possible SYN flooding on port 80. Sending cookies.  Check SNMP counters.",
			&KernelEvent{Kind: KernelSynFlood, Port: 80, Action: "cookies"}},
		{"syn flood 3.x", "possible SYN flooding on port 8080. Sending cookies.",
			&KernelEvent{Kind: KernelSynFlood, Port: 8080, Action: "cookies"}},
		{"tcp oom", "TCP: out of memory -- consider tuning tcp_mem", &KernelEvent{Kind: KernelTCPOOM}},
		{"orphans", "TCP: too many orphaned sockets", &KernelEvent{Kind: KernelTooManyOrphans}},
		{"orphans 3.x", "TCP: too many of orphaned sockets", &KernelEvent{Kind: KernelTooManyOrphans}},
		{"conntrack", "nf_conntrack: nf_conntrack: table full, dropping packet", &KernelEvent{Kind: KernelConntrackFull}},
		{"conntrack 4.x", "nf_conntrack: table full, dropping packet", &KernelEvent{Kind: KernelConntrackFull}},
		{"time wait buckets", "TCP: time wait bucket table overflow", &KernelEvent{Kind: KernelTWBucketOverflow}},
		{"parity (captured)", "ip_local_port_range: prefer different parity for start/end values.", &KernelEvent{Kind: KernelPortRangeParity}},
		{"file-max", "[240560.532035] VFS: file-max limit 51200 reached", &KernelEvent{Kind: KernelFileMax}},
		{"unrelated", "EXT4-fs (vda): mounted filesystem r/w without journal.", nil},
		{"flooding without port", "Possible SYN flooding on port", nil},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ClassifyKernelLine(tc.line)
			if tc.want == nil {
				if ok {
					t.Fatalf("classified as %+v, want no match", got)
				}
				return
			}
			if !ok {
				t.Fatal("not classified")
			}
			if !kernelLineWanted([]byte(tc.line)) {
				t.Error("kernelLineWanted drops a line that classifies: the kernel log reader would miss it")
			}
			if d := cmp.Diff(*tc.want, got, cmpopts.IgnoreFields(KernelEvent{}, "Line")); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if !strings.HasSuffix(tc.line, got.Line) || strings.HasPrefix(got.Line, "[") {
				t.Errorf("Line = %q, want the message of %q", got.Line, tc.line)
			}
		})
	}
}

// TestKmsgCapture reads a real /dev/kmsg capture (a whole boot's worth plus
// the lines a throwaway namespace produced) record by record.
func TestKmsgCapture(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "kmsg", "kmsg.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []KernelEvent
	var records int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") {
			continue // dictionary continuation of the previous record
		}
		rec, err := parseKmsgRecord([]byte(line + "\n"))
		if err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		records++
		if ev, ok := ClassifyKernelLine(rec.msg); ok {
			ev.Seq = rec.seq
			got = append(got, ev)
		}
	}
	if records < 300 {
		t.Fatalf("only %d records parsed", records)
	}
	want := []KernelEvent{
		{Seq: 339, Kind: KernelSynFlood, Addr: "127.0.0.1", Port: 8080, Action: "cookies"},
		{Seq: 340, Kind: KernelSynFlood, Addr: "::1", Port: 8443, Action: "cookies"},
		{Seq: 341, Kind: KernelSynFlood, Addr: "127.0.0.1", Port: 9090, Action: "drop"},
		{Seq: 342, Kind: KernelPortRangeParity},
	}
	if d := cmp.Diff(want, got, cmpopts.IgnoreFields(KernelEvent{}, "Line")); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}

	// The same lines from dmesg's text.
	b, err := os.ReadFile(filepath.Join("testdata", "kmsg", "dmesg.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, line := range strings.Split(string(b), "\n") {
		if _, ok := ClassifyKernelLine(line); ok {
			n++
		}
	}
	if n != len(want) {
		t.Errorf("dmesg capture: %d lines classified, want %d", n, len(want))
	}
}

func TestParseKmsgRecord(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want kmsgRecord
		bad  bool
	}{
		{in: "6,339,524253683,-;TCP: hello\n", want: kmsgRecord{seq: 339, usec: 524253683, msg: "TCP: hello"}},
		{in: "6,339,524253683,-,caller=T1;msg\n SUBSYSTEM=net\n", want: kmsgRecord{seq: 339, usec: 524253683, msg: "msg"}},
		{in: "6,339,524253683,-;a;b", want: kmsgRecord{seq: 339, usec: 524253683, msg: "a;b"}},
		{in: "no separator", bad: true},
		{in: "6,x,1,-;m", bad: true},
		{in: "6,1;m", bad: true},
	} {
		got, err := parseKmsgRecord([]byte(tc.in))
		if tc.bad {
			if err == nil {
				t.Errorf("%q: no error", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(kmsgRecord{})); d != "" {
			t.Errorf("%q (-want +got):\n%s", tc.in, d)
		}
	}
}

func TestNetnsReadKmsg(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to read /dev/kmsg")
	}
	_, last, err := readKmsg("/dev/kmsg", 0)
	if err != nil {
		t.Fatal(err)
	}
	if last == 0 {
		t.Fatal("no record read from /dev/kmsg")
	}
	// Nothing new after the last record (unless the kernel logs meanwhile).
	evs, last2, err := readKmsg("/dev/kmsg", last)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Seq <= last {
			t.Errorf("event %+v at or before seq %d", ev, last)
		}
	}
	if last2 < last {
		t.Errorf("last sequence went back: %d -> %d", last, last2)
	}
}

func FuzzClassifyKernelLine(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "kmsg", "dmesg.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ev, ok := ClassifyKernelLine(line)
		if !ok {
			return
		}
		if ev.Kind == "" || (ev.Kind == KernelSynFlood && ev.Action != "cookies" && ev.Action != "drop") {
			t.Fatalf("bad event %+v", ev)
		}
		if !kernelLineWanted([]byte(line)) {
			t.Fatalf("kernelLineWanted drops %q, which classifies as %+v", line, ev)
		}
	})
}

func FuzzParseKmsgRecord(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "kmsg", "kmsg.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f.Add([]byte(line + "\n"))
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		r, err := parseKmsgRecord(rec)
		if err == nil && strings.Contains(r.msg, "\n") {
			t.Fatalf("message %q holds a newline", r.msg)
		}
	})
}

func TestOwnEvents(t *testing.T) {
	evs := []KernelEvent{
		{Kind: KernelSynFlood, Addr: "127.0.0.1", Port: 8080},
		{Kind: KernelSynFlood, Addr: "::1", Port: 8443},
		{Kind: KernelSynFlood, Addr: "0.0.0.0", Port: 80},
		{Kind: KernelSynFlood, Port: 22}, // old format, port only
		{Kind: KernelTCPOOM},
	}
	ls := []Listener{{Addr: "127.0.0.1", Port: 8080}, {Addr: "0.0.0.0", Port: 8443}, {Addr: "::", Port: 22}}
	want := []KernelEvent{evs[0], evs[3], evs[4]}
	got := ownEvents(slices.Clone(evs), ls)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestNetnsKmsgReader: a reader kept open returns the ring once, then only
// what was logged since. The kernel line is made for real: a port range
// whose ends have the same parity, set in a throwaway namespace, makes the
// kernel warn "ip_local_port_range: prefer different parity".
func TestNetnsKmsgReader(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to read /dev/kmsg and make a namespace")
	}
	r := NewKmsgReader("")
	defer r.Close()
	_, last1, err := r.Read(0)
	if err != nil {
		t.Fatal(err)
	}
	if last1 == 0 {
		t.Fatal("no record read from /dev/kmsg")
	}
	path, _ := newTestNetns(t)
	var parity *KernelEvent
	for try := 0; parity == nil && try < 30; try++ {
		// The warning is rate-limited: try again for a few seconds.
		err := netns.Do(path, func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte(fmt.Sprintf("%d 60000", 20000+2*try)), 0)
		})
		if err != nil {
			t.Fatal(err)
		}
		evs, _, err := r.Read(0)
		if err != nil {
			t.Fatal(err)
		}
		for i, ev := range evs {
			if ev.Seq <= last1 {
				t.Errorf("record %d (%s) read again", ev.Seq, ev.Line)
			}
			if ev.Kind == KernelPortRangeParity {
				parity = &evs[i]
			}
		}
		if parity == nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if parity == nil {
		t.Fatal("the kernel logged no port-range parity warning within 6 s")
	}
	// With after = 0, a fresh read reports the warning again; the reader
	// does not (another test may log meanwhile: only newer records).
	if all, _, err := readKmsg("/dev/kmsg", 0); err != nil || !slices.ContainsFunc(all, func(e KernelEvent) bool { return e.Seq == parity.Seq }) {
		t.Fatalf("a fresh read of the ring does not hold record %d (err %v)", parity.Seq, err)
	}
	evs, last2, err := r.Read(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Seq <= parity.Seq {
			t.Errorf("record %d (%s) read again", ev.Seq, ev.Line)
		}
	}
	if last2 < parity.Seq {
		t.Errorf("last sequence %d is before the warning's %d", last2, parity.Seq)
	}
	// Closed, it opens again and reads the ring from the start.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	evs, _, err = r.Read(0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs, func(e KernelEvent) bool { return e.Seq == parity.Seq }) {
		t.Errorf("after Close, the ring read again lacks record %d", parity.Seq)
	}
}

// readKmsg reads every record in the kernel ring buffer without blocking and
// returns the ones that classify, with sequence numbers above after (0:
// all), and the last sequence number read.
// /dev/kmsg is host-wide: the lines of every network namespace are there.
func readKmsg(path string, after uint64) ([]KernelEvent, uint64, error) {
	r := NewKmsgReader(path)
	defer r.Close()
	return r.Read(after)
}

// A sample that fails after reading the kernel log (here: cancelled during
// the dump) closes the kept reader, so the next read starts again from the
// ring and the records the failed sample consumed are not lost.
func TestFailedSampleRewindsKmsgReader(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: /dev/kmsg")
	}
	r := NewKmsgReader("")
	defer r.Close()
	all, last, err := r.Read(0)
	if err != nil {
		t.Fatal(err)
	}
	if last == 0 {
		t.Skip("empty kernel log")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Take(ctx, Options{Kmsg: r}); err == nil {
		t.Fatal("a cancelled sample succeeded")
	}
	if r.fd >= 0 {
		t.Fatal("the reader is still open after the failed sample: the records it read would be lost")
	}
	again, last2, err := r.Read(0)
	if err != nil || last2 < last || len(again) < len(all) {
		t.Fatalf("after the failed sample: %d events up to %d, %v; want the %d events up to %d again", len(again), last2, err, len(all), last)
	}
}

// BenchmarkNetnsReadKmsg reads the whole ring as a one-shot census does
// (a reader opened for it, every record from the first): the kernel
// formats one record per read(2), and each is parsed and classified here.
func BenchmarkNetnsReadKmsg(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to read /dev/kmsg")
	}
	for b.Loop() {
		if _, _, err := readKmsg("/dev/kmsg", 0); err != nil {
			b.Fatal(err)
		}
	}
}
