package sample

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// errorReply is nltest.Error without the request's flags: NLM_F_DUMP
// shares its bit with NLM_F_ACK_TLVS, which a real kernel sets only with
// extended acks.
func errorReply(errno unix.Errno, req []netlink.Message) ([]netlink.Message, error) {
	msgs, err := nltest.Error(int(errno), req)
	for i := range msgs {
		msgs[i].Header.Flags = 0
	}
	return msgs, err
}

// diagMsg encodes an inet_diag_msg as the kernel lays it out.
func diagMsg(state uint8, local, remote string, rq, wq, uid, inode uint32, attrs []netlink.Attribute) netlink.Message {
	l, r := netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote)
	b := make([]byte, inetDiagMsgLen)
	b[0] = unix.AF_INET
	if l.Addr().Is6() {
		b[0] = unix.AF_INET6
	}
	b[1] = state
	binary.BigEndian.PutUint16(b[4:], l.Port())
	binary.BigEndian.PutUint16(b[6:], r.Port())
	if l.Addr().Is4() {
		a, c := l.Addr().As4(), r.Addr().As4()
		copy(b[8:], a[:])
		copy(b[24:], c[:])
	} else {
		a, c := l.Addr().As16(), r.Addr().As16()
		copy(b[8:], a[:])
		copy(b[24:], c[:])
	}
	binary.NativeEndian.PutUint32(b[56:], rq)
	binary.NativeEndian.PutUint32(b[60:], wq)
	binary.NativeEndian.PutUint32(b[64:], uid)
	binary.NativeEndian.PutUint32(b[68:], inode)
	if attrs != nil {
		b = append(b, nltest.MustMarshalAttributes(attrs)...)
	}
	return netlink.Message{Header: netlink.Header{Type: sockDiagByFamily}, Data: b}
}

func TestStateMask(t *testing.T) {
	for _, tc := range []struct {
		states []string
		want   uint32
		bad    bool
	}{
		{nil, 0x1ffe, false},
		{[]string{StateListen}, 1 << 10, false},
		{[]string{StateSynRecv}, 1<<3 | 1<<12, false},
		{[]string{StateEstab, StateTimeWait, StateCloseWait}, 1<<1 | 1<<6 | 1<<8, false},
		{[]string{"ESTABLISHED"}, 0, true},
	} {
		got, err := stateMask(tc.states)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("stateMask(%v) = %#x, %v; want %#x (error %v)", tc.states, got, err, tc.want, tc.bad)
		}
	}
}

func TestDumpNltest(t *testing.T) {
	v4 := []netlink.Message{
		diagMsg(10, "0.0.0.0:80", "0.0.0.0:0", 5, 511, 0, 1000, nil),
		diagMsg(1, "127.0.0.1:80", "127.0.0.1:40000", 0, 17, 1000, 1001, nil),
		diagMsg(tcpNewSynRecv, "127.0.0.1:80", "127.0.0.1:40001", 0, 0, 0, 0, nil),
		diagMsg(6, "127.0.0.1:40002", "127.0.0.1:80", 0, 0, 0, 0, nil),
	}
	v6 := []netlink.Message{
		diagMsg(10, "[::]:443", "[::]:0", 0, 4096, 0, 2000, []netlink.Attribute{{Type: 5, Data: []byte{0}}, {Type: inetDiagSKV6Only, Data: []byte{1}}}),
		diagMsg(10, "[::]:22", "[::]:0", 0, 128, 0, 2001, []netlink.Attribute{{Type: inetDiagSKV6Only, Data: []byte{0}}}),
		diagMsg(8, "[::1]:22", "[::1]:50000", 3, 0, 0, 2002, nil),
	}
	reply := func(typ netlink.HeaderType, msgs ...[]netlink.Message) ([]netlink.Message, error) {
		var out []netlink.Message
		for _, ms := range msgs {
			for _, m := range ms {
				m.Header.Type = typ
				out = append(out, m)
			}
		}
		return nltest.Multipart(append(out, netlink.Message{Header: netlink.Header{Type: netlink.Done}}))
	}
	ap := netip.MustParseAddrPort
	want := []Socket{
		{State: StateListen, Family: "ipv4", Local: ap("0.0.0.0:80"), Remote: ap("0.0.0.0:0"), RecvQ: 5, SendQ: 511, Inode: 1000},
		{State: StateEstab, Family: "ipv4", Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:40000"), SendQ: 17, UID: 1000, Inode: 1001},
		{State: StateSynRecv, Family: "ipv4", Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:40001")},
		{State: StateTimeWait, Family: "ipv4", Local: ap("127.0.0.1:40002"), Remote: ap("127.0.0.1:80")},
		{State: StateListen, Family: "ipv6", Local: ap("[::]:443"), Remote: ap("[::]:0"), SendQ: 4096, Inode: 2000, V6Only: true},
		{State: StateListen, Family: "ipv6", Local: ap("[::]:22"), Remote: ap("[::]:0"), SendQ: 128, Inode: 2001},
		{State: StateCloseWait, Family: "ipv6", Local: ap("[::1]:22"), Remote: ap("[::1]:50000"), RecvQ: 3, Inode: 2002},
	}
	mask, _ := stateMask(nil)
	for _, tc := range []struct {
		name     string
		compatOK bool
	}{
		{"compat request, both families in one dump", true},
		{"compat refused, one request per family", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reqs []netlink.Message
			conn := nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
				reqs = append(reqs, req...)
				switch {
				case req[0].Header.Type == tcpDiagGetSock && tc.compatOK:
					return reply(tcpDiagGetSock, v4, v6)
				case req[0].Header.Type == tcpDiagGetSock:
					return errorReply(unix.EINVAL, req)
				case req[0].Data[0] == unix.AF_INET:
					return reply(sockDiagByFamily, v4)
				default:
					return reply(sockDiagByFamily, v6)
				}
			})
			defer conn.Close()
			var got []Socket
			if err := dumpBoth(context.Background(), conn, mask, func(sk Socket) error { got = append(got, sk); return nil }); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); d != "" {
				t.Errorf("sockets (-want +got):\n%s", d)
			}
			// The compat inet_diag_req first: no family, the state mask
			// at its offset, NLM_F_REQUEST|NLM_F_DUMP.
			r := reqs[0]
			if r.Header.Type != tcpDiagGetSock || r.Header.Flags != netlink.Request|netlink.Dump ||
				len(r.Data) != inetDiagReqLen || r.Data[0] != 0 || binary.NativeEndian.Uint32(r.Data[52:]) != mask {
				t.Errorf("compat request %+v body % x", r.Header, r.Data)
			}
			if tc.compatOK {
				if len(reqs) != 1 {
					t.Errorf("%d requests, want 1", len(reqs))
				}
				return
			}
			// Then one inet_diag_req_v2 per family, TCP, the mask.
			if len(reqs) != 3 {
				t.Fatalf("%d requests, want 3", len(reqs))
			}
			for i, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
				r := reqs[i+1]
				if r.Header.Type != sockDiagByFamily || r.Header.Flags != netlink.Request|netlink.Dump {
					t.Errorf("request %d header %+v", i, r.Header)
				}
				if len(r.Data) != inetDiagReqV2Len || r.Data[0] != fam || r.Data[1] != unix.IPPROTO_TCP || r.Data[2] != 0 ||
					binary.NativeEndian.Uint32(r.Data[4:]) != mask {
					t.Errorf("request %d body % x", i, r.Data)
				}
			}
		})
	}
}

func TestDumpNltestErrors(t *testing.T) {
	t.Run("no IPv6 is not an error", func(t *testing.T) {
		conn := nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
			if req[0].Header.Type == tcpDiagGetSock {
				return errorReply(unix.EINVAL, req)
			}
			if req[0].Data[0] == unix.AF_INET6 {
				return errorReply(unix.ENOENT, req)
			}
			return nltest.Multipart([]netlink.Message{diagMsg(10, "0.0.0.0:80", "0.0.0.0:0", 0, 1, 0, 1, nil), {Header: netlink.Header{Type: netlink.Done}}})
		})
		defer conn.Close()
		n := 0
		if err := dumpBoth(context.Background(), conn, 1<<10, func(Socket) error { n++; return nil }); err != nil || n != 1 {
			t.Fatalf("err = %v, %d sockets; want nil, 1", err, n)
		}
	})
	t.Run("IPv4 error is an error", func(t *testing.T) {
		conn := nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) { return errorReply(unix.EPERM, req) })
		defer conn.Close()
		err := dumpBoth(context.Background(), conn, 1<<10, func(Socket) error { return nil })
		if !errors.Is(err, unix.EPERM) {
			t.Fatalf("err = %v, want EPERM", err)
		}
	})
	t.Run("callback error stops", func(t *testing.T) {
		stop := errors.New("stop")
		conn := nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
			return nltest.Multipart([]netlink.Message{diagMsg(1, "1.2.3.4:5", "5.6.7.8:9", 0, 0, 0, 1, nil), diagMsg(1, "1.2.3.4:6", "5.6.7.8:9", 0, 0, 0, 2, nil), {Header: netlink.Header{Type: netlink.Done}}})
		})
		defer conn.Close()
		n := 0
		err := dumpBoth(context.Background(), conn, 2, func(Socket) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Fatalf("err = %v after %d sockets, want stop after 1", err, n)
		}
	})
}

func TestDecodeDiagMsg(t *testing.T) {
	good := diagMsg(1, "10.0.0.1:1", "10.0.0.2:2", 0, 0, 0, 0, nil).Data
	for _, tc := range []struct {
		name    string
		b       []byte
		wantErr string
	}{
		{"short", good[:71], "inet_diag_msg of 71 bytes"},
		{"empty", nil, "inet_diag_msg of 0 bytes"},
		{"state 0", func() []byte { b := append([]byte(nil), good...); b[1] = 0; return b }(), "TCP state 0"},
		{"state 13", func() []byte { b := append([]byte(nil), good...); b[1] = 13; return b }(), "TCP state 13"},
		{"family", func() []byte { b := append([]byte(nil), good...); b[0] = 1; return b }(), "address family 1"},
		{"bad attribute", append(diagMsg(10, "[::]:1", "[::]:0", 0, 0, 0, 0, nil).Data, 0xff, 0xff, 0, 0), "attributes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeDiagMsg(tc.b)
			if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrParse with %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzDecodeDiagMsg(f *testing.F) {
	f.Add(diagMsg(10, "[::]:443", "[::]:0", 0, 4096, 0, 2000, []netlink.Attribute{{Type: inetDiagSKV6Only, Data: []byte{1}}}).Data)
	f.Add(diagMsg(1, "127.0.0.1:80", "127.0.0.1:40000", 0, 17, 1000, 1001, nil).Data)
	f.Fuzz(func(t *testing.T, b []byte) {
		sk, err := decodeDiagMsg(b)
		if err == nil && stateIndex(sk.State) == 0 {
			t.Fatalf("decoded unknown state %q", sk.State)
		}
	})
}

func TestParseDatagram(t *testing.T) {
	msg := func(typ uint16, payload []byte) []byte {
		b := make([]byte, 16, 16+len(payload)+3)
		binary.NativeEndian.PutUint32(b[0:], uint32(16+len(payload)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		b = append(b, payload...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	errno := func(e unix.Errno) []byte {
		b := make([]byte, 4)
		binary.NativeEndian.PutUint32(b, uint32(-int32(e)))
		return b
	}
	sk := diagMsg(1, "10.0.0.1:1", "10.0.0.2:2", 0, 0, 0, 7, nil).Data
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		in       []byte
		msgs     int
		done     bool
		wantErr  string
		wantNoDt bool
	}{
		{name: "two and more to come", in: cat(msg(sockDiagByFamily, sk), msg(sockDiagByFamily, sk)), msgs: 2},
		{name: "last datagram", in: cat(msg(sockDiagByFamily, sk), msg(unix.NLMSG_DONE, []byte{0, 0, 0, 0})), msgs: 1, done: true},
		{name: "done with errno", in: msg(unix.NLMSG_DONE, errno(unix.EPERM)), done: true, wantErr: "operation not permitted"},
		{name: "error ENOENT is no data", in: msg(unix.NLMSG_ERROR, errno(unix.ENOENT)), done: true, wantErr: "no data", wantNoDt: true},
		{name: "compat replies", in: cat(msg(tcpDiagGetSock, sk), msg(tcpDiagGetSock, sk)), msgs: 2},
		{name: "other types skipped", in: cat(msg(0x99, []byte{1, 2, 3}), msg(sockDiagByFamily, sk)), msgs: 1},
		{name: "length past the end", in: msg(sockDiagByFamily, sk)[:40], wantErr: "netlink message of length"},
		{name: "length below header", in: func() []byte { b := msg(sockDiagByFamily, sk); binary.NativeEndian.PutUint32(b, 8); return b }(), wantErr: "netlink message of length 8"},
		{name: "trailing bytes ignored", in: cat(msg(sockDiagByFamily, sk), []byte{1, 2}), msgs: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			done, err := parseDatagram(tc.in, func(b []byte) {
				if len(b) != len(sk) {
					t.Errorf("payload of %d bytes, want %d", len(b), len(sk))
				}
				n++
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, ErrNoData) != tc.wantNoDt {
					t.Fatalf("err = %v, want %q (ErrNoData %v)", err, tc.wantErr, tc.wantNoDt)
				}
				return
			}
			if err != nil || n != tc.msgs || done != tc.done {
				t.Fatalf("got %d messages, done %v, err %v; want %d, %v", n, done, err, tc.msgs, tc.done)
			}
		})
	}
}

func FuzzParseDatagram(f *testing.F) {
	f.Add(diagMsg(1, "10.0.0.1:1", "10.0.0.2:2", 0, 0, 0, 7, nil).Data)
	f.Fuzz(func(t *testing.T, b []byte) {
		parseDatagram(b, func(p []byte) { decodeDiagMsg(p) })
	})
}
