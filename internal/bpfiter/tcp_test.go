package bpfiter

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// tcpRecord encodes a census record as the program writes it.
func tcpRecord(s TCPSocket) []byte {
	b := make([]byte, tcpHeaderSize, tcpRecord6)
	b[0], b[1] = s.Family, s.State
	binary.NativeEndian.PutUint16(b[2:], s.SPort)
	binary.BigEndian.PutUint16(b[4:], s.DPort)
	binary.NativeEndian.PutUint32(b[8:], s.Inode)
	if s.Family == unix.AF_INET {
		return append(append(b, s.Src[:4]...), s.Dst[:4]...)
	}
	return append(append(b, s.Src[:]...), s.Dst[:]...)
}

func TestReadTCP(t *testing.T) {
	want := []TCPSocket{
		{Family: unix.AF_INET, State: 1, SPort: 40000, DPort: 80, Inode: 12345,
			Src: [16]byte{127, 0, 0, 1}, Dst: [16]byte{10, 0, 0, 2}},
		{Family: unix.AF_INET6, State: 6, SPort: 443, DPort: 51000,
			Src: [16]byte{15: 1}, Dst: [16]byte{0xfe, 0x80, 15: 9}},
		{Family: unix.AF_INET, State: 12, SPort: 22, DPort: 1024, Src: [16]byte{192, 0, 2, 1}, Dst: [16]byte{192, 0, 2, 2}},
	}
	var stream []byte
	for range 3000 { // several reads' worth, records across read boundaries
		for _, s := range want {
			stream = append(stream, tcpRecord(s)...)
		}
	}
	var got []TCPSocket
	err := ReadTCP(iotest.HalfReader(bytes.NewReader(stream)), func(s *TCPSocket) { got = append(got, *s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3000*len(want) {
		t.Fatalf("%d records, want %d", len(got), 3000*len(want))
	}
	if d := cmp.Diff(want, got[len(got)-3:]); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}

	for _, c := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"truncated", stream[:len(stream)-5], "left over"},
		{"unknown family", append(tcpRecord(want[0]), make([]byte, 20)...), "address family 0"},
	} {
		if err := ReadTCP(bytes.NewReader(c.in), func(*TCPSocket) {}); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.err)
		}
	}
}
