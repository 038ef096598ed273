package sample

import (
	"fmt"
	"strconv"
	"strings"
)

// The splitter of a paste: it cuts the lines into blocks, each the output
// of one command, at prompt lines and, where there is no prompt, where the
// shape of the lines changes. Each block says which bundle file it stands
// for (feeds) with its lines, rewritten where the output needs it (a
// state-filtered ss table gets its State column back, net-tools netstat
// becomes ss lines), under their line numbers in the paste so that notes
// and errors name the line a person sees.

// pasteShape is what a block was recognised as.
type pasteShape string

const (
	shapeSS         pasteShape = "ss"
	shapeSSSummary  pasteShape = "ss -s"
	shapeNetstat    pasteShape = "netstat"
	shapeNetstatS   pasteShape = "netstat -s"
	shapeProcPairs  pasteShape = "/proc/net/netstat"
	shapeSockstat   pasteShape = "/proc/net/sockstat"
	shapeNstat      pasteShape = "nstat"
	shapeSysctl     pasteShape = "sysctl"
	shapeLog        pasteShape = "dmesg"
	shapeSyslog     pasteShape = "syslog"
	shapeDate       pasteShape = "date"
	shapeUptime     pasteShape = "uptime"
	shapeHostname   pasteShape = "hostname"
	shapeProcesses  pasteShape = "processes"
	shapeCount      pasteShape = "count"
	shapeAppLog     pasteShape = "application log"
	shapeUnreadable pasteShape = "not read"
)

// pasteBlock is one block of a paste.
type pasteBlock struct {
	shape       pasteShape
	cmd         *pasteCmd // the command above the block, nil when none
	first, last int       // line numbers in the paste, 1-based
	lines       int       // non-blank lines
	// feeds holds, by bundle file kind, the lines to parse by line
	// number.
	feeds map[string]map[int]string

	// ss and netstat tables.
	listenOnly bool   // a table of listeners only (-l)
	partial    string // why the table is not the whole table ("" when it is)
	// portOnly is the port of a table filtered by its local port alone
	// (ss 'sport = :N', netstat ... | grep N): whole for that port.
	portOnly   uint16
	sockets    int // socket lines that parse
	listeners  int
	badLines   int  // socket-shaped lines that do not parse
	mended     int  // lines read with a redacted host or a service name
	unknownSt  int  // sockets of a stateless table whose state is unknown
	noLimit    bool // netstat: Send-Q of listeners is not their limit
	ownersPart bool // netstat: "Not all processes could be identified"
	notes      []string

	// date, uptime, hostname.
	value string
	// notes on the kernel log: entries (a wrapped message is one),
	// wrapped ones, recognised ones, ones with a -T stamp.
	logEntries, logWrapped, logEvents, logTZ int
	// counts by state from a pipeline (ss | grep STATE | wc -l, ... |
	// sort | uniq -c).
	counts map[string]int
	// connect() failures with EADDRNOTAVAIL an application logged.
	connErrs []ConnectError
	// calls an application logged failing with EMFILE or ENFILE.
	fdErrs []FDError

	what string // filled when read
}

func (b *pasteBlock) feed(kind string, n int, text string) {
	if b.feeds == nil {
		b.feeds = map[string]map[int]string{}
	}
	if b.feeds[kind] == nil {
		b.feeds[kind] = map[int]string{}
	}
	b.feeds[kind][n] = text
}

// kind names the block in the "read:" line: the command as pasted, or the
// shape recognised.
func (b *pasteBlock) kind() string {
	if b.cmd != nil && b.cmd.text != "" && shapeFits(b.shape, b.cmd) {
		return clip(b.cmd.text, 60)
	}
	return string(b.shape)
}

// shapeFits says whether a block's shape is what its command prints (a
// "$ ss -ltnp" followed by netstat's table is named "netstat").
func shapeFits(sh pasteShape, c *pasteCmd) bool {
	tool := c.tool
	if tool == "cat" {
		// cat prints what its files hold.
		files := strings.Join(c.args, " ")
		switch sh {
		case shapeSockstat:
			return strings.Contains(files, "sockstat")
		case shapeProcPairs, "/proc/net/snmp":
			return strings.Contains(files, "/proc/net/netstat") || strings.Contains(files, "/proc/net/snmp")
		case shapeSysctl:
			return strings.Contains(files, "/proc/sys/") || strings.Contains(files, "sysctl")
		case shapeLog, shapeSyslog:
			return strings.Contains(files, "/var/log/")
		case shapeUptime:
			return strings.Contains(files, "uptime")
		case shapeUnreadable:
			return true
		}
		return false
	}
	switch sh {
	case shapeUnreadable:
		return true
	case shapeSS, shapeSSSummary:
		return tool == "ss"
	case shapeNetstat, shapeNetstatS:
		return tool == "netstat"
	case shapeCount:
		return tool == "ss" || tool == "netstat"
	case shapeLog, shapeSyslog:
		switch tool {
		case "dmesg", "journalctl", "grep", "egrep", "zgrep", "tail", "head", "less", "more", "zcat", "logread":
			return true
		}
		return false
	case shapeNstat:
		return tool == "nstat"
	case shapeSysctl:
		return tool == "sysctl" || tool == "grep"
	case shapeDate, shapeUptime, shapeHostname:
		return tool == string(sh)
	}
	return false
}

// splitter holds the lines of a paste while it is cut into blocks.
type splitter struct {
	lines   []string // lines[i] is line i+1
	blocks  []*pasteBlock
	ignored int
	// ignoredAt lists the first ignored lines, for the notes.
	ignoredAt []int
}

func (p *splitter) line(n int) string { return p.lines[n-1] }

// blank says whether line n is empty (or only spaces).
func (p *splitter) blank(n int) bool { return strings.TrimSpace(p.lines[n-1]) == "" }

// nextNonBlank returns the first non-blank line at or after n (0 when none
// before end).
func (p *splitter) nextNonBlank(n, end int) int {
	for ; n <= end; n++ {
		if !p.blank(n) {
			return n
		}
	}
	return 0
}

// split cuts the paste into blocks: first into segments at prompt lines,
// then each segment by shape.
func (p *splitter) split() {
	var cmds []pasteCmd
	start := 1
	for m := 1; m <= len(p.lines); m++ {
		c, ok := parsePrompt(p.lines[m-1], m)
		if !ok {
			continue
		}
		p.segment(cmds, start, m-1)
		cmds, start = c, m+1
	}
	p.segment(cmds, start, len(p.lines))
}

// segment cuts lines from..to (the output of cmds, or of no known command)
// into blocks by shape.
func (p *splitter) segment(cmds []pasteCmd, from, to int) {
	var cmd *pasteCmd
	for i := range cmds {
		if cmds[i].tool != "" {
			cmd = &cmds[i]
			break
		}
	}
	if cmd == nil && len(cmds) > 0 {
		cmd = &cmds[0]
	}
	var unread []int
	n := from
	first := true
	for n <= to {
		// The poster's "..." where they cut output is neither output
		// nor prose: it is skipped (markCut reads it, next to a table).
		if p.blank(n) || cutLineRE().MatchString(strings.TrimSpace(p.line(n))) {
			n++
			continue
		}
		b, next := p.recognise(n, to, cmd, cmds, first)
		first = false
		if b == nil {
			unread = append(unread, n)
			n++
			continue
		}
		p.flushUnread(cmd, unread, from)
		unread = nil
		b.cmd = cmd
		p.blocks = append(p.blocks, b)
		n = next
	}
	p.flushUnread(cmd, unread, from)
}

// flushUnread accounts for lines no shape took: right after a prompt they
// are the command's output, named with what to capture instead; elsewhere
// they are counted as ignored.
func (p *splitter) flushUnread(cmd *pasteCmd, unread []int, from int) {
	if len(unread) == 0 {
		return
	}
	if cmd != nil && p.nextNonBlank(from, unread[0]) == unread[0] {
		b := &pasteBlock{shape: shapeUnreadable, cmd: cmd, first: unread[0], last: unread[len(unread)-1], lines: len(unread)}
		b.what = "not read: " + adviceFor(cmd, p.line(unread[0]))
		p.blocks = append(p.blocks, b)
		return
	}
	p.ignored += len(unread)
	for _, u := range unread {
		if len(p.ignoredAt) < keptNotes {
			p.ignoredAt = append(p.ignoredAt, u)
		}
	}
}

// adviceFor says what to capture instead of a command whose output is not
// read.
func adviceFor(c *pasteCmd, first string) string {
	if len(c.pipes) > 0 && strings.HasPrefix(c.pipes[len(c.pipes)-1], "wc") {
		return "a count from a pipeline is not a socket table (capture ss -tanpe)"
	}
	switch c.tool {
	case "lsof":
		return "lsof lists descriptors, not queues or states (capture ss -tanpe)"
	case "ps", "top", "free", "vmstat", "iostat", "mpstat", "pidstat":
		return c.tool + " says nothing about sockets (capture ss -tanpe and the processes loop)"
	case "ulimit":
		return "ulimit is the shell's limit, not the service's (capture the processes loop: /proc/PID/limits)"
	case "uptime":
		return "uptime's \"up N min\" is too coarse (capture cat /proc/uptime with date +%s.%N)"
	case "ss", "netstat", "nstat", "sysctl", "dmesg", "journalctl", "cat":
		return "output not recognised: " + strconv.Quote(clip(strings.TrimSpace(first), 60))
	case "":
		return "unknown command"
	}
	return c.tool + " is not a capture sockwarden reads (capture ss -tanpe, ss -tlnp, nstat -az, sysctl -a, dmesg)"
}

// recognise tries each shape at line n and returns the block and the line
// after it, or nil.
func (p *splitter) recognise(n, to int, cmd *pasteCmd, cmds []pasteCmd, first bool) (*pasteBlock, int) {
	if cmd != nil && first {
		if b, next := p.byCommand(n, to, cmd, cmds); b != nil {
			return b, next
		}
	}
	for _, rec := range []func(int, int, *pasteCmd) (*pasteBlock, int){
		p.recSSSummary, p.recSockstat, p.recProcPairs, p.recNetstatS, p.recNstat, p.recSysctl,
		p.recNetstatTable, p.recSSTable, p.recStateCounts, p.recConnectError, p.recFDError, p.recLog, p.recProcesses, p.recDate, p.recUptime,
	} {
		if b, next := rec(n, to, cmd); b != nil {
			return b, next
		}
	}
	return nil, n
}

// byCommand reads the outputs only the command can explain: a value from
// `cat /proc/sys/KEY` or `sysctl -n KEY`, the date, the host name.
func (p *splitter) byCommand(n, to int, cmd *pasteCmd, cmds []pasteCmd) (*pasteBlock, int) {
	t := strings.TrimSpace(p.line(n))
	switch cmd.tool {
	case "cat", "sysctl":
		keys := sysctlKeysOf(cmd)
		if len(keys) == 0 {
			return nil, n
		}
		b := &pasteBlock{shape: shapeSysctl, first: n}
		m := n
		for _, k := range keys {
			m = p.nextNonBlank(m, to)
			if m == 0 {
				break
			}
			v := strings.TrimSpace(p.line(m))
			if strings.Contains(v, "=") || strings.HasPrefix(v, "#") || strings.HasPrefix(v, "cat:") || strings.HasPrefix(v, "sysctl:") {
				break
			}
			b.feed(bfSysctl, m, k+" = "+v)
			b.lines++
			b.last = m
			m++
		}
		if b.lines == 0 {
			return nil, n
		}
		return b, b.last + 1
	case "ss", "netstat":
		if st, ok := pipelineState(cmd); ok && isCount(t) {
			b := &pasteBlock{shape: shapeCount, first: n, last: n, lines: 1, counts: map[string]int{}}
			v, _ := strconv.Atoi(t)
			if st == "" {
				b.what = "not read: the grep matches more than one state (or unix sockets too), so the count is of no one TCP state (capture ss -tanpe)"
				b.shape = shapeUnreadable
				return b, n + 1
			}
			b.counts[st] = v
			b.what = fmt.Sprintf("%d %s", v, st)
			return b, n + 1
		}
	case "hostname":
		if len(strings.Fields(t)) == 1 {
			return &pasteBlock{shape: shapeHostname, first: n, last: n, lines: 1, value: t, what: t}, n + 1
		}
	}
	for _, c := range cmds {
		if c.tool == "date" {
			if _, err := parsePasteDate(t, true); err == nil {
				return &pasteBlock{shape: shapeDate, first: n, last: n, lines: 1, value: t}, n + 1
			}
		}
	}
	return nil, n
}

// sysctlKeysOf returns the keys whose bare values a command prints: `cat
// /proc/sys/net/core/somaxconn ...` and `sysctl -n KEY ...` (sysctl -n
// prints values only).
func sysctlKeysOf(c *pasteCmd) []string {
	var keys []string
	switch c.tool {
	case "cat":
		for _, a := range c.args {
			if strings.HasPrefix(a, "/proc/sys/") {
				keys = append(keys, strings.ReplaceAll(strings.TrimPrefix(a, "/proc/sys/"), "/", "."))
			}
		}
	case "sysctl":
		valuesOnly := false
		for _, a := range c.args {
			if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "n") || a == "--values" {
				valuesOnly = true
			} else if !strings.HasPrefix(a, "-") {
				keys = append(keys, strings.ReplaceAll(a, "/", "."))
			}
		}
		if !valuesOnly {
			return nil
		}
	}
	if len(c.pipes) > 0 {
		return nil
	}
	return keys
}

var (
	ssSummaryRowRE = lazyRE(`^(\*|RAW|UDP|TCP|INET|FRAG)\s+(\d+|-)(\s+(\d+|-)){2}\s*$`)
	sockstatRE     = lazyRE(`^(sockets: used|(TCP|UDP|UDPLITE|RAW|FRAG|TCP6|UDP6|UDPLITE6|RAW6|FRAG6|MPTCP|SCTP|SCTP6):\s+(inuse|memory)\s)`)
	pairNamesRE    = lazyRE(`^([A-Za-z][A-Za-z0-9]*):((?:\s+[A-Za-z][A-Za-z0-9_]*)+)\s*$`)
	pairValuesRE   = lazyRE(`^([A-Za-z][A-Za-z0-9]*):((?:\s+-?\d+)+)\s*$`)
	nstatLineRE    = lazyRE(`^(Ip|Icmp|IcmpMsg|Tcp|Udp|UdpLite|TcpExt|IpExt|Ip6|Icmp6|Udp6|UdpLite6|MPTcpExt|Sctp|Xfrm|Tcp6)[A-Za-z0-9_]*\s+\d+(\s+\d+(\.\d+)?)?\s*$`)
	sysctlLineRE   = lazyRE(`^(?:[a-z][a-z0-9_-]*(?:\.[A-Za-z0-9_@:+/-]+)+\s*=|/proc/sys/[\w./-]+:)`)
	dateLineRE     = lazyRE(`^(?:[A-Z][a-z]{2},? )?(?:[A-Z][a-z]{2} [ \d]?\d|\d{1,2} [A-Z][a-z]{2}) (?:\d{4} )?\d\d:\d\d:\d\d`)
	uptimeLineRE   = lazyRE(`^\d+\.\d\d \d+\.\d\d$`)
)

func (p *splitter) recSSSummary(n, to int, _ *pasteCmd) (*pasteBlock, int) {
	t := strings.TrimSpace(p.line(n))
	if !strings.HasPrefix(t, "Total:") {
		return nil, n
	}
	b := &pasteBlock{shape: shapeSSSummary, first: n}
	m := n
	for ; m <= to; m++ {
		t := strings.TrimSpace(p.line(m))
		switch {
		case t == "":
			if nb := p.nextNonBlank(m, to); nb == 0 || !ssSummaryLine(strings.TrimSpace(p.line(nb))) {
				goto done
			}
			continue
		case ssSummaryLine(t):
		default:
			goto done
		}
		b.feed(bfSSSummary, m, p.line(m))
		b.lines++
		b.last = m
	}
done:
	if b.feeds[bfSSSummary] == nil || !hasTCPLine(b.feeds[bfSSSummary]) {
		return nil, n
	}
	return b, b.last + 1
}

func ssSummaryLine(t string) bool {
	return strings.HasPrefix(t, "Total:") || (strings.HasPrefix(t, "TCP:") && strings.Contains(t, "(estab")) ||
		strings.HasPrefix(t, "Transport Total") || ssSummaryRowRE().MatchString(t)
}

func hasTCPLine(m map[int]string) bool {
	for _, l := range m {
		if strings.HasPrefix(strings.TrimSpace(l), "TCP:") {
			return true
		}
	}
	return false
}

func (p *splitter) recSockstat(n, to int, _ *pasteCmd) (*pasteBlock, int) {
	if !sockstatRE().MatchString(strings.TrimSpace(p.line(n))) {
		return nil, n
	}
	b := &pasteBlock{shape: shapeSockstat, first: n}
	m := n
	for ; m <= to && sockstatRE().MatchString(strings.TrimSpace(p.line(m))); m++ {
		b.feed(bfSockstat, m, strings.TrimSpace(p.line(m)))
		b.lines++
		b.last = m
	}
	return b, m
}

// recProcPairs reads the "Header: names" / "Header: values" pairs of
// /proc/net/netstat and /proc/net/snmp.
func (p *splitter) recProcPairs(n, to int, _ *pasteCmd) (*pasteBlock, int) {
	b := &pasteBlock{shape: shapeProcPairs, first: n}
	m := n
	for m < to {
		names := pairNamesRE().FindStringSubmatch(strings.TrimSpace(p.line(m)))
		vm := p.nextNonBlank(m+1, to)
		if names == nil || vm == 0 {
			break
		}
		vals := pairValuesRE().FindStringSubmatch(strings.TrimSpace(p.line(vm)))
		if vals == nil || vals[1] != names[1] || len(strings.Fields(vals[2])) != len(strings.Fields(names[2])) {
			break
		}
		kind := bfSNMP
		if strings.HasSuffix(names[1], "Ext") {
			kind = bfNetstat
		}
		b.feed(kind, m, strings.TrimSpace(p.line(m)))
		b.feed(kind, vm, strings.TrimSpace(p.line(vm)))
		b.lines += 2
		b.last = vm
		m = vm + 1
		if nb := p.nextNonBlank(m, to); nb != 0 {
			m = nb
		}
	}
	if b.lines == 0 {
		return nil, n
	}
	if b.feeds[bfNetstat] == nil {
		b.shape = "/proc/net/snmp"
	}
	return b, b.last + 1
}

func (p *splitter) recNstat(n, to int, _ *pasteCmd) (*pasteBlock, int) {
	t := strings.TrimSpace(p.line(n))
	if t != "#kernel" && !nstatLineRE().MatchString(t) {
		return nil, n
	}
	b := &pasteBlock{shape: shapeNstat, first: n}
	m := n
	for ; m <= to; m++ {
		t := strings.TrimSpace(p.line(m))
		if t == "#kernel" {
			b.lines++
			b.last = m
			continue
		}
		if !nstatLineRE().MatchString(t) {
			break
		}
		b.feed(bfNstat, m, t)
		b.lines++
		b.last = m
	}
	if b.feeds[bfNstat] == nil {
		return nil, n
	}
	return b, b.last + 1
}

func (p *splitter) recSysctl(n, to int, _ *pasteCmd) (*pasteBlock, int) {
	if !sysctlLineRE().MatchString(strings.TrimSpace(p.line(n))) {
		return nil, n
	}
	b := &pasteBlock{shape: shapeSysctl, first: n}
	m := n
	for ; m <= to; m++ {
		t := strings.TrimSpace(p.line(m))
		if t == "" || strings.HasPrefix(t, "sysctl: ") {
			continue
		}
		if !sysctlLineRE().MatchString(t) {
			break
		}
		b.feed(bfSysctl, m, t)
		b.lines++
		b.last = m
	}
	return b, b.last + 1
}

func (p *splitter) recProcesses(n, to int, _ *pasteCmd) (*pasteBlock, int) {
	f := strings.Fields(p.line(n))
	if len(f) != 5 || f[0] != "PID" || f[1] != "FDS" {
		return nil, n
	}
	b := &pasteBlock{shape: shapeProcesses, first: n, last: n, lines: 1}
	b.feed(bfProcesses, n, p.line(n))
	for m := n + 1; m <= to; m++ {
		f := strings.Fields(p.line(m))
		if len(f) < 4 {
			break
		}
		if _, err := strconv.Atoi(f[0]); err != nil {
			break
		}
		b.feed(bfProcesses, m, p.line(m))
		b.lines++
		b.last = m
	}
	return b, b.last + 1
}

func (p *splitter) recDate(n, _ int, _ *pasteCmd) (*pasteBlock, int) {
	t := strings.TrimSpace(p.line(n))
	if !dateLineRE().MatchString(t) && !strings.HasPrefix(t, "20") {
		return nil, n
	}
	if _, err := parsePasteDate(t, false); err != nil {
		return nil, n
	}
	return &pasteBlock{shape: shapeDate, first: n, last: n, lines: 1, value: t}, n + 1
}

func (p *splitter) recUptime(n, _ int, _ *pasteCmd) (*pasteBlock, int) {
	t := strings.TrimSpace(p.line(n))
	if !uptimeLineRE().MatchString(t) {
		return nil, n
	}
	return &pasteBlock{shape: shapeUptime, first: n, last: n, lines: 1, value: t}, n + 1
}

// anyState maps the state names of ss and netstat to ss's.
func anyState(w string) string {
	if st, ok := ssStates[strings.ToUpper(w)]; ok {
		return st
	}
	return netstatStates[strings.ToUpper(w)]
}

// pipelineState reads `ss ... | grep STATE | wc -l` (or grep -c STATE,
// or ss state X | wc -l): ok when the command counts lines, st the one
// state they are of ("" when the grep matches several, as "grep CLOSE").
func pipelineState(c *pasteCmd) (st string, ok bool) {
	if len(c.pipes) == 0 {
		return "", false
	}
	last := shellWords(c.pipes[len(c.pipes)-1])
	counting := len(last) >= 2 && last[0] == "wc" && last[1] == "-l"
	var pats []string
	for _, pp := range c.pipes {
		w := shellWords(pp)
		if len(w) < 2 || (w[0] != "grep" && w[0] != "egrep") {
			continue
		}
		pat := ""
		for _, a := range w[1:] {
			if strings.HasPrefix(a, "-") {
				if strings.Contains(a, "c") {
					counting = true
				}
				if strings.Contains(a, "v") {
					return "", false
				}
				continue
			}
			pat = a
		}
		pats = append(pats, pat)
	}
	if !counting {
		return "", false
	}
	if c.tool == "ss" {
		if sc := parseSSCmd(*c); len(sc.states) == 1 {
			return sc.states[0], true
		}
	}
	tcpOnly := false
	for _, a := range c.args {
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "t") || a == "--tcp" {
			tcpOnly = true
		}
	}
	for _, pat := range pats {
		st := grepState(pat)
		switch {
		case st == "":
		case st == "?":
			return "", true
		case !tcpOnly && (st == StateEstab || st == StateListen || st == StateClose):
			// ss and netstat without -t list unix sockets in
			// these states too.
			return "", true
		default:
			return st, true
		}
	}
	return "", false
}

// grepState returns the one state whose ss or netstat name contains pat,
// "?" when several do (grep CLOSE: CLOSE-WAIT and CLOSING), "" when none.
func grepState(pat string) string {
	up := strings.ToUpper(pat)
	if up == "" {
		return ""
	}
	found := ""
	for name, st := range ssStates {
		if name != "NEW-SYN-RECV" && strings.Contains(name, up) && found != st {
			if found != "" {
				return "?"
			}
			found = st
		}
	}
	for name, st := range netstatStates {
		if strings.Contains(name, up) && found != st {
			if found != "" {
				return "?"
			}
			found = st
		}
	}
	return found
}

var (
	uniqStateRE = lazyRE(`^\s*(\d+)\s+([A-Za-z_0-9-]+\)?)\s*$`)
	// awkStateRE: the count after the state, as the common awk idiom
	// prints it (`awk '/^tcp/ {++S[$NF]} END {for(a in S) print a, S[a]}'`).
	awkStateRE = lazyRE(`^\s*([A-Za-z_0-9-]+\)?)\s+(\d+)\s*$`)
)

// recStateCounts reads state counts of `... | awk '{print $1}' | sort |
// uniq -c`: "  12248 TIME_WAIT", or of the awk idiom that counts the last
// column itself and prints the state first: "TIME_WAIT 41". Lines of the
// table's header that the awk also printed ("1 Foreign", "1 established)")
// are part of the block. One block keeps the order of its first line, so a
// line of the other order ends it.
func (p *splitter) recStateCounts(n, to int, cmd *pasteCmd) (*pasteBlock, int) {
	b := &pasteBlock{shape: shapeCount, first: n, counts: map[string]int{}}
	re, count, state := uniqStateRE(), 1, 2
	if !re.MatchString(p.line(n)) {
		// State first: only from a line that names a state, so that
		// other "word number" lines do not start a block.
		re, count, state = awkStateRE(), 2, 1
		if mm := re.FindStringSubmatch(p.line(n)); mm == nil || anyState(mm[1]) == "" {
			return nil, n
		}
	}
	m := n
	for ; m <= to; m++ {
		mm := re.FindStringSubmatch(p.line(m))
		if mm == nil {
			break
		}
		if st := anyState(mm[state]); st != "" {
			v, _ := strconv.Atoi(mm[count])
			b.counts[st] += v
		}
		b.lines++
		b.last = m
	}
	// Without "uniq -c" on the prompt, two states at least.
	uniq := cmd != nil && strings.Contains(strings.Join(cmd.pipes, " "), "uniq -c")
	if len(b.counts) == 0 || (!uniq && len(b.counts) < 2) {
		return nil, n
	}
	var parts []string
	for _, st := range States {
		if v, ok := b.counts[st]; ok {
			parts = append(parts, fmt.Sprintf("%d %s", v, st))
		}
	}
	b.what = "state counts: " + strings.Join(parts, ", ")
	return b, b.last + 1
}
