// Command census-floor is the least a Go program can do to count every
// TCP socket of a network namespace through sock_diag: one dump per
// address family, counting messages, nothing decoded, one number
// printed. It is not a census (no states, owners, counters or kernel
// log); it measures the floor under one, on this machine, next to
// `ss -tan | wc -l`:
//
//	census-floor [NETNS_FILE]    # prints "10001"
//
// scripts/bench-census-scale.sh times it in the same rounds as the
// census and ss (the floor/ss column): the Go runtime's start plus the
// kernel's dump, which no census that reads sockets through sock_diag
// can go under. Raw syscalls, not mdlayher/netlink, on purpose: the
// point is the minimum.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// dump sends one SOCK_DIAG_BY_FAMILY dump request for TCP sockets of
// family in every state and counts the messages of the answer.
func dump(fd int, family uint8, buf []byte) (int, error) {
	const reqLen = unix.NLMSG_HDRLEN + 56 // struct inet_diag_req_v2
	req := make([]byte, reqLen)
	binary.NativeEndian.PutUint32(req[0:], reqLen)
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	req[16], req[17] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[20:], 0xfff) // idiag_states: all
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, err
	}
	n := 0
	for {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return 0, err
		}
		for off := 0; off+unix.NLMSG_HDRLEN <= m; {
			l := int(binary.NativeEndian.Uint32(buf[off:]))
			switch binary.NativeEndian.Uint16(buf[off+4:]) {
			case unix.NLMSG_DONE:
				return n, nil
			case unix.NLMSG_ERROR:
				return 0, fmt.Errorf("sock_diag dump: netlink error")
			}
			if l < unix.NLMSG_HDRLEN {
				return 0, fmt.Errorf("sock_diag dump: message of %d bytes", l)
			}
			n++
			off += (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		}
	}
}

func run() error {
	if len(os.Args) > 2 {
		return fmt.Errorf("usage: census-floor [NETNS_FILE]")
	}
	runtime.LockOSThread() // setns is per thread
	if len(os.Args) == 2 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			return err
		}
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns %s: %w", os.Args[1], err)
		}
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return err
	}
	buf := make([]byte, 32<<10)
	total := 0
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		n, err := dump(fd, fam, buf)
		if err != nil {
			return err
		}
		total += n
	}
	fmt.Println(total)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "census-floor:", err)
		os.Exit(1)
	}
}
