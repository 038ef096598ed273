package sample

import "net/netip"

// Socket is one TCP socket as a sock_diag dump (or a line of `ss -tan`)
// describes it. It is handed to a callback and not kept: the census
// aggregates sockets as they stream by.
type Socket struct {
	State  string // ss state name (StateEstab ...)
	Family string // "ipv4" or "ipv6"
	Local  netip.AddrPort
	Remote netip.AddrPort
	// RecvQ/SendQ: for LISTEN the accept queue length and its limit,
	// otherwise bytes queued (as ss prints them).
	RecvQ uint32
	SendQ uint32
	// Inode is the socket inode, 0 for sockets without a descriptor
	// (TIME-WAIT, SYN-RECV request socks, orphans).
	Inode uint64
	UID   uint32
	// V6Only is set for an IPv6 socket with IPV6_V6ONLY: ss prints an
	// IPv6 wildcard listener as "[::]:PORT" then, and as "*:PORT" when it
	// also accepts IPv4.
	V6Only bool
}
