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
	// A line of an application's log of a call failing with EMFILE (24)
	// or ENFILE (23), as programs print it: the errno's name; nginx's
	// "(24: Too many open files)" (musl: "(24: No file descriptors
	// available)"); Python's "[Errno 24]"; or strerror's words right
	// after a failed call or a Java exception.
	fdErrRE = lazyRE(`\b(EMFILE|ENFILE)\b|\((2[34]): [A-Z][a-z]|\[Errno (2[34])\]|(?:\baccept4?(?:\(\))?:? |\bsocket(?:\(\)[^:]*)?:? |Exception: )(?i:too many open files|no file descriptors available)`)
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
	// Java names the call in the exception, not the line: a connect()
	// that found no port throws NoRouteToHostException with the
	// kernel's words (its stack, on the next lines, says socketConnect),
	// and some JDKs BindException "... (connect failed)".
	java := strings.Contains(low, "noroutetohostexception")
	rest := strings.ReplaceAll(low, "bindexception", "")
	if !java && !strings.Contains(low, "connect") || strings.Contains(rest, "bind") || strings.Contains(rest, "listen") {
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
	b := &pasteBlock{shape: shapeAppLog, first: n}
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
// with EMFILE or ENFILE. "Too many open files" is also what people write
// about the error ("accept was returning too many open files"), so the
// line must carry the error as programs print it: the errno's name
// (Node's "EMFILE:"), nginx's "(24: ", Python's "[Errno 24]", a failed
// call ("accept4: ", "accept4() ", Go's "socket: ") or a Java exception.
func fdErrorLine(t string) (FDError, bool) {
	m := fdErrRE().FindStringSubmatch(t)
	if m == nil {
		return FDError{}, false
	}
	low := strings.ToLower(t)
	errno := "EMFILE"
	if m[1] == "ENFILE" || m[2] == "23" || m[3] == "23" || strings.Contains(low, "too many open files in system") {
		errno = "ENFILE"
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
