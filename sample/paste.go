package sample

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// A paste is one text holding several command outputs one after another,
// as pasted into a ticket or a chat: `ss -tlnp`, a few sysctl lines, a
// dmesg excerpt, netstat -s ... It is read into the same Sample as a
// bundle, block by block (pastesplit.go cuts it), and the sample says
// which block went where (Sample.Read). A paste has no dates of its own:
// it is one snapshot, or several when it holds several `date` outputs each
// followed by captures. Whatever it does not hold is listed in
// Sample.Missing as for a bundle, so that nothing absent is called fine.

// ReadBlock says what one block of a paste was read as.
type ReadBlock struct {
	// Kind is the command as pasted ("ss -tlnp") or, without a prompt,
	// the shape recognised ("ss", "sysctl", "dmesg", "netstat -s").
	Kind string `json:"kind"`
	// Line is the block's first line in the paste, Lines its non-blank
	// lines.
	Line  int `json:"line"`
	Lines int `json:"lines"`
	// What says what it gave ("33 listeners", "4 keys") or why it was
	// not read and what to capture instead ("not read: ...").
	What string `json:"what"`
}

// maxPaste bounds a paste: it is held in memory while it is cut into
// blocks (a capture of a million sockets belongs in a bundle).
const maxPaste = 512 << 20

// FromInput reads what --from names: "-" is a paste on stdin; a
// directory, a .tar.gz or .tar (by its content), or a file named like a
// bundle file (ss-tan.txt) is a bundle (FromBundleOptions); any other file
// is a paste (FromPaste).
func FromInput(path string, stdin io.Reader, opts Options) ([]*Sample, error) {
	if path == "-" {
		return FromPaste("stdin", stdin, opts)
	}
	if InputKind(path) == "bundle" {
		return FromBundleOptions(path, opts)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	return FromPaste(path, f, opts)
}

// InputKind says how FromInput reads path: "bundle" (a directory, a tar
// archive, a file named like a bundle file, or a path that cannot be
// opened, so that the bundle reader names the error) or "paste".
func InputKind(path string) string {
	if path == "-" {
		return "paste"
	}
	st, err := os.Stat(path)
	if err != nil || st.IsDir() || bundleKind(filepath.Base(path)) != "" {
		return "bundle"
	}
	f, err := os.Open(path)
	if err != nil {
		return "bundle"
	}
	defer f.Close()
	head := make([]byte, 263)
	n, _ := io.ReadFull(f, head)
	if isArchive(head[:n]) {
		return "bundle"
	}
	return "paste"
}

// isArchive says whether the first bytes of a file are a gzip or tar
// header.
func isArchive(head []byte) bool {
	return bytes.HasPrefix(head, []byte{0x1f, 0x8b}) || (len(head) >= 263 && bytes.HasPrefix(head[257:], []byte("ustar")))
}

var (
	ansiRE  = lazyRE(`\x1b(?:\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07)`)
	fenceRE = lazyRE("^\\s*(?:```|~~~)")
)

// readPasteLines reads the lines of a paste, cleaned of what a ticket adds:
// terminal colour codes, "> " quoting and ``` fences (which become blank
// lines, so line numbers stay those of the paste).
func readPasteLines(name string, r io.Reader) ([]string, error) {
	lr := newLineReader(io.LimitReader(r, maxPaste+1), name)
	var lines []string
	total := 0
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		total += len(line) + 1
		if total > maxPaste {
			return nil, fmt.Errorf("%w: %s: more than %d MB: a paste is read in memory; capture this much as a bundle (sockwarden collect)", ErrParse, name, maxPaste>>20)
		}
		if strings.IndexByte(line, 0x1b) >= 0 {
			line = ansiRE().ReplaceAllString(line, "")
		}
		if strings.HasPrefix(line, ">") && (len(line) == 1 || line[1] == ' ') {
			line = strings.TrimPrefix(line[1:], " ")
		}
		if fenceRE().MatchString(line) {
			line = ""
		}
		lines = append(lines, line)
	}
	return lines, nil
}

// FromPaste reads one pasted text (name is used in notes and errors: a
// file name, or "stdin") and returns one Sample per snapshot in it. Blocks
// it cannot use are named in Sample.Read with what to capture instead;
// only a text with nothing usable at all is an error (ErrParse, naming
// it).
func FromPaste(name string, r io.Reader, opts Options) ([]*Sample, error) {
	log := opts.logger()
	lines, err := readPasteLines(name, r)
	if err != nil {
		return nil, err
	}
	sp := &splitter{lines: lines}
	sp.split()
	usable := false
	for _, b := range sp.blocks {
		usable = usable || (b.shape != shapeUnreadable && b.shape != shapeHostname)
	}
	if !usable {
		var named []string
		for _, b := range sp.blocks {
			named = append(named, fmt.Sprintf("line %d %s (%s)", b.first, b.kind(), b.what))
		}
		why := ""
		if len(named) > 0 {
			why = ": " + strings.Join(named, "; ")
		}
		return nil, fmt.Errorf("%w: %s: nothing sockwarden reads in %d lines%s (paste the output of ss -tanp, ss -tlnp, ss -s, nstat -az, netstat -s, sysctl -a or dmesg, or an application's log lines of EMFILE or EADDRNOTAVAIL)", ErrParse, name, len(lines), why)
	}
	groups := groupPaste(sp.blocks)
	pr := &pasteReader{name: name, opts: opts, lines: len(lines)}
	for _, b := range sp.blocks {
		if b.shape == shapeHostname {
			pr.host = b.value
		}
	}
	var out []*Sample
	for i, g := range groups {
		smp := pr.snapshot(g)
		smp.Source = "paste:" + name
		if len(groups) > 1 {
			smp.Source += "#" + strconv.Itoa(i+1)
		}
		out = append(out, smp)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s: nothing sockwarden reads", ErrParse, name)
	}
	last := out[len(out)-1]
	last.IgnoredLines = sp.ignored
	if sp.ignored > 0 {
		var at []string
		for _, n := range sp.ignoredAt {
			at = append(at, strconv.Itoa(n))
		}
		last.Missing = append(last.Missing, Missing{Source: name, Reason: fmt.Sprintf("ignored: %d lines not recognised as the output of a capture (first at lines %s)", sp.ignored, strings.Join(at, ", "))})
	}
	allRead := true
	usable = false
	for _, s := range out {
		for _, rb := range s.Read {
			read := !strings.HasPrefix(rb.What, "not read")
			allRead = allRead && read
			usable = usable || read && rb.Kind != string(shapeHostname)
		}
	}
	if !usable {
		return nil, fmt.Errorf("%w: %s: nothing usable: %s", ErrParse, name, ReadSummary(out))
	}
	log.Debug("paste read", zap.String("name", name), zap.Int("snapshots", len(out)), zap.Int("ignored_lines", sp.ignored), zap.Bool("all_read", allRead))
	return out, nil
}

// groupPaste cuts the blocks into snapshots: a date starts a new one when
// the snapshot so far has a date and something dated by it. A date with
// nothing after it joins the snapshot before.
func groupPaste(blocks []*pasteBlock) [][]*pasteBlock {
	var groups [][]*pasteBlock
	var cur []*pasteBlock
	hasDate, hasData := false, false
	for _, b := range blocks {
		switch b.shape {
		case shapeDate:
			if hasDate && hasData {
				groups = append(groups, cur)
				cur, hasData = nil, false
			}
			hasDate = true
		case shapeHostname, shapeUnreadable, shapeUptime:
		default:
			hasData = true
		}
		cur = append(cur, b)
	}
	if len(cur) > 0 {
		if !hasData && len(groups) > 0 {
			groups[len(groups)-1] = append(groups[len(groups)-1], cur...)
		} else {
			groups = append(groups, cur)
		}
	}
	return groups
}

// pasteReader turns the blocks of one snapshot into a Sample through the
// bundle reader's snapshot (bundleSnap): the same parsers, the same census,
// the same account of what is missing.
type pasteReader struct {
	name  string
	opts  Options
	lines int
	host  string
}

// feedOrder is the order in which bundle kinds are read: the listeners of
// ss -tlnp before the socket table, as the bundle reader does.
var feedOrder = []string{bfDate, bfUptime, bfSSSummary, bfSysctl, bfNstat, "netstat-s", bfNetstat, bfSNMP, bfSockstat, bfDmesg, bfProcesses, bfSSTlnp, bfSSTan}

// single kinds are read from one block; a second block of the same kind in
// the same snapshot is named as ignored.
var singleKinds = map[string]bool{bfDate: true, bfUptime: true, bfSSSummary: true, bfProcesses: true, bfSSTlnp: true, bfSSTan: true}

func (pr *pasteReader) at(b *pasteBlock) string { return pr.name + ":" + strconv.Itoa(b.first) }

// snapshot reads the blocks of one snapshot into a Sample.
func (pr *pasteReader) snapshot(blocks []*pasteBlock) *Sample {
	ps := &pasteSnap{
		pr:      pr,
		blocks:  blocks,
		s:       newBundleSnap("", pr.opts),
		noLimit: map[string]bool{},
	}
	ps.s.host = pr.host
	byKind := blocksByKind(blocks)
	for _, kind := range feedOrder {
		if bs := byKind[kind]; len(bs) > 0 {
			ps.readKind(kind, bs)
		}
	}
	ps.noteBlocks()
	ps.mergeCounters()
	ps.s.stateCounts = slices.ContainsFunc(blocks, func(b *pasteBlock) bool { return b.shape == shapeCount && len(b.counts) > 0 })
	smp := ps.s.finish("paste:" + pr.name)
	pr.applyCounts(smp, blocks, &ps.extra)
	for _, b := range blocks {
		smp.ConnectErrors = append(smp.ConnectErrors, b.connErrs...)
		smp.FDErrors = append(smp.FDErrors, b.fdErrs...)
	}
	ps.markNoLimit(smp)
	ps.noteAbsent(smp)
	smp.Missing = append(smp.Missing, ps.extra...)
	smp.ListenerPorts = ps.listenerPorts
	for _, b := range blocks {
		smp.Read = append(smp.Read, ReadBlock{Kind: b.kind(), Line: b.first, Lines: b.lines, What: b.what})
	}
	return smp
}

// pasteSnap is one snapshot of a paste being read: the bundle snapshot
// its blocks feed, and what the paste adds to a bundle's account (blocks
// ignored or not read, guesses, listeners whose limit is unknown).
type pasteSnap struct {
	pr     *pasteReader
	blocks []*pasteBlock
	s      *bundleSnap
	extra  []Missing
	// noLimit holds the local addresses of listeners read from netstat,
	// whose Send-Q is not a limit.
	noLimit map[string]bool
	// listenerPorts: Sample.ListenerPorts.
	listenerPorts []uint16
}

// blocksByKind indexes the blocks by the bundle kinds they feed; a date or
// uptime block feeds its value.
func blocksByKind(blocks []*pasteBlock) map[string][]*pasteBlock {
	byKind := map[string][]*pasteBlock{}
	for _, b := range blocks {
		if b.shape == shapeDate {
			b.feed(bfDate, b.first, b.value)
		}
		if b.shape == shapeUptime {
			b.feed(bfUptime, b.first, b.value)
		}
		for k := range b.feeds {
			byKind[k] = append(byKind[k], b)
		}
	}
	return byKind
}

// readKind reads the blocks of one kind into the snapshot and says in
// each block what it gave, or why it was not read.
func (ps *pasteSnap) readKind(kind string, bs []*pasteBlock) {
	use := ps.pick(kind, bs)
	ps.s.seen[kind] = ps.pr.at(use[0])
	var err error
	switch kind {
	case bfDate:
		err = ps.readDate(use[0])
	case "netstat-s":
		// Each block is read on its own (its own notes and
		// errors), and no block makes the others unread.
		ps.readNetstatS(use)
		return
	default:
		err = ps.readFeeds(kind, use)
	}
	if err != nil {
		ps.notRead(kind, use, err)
		return
	}
	for _, b := range use {
		if b.what == "" {
			b.what = ps.pr.what(b, kind, ps.s)
		}
		if b.noLimit {
			ps.collectNoLimit(b.feeds[kind])
		}
	}
}

// pick chooses the blocks a kind is read from (pickBlocks) and names the
// others of a single kind as ignored.
func (ps *pasteSnap) pick(kind string, bs []*pasteBlock) []*pasteBlock {
	if !singleKinds[kind] {
		return bs
	}
	use := pickBlocks(bs)
	for _, b := range bs {
		if !slices.Contains(use, b) {
			b.what = fmt.Sprintf("ignored: %s at line %d was read for this snapshot (put a `date` before each capture to make two snapshots)", use[0].kind(), use[0].first)
			ps.extra = append(ps.extra, Missing{Source: ps.pr.at(b), Reason: b.what})
		}
	}
	return use
}

// readDate reads a date block, in any of the forms a paste has them.
func (ps *pasteSnap) readDate(b *pasteBlock) error {
	tm, err := parsePasteDate(strings.TrimSpace(b.value), true)
	if err != nil {
		return fmt.Errorf("%w: %s:%d: %v", ErrParse, ps.pr.name, b.first, err)
	}
	ps.s.date, ps.s.hasDate = tm, true
	b.what = tm.UTC().Format("2006-01-02T15:04:05Z")
	return nil
}

// readFeeds reads the blocks' lines of kind, as one file, with the bundle
// reader.
func (ps *pasteSnap) readFeeds(kind string, use []*pasteBlock) error {
	feeds := make([]map[int]string, 0, len(use))
	for _, b := range use {
		feeds = append(feeds, b.feeds[kind])
	}
	s := ps.s
	if kind == bfSSTan && s.tlnp != nil && !slices.ContainsFunc(use, func(b *pasteBlock) bool { return b.listeners > 0 }) {
		// A table without listeners (ss -tan state close-wait): the
		// listeners of ss -tlnp go first, so that the census knows
		// the inbound sockets.
		for _, e := range s.tlnpAll {
			s.census.Add(e.Socket, e.Owners)
		}
		s.tlnpBy = nil
	}
	return s.read(kind, ps.pr.name, strings.NewReader(sparseText(feeds)))
}

// notRead says in the blocks and in Missing why a kind was not read, and
// undoes what the reader had taken in: part of a table is not the table.
func (ps *pasteSnap) notRead(kind string, use []*pasteBlock, err error) {
	for _, b := range use {
		b.what = "not read: " + strings.TrimPrefix(err.Error(), ErrParse.Error()+": ")
	}
	ps.extra = append(ps.extra, Missing{Source: ps.pr.at(use[0]), Reason: "not read: " + err.Error()})
	s := ps.s
	delete(s.seen, kind)
	switch kind {
	case bfSSTan:
		s.census, s.tan = ps.pr.opts.newCensus(), nil
	case bfSSTlnp:
		s.tlnp, s.tlnpBy, s.tlnpAll = nil, nil, nil
	}
}

// collectNoLimit notes the listeners of a netstat table: their Send-Q is
// not a limit.
func (ps *pasteSnap) collectNoLimit(lines map[int]string) {
	for _, l := range lines {
		if e, skip, why := parseSSLine(l); !skip && why == "" && e.Socket.State == StateListen {
			ps.noLimit[FormatLocal(e.Socket.Local, e.Socket.V6Only)] = true
		}
	}
}

// readNetstatS reads netstat -s blocks into the nstat counters of the
// snapshot (the first block to give a counter wins), or adds to those of
// nstat -az blocks without replacing any.
func (ps *pasteSnap) readNetstatS(use []*pasteBlock) {
	m := map[string]uint64{}
	for _, b := range use {
		// A counter netstat -s omits is 0 only when no pipe
		// (grep) could have removed its line.
		zeros := b.cmd == nil || len(b.cmd.pipes) == 0
		bm, nt, err := parseNetstatS(strings.NewReader(sparseText([]map[int]string{b.feeds["netstat-s"]})), ps.pr.name, zeros)
		if err != nil {
			b.what = "not read: " + err.Error()
			ps.extra = append(ps.extra, Missing{Source: ps.pr.at(b), Reason: b.what})
			continue
		}
		b.what = plural(len(bm), "counter")
		ps.extra = append(ps.extra, nt...)
		fillAbsent(m, bm)
	}
	if len(m) == 0 {
		return
	}
	s := ps.s
	if s.nstat == nil {
		s.nstat = m
		s.seen[bfNstat] = ps.pr.at(use[0])
	} else {
		fillAbsent(s.nstat, m)
	}
	ps.extra = append(ps.extra, Missing{Source: ps.pr.at(use[0]), Reason: "netstat -s prints counters it has no wording for only when they are not 0, so TCPReqQFullDrop, TCPReqQFullDoCookies and other counters without a line are unknown, not 0 (capture nstat -az)"})
}

// fillAbsent adds to dst the counters of src it lacks: the first reading
// of a counter wins.
func fillAbsent(dst, src map[string]uint64) {
	for k, v := range src {
		if _, ok := dst[k]; !ok {
			dst[k] = v
		}
	}
}

// noteBlocks adds what each block says of itself: the splitter's notes, a
// partial table, dmesg -T stamps without a zone; a block nothing read is
// marked so.
func (ps *pasteSnap) noteBlocks() {
	for _, b := range ps.blocks {
		src := ps.pr.at(b) + " (" + b.kind() + ")"
		for _, nt := range b.notes {
			ps.extra = append(ps.extra, Missing{Source: src, Reason: nt})
		}
		if b.partial != "" && !strings.HasPrefix(b.what, "ignored") && !strings.HasPrefix(b.what, "not read") {
			ps.extra = append(ps.extra, Missing{Source: src, Reason: "only part of the socket table (" + b.partial + "): the other sockets are not judged (capture ss -tanpe)"})
		}
		if b.logTZ > 0 {
			ps.extra = append(ps.extra, Missing{Source: src, Reason: fmt.Sprintf("dmesg -T stamps carry no time zone (and drift after a suspend): the offset to UTC is unknown, so %s kept without a time (capture dmesg --time-format iso)", plural(b.logTZ, "kernel line")+map[bool]string{true: " is", false: " are"}[b.logTZ == 1])})
		}
		if b.shape == shapeUnreadable && b.what == "" {
			b.what = "not read"
		}
	}
	ps.noteListenersUnread()
}

// noteListenersUnread says that the listening sockets were not read when
// every socket table of the paste leaves them out (ss without -a, a state
// filter, a grep, rows cut): "no listener full", or "nothing listens on
// port N", would otherwise rest on a table that cannot show one. A whole
// table, of listeners (-l) or of every socket, reads them. A filtered
// table that still shows listener rows (netstat -anlp | grep 8090) read
// those: only the others are unknown, and "listeners unknown" under "1
// listener; the fullest is ..." would contradict the report. A table
// filtered by its local port alone (ss 'sport = :443', netstat -tlnp |
// grep 8080) is whole for that port (Sample.ListenerPorts).
func (ps *pasteSnap) noteListenersUnread() {
	var partial []string
	filtered := false // some table is filtered otherwise than by its port
	shown := 0
	for _, b := range ps.blocks {
		if b.shape != shapeSS && b.shape != shapeNetstat || strings.HasPrefix(b.what, "ignored") {
			continue
		}
		// A table without rows counts when its command says what it
		// would have shown (ss -tln 'sport = :8080' printing only
		// its header: nothing listens on 8080, and of other ports
		// nothing is known).
		if b.sockets+b.listeners == 0 && b.cmd == nil {
			continue
		}
		if b.partial == "" {
			return
		}
		partial = append(partial, b.partial)
		shown += b.listeners
		if b.portOnly == 0 {
			filtered = true
			continue
		}
		if !slices.Contains(ps.listenerPorts, b.portOnly) {
			ps.listenerPorts = append(ps.listenerPorts, b.portOnly)
		}
	}
	var ports []string
	for _, p := range ps.listenerPorts {
		ports = append(ports, strconv.Itoa(int(p)))
	}
	switch {
	case len(partial) == 0:
	case !filtered:
		ps.extra = append(ps.extra, Missing{Source: "listeners", Reason: fmt.Sprintf("listeners on ports other than %s not read: the socket tables pasted are filtered by port (%s): their listen queues are not judged (capture ss -tlnp)",
			strings.Join(ports, ", "), strings.Join(partial, "; "))})
	case shown > 0:
		ps.extra = append(ps.extra, Missing{Source: "listeners", Reason: fmt.Sprintf("listeners other than the %d shown not read: the socket tables pasted are filtered (%s), so others may have been left out: their listen queues are not judged (capture ss -tlnp)",
			shown, strings.Join(partial, "; "))})
	default:
		ps.extra = append(ps.extra, Missing{Source: "listeners", Reason: "listeners unknown: the socket tables pasted leave listening sockets out (" +
			strings.Join(partial, "; ") + "): listen queues are not judged (capture ss -tlnp)"})
	}
}

// mergeCounters lets nstat fill what copies of /proc/net/netstat and snmp
// lack (a paste of a few counters): those win, as in a bundle, where
// finish would drop nstat altogether.
func (ps *pasteSnap) mergeCounters() {
	s := ps.s
	if s.procCtr == nil || s.nstat == nil {
		return
	}
	for k, v := range s.nstat {
		if isIPv6MIB(k) {
			continue
		}
		if _, ok := s.procCtr[k]; !ok {
			s.procCtr[k] = v
		}
	}
}

// markNoLimit marks the listeners read from netstat: their limit is
// unknown.
func (ps *pasteSnap) markNoLimit(smp *Sample) {
	for i := range smp.Listeners {
		if ps.noLimit[smp.Listeners[i].Local] {
			smp.Listeners[i].LimitUnknown = true
		}
	}
}

// noteAbsent names what a paste often lacks and a bundle never does: the
// counters the rules read (a paste of a few of them), and owners.
func (ps *pasteSnap) noteAbsent(smp *Sample) {
	if ps.s.procCtr != nil || ps.s.nstat != nil {
		var absent []string
		for _, c := range TextCounters {
			if _, ok := smp.Counters[c]; !ok {
				absent = append(absent, c)
			}
		}
		if len(absent) > 0 {
			ps.extra = append(ps.extra, Missing{Source: "counters", Reason: "not in the paste: " + strings.Join(absent, ", ") + " (capture nstat -az)"})
		}
	}
	owned := len(smp.Processes) > 0
	for _, l := range smp.Listeners {
		owned = owned || len(l.Owners) > 0
	}
	if !owned && !slices.ContainsFunc(smp.Missing, func(m Missing) bool { return m.Source == "owners" }) {
		ps.extra = append(ps.extra, Missing{Source: "owners", Reason: "the paste names no owning process: descriptor counts, limits and units unknown (capture ss -tlnp and ss -tanp as root, and the processes loop of README.md)"})
	}
}

// pickBlocks chooses the blocks a single kind is read from: the first
// whole table, or, when every table is partial (filtered by state, by
// port, by grep), all of them (a census of the parts).
func pickBlocks(bs []*pasteBlock) []*pasteBlock {
	for _, b := range bs {
		if b.partial == "" {
			return []*pasteBlock{b}
		}
	}
	if bs[0].shape == shapeSS || bs[0].shape == shapeNetstat {
		return bs
	}
	return bs[:1]
}

// sparseText renders blocks' lines as text in which every line keeps its
// number in the paste (the others are blank), so that the parsers' notes
// and errors name the line a person sees.
func sparseText(feeds []map[int]string) string {
	merged := map[int]string{}
	maxN := 0
	for _, f := range feeds {
		for n, l := range f {
			merged[n] = l
			maxN = max(maxN, n)
		}
	}
	keys := make([]int, 0, len(merged))
	for n := range merged {
		keys = append(keys, n)
	}
	sort.Ints(keys)
	size := maxN
	for _, l := range merged {
		size += len(l)
	}
	var sb strings.Builder
	sb.Grow(size + 1)
	line := 1
	for _, n := range keys {
		for ; line < n; line++ {
			sb.WriteByte('\n')
		}
		sb.WriteString(merged[n])
		sb.WriteByte('\n')
		line = n + 1
	}
	return sb.String()
}

// what says what a block gave, for the "read:" line.
func (pr *pasteReader) what(b *pasteBlock, kind string, s *bundleSnap) string {
	switch kind {
	case bfSSTan, bfSSTlnp:
		var w string
		if b.listenOnly {
			w = plural(b.listeners, "listener")
		} else {
			w = plural(b.sockets, "socket")
			if b.listeners > 0 {
				w += fmt.Sprintf(", %d listening", b.listeners)
			}
		}
		if b.unknownSt > 0 {
			w += fmt.Sprintf(", %d of unknown state", b.unknownSt)
		}
		if b.badLines > 0 {
			w += ", " + plural(b.badLines, "line") + " not understood"
		}
		if b.partial != "" {
			w += "; partial: " + b.partial
		}
		return w
	case bfSysctl:
		return plural(len(b.feeds[kind]), "key")
	case bfNstat, bfNetstat, bfSNMP:
		n := len(b.feeds[kind])
		if kind != bfNstat {
			n = 0
			for _, l := range b.feeds[kind] {
				if f := strings.Fields(l); len(f) > 1 && isCount(strings.TrimPrefix(f[1], "-")) {
					n += len(f) - 1
				}
			}
		}
		return plural(n, "counter")
	case bfDmesg:
		w := plural(b.logEntries, "line")
		if b.logWrapped > 0 {
			w += fmt.Sprintf(", %d wrapped onto a second line", b.logWrapped)
		}
		if b.logEvents < b.logEntries {
			w += fmt.Sprintf(", %d that matter", b.logEvents)
		}
		if b.logTZ > 0 {
			w += ", times unknown (dmesg -T has no zone)"
		}
		return w
	case bfSSSummary:
		return "totals"
	case bfSockstat:
		return "totals and TCP memory"
	case bfUptime:
		return "uptime " + b.value
	case bfProcesses:
		return plural(len(s.procs), "process")
	}
	return "read"
}

// ReadSummary is the one line that says what a paste gave: "read: ss
// -tlnp (33 listeners), sysctl (4 keys), dmesg (2 lines); ignored: 3
// lines". It is "" for samples that are not from a paste.
func ReadSummary(series []*Sample) string {
	var parts []string
	ignored := 0
	for _, s := range series {
		for _, b := range s.Read {
			if b.What == "" {
				parts = append(parts, b.Kind)
				continue
			}
			parts = append(parts, b.Kind+" ("+b.What+")")
		}
		ignored += s.IgnoredLines
	}
	if len(parts) == 0 {
		return ""
	}
	line := "read: " + strings.Join(parts, ", ")
	if ignored > 0 {
		line += "; ignored: " + plural(ignored, "line")
	}
	return line
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "s") {
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// applyCounts raises the state counts of smp to those a pipeline counted
// (ss | grep STATE | wc -l, ... | uniq -c): counts only, so the split by
// family becomes unknown.
func (pr *pasteReader) applyCounts(smp *Sample, blocks []*pasteBlock, extra *[]Missing) {
	changed := false
	for _, b := range blocks {
		if b.shape != shapeCount {
			continue
		}
		for st, v := range b.counts {
			if smp.States[st] < v {
				smp.States[st] = v
				changed = true
			}
		}
		*extra = append(*extra, Missing{Source: pr.at(b) + " (" + b.kind() + ")", Reason: "state counts from a pipeline: the addresses, queues and owners of these sockets are unknown (capture ss -tanpe)"})
	}
	if !changed {
		return
	}
	smp.Total = sumStates(smp.States)
	smp.StatesV4, smp.StatesV6 = nil, nil
}

// lazyRE compiles a regular expression on its first use. The paste
// reader's two dozen expressions, compiled as package variables, made
// every command (a live census included) pay ~2 ms and 315 KB of package
// init for a reader only `--from` with a paste uses
// (GODEBUG=inittrace=1: sample's init 2,862 allocations, 41 KB before).
func lazyRE(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
