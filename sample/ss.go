package sample

import (
	"errors"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Parsers of iproute2 `ss` text: the socket tables of `ss -tan`, `ss -tanp`,
// `ss -tlnp` (and -e, -i, -m variants, with or without the Netid column of
// `ss -an`), and the summary of `ss -s`.
//
// Layouts accepted (see testdata/README for the captures):
//   - iproute2 6.x: "State Recv-Q Send-Q Local Address:Port Peer Address:PortProcess"
//     (the header glues "Port" and "Process"), owners as users:((...)) in the
//     last column, -e fields (uid:, ino:, sk:, cgroup:) after the peer.
//   - iproute2 5.x: the same columns, wider spacing, early 5.x without the
//     "Process" header word; "Netid" first when several socket types are shown.
//   - addresses: "1.2.3.4:80", "[::1]:80", "[::ffff:1.2.3.4]:80", "*:22" (an
//     IPv6 wildcard that also takes IPv4), "[::]:22" (IPv6 only), a scope
//     "127.0.0.1%lo:53" / "[fe80::1]%eth0:22", "*" or "0.0.0.0:*" for an
//     unconnected peer. Ports must be numeric (capture with -n).

// SSEntry is one socket line of `ss` output: the socket and the processes
// that `ss -p` named as its owners (nil without -p).
type SSEntry struct {
	Socket Socket
	Owners []Owner
	// HasInode: the line carried "ino:" (ss -e), so Socket.Inode == 0
	// means the socket has no descriptor, not that the inode is unknown.
	HasInode bool
}

// ssStates maps the state column of ss to the Sample state names. ss prints
// request sockets (TCP_NEW_SYN_RECV) as SYN-RECV; very old versions said
// NEW-SYN-RECV.
var ssStates = map[string]string{
	"ESTAB": StateEstab, "SYN-SENT": StateSynSent, "SYN-RECV": StateSynRecv,
	"NEW-SYN-RECV": StateSynRecv, "FIN-WAIT-1": StateFinWait1, "FIN-WAIT-2": StateFinWait2,
	"TIME-WAIT": StateTimeWait, "UNCONN": StateClose, "CLOSE-WAIT": StateCloseWait,
	"LAST-ACK": StateLastAck, "LISTEN": StateListen, "CLOSING": StateClosing,
}

// ssNetids are the first-column values of `ss -a` without -t. Only "tcp"
// lines are TCP sockets; the others are skipped silently.
var ssNetids = map[string]bool{
	"tcp": true, "udp": true, "raw": true, "u_str": true, "u_dgr": true, "u_seq": true,
	"nl": true, "p_raw": true, "p_dgr": true, "v_str": true, "v_dgr": true, "v_seq": true,
	"sctp": true, "mptcp": true, "tipc": true, "xdp": true, "icmp6": true, "???": true,
	"dccp": true, "udplite": true,
}

// SSStats says what a parse of ss text found besides the sockets.
type SSStats struct {
	// Sockets is the number of TCP socket lines handed to the callback.
	Sockets int
	// HasOwners: at least one line carried users:((...)) (ss -p).
	HasOwners bool
	// HasInodes: at least one line carried ino: (ss -e).
	HasInodes bool
	// Skipped counts lines of other socket types (Netid not tcp) and
	// continuation lines of -i/-m/-e output.
	Skipped int
	// Notes lists the lines not understood.
	Notes []Missing
}

// ParseSS reads the socket table printed by `ss -tan` (or -tanp, -tlnp,
// -tane, -an ...) and calls fn for each TCP socket in order. name is the
// file name used in errors and notes. Lines it does not understand are
// listed in the returned stats; a file that is not ss output, or that ends
// in the middle of a line that does not parse, is an ErrParse naming the
// file and line. An error returned by fn stops the parse and is returned.
func ParseSS(r io.Reader, name string, fn func(SSEntry) error) (SSStats, error) {
	p := ssParser{lr: newLineReader(r, name), nt: notes{file: name}, fn: fn}
	for {
		line, err := p.lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p.st, err
		}
		if err := p.line(line); err != nil {
			return p.st, err
		}
	}
	return p.end()
}

// ssParser is the state of one ParseSS. It is a type rather than locals
// and closures so that each step is a method of one job, and so that the
// hot loop captures nothing: the parse stays at the allocations of the
// line reader and the owners.
type ssParser struct {
	lr *lineReader
	nt notes
	st SSStats
	fn func(SSEntry) error

	// header: a header line was seen; prevSocket: the last line was a
	// socket line (of any type), so an indented line continues it.
	header, prevSocket bool
	// firstBad is the first line not understood, for the error that
	// says the file is not ss output at all.
	firstBad int
	// A socket line is handed on when the next line shows it is
	// complete: a capture pasted from a terminal or web console that
	// broke long lines has users:((...)) and the -e fields on an
	// indented line. Held by value: a pointer to each line's entry
	// would cost an allocation per socket.
	pending    SSEntry
	hasPending bool
}

// line takes one line of the table.
func (p *ssParser) line(line string) error {
	if strings.TrimSpace(line) == "" || p.continuation(line) {
		return nil
	}
	// Any other line ends the socket line before it.
	if err := p.flush(); err != nil {
		return err
	}
	if p.lr.cut {
		return p.lr.truncated("no newline after the last line")
	}
	if first := firstField(line); first == "State" || first == "Netid" {
		p.header, p.prevSocket = true, false
		return nil
	}
	return p.socket(line)
}

// continuation takes an indented line that belongs to the socket line
// above: the -i, -m, --tos lines, and owner or -e columns that a terminal
// wrapped. It says whether the line was one.
func (p *ssParser) continuation(line string) bool {
	if (line[0] != ' ' && line[0] != '\t') || !(p.prevSocket || p.header) {
		return false
	}
	if p.hasPending && (strings.Contains(line, "users:((") || strings.Contains(line, "ino:")) {
		if why := parseSSExtras(strings.TrimSpace(line), &p.pending); why != "" {
			p.nt.add(p.lr.n, why, line)
		}
	}
	p.st.Skipped++
	return true
}

// socket takes a line that should be a socket line.
func (p *ssParser) socket(line string) error {
	e, skip, why := parseSSLine(line)
	switch {
	case skip:
		p.st.Skipped++
		p.prevSocket = true
	case why != "":
		return p.bad(why, line)
	default:
		p.prevSocket = true
		p.pending, p.hasPending = e, true
	}
	return nil
}

// bad notes a line not understood. Not one socket line in the first 20
// and no header: this is not ss output, and reading on would only list
// every line of some other file as not understood.
func (p *ssParser) bad(why, line string) error {
	if p.firstBad == 0 {
		p.firstBad = p.lr.n
	}
	p.nt.add(p.lr.n, why, line)
	p.prevSocket = false
	if !p.header && p.st.Sockets == 0 && p.lr.n >= 20 {
		return p.lr.errf(p.firstBad, "not ss socket output (no header, no socket line): %s", why)
	}
	return nil
}

// flush hands the pending socket line to the callback.
func (p *ssParser) flush() error {
	if !p.hasPending {
		return nil
	}
	e := p.pending
	p.pending, p.hasPending = SSEntry{}, false
	p.st.Sockets++
	p.st.HasOwners = p.st.HasOwners || e.Owners != nil
	p.st.HasInodes = p.st.HasInodes || e.HasInode
	return p.fn(e)
}

// end hands on the last socket line and says whether the text was ss
// output at all.
func (p *ssParser) end() (SSStats, error) {
	if err := p.flush(); err != nil {
		return p.st, err
	}
	if !p.header && p.st.Sockets == 0 {
		if p.firstBad == 0 {
			return p.st, p.lr.errf(1, "empty: not ss socket output (ss prints a header line unless -H)")
		}
		return p.st, p.lr.errf(p.firstBad, "not ss socket output (no header, no socket line)")
	}
	p.st.Notes = p.nt.list()
	return p.st, nil
}

// parseSSLine parses one socket line. skip is set for a line of another
// socket type; why says what is wrong with a line that does not parse.
func parseSSLine(line string) (e SSEntry, skip bool, why string) {
	var f [6]string
	n, rest := splitFields(line, &f)
	if ssNetids[f[0]] {
		if f[0] != "tcp" {
			return e, true, ""
		}
		n, _ = splitFields(rest, &f)
	}
	if n < 5 {
		return e, false, "want State Recv-Q Send-Q Local Peer"
	}
	state, ok := ssStates[f[0]]
	if !ok {
		return e, false, "unknown state " + strconv.Quote(f[0])
	}
	rq, err1 := strconv.ParseUint(f[1], 10, 32)
	sq, err2 := strconv.ParseUint(f[2], 10, 32)
	if err1 != nil || err2 != nil {
		return e, false, "Recv-Q/Send-Q not numbers"
	}
	local, fam, lwhy := parseSSAddr(f[3])
	if lwhy != "" {
		return e, false, "local address: " + lwhy
	}
	peer, _, pwhy := parseSSAddr(f[4])
	if pwhy != "" {
		return e, false, "peer address: " + pwhy
	}
	e.Socket = Socket{State: state, Family: fam, Local: local, Remote: peer, RecvQ: uint32(rq), SendQ: uint32(sq)}
	if fam == "ipv6" && local.Addr().IsUnspecified() && f[3][0] == '[' {
		// "[::]:22" is printed only for IPV6_V6ONLY sockets; a
		// dual-stack wildcard is "*:22".
		e.Socket.V6Only = true
	}
	if n == 6 {
		if w := parseSSExtras(f[5], &e); w != "" {
			return e, false, w
		}
	}
	return e, false, ""
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// firstField returns the first whitespace-separated field of s.
func firstField(s string) string {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	return s[i:j]
}

// splitFields splits s at whitespace into at most len(f) fields, the last
// holding the rest of the line (trimmed), without allocating. It returns
// the number of fields and the text after the first field.
func splitFields(s string, f *[6]string) (n int, afterFirst string) {
	i := 0
	for n < len(f) {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			break
		}
		if n == len(f)-1 {
			j := len(s)
			for j > i && isSpace(s[j-1]) {
				j--
			}
			f[n] = s[i:j]
			n++
			break
		}
		j := i
		for j < len(s) && !isSpace(s[j]) {
			j++
		}
		f[n] = s[i:j]
		if n == 0 {
			afterFirst = s[j:]
		}
		n++
		i = j
	}
	return n, afterFirst
}

// parseSSAddr parses one address column of ss -n output. The family is
// "ipv4" or "ipv6" ("*" is the IPv6 wildcard of a dual-stack socket in
// iproute2 >= 4.x; an IPv4-mapped address belongs to an IPv6 socket).
func parseSSAddr(s string) (ap netip.AddrPort, family, why string) {
	if s == "*" {
		return netip.AddrPort{}, "ipv6", ""
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return ap, "", "no port in " + strconv.Quote(s)
	}
	host, port := s[:i], s[i+1:]
	var p uint64
	if port != "*" {
		var err error
		p, err = strconv.ParseUint(port, 10, 16)
		if err != nil {
			return ap, "", "port " + strconv.Quote(port) + " is not a number (capture with ss -n)"
		}
	}
	// A scope or bound device: "127.0.0.1%lo", "[fe80::1]%eth0".
	if j := strings.IndexByte(host, '%'); j >= 0 && (host[0] != '[' || strings.IndexByte(host, ']') < j) {
		host = host[:j]
	}
	switch {
	case host == "*":
		return netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(p)), "ipv6", ""
	case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() {
			return ap, "", "bad IPv6 address " + strconv.Quote(host)
		}
		return netip.AddrPortFrom(a.WithZone(""), uint16(p)), "ipv6", ""
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return ap, "", "bad address " + strconv.Quote(host) + " (capture with ss -n)"
	}
	if a.Is4() {
		return netip.AddrPortFrom(a, uint16(p)), "ipv4", ""
	}
	// iproute2 before 4.x printed IPv6 without brackets (":::22").
	return netip.AddrPortFrom(a.WithZone(""), uint16(p)), "ipv6", ""
}

// parseSSExtras reads what follows the peer column: the owners of -p
// (users:(("nginx",pid=1,fd=6),...)), and uid:/ino: of -e. Timer, sk:,
// cgroup:, v6only: and the direction arrows are skipped.
func parseSSExtras(rest string, e *SSEntry) string {
	if i := strings.Index(rest, "users:(("); i >= 0 {
		owners, end, why := parseSSUsers(rest[i+len("users:("):])
		if why != "" {
			return why
		}
		e.Owners = owners
		rest = rest[:i] + " " + rest[i+len("users:(")+end:]
	}
	for rest != "" {
		var tok string
		tok = firstField(rest)
		if tok == "" {
			break
		}
		rest = rest[strings.Index(rest, tok)+len(tok):]
		k, v, ok := strings.Cut(tok, ":")
		if !ok {
			continue
		}
		switch k {
		case "ino":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return "ino: " + strconv.Quote(v) + " is not a number"
			}
			e.Socket.Inode = n
			e.HasInode = true
		case "uid":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return "uid: " + strconv.Quote(v) + " is not a number"
			}
			e.Socket.UID = uint32(n)
		case "v6only":
			e.Socket.V6Only = v == "1"
		}
	}
	return ""
}

// parseSSUsers parses `("comm",pid=N,fd=M),("comm",pid=N,fd=M))` (the text
// after "users:(") and returns the owners, one per process, and the offset
// just after the closing parenthesis. A command name may contain anything,
// including spaces, commas and quotes; ss does not escape it, so the name
// ends at the first `",pid=` after its opening quote.
func parseSSUsers(s string) (owners []Owner, end int, why string) {
	i := 0
	for {
		if i >= len(s) {
			return nil, 0, "users:(( not closed"
		}
		if s[i] == ')' {
			if owners == nil {
				owners = []Owner{}
			}
			return owners, i + 1, ""
		}
		if s[i] == ',' {
			i++
			continue
		}
		if !strings.HasPrefix(s[i:], "(\"") {
			return nil, 0, "users:(( entry does not start with (\""
		}
		i += 2
		j := strings.Index(s[i:], "\",pid=")
		if j < 0 {
			return nil, 0, "users:(( entry without pid="
		}
		comm := s[i : i+j]
		i += j + len("\",pid=")
		k := i
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		pid, err := strconv.Atoi(s[i:k])
		if err != nil || pid <= 0 {
			return nil, 0, "users:(( pid is not a number"
		}
		i = k
		// ",fd=N" and, on some versions, more key=value pairs.
		close := strings.IndexByte(s[i:], ')')
		if close < 0 {
			return nil, 0, "users:(( entry not closed"
		}
		i += close + 1
		if !slices.ContainsFunc(owners, func(o Owner) bool { return o.PID == pid }) {
			owners = append(owners, Owner{PID: pid, Comm: comm})
		}
	}
}

// SSSummary is what `ss -s` says: the socket totals of /proc/net/sockstat
// and /proc/net/snmp as iproute2 prints them.
type SSSummary struct {
	// Sockstat holds what ss -s carries of sockstat: sockets used, TCP
	// alloc, orphaned, timewait, and TCP in use per family (the IP and
	// IPv6 columns of the TCP row). Memory is not printed by ss -s.
	Sockstat Sockstat
	// Estab is the "estab" count (TcpCurrEstab of /proc/net/snmp).
	Estab int
}

// ParseSSSummary reads `ss -s` output:
//
//	Total: 41
//	TCP:   49 (estab 23, closed 14, orphaned 0, timewait 13)
//	Transport Total     IP        IPv6
//	TCP	  35        28        7
//
// "TCP: N" is alloc + timewait; iproute2 before 5.x printed "synrecv S,
// timewait 13/0" and N = alloc + synrecv + timewait.
func ParseSSSummary(r io.Reader, name string) (SSSummary, error) {
	lr := newLineReader(r, name)
	var out SSSummary
	seenTotal, seenTCP := false, false
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lr.cut {
			return out, lr.truncated("no newline after the last line")
		}
		why := ""
		switch {
		case f[0] == "Total:":
			why, seenTotal = out.parseTotal(f), true
		case f[0] == "TCP:":
			why, seenTCP = out.parseTCP(f), true
		case f[0] == "TCP" && len(f) == 4:
			why = out.parseTransport(f)
		}
		if why != "" {
			return out, lr.errf(lr.n, "%s: %q", why, clip(line, 80))
		}
	}
	if !seenTotal || !seenTCP {
		return out, lr.errf(max(lr.n, 1), "not ss -s output (no \"Total:\" and \"TCP:\" lines)")
	}
	return out, nil
}

// The parsers of the lines of ss -s take the line's fields and say what is
// wrong ("" when nothing is); they change out only when the line is good.

// parseTotal reads "Total: 41", the sockets used of sockstat.
func (out *SSSummary) parseTotal(f []string) string {
	if len(f) < 2 {
		return "Total: without a number"
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return "Total: not a number"
	}
	out.Sockstat.SocketsUsed = n
	return ""
}

// parseTCP reads "TCP:   49 (estab 23, closed 14, orphaned 0, timewait 13)",
// or "timewait 13/0" with "synrecv S" before iproute2 5.x.
func (out *SSSummary) parseTCP(f []string) string {
	rest := strings.NewReplacer("(", " ", ")", " ", ",", " ").Replace(strings.Join(f[1:], " "))
	g := strings.Fields(rest)
	if len(g) < 9 {
		return "TCP: line without estab/closed/orphaned/timewait"
	}
	total, err := strconv.Atoi(g[0])
	if err != nil {
		return "TCP: total not a number"
	}
	kv := map[string]string{}
	for i := 1; i+1 < len(g); i += 2 {
		kv[g[i]] = g[i+1]
	}
	tw, twOld, _ := strings.Cut(kv["timewait"], "/")
	kv["timewait"] = tw
	var n [3]int // estab, orphaned, timewait
	for i, k := range [...]string{"estab", "orphaned", "timewait"} {
		if n[i], err = strconv.Atoi(kv[k]); err != nil {
			return "TCP: " + k + " missing or not a number"
		}
	}
	out.Estab, out.Sockstat.TCPOrphan, out.Sockstat.TCPTimeWait = n[0], n[1], n[2]
	if twOld != "" {
		// iproute2 before 5.x: N = alloc + synrecv (from slabinfo, 0
		// when unreadable) + timewait (misc/ss.c print_summary).
		syn, _ := strconv.Atoi(kv["synrecv"])
		out.Sockstat.TCPAlloc = max(total-syn-n[2], 0)
	} else {
		out.Sockstat.TCPAlloc = total - n[2]
	}
	return ""
}

// parseTransport reads the TCP row of the transport table,
// "TCP	  35        28        7": total, then in use per family.
func (out *SSSummary) parseTransport(f []string) string {
	ip, err1 := strconv.Atoi(f[2])
	ip6, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return "TCP transport row: not numbers"
	}
	out.Sockstat.TCPInUse = ip
	out.Sockstat.TCP6InUse = ip6
	return ""
}
