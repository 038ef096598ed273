package sample

import (
	"net/netip"
	"strconv"
	"strings"
)

// Application log lines a paste holds next to its socket tables. One says
// more than any table can: "connect ... Cannot assign requested address"
// is the kernel's EADDRNOTAVAIL from connect(), so the ephemeral ports for
// that destination ran out at that moment (KERNEL-NOTES, Ephemeral ports),
// whatever a later snapshot of the table shows.

var (
	// The listener of a failed accept: Go's net/http ("accept tcp
	// [::]:8080: accept4: too many open files") and nginx ("accept4()
	// failed (24: Too many open files) while accepting new connection on
	// 0.0.0.0:443").
	fdErrListenerRE = lazyRE(`(?:accept tcp[46]? |new connection on )(\[[0-9A-Fa-f:.]+\]:\d{1,5}|[\d.*]+:\d{1,5})`)
	// An IPv4 or bracketed IPv6 address with a port: the destination
	// the line names ("at 192.168.1.207:16379:", "[tcp://10.0.0.1:6379]",
	// "connect() to [2001:db8::1]:80 failed").
	connErrDstRE = lazyRE(`(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):(\d{1,5})\b`)
)

// connectErrorLine reads one line in which an application says connect()
// failed with EADDRNOTAVAIL. The same errno comes from bind() (or listen)
// on an address the host does not have: a line that names bind or listen
// is not a port exhaustion and is not taken.
func connectErrorLine(t string) (ConnectError, bool) {
	low := strings.ToLower(t)
	if !strings.Contains(low, "assign requested address") && !strings.Contains(low, "eaddrnotavail") {
		return ConnectError{}, false
	}
	if !strings.Contains(low, "connect") || strings.Contains(low, "bind") || strings.Contains(low, "listen") {
		return ConnectError{}, false
	}
	ce := ConnectError{Line: clip(strings.TrimSpace(t), 200)}
	for _, m := range connErrDstRE().FindAllStringSubmatch(t, -1) {
		port, err := strconv.ParseUint(m[2], 10, 16)
		if err != nil || port == 0 {
			continue
		}
		a, err := netip.ParseAddr(strings.Trim(m[1], "[]"))
		if err != nil {
			continue
		}
		ce.Dst, ce.Port = a.Unmap().String(), uint16(port)
		break
	}
	return ce, true
}

// recConnectError reads consecutive application log lines of connect()
// failing with EADDRNOTAVAIL.
func (p *splitter) recConnectError(n, to int, _ *pasteCmd) (*pasteBlock, int) {
	b, ces := appLogBlock(p, n, to, connectErrorLine)
	if b == nil {
		return nil, n
	}
	b.connErrs = ces
	b.what = plural(len(ces), "line") + " of connect() failing with EADDRNOTAVAIL"
	if d := ces[0]; d.Dst != "" {
		b.what += " to " + netip.AddrPortFrom(netip.MustParseAddr(d.Dst), d.Port).String()
	}
	return b, b.last + 1
}

// appLogBlock reads, from line n, the consecutive lines read takes as one
// block of an application's log; nil when line n is not one.
func appLogBlock[T any](p *splitter, n, to int, read func(string) (T, bool)) (*pasteBlock, []T) {
	b := &pasteBlock{shape: shapeConnErr, first: n}
	var got []T
	for m := n; m <= to; m++ {
		v, ok := read(p.line(m))
		if !ok {
			break
		}
		got = append(got, v)
		b.lines++
		b.last = m
	}
	if len(got) == 0 {
		return nil, nil
	}
	return b, got
}

// fdErrorLine reads one line in which an application says a call failed
// with EMFILE or ENFILE. "Too many open files" alone is also what people
// write about the error, so the line must carry a call or an errno as
// programs log them: accept (Go, nginx), socket (Java's SocketException,
// nginx's socket()), "(24:" (nginx), "Errno 24" (Python), EMFILE (Node).
func fdErrorLine(t string) (FDError, bool) {
	low := strings.ToLower(t)
	var errno string
	// glibc's strerror says "Too many open files" for EMFILE and "Too
	// many open files in system" for ENFILE; musl's (Alpine images) "No
	// file descriptors available" and "Too many open files in system".
	switch {
	case strings.Contains(low, "too many open files in system") || strings.Contains(low, "enfile") ||
		strings.Contains(low, "(23: "):
		errno = "ENFILE"
	case strings.Contains(low, "too many open files") || strings.Contains(low, "emfile") ||
		strings.Contains(low, "no file descriptors available") || strings.Contains(low, "(24: "):
		errno = "EMFILE"
	default:
		return FDError{}, false
	}
	logged := false
	for _, s := range []string{"accept", "socket", "(24:", "(23:", "errno 24", "errno 23", "emfile", "enfile"} {
		if strings.Contains(low, s) {
			logged = true
			break
		}
	}
	if !logged {
		return FDError{}, false
	}
	fe := FDError{Errno: errno, Line: clip(strings.TrimSpace(t), 200)}
	if m := fdErrListenerRE().FindStringSubmatch(t); m != nil {
		if ap, err := netip.ParseAddrPort(strings.Replace(m[1], "*:", "0.0.0.0:", 1)); err == nil {
			fe.Listener = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
		}
	}
	return fe, true
}

// recFDError reads consecutive application log lines of calls failing
// with EMFILE or ENFILE.
func (p *splitter) recFDError(n, to int, _ *pasteCmd) (*pasteBlock, int) {
	b, fes := appLogBlock(p, n, to, fdErrorLine)
	if b == nil {
		return nil, n
	}
	b.fdErrs = fes
	errno := fes[0].Errno
	for _, fe := range fes {
		if fe.Errno != errno {
			errno = "EMFILE or ENFILE"
		}
	}
	b.what = plural(len(fes), "line") + " of calls failing with " + errno + " (too many open files)"
	if l := fes[0].Listener; l != "" {
		b.what += " on " + l
	}
	return b, b.last + 1
}
