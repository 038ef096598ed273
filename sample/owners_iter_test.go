package sample

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sort"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/internal/bpfiter"
)

func ownerRecords(recs ...[3]uint64) []byte {
	var b bytes.Buffer
	for _, r := range recs {
		var rec [bpfiter.RecordSize]byte
		binary.LittleEndian.PutUint64(rec[0:], r[0])
		binary.LittleEndian.PutUint32(rec[8:], uint32(r[1]))
		binary.LittleEndian.PutUint32(rec[12:], uint32(r[2]))
		b.Write(rec[:])
	}
	return b.Bytes()
}

func TestParseOwnerRecords(t *testing.T) {
	// {inode, tgid, fd}: pid 10 holds two sockets and a file, pid 11
	// shares socket 100 (after fork), pid 12 holds no socket.
	in := ownerRecords(
		[3]uint64{0, 10, 0}, [3]uint64{100, 10, 3}, [3]uint64{101, 10, 4},
		[3]uint64{100, 11, 3}, [3]uint64{0, 11, 0},
		[3]uint64{0, 12, 0}, [3]uint64{0, 12, 1},
	)
	x, err := parseOwnerRecords(bytes.NewReader(in), 12, 16)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64][]int{}
	for _, ino := range []uint64{100, 101, 102} {
		for _, o := range x.lookup(ino) {
			got[ino] = append(got[ino], o.PID)
		}
		sort.Ints(got[ino])
	}
	want := map[uint64][]int{100: {10, 11}, 101: {10}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("owners (-want +got):\n%s", diff)
	}
	if o := x.lookup(101); len(o) != 1 || o[0].FDs != 3 {
		t.Errorf("pid 10 FDs: got %+v, want 3 descriptors", o)
	}

	// The kernel may hand records over in pieces: a one-byte reader
	// gives the same index.
	x1, err := parseOwnerRecords(iotest.OneByteReader(bytes.NewReader(in)), 12, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(x.ents, x1.ents); diff != "" {
		t.Errorf("one byte at a time (-whole +pieces):\n%s", diff)
	}
	if _, err := parseOwnerRecords(bytes.NewReader(in), 99, 16); !errors.Is(err, bpfiter.ErrPidNamespace) {
		t.Errorf("self absent: got %v, want bpfiter.ErrPidNamespace", err)
	}
	if _, err := parseOwnerRecords(bytes.NewReader(in[:len(in)-3]), 12, 16); err == nil {
		t.Error("truncated record: no error")
	}
}

// TestNetnsOwnersBPFMatchesProc compares the BPF iterator's owner index
// with the /proc/PID/fd scan on this machine: for every socket this
// process holds, the same owners and descriptor count.
func TestNetnsOwnersBPFMatchesProc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF, CAP_PERFMON) to load the iterator")
	}
	var held []net.Listener
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	bx, err := scanOwnersBPF("/proc", 0)
	if err != nil {
		t.Fatalf("BPF owner scan on this kernel (%v): the CI machine supports it; fix or explain", err)
	}
	px, _, _, err := scanOwnersScoped("/proc", ownerScan{pids: []int{os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range px.ents {
		ino := e >> 32
		po, bo := px.lookup(ino), bx.lookup(ino)
		if len(po) != 1 || len(bo) != 1 || po[0].PID != bo[0].PID || po[0].Comm != bo[0].Comm || po[0].FDLimit != bo[0].FDLimit {
			t.Errorf("socket %d: proc %+v, bpf %+v", ino, po, bo)
		}
		// Descriptors may open or close between the two scans (the
		// runtime's own); the listeners above are stable.
		if d := po[0].FDs - bo[0].FDs; d > 3 || d < -3 {
			t.Errorf("socket %d: FDs proc %d, bpf %d", ino, po[0].FDs, bo[0].FDs)
		}
		n++
	}
	if n < len(held) {
		t.Fatalf("only %d sockets compared, want at least %d", n, len(held))
	}
}

func TestProcCheaper(t *testing.T) {
	for _, tc := range []struct {
		sockets, files int
		want           bool
	}{
		{sockets: 200, files: 1_000_000, want: true},   // a container on a busy host
		{sockets: 80_000, files: 80_500, want: false},  // the namespace holds the host's descriptors
		{sockets: 9_000, files: 100_000, want: true},   // under a tenth
		{sockets: 10_000, files: 100_000, want: false}, // a tenth
		{sockets: 5, files: 0, want: false},            // file-nr unreadable: the iterator
	} {
		if got := procCheaper(tc.sockets, tc.files); got != tc.want {
			t.Errorf("procCheaper(%d, %d) = %v, want %v", tc.sockets, tc.files, got, tc.want)
		}
	}
}

// TestOwnersByBPF: the choice scanOwnersAuto makes first, which the
// census also uses to pick its tcp iterator threshold.
func TestOwnersByBPF(t *testing.T) {
	for _, tc := range []struct {
		name           string
		opts           Options
		sockets, files int
		want           bool
	}{
		{"auto, the namespace holds the host's files", Options{}, 80_000, 80_500, true},
		{"auto, a container on a busy host", Options{}, 200, 1_000_000, false},
		{"bpf forced, a container on a busy host", Options{OwnerScan: OwnerScanBPF}, 200, 1_000_000, true},
		{"owner_scan proc", Options{OwnerScan: OwnerScanProc}, 80_000, 80_500, false},
		{"fixture /proc", Options{procRoot: "testdata"}, 80_000, 80_500, false},
	} {
		if got := tc.opts.ownersByBPF(tc.sockets, tc.files); got != tc.want {
			t.Errorf("%s: ownersByBPF(%d, %d) = %v, want %v", tc.name, tc.sockets, tc.files, got, tc.want)
		}
	}
}
