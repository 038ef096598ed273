package bpfiter

import (
	"bytes"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
)

// TestScanOwnersSeesOwnListener runs the iterator on this kernel: the
// socket inode of a listener this process holds must come with this
// process's id and the listener's descriptor number.
func TestScanOwnersSeesOwnListener(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF, CAP_PERFMON) to load the iterator")
	}
	if err := Available(); err != nil {
		t.Fatalf("BPF iterator on this kernel (%v): the CI machine supports it; fix or explain", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	raw, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	var st syscall.Stat_t
	raw.Control(func(f uintptr) { fd = int(f); err = syscall.Fstat(fd, &st) })
	if err != nil {
		t.Fatal(err)
	}
	var got []Record
	records := 0
	err = ScanOwners(func(r Record) {
		records++
		if r.Inode == st.Ino {
			got = append(got, r)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Record{Inode: st.Ino, PID: uint32(os.Getpid()), FD: uint32(fd)}
	if len(got) != 1 || got[0] != want {
		t.Errorf("records of the listener's inode: got %+v, want [%+v] (of %d records)", got, want, records)
	}
}

func TestReadRecordsTruncated(t *testing.T) {
	rec := make([]byte, RecordSize+3)
	rec[8] = 7 // pid 7
	n := 0
	err := ReadRecords(bytes.NewReader(rec), 7, func(Record) { n++ })
	if err == nil || errors.Is(err, ErrPidNamespace) || n != 1 {
		t.Errorf("3 bytes past a record: got %v after %d records, want a leftover error after 1", err, n)
	}
}
