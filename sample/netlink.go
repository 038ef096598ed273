package sample

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/internal/netns"
)

// sock_diag / inet_diag constants (linux/sock_diag.h, linux/inet_diag.h).
const (
	sockDiagByFamily   = 20 // SOCK_DIAG_BY_FAMILY
	tcpDiagGetSock     = 18 // TCPDIAG_GETSOCK: the compat request, both families in one pass
	inetDiagReqLen     = 60 // struct inet_diag_req (compat)
	inetDiagReqV2Len   = 56 // struct inet_diag_req_v2
	inetDiagMsgLen     = 72 // struct inet_diag_msg
	inetDiagSKV6Only   = 11 // INET_DIAG_SKV6ONLY, always sent for AF_INET6
	tcpNewSynRecv      = 12 // TCP_NEW_SYN_RECV: request socks, shown by ss as SYN-RECV
	diagRecvBufferSize = 32 << 10
)

// diagConn is the part of *netlink.Conn the census uses.
type diagConn interface {
	Send(m netlink.Message) (netlink.Message, error)
	ReceiveIter() iter.Seq2[netlink.Message, error]
	SetDeadline(t time.Time) error
	Close() error
}

var _ diagConn = (*netlink.Conn)(nil)

// stateMask turns ss state names into the kernel-side filter of
// inet_diag_req_v2.idiag_states (bit N = TCP state N). No names: every
// state. SYN-RECV asks for TCP_NEW_SYN_RECV too, as ss does, since request
// sockets are what a listener's half-open connections are.
func stateMask(states []string) (uint32, error) {
	if len(states) == 0 {
		return 1<<(tcpNewSynRecv+1) - 2, nil // bits 1..12
	}
	var m uint32
	for _, s := range states {
		i := stateIndex(s)
		if i == 0 {
			return 0, fmt.Errorf("unknown TCP state %q (want one of %v)", s, States)
		}
		m |= 1 << i
		if i == 3 {
			m |= 1 << tcpNewSynRecv
		}
	}
	return m, nil
}

// diagRequest encodes an inet_diag_req_v2 dumping TCP sockets of family in
// the states of mask.
func diagRequest(family uint8, mask uint32) netlink.Message {
	b := make([]byte, inetDiagReqV2Len)
	b[0] = family
	b[1] = unix.IPPROTO_TCP
	// b[2] idiag_ext = 0: no extensions, the queues are in the header.
	binary.NativeEndian.PutUint32(b[4:8], mask)
	return netlink.Message{
		Header: netlink.Header{
			Type:  sockDiagByFamily,
			Flags: netlink.Request | netlink.Dump,
		},
		Data: b,
	}
}

// compatRequest encodes the compat inet_diag_req (TCPDIAG_GETSOCK): the
// kernel sets the family to AF_UNSPEC for it and dumps IPv4 and IPv6 TCP
// sockets in one walk of its socket hash instead of one walk per family.
func compatRequest(mask uint32) netlink.Message {
	b := make([]byte, inetDiagReqLen)
	// b[0] idiag_family is ignored; b[3] idiag_ext = 0; b[4:52] the
	// socket id (wildcard); b[52:56] idiag_states; b[56:60] idiag_dbs.
	binary.NativeEndian.PutUint32(b[52:56], mask)
	return netlink.Message{
		Header: netlink.Header{Type: tcpDiagGetSock, Flags: netlink.Request | netlink.Dump},
		Data:   b,
	}
}

// kernelState maps a TCP state as sock_diag and the BPF tcp iterator
// report it to its number in States (1..11): a request socket
// (TCP_NEW_SYN_RECV) is SYN-RECV, as ss shows it. ok is false for a
// number outside them.
func kernelState(raw uint8) (st int, ok bool) {
	switch st = int(raw); {
	case st == tcpNewSynRecv:
		return 3, true
	case st < 1 || st > 11:
		return 0, false
	}
	return st, true
}

// decodeDiagMsg decodes one inet_diag_msg (and its attributes) by offset,
// checking lengths first.
func decodeDiagMsg(b []byte) (Socket, error) {
	var sk Socket
	if len(b) < inetDiagMsgLen {
		return sk, fmt.Errorf("%w: inet_diag_msg of %d bytes, want at least %d", ErrParse, len(b), inetDiagMsgLen)
	}
	st, ok := kernelState(b[1])
	if !ok {
		return sk, fmt.Errorf("%w: inet_diag_msg with TCP state %d", ErrParse, b[1])
	}
	sk.State = States[st-1]
	sport := binary.BigEndian.Uint16(b[4:6])
	dport := binary.BigEndian.Uint16(b[6:8])
	var src, dst netip.Addr
	switch b[0] {
	case unix.AF_INET:
		sk.Family = "ipv4"
		src = netip.AddrFrom4([4]byte(b[8:12]))
		dst = netip.AddrFrom4([4]byte(b[24:28]))
	case unix.AF_INET6:
		sk.Family = "ipv6"
		src = netip.AddrFrom16([16]byte(b[8:24]))
		dst = netip.AddrFrom16([16]byte(b[24:40]))
	default:
		return sk, fmt.Errorf("%w: inet_diag_msg of address family %d", ErrParse, b[0])
	}
	sk.Local = netip.AddrPortFrom(src, sport)
	sk.Remote = netip.AddrPortFrom(dst, dport)
	sk.RecvQ = binary.NativeEndian.Uint32(b[56:60])
	sk.SendQ = binary.NativeEndian.Uint32(b[60:64])
	sk.UID = binary.NativeEndian.Uint32(b[64:68])
	sk.Inode = uint64(binary.NativeEndian.Uint32(b[68:72]))
	// Attributes matter only to print an IPv6 wildcard as ss does.
	if b[0] == unix.AF_INET6 && src.IsUnspecified() && len(b) > inetDiagMsgLen {
		ad, err := netlink.NewAttributeDecoder(b[inetDiagMsgLen:])
		if err != nil {
			return sk, fmt.Errorf("%w: inet_diag attributes: %w", ErrParse, err)
		}
		for ad.Next() {
			if ad.Type() == inetDiagSKV6Only {
				sk.V6Only = ad.Uint8() != 0
			}
		}
		if err := ad.Err(); err != nil {
			return sk, fmt.Errorf("%w: inet_diag attributes: %w", ErrParse, err)
		}
	}
	return sk, nil
}

// dialDiag opens a sock_diag netlink socket in the calling thread's network
// namespace; it stays in that namespace for its whole life.
func dialDiag() (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, nil)
	if err != nil {
		return nil, fmt.Errorf("sock_diag netlink socket: %w", netlinkErr(err))
	}
	return c, nil
}

// netlinkErr maps "not on this kernel" to ErrNoData.
func netlinkErr(err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
		return fmt.Errorf("%w: %w", ErrNoData, err)
	}
	return err
}

// dumpFamily streams one family's dump through fn without keeping the
// messages. On a real socket it reads each datagram into one reused buffer
// and decodes it in place (no allocation per datagram or per message); on
// a socket without a file descriptor (nltest) it uses Conn.ReceiveIter.
func dumpFamily(c diagConn, family uint8, mask uint32, fn func(Socket) error) error {
	return dumpRequest(c, diagRequest(family, mask), fn)
}

// dumpRequest sends a dump request and streams the reply through fn.
func dumpRequest(c diagConn, req netlink.Message, fn func(Socket) error) error {
	if _, err := c.Send(req); err != nil {
		return fmt.Errorf("sock_diag request: %w", netlinkErr(err))
	}
	if sc, ok := c.(syscallConner); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			return rawReceive(rc, fn)
		}
	}
	var ferr error
	for m, err := range c.ReceiveIter() {
		if err != nil {
			return fmt.Errorf("sock_diag dump: %w", netlinkErr(err))
		}
		if ferr != nil || (m.Header.Type != sockDiagByFamily && m.Header.Type != tcpDiagGetSock) {
			continue // drain the rest of the dump after an error
		}
		sk, err := decodeDiagMsg(m.Data)
		if err != nil {
			ferr = err
			continue
		}
		ferr = fn(sk)
	}
	return ferr
}

type syscallConner interface {
	SyscallConn() (syscall.RawConn, error)
}

// recvBufs holds dump receive buffers: the kernel fills at most 32 KiB per
// datagram when the reader offers that much.
var recvBufs = sync.Pool{New: func() any { b := make([]byte, diagRecvBufferSize); return &b }}

// rawReceive reads a dump's datagrams with recvfrom(2) through the runtime
// poller (deadlines apply) and decodes them by offset.
func rawReceive(rc syscall.RawConn, fn func(Socket) error) error {
	bp := recvBufs.Get().(*[]byte)
	defer recvBufs.Put(bp)
	buf := *bp
	var ferr error
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("sock_diag dump: %w", netlinkErr(err))
		}
		done, err := parseDatagram(buf[:n], func(b []byte) {
			if ferr != nil {
				return // drain the rest of the dump after an error
			}
			sk, err := decodeDiagMsg(b)
			if err != nil {
				ferr = err
				return
			}
			ferr = fn(sk)
		})
		if err != nil {
			return err
		}
		if done {
			return ferr
		}
	}
}

// parseDatagram walks the netlink messages of one datagram, calling msg
// with the payload of each sock_diag message. It reports the end of the
// dump (NLMSG_DONE) and turns NLMSG_ERROR or an error in NLMSG_DONE into
// an error.
func parseDatagram(b []byte, msg func([]byte)) (done bool, err error) {
	const hdr = 16
	for len(b) >= hdr {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if l < hdr || l > len(b) {
			return false, fmt.Errorf("%w: netlink message of length %d in a datagram of %d bytes", ErrParse, l, len(b))
		}
		payload := b[hdr:l]
		switch typ {
		case unix.NLMSG_DONE, unix.NLMSG_ERROR:
			if len(payload) >= 4 {
				if errno := int32(binary.NativeEndian.Uint32(payload[:4])); errno < 0 {
					return true, fmt.Errorf("sock_diag dump: %w", netlinkErr(unix.Errno(-errno)))
				}
			}
			return true, nil
		case sockDiagByFamily, tcpDiagGetSock:
			msg(payload)
		}
		b = b[min(len(b), (l+3)&^3):]
	}
	return false, nil
}

// dumpBoth dumps the IPv4 and IPv6 TCP sockets in the states of mask: with
// one compat request (one walk of the kernel's hash, ~30% less CPU than
// two), or, if the kernel refuses it, one request per family. A kernel
// without IPv6 is not an error.
func dumpBoth(ctx context.Context, c diagConn, mask uint32, fn func(Socket) error) error {
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	n := 0
	err := dumpRequest(c, compatRequest(mask), func(sk Socket) error { n++; return fn(sk) })
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil || n > 0 {
		return err
	}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		err := dumpFamily(c, fam, mask, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fam == unix.AF_INET6 && errors.Is(err, ErrNoData) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Dump streams every TCP socket (IPv4 and IPv6) of the network namespace at
// path netnsPath ("" = the caller's) in the given ss states (none: all)
// through fn, using the kernel-side state filter so that a dump of a few
// states does not pay for the rest. fn's Socket is not retained by Dump; an
// error from fn stops the dump and is returned.
func Dump(ctx context.Context, netnsPath string, states []string, fn func(Socket) error) error {
	mask, err := stateMask(states)
	if err != nil {
		return err
	}
	var c *netlink.Conn
	if err := netns.Do(netnsPath, func() (err error) { c, err = dialDiag(); return err }); err != nil {
		return err
	}
	defer c.Close()
	return dumpBoth(ctx, c, mask, fn)
}
