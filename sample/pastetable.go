package sample

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Shapes of a paste that need more than a line pattern: the ss and
// netstat socket tables, netstat -s prose and kernel log lines.

const ssHeaderLine = "State Recv-Q Send-Q Local Address:Port Peer Address:Port"

// ssHeader says whether a line is an ss header: 1 with a State column, 2
// without one (a table filtered to one state: ss drops the column).
func ssHeader(line string) int {
	f := strings.Fields(line)
	if len(f) < 3 {
		return 0
	}
	switch f[0] {
	case "State":
		if f[1] == "Recv-Q" {
			return 1
		}
	case "Netid":
		if f[1] == "State" {
			return 1
		}
		if f[1] == "Recv-Q" {
			return 2
		}
	case "Recv-Q":
		if f[1] == "Send-Q" && strings.Contains(line, "Local") {
			return 2
		}
	}
	return 0
}

func isCount(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ssRowShape says whether a line looks like a socket line of ss (it may
// still fail to parse: a redacted address, a service name): "STATE N N
// ..." or, state-filtered, "N N addr:port addr:port", with an optional
// Netid first. stateless is set for the second form.
func ssRowShape(line string) (ok, stateless bool) {
	f := strings.Fields(line)
	if len(f) > 0 && ssNetids[f[0]] {
		f = f[1:]
	}
	if len(f) >= 3 && ssStates[f[0]] != "" && isCount(f[1]) && isCount(f[2]) {
		return true, false
	}
	if len(f) >= 4 && isCount(f[0]) && isCount(f[1]) && strings.Contains(f[2], ":") && strings.Contains(f[3], ":") {
		return true, true
	}
	return false, false
}

// netstatRowShape says whether a line is a row of netstat's table.
func netstatRowShape(line string) bool {
	f := strings.Fields(line)
	if len(f) < 5 || !isCount(f[1]) || !isCount(f[2]) {
		return false
	}
	switch f[0] {
	case "tcp", "tcp6", "tcp4", "udp", "udp6", "udp4", "raw", "raw6", "udpl", "udpl6":
		return true
	}
	return false
}

func netstatExtraLine(t string) bool {
	return strings.HasPrefix(t, "Active Internet connections") || strings.HasPrefix(t, "Active UNIX domain sockets") ||
		strings.HasPrefix(t, "Active Bluetooth") || strings.HasPrefix(t, "Proto RefCnt") ||
		strings.HasPrefix(t, "(Not all processes could be identified") || strings.HasPrefix(t, "will not be shown, you would have to be root") ||
		strings.HasPrefix(t, "(No info could be read for \"-p\"") || strings.HasPrefix(t, "(w/o servers)") ||
		(strings.HasPrefix(t, "unix ") && len(strings.Fields(t)) >= 5)
}

func netstatHeader(t string) bool {
	return strings.HasPrefix(t, "Proto Recv-Q Send-Q")
}

// recNetstatTable reads the table of net-tools or busybox netstat
// (-tanp, -tulnp, -ant, -tln ...), rewritten as ss lines.
func (p *splitter) recNetstatTable(n, to int, cmd *pasteCmd) (*pasteBlock, int) {
	t := strings.TrimSpace(p.line(n))
	if !netstatHeader(t) && !netstatExtraLine(t) && !netstatRowShape(t) {
		return nil, n
	}
	b := &pasteBlock{shape: shapeNetstat, first: n, noLimit: true}
	pidColumn := false
	onlyServers := false
	m := n
	for ; m <= to; m++ {
		t := strings.TrimSpace(p.line(m))
		switch {
		case t == "":
			nb := p.nextNonBlank(m, to)
			if nb == 0 {
				goto done
			}
			nt := strings.TrimSpace(p.line(nb))
			if !netstatRowShape(nt) && !netstatExtraLine(nt) && !netstatHeader(nt) {
				goto done
			}
			continue
		case netstatHeader(t):
			pidColumn = pidColumn || strings.Contains(t, "PID/Program")
			b.feed(bfSSTan, m, ssHeaderLine)
		case netstatExtraLine(t):
			onlyServers = onlyServers || strings.Contains(t, "(only servers)")
			b.ownersPart = b.ownersPart || strings.HasPrefix(t, "(Not all processes")
		case netstatRowShape(t):
			ss, tcp, why := netstatToSS(t)
			if !tcp {
				break
			}
			if why != "" {
				b.badLines++
				b.notes = append(b.notes, fmt.Sprintf("line %d not understood (%s)", m, why))
				break
			}
			// netstat without -n prints /etc/services names
			// ("0.0.0.0:ssh"), as ss does: read them as ports.
			ss = mendAddrs("", strings.Fields(ss), b)
			// Without a header ParseSS reads the rows alone.
			b.feed(bfSSTan, m, ss)
			b.countSS(ss)
		default:
			goto done
		}
		b.lines++
		b.last = m
	}
done:
	if b.lines == 0 {
		return nil, n
	}
	if cmd != nil && cmd.tool == "netstat" {
		servers, pids := b.netstatCommand(cmd)
		onlyServers, pidColumn = onlyServers || servers, pidColumn || pids
	}
	p.markCut(b)
	b.feedHeader()
	b.listenOnly = onlyServers || (b.sockets > 0 && b.sockets == b.listeners)
	if b.listenOnly {
		b.moveFeed(bfSSTan, bfSSTlnp)
	}
	if !pidColumn {
		b.notes = append(b.notes, "no PID/Program column: capture ss -tlnp instead of netstat -tuln for owners")
	}
	if b.listeners > 0 {
		b.notes = append(b.notes, "netstat's Send-Q on a listener is 0 (/proc/net/tcp has no accept-queue limit): capture ss -tlnp for the limits")
	}
	b.notes = append(b.notes, "netstat gives no fd limits: capture ss -tlnp and the processes loop")
	return b, b.last + 1
}

// netstatCommand reads what the netstat command above a table says of
// it: a table of listeners only (-l without -a), a PID column (-p), and a
// pipeline that keeps part of it. A grep of one port keeps every
// listener of that port only if the table holds listeners (-l, -a) and
// shows ports as numbers (-n: without it 80 prints as :http, which a
// grep of 80 misses).
func (b *pasteBlock) netstatCommand(cmd *pasteCmd) (onlyServers, pidColumn bool) {
	a := strings.Join(cmd.args, " ")
	onlyServers = strings.Contains(a, "l") && !strings.Contains(a, "a")
	pidColumn = strings.Contains(a, "p")
	if len(cmd.pipes) > 0 {
		b.partial = "piped through " + strings.Join(cmd.pipes, " | ")
		if strings.Contains(a, "n") && strings.ContainsAny(a, "la") && !strings.ContainsAny(a, "46A") {
			b.portOnly = grepPort(cmd.pipes)
		}
	}
	return onlyServers, pidColumn
}

// feedHeader gives a socket table without an ss header one, on the line
// before the block: ParseSS takes a headerless text whose first lines do
// not parse for something that is not ss output.
func (b *pasteBlock) feedHeader() {
	f := b.feeds[bfSSTan]
	if f == nil || b.first < 2 {
		return
	}
	for _, l := range f {
		if l == ssHeaderLine {
			return
		}
	}
	if _, taken := f[b.first-1]; !taken {
		f[b.first-1] = ssHeaderLine
	}
}

// countSS counts one rewritten ss line for the block's "what".
func (b *pasteBlock) countSS(line string) {
	e, skip, why := parseSSLine(line)
	switch {
	case skip:
	case why != "":
		b.badLines++
	default:
		b.sockets++
		if e.Socket.State == StateListen {
			b.listeners++
		}
	}
}

func (b *pasteBlock) moveFeed(from, to string) {
	if f := b.feeds[from]; f != nil {
		delete(b.feeds, from)
		if b.feeds[to] == nil {
			b.feeds[to] = f
			return
		}
		for k, v := range f {
			b.feeds[to][k] = v
		}
	}
}

// recSSTable reads an ss socket table: with or without a header, with or
// without the State column (a table filtered to one state, whose state
// comes from the command's filter), in the 3.x layout (where "*:22" is the
// IPv4 wildcard) or the 4.15+ one.
func (p *splitter) recSSTable(n, to int, cmd *pasteCmd) (*pasteBlock, int) {
	t := p.line(n)
	hdr := ssHeader(t)
	rowOK, rowStateless := ssRowShape(t)
	if hdr == 0 && !rowOK {
		return nil, n
	}
	var sc ssCmd
	if cmd != nil && cmd.tool == "ss" {
		sc = parseSSCmd(*cmd)
	}
	b := &pasteBlock{shape: shapeSS, first: n}
	tab := ssTable{stateless: hdr == 2 || (hdr == 0 && rowStateless)}
	p.ssRows(&tab, b, n, to)
	if b.lines == 0 {
		return nil, n
	}
	// A table without the State column is of the one state its
	// command filtered on; with none, or several, its states are
	// unknown.
	if tab.stateless && len(sc.states) == 1 {
		tab.state = sc.states[0]
	}
	tab.feed(b, sc.sport)
	if tab.header == "" {
		b.feedHeader()
	}
	if cmd != nil && cmd.tool == "ss" {
		b.partial = ssPartial(sc, cmd.pipes)
		// Whole for one port: every listener (-l, -a, or state
		// listening alone; no exclude), of every family, filtered by
		// that local port alone, or grepped for it with numeric ports.
		allListeners := (sc.all || sc.listenOnly) && !sc.exclude && !sc.oneFamily &&
			(len(sc.states) == 0 || (sc.listenOnly && len(sc.states) == 1))
		switch {
		case !allListeners:
		case sc.sportOnly != 0 && len(cmd.pipes) == 0:
			b.portOnly = sc.sportOnly
		case sc.filter == "" && sc.numeric:
			b.portOnly = grepPort(cmd.pipes)
		}
	}
	p.markCut(b)
	b.listenOnly = sc.listenOnly || (cmd == nil && b.sockets > 0 && b.sockets == b.listeners)
	if b.listenOnly {
		b.moveFeed(bfSSTan, bfSSTlnp)
	}
	tab.note(b)
	return b, b.last + 1
}

// grepPortRE is a grep stage that keeps the lines holding a port: "grep
// 8080", "grep :8080", "grep -w ':443'". Only options that keep every
// matching line (-w, -F, -E, -i): not -v, -c, -o, -m.
var grepPortRE = lazyRE(`^grep(?:\s+-[wFEi]+)*\s+['"]?:?(\d{1,5})['"]?$`)

// grepPort is the port of a pipeline that is one grep of a port (every
// line of a listener on it holds the number), 0 otherwise.
func grepPort(pipes []string) uint16 {
	if len(pipes) != 1 {
		return 0
	}
	m := grepPortRE().FindStringSubmatch(strings.TrimSpace(pipes[0]))
	if m == nil {
		return 0
	}
	p, err := strconv.ParseUint(m[1], 10, 16)
	if err != nil || p == 0 {
		return 0
	}
	return uint16(p)
}

// cutLineRE is a line a poster puts where they cut rows of a table:
// "...", ".....", "…", "[...]", "(...)".
var cutLineRE = lazyRE(`^[\[(]?(?:\.{2,}|…+)[\])]?$`)

// markCut makes a socket table partial when the poster cut rows of it:
// an ellipsis line right before or after its rows. The rows shown are an
// excerpt, so "no listening sockets" or "no state pile" would rest on rows
// nobody pasted.
func (p *splitter) markCut(b *pasteBlock) {
	cut := false
	for _, m := range []int{b.first - 1, b.last + 1} {
		for m >= 1 && m <= len(p.lines) && p.blank(m) {
			if m < b.first {
				m--
			} else {
				m++
			}
		}
		if m >= 1 && m <= len(p.lines) && cutLineRE().MatchString(strings.TrimSpace(p.line(m))) {
			cut = true
		}
	}
	if !cut {
		return
	}
	b.portOnly = 0
	why := "rows cut by the poster (\"...\")"
	if b.partial != "" {
		why = b.partial + "; " + why
	}
	b.partial = why
}

// ssRowKind is what a line of a pasted ss table is.
type ssRowKind int

const (
	ssRowHeader ssRowKind = iota + 1
	ssRowSocket
	ssRowContinued // an indented line below a socket line (-i, -m, -e, wrapped)
)

type ssRow struct {
	n    int // line number in the paste
	text string
	kind ssRowKind
}

// ssTable is a pasted ss table between collecting its rows and feeding
// them to the block: whether a row needs a state or the old layout's
// repair is known only once every row is in.
type ssTable struct {
	rows   []ssRow
	header string // the last header line, "" for none
	// stateless: the table lacks the State column; state is then the
	// one its command filtered on, "" when unknown.
	stateless bool
	state     string
	old       bool // iproute2 before 4.15 (ssOldLayout)
}

// ssRows collects the rows of the table that starts at line n, up to line
// to at most, and counts them in b. A blank line ends the table unless
// more of it follows (a header or a socket line).
func (p *splitter) ssRows(tab *ssTable, b *pasteBlock, n, to int) {
	prevSocket := false
	for m := n; m <= to; m++ {
		l := p.line(m)
		if strings.TrimSpace(l) == "" {
			if !p.ssTableGoesOn(m, to) {
				return
			}
			prevSocket = false
			continue
		}
		if h := ssHeader(l); h != 0 {
			tab.stateless = tab.stateless || h == 2
			tab.header = l
			tab.rows = append(tab.rows, ssRow{m, l, ssRowHeader})
			prevSocket = false
		} else if ok, sl := ssRowShape(l); ok {
			tab.stateless = tab.stateless || sl
			tab.rows = append(tab.rows, ssRow{m, l, ssRowSocket})
			prevSocket = true
		} else if (l[0] == ' ' || l[0] == '\t') && prevSocket {
			tab.rows = append(tab.rows, ssRow{m, l, ssRowContinued})
		} else {
			return
		}
		b.lines++
		b.last = m
	}
}

// ssTableGoesOn says whether the next non-blank line after the blank line
// m (up to line to) is more of an ss table.
func (p *splitter) ssTableGoesOn(m, to int) bool {
	nb := p.nextNonBlank(m, to)
	if nb == 0 {
		return false
	}
	ok, _ := ssRowShape(p.line(nb))
	return ok || ssHeader(p.line(nb)) != 0
}

// feed gives b the table's rows as the lines of an ss -tan capture.
// sport is the port of the command's "sport = :N" filter, 0 for none.
func (tab *ssTable) feed(b *pasteBlock, sport uint16) {
	var texts []string
	for _, r := range tab.rows {
		if r.kind == ssRowSocket {
			texts = append(texts, r.text)
		}
	}
	tab.old = ssOldLayout(texts, tab.header)
	for _, r := range tab.rows {
		switch r.kind {
		case ssRowHeader:
			// Rows of unknown state are not fed: their header
			// alone would read as a table without sockets.
			if !tab.stateless || tab.state != "" {
				b.feed(bfSSTan, r.n, ssHeaderLine)
			}
		case ssRowContinued:
			b.feed(bfSSTan, r.n, r.text)
		case ssRowSocket:
			tab.feedSocket(b, r, sport)
		}
	}
}

// feedSocket feeds one socket row, given the state of a stateless table
// and repaired (old layout, redacted host, service name). A stateless row
// whose state is unknown is not fed: it is counted, as of unknown state
// when it would parse with one, else as a line not understood.
func (tab *ssTable) feedSocket(b *pasteBlock, r ssRow, sport uint16) {
	line := r.text
	if tab.stateless {
		if tab.state == "" {
			if _, _, why := parseSSLine(prefixState(line, StateEstab)); why == "" {
				b.unknownSt++
			} else {
				b.badLines++
			}
			return
		}
		line = prefixState(line, tab.state)
	}
	line = repairSSLine(line, tab.old, sport, b)
	b.feed(bfSSTan, r.n, line)
	b.countSS(line)
}

// ssPartial says why the table an ss command printed is not the whole
// socket table ("" when it is): a state or an address filter, a pipe, or
// no -a (ss then leaves out listeners, TIME-WAIT and SYN-RECV).
func ssPartial(sc ssCmd, pipes []string) string {
	var why []string
	if len(sc.states) > 0 && len(sc.states) < len(States) && !(sc.listenOnly && len(sc.states) == 1) {
		why = append(why, "state "+strings.Join(sc.states, ","))
	}
	if sc.filter != "" {
		why = append(why, "filter "+strconv.Quote(sc.filter))
	}
	for _, pp := range pipes {
		why = append(why, "| "+pp)
	}
	if !sc.all && !sc.listenOnly && len(sc.states) == 0 {
		why = append(why, "no -a: no LISTEN, TIME-WAIT or SYN-RECV sockets shown")
	}
	return strings.Join(why, "; ")
}

// note tells, in b's notes, what was read with a guess or not at all.
func (tab *ssTable) note(b *pasteBlock) {
	if tab.stateless && tab.state == "" && b.unknownSt > 0 {
		b.notes = append(b.notes, fmt.Sprintf("%d sockets without a State column and no `ss ... state X` line above them: their state is unknown and they are not counted (capture ss -tanp)", b.unknownSt))
	}
	if b.mended > 0 {
		b.notes = append(b.notes, fmt.Sprintf("%d lines with a redacted host or a service name: read with the host unknown (0.0.0.0) and the name as its port (capture ss -tanp: -n keeps numbers)", b.mended))
	}
	if tab.old {
		b.notes = append(b.notes, "iproute2 before 4.15 layout: \"*:N\" read as the IPv4 wildcard 0.0.0.0:N")
	}
}

// ssOldLayout says whether a table is in the layout of iproute2 before
// 4.15, where IPv6 addresses have no brackets (":::22") and "*:22" is the
// IPv4 wildcard; in later versions "*:22" is a dual-stack IPv6 socket and
// IPv4 wildcards print as 0.0.0.0. A table with neither marker is old when
// its header lacks the "Process" column that 4.15+ prints only with -p...
// and every 5.x/6.x header: 3.x and 4.x headers end at "Peer
// Address:Port".
func ssOldLayout(rows []string, header string) bool {
	anyStar := false
	for _, r := range rows {
		for _, f := range strings.Fields(r) {
			switch {
			case strings.HasPrefix(f, "[") || strings.HasPrefix(f, "0.0.0.0:"):
				return false
			case strings.Count(f, ":") >= 3 && !strings.Contains(f, "users:") && !strings.Contains(f, "(") && !strings.HasPrefix(f, "{"):
				return true // ":::22", "::1:631"
			case strings.HasPrefix(f, "*:") && f != "*:*":
				anyStar = true
			}
		}
	}
	return anyStar && !strings.Contains(header, "Process")
}

// prefixState gives a stateless socket line its state, after the Netid
// column when there is one.
func prefixState(line, state string) string {
	f := strings.Fields(line)
	if len(f) > 0 && ssNetids[f[0]] {
		i := strings.Index(line, f[0]) + len(f[0])
		return f[0] + " " + state + line[i:]
	}
	return state + " " + strings.TrimLeft(line, " \t")
}

// repairSSLine mends what a paste loses of a socket line: a listener line
// cut after its local address (or, under a `sport = :N` filter, after its
// queues) gets the wildcard peer (and the filter's port) back; in the old
// layout "*:N" becomes 0.0.0.0:N.
func repairSSLine(line string, old bool, sport uint16, b *pasteBlock) string {
	f := strings.Fields(line)
	netid := ""
	if len(f) > 0 && ssNetids[f[0]] {
		netid = f[0] + " "
		f = f[1:]
	}
	if len(f) == 0 || f[0] != StateListen {
		if old && len(f) >= 4 && strings.HasPrefix(f[3], "*:") {
			f[3] = "0.0.0.0:" + f[3][2:]
		}
		if len(f) < 5 {
			return line
		}
		return mendAddrs(netid, f, b)
	}
	switch len(f) {
	case 3:
		if sport == 0 {
			return line
		}
		f = append(f, "*:"+strconv.Itoa(int(sport)), "*:*")
		b.notes = append(b.notes, fmt.Sprintf("listener lines cut after their queues: port %d taken from the filter, address unknown (shown as *)", sport))
	case 4:
		f = append(f, "*:*")
	}
	if old && len(f) >= 4 && strings.HasPrefix(f[3], "*:") {
		f[3] = "0.0.0.0:" + f[3][2:]
	}
	return mendAddrs(netid, f, b)
}

// mendAddrs rejoins a socket line's fields, reading a redacted host
// ("IP:8000", "0.my.ip.0:https") as unknown (0.0.0.0) and a service name
// (ss without -n) as its port, so that the socket's state and queues are
// counted; the block notes how many lines were mended.
func mendAddrs(netid string, f []string, b *pasteBlock) string {
	join := func() string {
		if len(f) <= 5 {
			return netid + strings.Join(f, " ")
		}
		return netid + strings.Join(f[:5], " ") + " " + strings.Join(f[5:], " ")
	}
	if _, _, why := parseSSLine(join()); why == "" || len(f) < 5 || !strings.Contains(why, "address") {
		return join()
	}
	mended := false
	for i := 3; i <= 4; i++ {
		if _, _, why := parseSSAddr(f[i]); why == "" {
			continue
		}
		j := strings.LastIndexByte(f[i], ':')
		if j <= 0 {
			return join()
		}
		host, port := f[i][:j], f[i][j+1:]
		if !isCount(port) && port != "*" {
			p, ok := servicePorts()[port]
			if !ok {
				return join()
			}
			port = strconv.Itoa(p)
		}
		if _, _, why := parseSSAddr(host + ":" + port); why != "" {
			host = "0.0.0.0"
			if strings.HasPrefix(f[i], "[") {
				host = "[::]"
			}
		}
		f[i] = host + ":" + port
		mended = true
	}
	if mended {
		b.mended++
	}
	return join()
}

// servicePorts are the /etc/services names ss and netstat print without -n
// for the ports servers use most.
var servicePorts = sync.OnceValue(func() map[string]int {
	return map[string]int{
		"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80, "pop3": 110, "sunrpc": 111,
		"imap": 143, "imap2": 143, "ldap": 389, "https": 443, "microsoft-ds": 445, "submissions": 465, "smtps": 465,
		"submission": 587, "ldaps": 636, "rsync": 873, "imaps": 993, "pop3s": 995, "ms-sql-s": 1433,
		"openvpn": 1194, "nfs": 2049, "mysql": 3306, "postgresql": 5432, "amqp": 5672, "x11": 6000,
		"redis": 6379, "http-alt": 8080, "webcache": 8080, "tproxy": 8081, "memcache": 11211, "netbios-ssn": 139,
		"xmpp-client": 5222, "zabbix-agent": 10050, "zabbix-trapper": 10051, "mongodb": 27017, "bgp": 179,
		"ntp": 123, "snmp": 161, "irc": 194, "rtsp": 554, "ipp": 631, "iscsi-target": 3260, "domain-s": 853,
		"socks": 1080, "squid": 3128, "pcsync-https": 8443, "hkp": 11371, "kerberos": 88, "epmd": 4369,
	}
})

// recNetstatS reads `netstat -s` prose (whole, or the few lines a person
// kept).
func (p *splitter) recNetstatS(n, to int, cmd *pasteCmd) (*pasteBlock, int) {
	if !netstatSLine(p.line(n)) {
		return nil, n
	}
	b := &pasteBlock{shape: shapeNetstatS, first: n}
	section := false
	m := n
	for ; m <= to; m++ {
		l := p.line(m)
		t := strings.TrimSpace(l)
		switch {
		case t == "":
			nb := p.nextNonBlank(m, to)
			if nb == 0 {
				goto done
			}
			nl := p.line(nb)
			if !netstatSLine(nl) && !(section && (nl[0] == ' ' || nl[0] == '\t')) {
				goto done
			}
			continue
		case netstatSLine(l):
			if _, ok := strings.CutSuffix(t, ":"); ok {
				section = true
			}
		case section && (l[0] == ' ' || l[0] == '\t'):
		default:
			goto done
		}
		b.feed("netstat-s", m, l)
		b.lines++
		b.last = m
	}
done:
	return b, b.last + 1
}

var (
	logPlainRE  = lazyRE(`^\[\s*\d+\.\d+\]`)
	logCutRE    = lazyRE(`^\d+\.\d+\]\s`)
	logTRE      = lazyRE(`^\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\]\s?`)
	logRawRE    = lazyRE(`^<\d+>\[`)
	logISORE    = lazyRE(`^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\S*\s`)
	logSyslogRE = lazyRE(`^[A-Z][a-z]{2}\s+\d{1,2} \d\d:\d\d:\d\d\s`)
	logKernelRE = lazyRE(`^(?:\S+\s+){0,4}?kernel:\s`)
	logNoiseRE  = lazyRE(`^(?:net_ratelimit|__ratelimit|\S+: \d+ callbacks suppressed)`)
)

// logLine says whether a line is a kernel (or system) log line and returns
// the text ParseDmesg reads for it: the message after "kernel: " for
// syslog and journal lines, the line without a dmesg -T stamp (its zone is
// unknown: tz is set), "" for a log line of another program.
func logLine(t string) (feed string, ok, tz bool) {
	switch {
	case logTRE().MatchString(t):
		return logTRE().ReplaceAllString(t, ""), true, true
	case logPlainRE().MatchString(t), logRawRE().MatchString(t), dmesgFacilityRE().MatchString(t) && strings.Contains(t, "["):
		return t, true, false
	case logCutRE().MatchString(t):
		return "[" + t, true, false
	case strings.HasPrefix(t, "-- ") && (strings.HasSuffix(t, " --") || strings.HasPrefix(t, "-- Logs begin") || strings.HasPrefix(t, "-- Boot")):
		return "", true, false // journalctl's banners
	}
	if logKernelRE().MatchString(t) || ((logSyslogRE().MatchString(t) || logISORE().MatchString(t)) && strings.Contains(t, " kernel: ")) {
		i := strings.Index(t, "kernel: ")
		return t[i+len("kernel: "):], true, false
	}
	if logSyslogRE().MatchString(t) || logISORE().MatchString(t) {
		return "", true, false
	}
	if _, ok := ClassifyKernelLine(t); ok || logNoiseRE().MatchString(t) || strings.HasPrefix(t, "TCP: ") || strings.HasPrefix(t, "nf_conntrack: ") {
		return t, true, false
	}
	return "", false, false
}

// recLog reads kernel log lines (dmesg, dmesg -T, journalctl -k, syslog,
// logread), joining a message wrapped onto the next line.
func (p *splitter) recLog(n, to int, _ *pasteCmd) (*pasteBlock, int) {
	feed, ok, tz := logLine(strings.TrimSpace(p.line(n)))
	if !ok {
		return nil, n
	}
	b := &pasteBlock{shape: shapeLog, first: n}
	if t := strings.TrimSpace(p.line(n)); logSyslogRE().MatchString(t) || logISORE().MatchString(t) || logKernelRE().MatchString(t) {
		b.shape = shapeSyslog
	}
	add := func(m int, f string, tz bool) {
		b.feed(bfDmesg, m, f)
		b.logEntries++
		b.lines++
		b.last = m
		if tz {
			b.logTZ++
		}
	}
	add(n, feed, tz)
	prev, prevN := feed, n
	for m := n + 1; m <= to; m++ {
		l := p.line(m)
		t := strings.TrimSpace(l)
		if t == "" {
			nb := p.nextNonBlank(m, to)
			if nb == 0 {
				break
			}
			if _, ok, _ := logLine(strings.TrimSpace(p.line(nb))); !ok {
				break
			}
			continue
		}
		if f, ok, tz := logLine(t); ok {
			add(m, f, tz)
			prev, prevN = f, m
			continue
		}
		// A message wrapped onto the next line: joined when the
		// joined text says more than the first line alone (or the
		// line is indented as a continuation).
		joined := strings.TrimRight(prev, " ") + " " + t
		je, jok := ClassifyKernelLine(joined)
		pe, pok := ClassifyKernelLine(prev)
		if prev != "" && ((jok && (!pok || je.Kind != pe.Kind || je.Action != pe.Action || je.Port != pe.Port)) || l[0] == ' ' || l[0] == '\t') {
			b.feed(bfDmesg, prevN, joined)
			b.feed(bfDmesg, m, "")
			b.logWrapped++
			b.lines++
			b.last = m
			prev = joined
			continue
		}
		break
	}
	for _, f := range b.feeds[bfDmesg] {
		if _, ok := ClassifyKernelLine(f); ok {
			b.logEvents++
		}
	}
	return b, b.last + 1
}

// parsePasteDate reads a `date` line: what ParseDate reads, plus the
// layouts of other locales and coreutils versions. A bare number (date
// +%s) is a date only right after a date command (strict).
func parsePasteDate(t string, afterDate bool) (time.Time, error) {
	t = strings.TrimSpace(t)
	if !afterDate && (t == "" || (t[0] >= '0' && t[0] <= '9' && !strings.ContainsAny(t, "-:T"))) {
		return time.Time{}, fmt.Errorf("a bare number is a date only after a date command")
	}
	if tm, err := ParseDate(t); err == nil {
		return tm, nil
	}
	for _, layout := range []string{
		"Mon _2 Jan 2006 15:04:05 MST", "Mon 02 Jan 2006 15:04:05 MST", "Mon Jan _2 03:04:05 PM MST 2006",
		"Mon _2 Jan 2006 03:04:05 PM MST", "Mon, 02 Jan 2006 15:04:05 -0700", time.RFC1123, "2006-01-02 15:04:05",
		"2006-01-02 15:04:05 MST", "Mon Jan _2 15:04:05 2006",
	} {
		if tm, err := time.Parse(layout, t); err == nil {
			return tm, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date")
}
