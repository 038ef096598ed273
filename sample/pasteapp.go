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
	b := &pasteBlock{shape: shapeConnErr, first: n}
	m := n
	for ; m <= to; m++ {
		ce, ok := connectErrorLine(p.line(m))
		if !ok {
			break
		}
		b.connErrs = append(b.connErrs, ce)
		b.lines++
		b.last = m
	}
	if len(b.connErrs) == 0 {
		return nil, n
	}
	b.what = plural(len(b.connErrs), "line") + " of connect() failing with EADDRNOTAVAIL"
	if d := b.connErrs[0]; d.Dst != "" {
		b.what += " to " + netip.AddrPortFrom(netip.MustParseAddr(d.Dst), d.Port).String()
	}
	return b, b.last + 1
}
