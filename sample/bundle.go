package sample

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// A bundle is captured text: one directory per snapshot holding the output
// of the usual tools, as a directory tree or a .tar.gz (.tar) of one. Every
// directory that holds at least one of the files below is a snapshot; a
// bundle with files at its top is a single snapshot. Snapshots are ordered
// by their date file (by directory name, numbers compared as numbers, when
// a date is missing). The ".txt" suffix is optional. README.md ("Captured
// bundles") gives the commands that make each file by hand.
const (
	bfDate      = "date"      // date +%s.%N (or date -Ins, date -Iseconds, date)
	bfUptime    = "uptime"    // cat /proc/uptime (turns dmesg stamps into wall time)
	bfHostname  = "hostname"  // hostname
	bfNetns     = "netns"     // the namespace path captured (optional)
	bfSSSummary = "ss-s"      // ss -s
	bfSSTan     = "ss-tan"    // ss -tanpe (or -tanp, -tan)
	bfSSTlnp    = "ss-tlnp"   // ss -tlnp
	bfSysctl    = "sysctl"    // sysctl -a (or a subset, key = value)
	bfNstat     = "nstat"     // nstat -az
	bfNetstat   = "netstat"   // cat /proc/net/netstat
	bfSNMP      = "snmp"      // cat /proc/net/snmp
	bfSockstat  = "sockstat"  // cat /proc/net/sockstat
	bfSockstat6 = "sockstat6" // cat /proc/net/sockstat6
	bfDmesg     = "dmesg"     // dmesg (or dmesg -T, journalctl -k)
	bfProcesses = "processes" // PID FDS NOFILE UNIT COMM per process (the /proc loop of README.md)
	bfCollect   = "collect"   // written by `sockwarden collect`: how the snapshot was made
)

// bundleAliases maps other names people give the same captures.
var bundleAliases = map[string]string{
	"ss-tanp": bfSSTan, "ss-tanpe": bfSSTan, "ss-tane": bfSSTan, "ss-ta": bfSSTan,
	"ss-tln": bfSSTlnp, "ss-tlpn": bfSSTlnp, "sysctl-a": bfSysctl, "nstat-az": bfNstat,
	"nstat-asz": bfNstat, "dmesg-t": bfDmesg, "date-ins": bfDate, "procs": bfProcesses,
}

var bundleFiles = map[string]bool{
	bfDate: true, bfUptime: true, bfHostname: true, bfNetns: true, bfSSSummary: true, bfSSTan: true,
	bfSSTlnp: true, bfSysctl: true, bfNstat: true, bfNetstat: true, bfSNMP: true, bfSockstat: true,
	bfSockstat6: true, bfDmesg: true, bfProcesses: true, bfCollect: true,
}

// bundleKind returns the canonical name of a bundle file, "" for a file
// that is not one.
func bundleKind(base string) string {
	k := strings.ToLower(strings.TrimSuffix(base, ".txt"))
	if a, ok := bundleAliases[k]; ok {
		k = a
	}
	if bundleFiles[k] {
		return k
	}
	return ""
}

// maxBundleFile bounds one file of a bundle (a `ss -tanpe` of a million
// sockets is about 130 MB). A longer file is an error, not read in part.
const maxBundleFile = 2 << 30

// DefaultBundleMaxBytes bounds what a bundle holds once decompressed
// (Options.BundleMaxBytes). A `ss -tanpe` of a million sockets is about
// 125 MB (61 MB for 500,000, docs/PERFORMANCE.md) and the rest of a
// snapshot a few MB: 4 GiB is 30 snapshots of a million-socket host, or two
// of a 15-million one, and about a minute of CPU at the measured 1.2 µs per
// socket line. A 9 MB .tar.gz that held 2 GiB cost 306 s before a bound.
const DefaultBundleMaxBytes = 4 << 30

// DefaultBundleMaxRatio bounds how many times larger than its compressed
// size a .tar.gz may grow (Options.BundleMaxRatio), checked once it holds
// more than bundleRatioFloor: captures compress 2 to 8 times (sysctl -a 5,
// dmesg 2, a real ss -tanpe 8), a synthetic ss -tanpe of 500,000 near-
// identical lines 13 times; the 2 GiB bomb above was 227 times, zeros
// about 1000.
const DefaultBundleMaxRatio = 100

// maxBundleListeners bounds the listening sockets of one snapshot's socket
// table (ss-tan.txt, ss-tlnp.txt each). Listeners are kept one by one, unlike
// other sockets: 1 GiB of one LISTEN line repeated took 7.3 GB of memory
// before this bound, 1<<20 of them 0.99 GB. 262,144 is ten times a node
// listening on every Kubernetes NodePort (30000-32767) on eight addresses,
// and about a quarter of that memory.
const maxBundleListeners = 1 << 18

// bundleRatioFloor: small archives (tar headers and padding are mostly
// zeros) may compress far better than the ratio without costing anything.
const bundleRatioFloor = 64 << 20

// FromBundle reads a bundle (a directory, or a .tar.gz or .tar of one, or a
// single capture file named as in a bundle, such as ss-tan.txt) and returns
// one Sample per snapshot, in time order, with the default table sizes. See
// FromBundleOptions.
func FromBundle(path string) ([]*Sample, error) {
	return FromBundleOptions(path, Options{})
}

// FromBundleOptions is FromBundle with the table sizes (TopDestinations,
// TopProcesses) and logger of opts; its other fields are ignored.
//
// The same aggregator as a live sample (Census) counts the sockets, fed
// from the `ss` lines as they are read: memory grows with listeners and
// destination groups, not with the number of socket lines. A file that is
// absent is listed in Sample.Missing with what it would have given; a line
// that is not understood is listed there too; a file that is truncated or
// not what its name says is an error wrapping ErrParse that names the file
// and line.
func FromBundleOptions(path string, opts Options) ([]*Sample, error) {
	log := opts.logger()
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	br := &bundleReader{path: path, opts: opts, snaps: map[string]*bundleSnap{}}
	walk := br.walkTar
	switch {
	case st.IsDir():
		walk = br.walkDir
	case bundleKind(filepath.Base(path)) != "":
		// One capture on its own (`--from ss-tan.txt`): a bundle
		// of one file.
		walk = br.walkFile
	}
	// Pass 1 reads everything but the socket table, so that the owners
	// of listeners (ss -tlnp) are known when the table streams through
	// the census in pass 2.
	for pass := 1; pass <= 2; pass++ {
		br.pass = pass
		if err := walk(); err != nil {
			return nil, fmt.Errorf("bundle %s: %w", path, err)
		}
	}
	if err := br.checkSnapshots(); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	if len(br.snaps) == 0 {
		return nil, fmt.Errorf("bundle %s: %w: no snapshot: no file named like date.txt, ss-tan.txt, sysctl.txt ... (see README, Captured bundles)", path, ErrParse)
	}
	snaps := make([]*bundleSnap, 0, len(br.snaps))
	for _, s := range br.snaps {
		snaps = append(snaps, s)
	}
	slices.SortFunc(snaps, func(a, b *bundleSnap) int { return naturalCompare(a.dir, b.dir) })
	allDated := true
	for _, s := range snaps {
		allDated = allDated && s.hasDate
	}
	if allDated {
		slices.SortStableFunc(snaps, func(a, b *bundleSnap) int { return a.date.Compare(b.date) })
	}
	out := make([]*Sample, 0, len(snaps))
	for i, s := range snaps {
		src := "bundle:" + path
		if len(snaps) > 1 {
			src += "#" + strconv.Itoa(i+1)
		}
		out = append(out, s.finish(src))
	}
	log.Debug("bundle read", zap.String("path", path), zap.Int("snapshots", len(out)))
	return out, nil
}

type bundleReader struct {
	path  string
	opts  Options
	pass  int
	snaps map[string]*bundleSnap
	// archive: the bundle is a .tar or .tar.gz, where a snapshot lacking
	// a file another one has is a cut archive, not a choice.
	archive bool
	// read counts this pass's bytes against the bounds.
	read *boundedReader
}

// newBound starts the byte count of a pass; compressed, when set, counts
// the bytes of the file under a decompressor, for the ratio.
func (br *bundleReader) newBound(r io.Reader, compressed *countingReader) *boundedReader {
	max := br.opts.BundleMaxBytes
	if max <= 0 {
		max = DefaultBundleMaxBytes
	}
	ratio := br.opts.BundleMaxRatio
	if ratio <= 0 {
		ratio = DefaultBundleMaxRatio
	}
	br.read = &boundedReader{r: r, max: max, ratio: ratio, compressed: compressed}
	return br.read
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// boundedReader counts the (decompressed) bytes of a bundle and fails once
// they pass max, or ratio times the compressed bytes read; it remembers how
// many zero bytes ended what was read, so that a tar's end-of-archive blocks
// can be told from a cut. It does not implement io.Seeker: archive/tar then
// reads every byte it skips, and every byte is counted.
type boundedReader struct {
	r          io.Reader
	n, max     int64
	ratio      int64
	compressed *countingReader
	zeroRun    int64
	err        error // the bound passed, sticky
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if n > 0 {
		i := bytes.LastIndexFunc(p[:n], func(r rune) bool { return r != 0 })
		if i < 0 {
			b.zeroRun += int64(n)
		} else {
			b.zeroRun = int64(n - 1 - i)
		}
	}
	switch {
	case b.n > b.max:
		b.err = fmt.Errorf("%w: the bundle holds more than %d bytes (%s)%s: more than any capture (sample.Options.BundleMaxBytes)",
			ErrParse, b.max, mib(b.max), map[bool]string{true: " once decompressed", false: ""}[b.compressed != nil])
	case b.compressed != nil && b.n > bundleRatioFloor && b.n > b.ratio*b.compressed.n:
		b.err = fmt.Errorf("%w: the archive decompresses to more than %d times its compressed size (%s from %s): a compression bomb, not a capture (captures compress 2 to 13 times)",
			ErrParse, b.ratio, mib(b.n), mib(b.compressed.n))
	}
	if b.err != nil {
		return n, b.err
	}
	return n, err
}

// mib formats a byte count for messages.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// cappedReader reads one file of a bundle up to its bound and fails, naming
// the file, when there is more: a capture cut at the bound would be judged
// on part of its lines.
type cappedReader struct {
	r    io.Reader
	left int64
	max  int64
	name string
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: %s: longer than %d bytes (%s), more than any capture", ErrParse, c.name, c.max, mib(c.max))
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (br *bundleReader) walkDir() error {
	// Each file is read in one pass only: one count for both.
	bound := br.read
	if bound == nil {
		bound = br.newBound(nil, nil)
	}
	return filepath.WalkDir(br.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(br.path, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !br.wants(rel) {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		bound.r = f
		return br.visit(rel, bound)
	})
}

func (br *bundleReader) walkFile() error {
	rel := filepath.Base(br.path)
	if !br.wants(rel) {
		return nil
	}
	f, err := os.Open(br.path)
	if err != nil {
		return err
	}
	defer f.Close()
	return br.visit(rel, br.newBound(f, nil))
}

func (br *bundleReader) walkTar() error {
	f, err := os.Open(br.path)
	if err != nil {
		return err
	}
	defer f.Close()
	br.archive = true
	file := &countingReader{r: f}
	r := bufio.NewReader(file)
	var bound *boundedReader
	magic, _ := r.Peek(2)
	switch {
	case bytes.Equal(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("%w: gzip: %w", ErrParse, err)
		}
		defer zr.Close()
		bound = br.newBound(zr, file)
	default:
		head, _ := r.Peek(263)
		if len(head) < 263 || !bytes.HasPrefix(head[257:], []byte("ustar")) {
			return fmt.Errorf("%w: not a directory, .tar.gz or .tar", ErrParse)
		}
		bound = br.newBound(r, nil)
	}
	tr := tar.NewReader(bound)
	last := "its first member"
	for {
		h, err := tr.Next()
		if bound.err != nil {
			return bound.err
		}
		if errors.Is(err, io.EOF) {
			// archive/tar also reports a clean end of file between
			// two members, or after one of the two zero blocks, as
			// io.EOF: only the two blocks say the archive is whole.
			if bound.zeroRun < 2*512 {
				return fmt.Errorf("%w: tar: the archive ends after %s without its end-of-archive blocks: cut short (copy it again)", ErrParse, last)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: tar: %w (truncated archive?)", ErrParse, err)
		}
		last = h.Name
		if h.Typeflag != tar.TypeReg {
			continue
		}
		rel := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if !br.wants(rel) {
			continue
		}
		if maxFile := br.opts.maxFile(); h.Size > maxFile {
			return fmt.Errorf("%w: %s: longer than %d bytes (%s), more than any capture", ErrParse, rel, maxFile, mib(maxFile))
		}
		if err := br.visit(rel, tr); err != nil {
			if bound.err != nil {
				return bound.err
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: %s: archive ends inside the file (truncated): %w", ErrParse, rel, err)
			}
			return err
		}
	}
}

// wants says whether the current pass reads the file rel.
func (br *bundleReader) wants(rel string) bool {
	k := bundleKind(path.Base(rel))
	if k == "" {
		return false
	}
	return (k == bfSSTan) == (br.pass == 2)
}

// maxSnapshots bounds the snapshots of one bundle (collect makes at most
// 100): an archive of a million tiny directories is not a capture.
const maxSnapshots = 1000

func (br *bundleReader) snap(dir string) (*bundleSnap, error) {
	s := br.snaps[dir]
	if s == nil {
		if len(br.snaps) >= maxSnapshots {
			return nil, fmt.Errorf("%w: %s: more than %d snapshot directories", ErrParse, dir, maxSnapshots)
		}
		s = newBundleSnap(dir, br.opts)
		br.snaps[dir] = s
	}
	return s, nil
}

func (br *bundleReader) visit(rel string, r io.Reader) error {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	kind := bundleKind(base)
	s, err := br.snap(dir)
	if err != nil {
		return err
	}
	if prev, dup := s.seen[kind]; dup {
		s.missing = append(s.missing, Missing{Source: rel, Reason: "ignored: " + prev + " was read for the same capture"})
		return nil
	}
	s.seen[kind] = rel
	maxFile := br.opts.maxFile()
	if err := s.read(kind, rel, &cappedReader{r: r, left: maxFile, max: maxFile, name: rel}); err != nil {
		if br.read != nil && br.read.err != nil {
			return br.read.err
		}
		return err
	}
	return nil
}

// checkSnapshots compares the snapshots' files: one lacking a file that
// another has is an archive cut or a copy made in part, unless its
// collect.txt says the file was not written. In an archive that is an
// error; in a directory (a person may have captured a file once) it is a
// Missing entry of the snapshot that says so.
func (br *bundleReader) checkSnapshots() error {
	if len(br.snaps) < 2 {
		return nil
	}
	dirs := make([]string, 0, len(br.snaps))
	for d := range br.snaps {
		dirs = append(dirs, d)
	}
	slices.SortFunc(dirs, naturalCompare)
	var errs []error
	for _, d := range dirs {
		s := br.snaps[d]
		for _, o := range dirs {
			seen := br.snaps[o].seen
			kinds := slices.Sorted(maps.Keys(seen))
			for _, kind := range kinds {
				rel := seen[kind]
				if _, ok := s.seen[kind]; ok || rel == "" || collectSaysAbsent(s.collectLog[kind]) {
					continue
				}
				name := path.Join(d, kind+".txt")
				if br.archive {
					errs = append(errs, fmt.Errorf("%w: %s is absent but %s is there: archive cut or made from a partial copy? (when the file was never captured there, collect.txt of the snapshot should say so)", ErrParse, name, rel))
				} else {
					s.missing = append(s.missing, Missing{Source: name, Reason: "absent but " + rel + " is there: bundle cut or copied in part?"})
				}
				s.seen[kind] = "" // one report per file
			}
		}
	}
	for _, s := range br.snaps {
		for k, v := range s.seen {
			if v == "" {
				delete(s.seen, k)
			}
		}
	}
	return errors.Join(errs...)
}

// collectSaysAbsent: collect.txt's line for a file says it was not made
// (runTool and collectSnapshot write "not run", "failed" or "not written").
func collectSaysAbsent(how string) bool {
	return strings.Contains(how, "not written") || strings.Contains(how, ": not run") || strings.Contains(how, ": failed")
}

// bundleSnap accumulates one snapshot while its files stream by.
type bundleSnap struct {
	dir  string
	seen map[string]string // kind -> file read

	maxListeners int

	census  *Census
	tan     *SSStats
	tlnp    *SSStats
	tlnpBy  map[string][][]Owner // ss -tlnp owners by local address
	tlnpAll []SSEntry
	// stateCounts: a paste's pipeline counted states (ss | grep STATE |
	// wc -l): without a table, the note on it says they were read.
	stateCounts bool

	date      time.Time
	hasDate   bool
	uptime    time.Duration
	hasUptime bool
	host      string
	netns     string

	summary   *SSSummary
	nstat     map[string]uint64
	procCtr   map[string]uint64
	sockstat  *Sockstat
	sockstat6 *Sockstat
	sysctls   map[string]string
	dmesg     []DmesgEvent
	procs     map[int]Owner // processes.txt by pid
	missing   []Missing
	// collectLog maps a file kind to collect.txt's account of it.
	collectLog map[string]string
}

// newBundleSnap starts the snapshot of directory dir ("" for a bundle's
// top level or a paste) with the census and bounds opts ask for.
func newBundleSnap(dir string, opts Options) *bundleSnap {
	return &bundleSnap{dir: dir, seen: map[string]string{}, census: opts.newCensus(), maxListeners: opts.maxListeners()}
}

// bundleReaders reads each kind of bundle file into its snapshot, one
// reader per kind so that each knows one format and where it goes.
var bundleReaders = map[string]func(s *bundleSnap, kind, rel string, r io.Reader) error{
	bfDate:      (*bundleSnap).readOneLine,
	bfUptime:    (*bundleSnap).readOneLine,
	bfHostname:  (*bundleSnap).readOneLine,
	bfNetns:     (*bundleSnap).readOneLine,
	bfCollect:   (*bundleSnap).readCollect,
	bfSSSummary: (*bundleSnap).readSSSummary,
	bfSSTlnp:    (*bundleSnap).readListeners,
	bfSSTan:     (*bundleSnap).readSocketTable,
	bfSysctl:    (*bundleSnap).readSysctl,
	bfNstat:     (*bundleSnap).readNstat,
	bfNetstat:   (*bundleSnap).readProcCounters,
	bfSNMP:      (*bundleSnap).readProcCounters,
	bfSockstat:  (*bundleSnap).readSockstat,
	bfSockstat6: (*bundleSnap).readSockstat,
	bfDmesg:     (*bundleSnap).readDmesg,
	bfProcesses: (*bundleSnap).readProcesses,
}

// read reads one file of the snapshot (rel names it in errors), by its
// kind; a kind without a reader is skipped.
func (s *bundleSnap) read(kind, rel string, r io.Reader) error {
	if read := bundleReaders[kind]; read != nil {
		return read(s, kind, rel, r)
	}
	return nil
}

// readOneLine reads the files of one value (date, uptime, hostname,
// netns). 4 KiB is far more than any of them, and a bound on a file that
// is read whole.
func (s *bundleSnap) readOneLine(kind, rel string, r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrParse, rel, err)
	}
	return s.readSmall(kind, rel, strings.TrimSpace(string(b)))
}

// readCollect reads collect.txt ("FILE  how it was made"), kept to say
// why a file is absent.
func (s *bundleSnap) readCollect(_, rel string, r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrParse, rel, err)
	}
	s.collectLog = map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f, how, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && !strings.HasPrefix(f, "#") {
			s.collectLog[bundleKind(f)] = strings.TrimSpace(how)
		}
	}
	return nil
}

func (s *bundleSnap) readSSSummary(_, rel string, r io.Reader) error {
	sum, err := ParseSSSummary(r, rel)
	if err != nil {
		return err
	}
	s.summary = &sum
	return nil
}

// readListeners reads ss -tlnp: its listeners are kept, by local address,
// for the owners of the socket table's listeners (read after it) and for
// a snapshot that has no socket table.
func (s *bundleSnap) readListeners(_, rel string, r io.Reader) error {
	s.tlnpBy = map[string][][]Owner{}
	st, err := ParseSS(r, rel, func(e SSEntry) error {
		if e.Socket.State != StateListen {
			return nil
		}
		if len(s.tlnpAll) >= s.maxListeners {
			return s.tooManyListeners(rel)
		}
		k := FormatLocal(e.Socket.Local, e.Socket.V6Only)
		s.tlnpBy[k] = append(s.tlnpBy[k], e.Owners)
		s.tlnpAll = append(s.tlnpAll, e)
		return nil
	})
	if err != nil {
		return err
	}
	s.tlnp = &st
	s.missing = append(s.missing, st.Notes...)
	return nil
}

// readSocketTable streams ss -tan(pe) through the census, a listener
// without owners taking those ss -tlnp gave for its address.
func (s *bundleSnap) readSocketTable(_, rel string, r io.Reader) error {
	first := true
	listeners := 0
	st, err := ParseSS(r, rel, func(e SSEntry) error {
		if first {
			s.census.InodesUnknown = !e.HasInode
			first = false
		}
		if e.Socket.State == StateListen {
			if listeners++; listeners > s.maxListeners {
				return s.tooManyListeners(rel)
			}
		}
		owners := e.Owners
		if e.Socket.State == StateListen && owners == nil {
			k := FormatLocal(e.Socket.Local, e.Socket.V6Only)
			if q := s.tlnpBy[k]; len(q) > 0 {
				owners, s.tlnpBy[k] = q[0], q[1:]
			}
		}
		s.census.Add(e.Socket, owners)
		return nil
	})
	if err != nil {
		return err
	}
	if first {
		s.census.InodesUnknown = true
	}
	s.tan = &st
	s.missing = append(s.missing, st.Notes...)
	return nil
}

func (s *bundleSnap) readSysctl(_, rel string, r io.Reader) error {
	m, nt, err := ParseSysctlText(r, rel)
	if err != nil {
		return err
	}
	s.sysctls = m
	s.missing = append(s.missing, nt...)
	return nil
}

func (s *bundleSnap) readNstat(_, rel string, r io.Reader) error {
	m, nt, err := ParseNstat(r, rel)
	if err != nil {
		return err
	}
	s.nstat = m
	s.missing = append(s.missing, nt...)
	return nil
}

// readProcCounters reads a copy of /proc/net/netstat or snmp; both fill
// the same counters. lastByte catches a copy cut in the middle of a
// number, which the /proc parser cannot see.
func (s *bundleSnap) readProcCounters(_, rel string, r io.Reader) error {
	lb := &lastByte{r: r}
	m, err := ParseNetstat(lb)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if err := lb.check(rel); err != nil {
		return err
	}
	if s.procCtr == nil {
		s.procCtr = map[string]uint64{}
	}
	for k, v := range m {
		s.procCtr[k] = v
	}
	return nil
}

// readSockstat reads a copy of /proc/net/sockstat or sockstat6, checked
// for a cut as readProcCounters.
func (s *bundleSnap) readSockstat(kind, rel string, r io.Reader) error {
	lb := &lastByte{r: r}
	st, err := ParseSockstat(lb)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if err := lb.check(rel); err != nil {
		return err
	}
	if kind == bfSockstat {
		s.sockstat = &st
	} else {
		s.sockstat6 = &st
	}
	return nil
}

func (s *bundleSnap) readDmesg(_, rel string, r io.Reader) error {
	ev, err := ParseDmesg(r, rel)
	if err != nil {
		return err
	}
	s.dmesg = ev
	return nil
}

func (s *bundleSnap) readProcesses(_, rel string, r io.Reader) error {
	m, nt, err := ParseProcesses(r, rel)
	if err != nil {
		return err
	}
	s.procs = m
	s.missing = append(s.missing, nt...)
	return nil
}

func (s *bundleSnap) tooManyListeners(rel string) error {
	return fmt.Errorf("%w: %s: more than %d listening sockets: more than any host has (each is kept, unlike other sockets)", ErrParse, rel, s.maxListeners)
}

func (s *bundleSnap) readSmall(kind, rel, v string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %s: line 1: %s: %q", ErrParse, rel, why, clip(v, 60)) }
	switch kind {
	case bfDate:
		t, err := ParseDate(v)
		if err != nil {
			return bad(err.Error())
		}
		s.date, s.hasDate = t, true
	case bfUptime:
		f := strings.Fields(v)
		if len(f) == 0 {
			return bad("want /proc/uptime (\"seconds idle\")")
		}
		secs, err := strconv.ParseFloat(f[0], 64)
		if err != nil || secs < 0 || secs > 1e10 {
			return bad("want /proc/uptime (\"seconds idle\")")
		}
		s.uptime, s.hasUptime = time.Duration(secs*float64(time.Second)), true
	case bfHostname:
		s.host = v
	case bfNetns:
		s.netns = v
	}
	return nil
}

// ParseDate reads the timestamp of a snapshot as `date` prints it:
// "1795479192.923360473" (date +%s.%N, what collect writes), "1795479192"
// (+%s), "2026-11-24T00:13:12,923360473+00:00" (date -Ins),
// "2026-11-24T00:13:12+00:00" (date -Iseconds), RFC 3339, or the default
// "Tue Nov 24 00:13:12 UTC 2026".
func ParseDate(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if secs, frac, ok := strings.Cut(v, "."); len(v) > 0 && v[0] >= '0' && v[0] <= '9' && !strings.ContainsAny(v, "-:T ") {
		s, err := strconv.ParseInt(secs, 10, 64)
		if err != nil || s < 0 || s > 1<<40 {
			return time.Time{}, errors.New("want seconds since the epoch (date +%s.%N)")
		}
		var ns int64
		if ok {
			if frac == "" || len(frac) > 9 {
				return time.Time{}, errors.New("want seconds since the epoch (date +%s.%N)")
			}
			n, err := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
			if err != nil || n < 0 {
				return time.Time{}, errors.New("want seconds since the epoch (date +%s.%N)")
			}
			ns = n
		}
		return time.Unix(s, ns).UTC(), nil
	}
	iso := strings.Replace(v, ",", ".", 1)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", time.UnixDate, time.RubyDate} {
		if t, err := time.Parse(layout, iso); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not a date: want date +%s.%N, date -Ins or date output")
}

// finish builds the Sample of the snapshot.
func (s *bundleSnap) finish(source string) *Sample {
	f := &snapFinish{s: s, smp: &Sample{Schema: Schema, Source: source, Host: s.host, Netns: s.netns}}
	for _, step := range finishSteps {
		step(f)
	}
	f.smp.Missing = append(s.missing, f.miss...)
	return f.smp
}

// snapFinish is a snapshot being turned into a Sample: each step fills a
// part of smp from what was read and notes what the snapshot lacked, and
// what that leaves unknown.
type snapFinish struct {
	s    *bundleSnap
	smp  *Sample
	miss []Missing
}

// finishSteps are the steps of finish, in the order of their notes in
// Sample.Missing.
var finishSteps = []func(*snapFinish){
	(*snapFinish).time,
	(*snapFinish).sockets,
	(*snapFinish).socketNotes,
	(*snapFinish).owners,
	(*snapFinish).counters,
	(*snapFinish).sockstat,
	(*snapFinish).sysctls,
	(*snapFinish).kernel,
}

// name is the file a kind was read from, or would have been.
func (f *snapFinish) name(kind string) string {
	if r, ok := f.s.seen[kind]; ok {
		return r
	}
	if f.s.dir == "" {
		return kind + ".txt"
	}
	return f.s.dir + "/" + kind + ".txt"
}

// note says what the file of kind lacked, or that it was absent and why
// (collect.txt says why when it has a line for it).
func (f *snapFinish) note(kind, reason string) {
	if how, ok := f.s.collectLog[kind]; ok && strings.HasPrefix(reason, "absent") {
		reason += "; collect.txt: " + how
	}
	f.miss = append(f.miss, Missing{Source: f.name(kind), Reason: reason})
}

func (f *snapFinish) time() {
	if f.s.hasDate {
		f.smp.Time = f.s.date
		return
	}
	f.note(bfDate, "absent: the snapshot has no time; rates between snapshots cannot be computed (capture: date +%s.%N)")
}

// countedNote begins the note on an absent socket table when a paste's
// pipeline counted states (netstat -na | awk ... TIME_WAIT): "states ...
// unknown" beside "49589 TIME-WAIT" read from the paste would say that
// what was read was not. The table is still absent: the addresses and
// owners of the counted sockets, and any state the pipeline left out,
// are unknown. The note keeps "absent" and, when no table gave them,
// "listeners": coverage reads both.
const countedNote = "no socket table with addresses (the states a pipeline counted are read, and named below): "

// sockets fills the states, listeners, destinations and processes from
// the census the socket table streamed through, or from ss -tlnp alone.
func (f *snapFinish) sockets() {
	s := f.s
	switch {
	case s.tan != nil:
	case s.tlnp != nil:
		// Listeners only: the states table then counts LISTEN alone.
		for _, e := range s.tlnpAll {
			s.census.Add(e.Socket, e.Owners)
		}
		s.census.InodesUnknown = true
		unknown := "states other than LISTEN, destinations and processes unknown"
		if s.stateCounts {
			unknown = countedNote + "destinations and processes unknown"
		}
		f.note(bfSSTan, "absent: "+unknown+" (capture: ss -tanpe)")
	default:
		s.census.InodesUnknown = true
		unknown := "socket states, listeners, destinations and processes unknown"
		if s.stateCounts {
			unknown = countedNote + "listeners, destinations and processes unknown"
		}
		f.note(bfSSTan, "absent: "+unknown+" (capture: ss -tanpe and ss -tlnp)")
	}
	s.census.Fill(f.smp)
}

// socketNotes says what a socket table captured without -p or -e leaves
// unknown.
func (f *snapFinish) socketNotes() {
	tan := f.s.tan
	if tan == nil || tan.Sockets == 0 {
		return
	}
	switch {
	case !tan.HasOwners && f.s.tlnp == nil:
		f.note(bfSSTan, "no users:((...)) (captured without -p, or by a user who cannot see the owners) and no ss-tlnp.txt: owners of sockets unknown")
	case !tan.HasOwners:
		f.note(bfSSTan, "no users:((...)) (captured without -p, or by a user who cannot see the owners): owners of non-listening sockets, hence the process table, unknown")
	}
	if !tan.HasInodes {
		f.note(bfSSTan, "captured without -e: socket inodes unknown, orphaned sockets not counted")
	}
}

// owners fills what processes.txt says of the owners, when there are any.
func (f *snapFinish) owners() {
	hasOwners := len(f.smp.Processes) > 0
	for _, l := range f.smp.Listeners {
		hasOwners = hasOwners || len(l.Owners) > 0
	}
	if hasOwners {
		f.s.noteOwners(f.smp, f.note, func(m Missing) { f.miss = append(f.miss, m) })
	}
}

// counters fills the Tcp and TcpExt counters: from copies of
// /proc/net/netstat and snmp when there are any, else from nstat.
func (f *snapFinish) counters() {
	s := f.s
	switch {
	case s.procCtr != nil:
		f.smp.Counters = s.procCtr
		if _, ok := s.seen[bfNetstat]; !ok {
			f.note(bfNetstat, "absent: TcpExt counters unknown (capture: cat /proc/net/netstat or nstat -az)")
		}
		if _, ok := s.seen[bfSNMP]; !ok {
			f.note(bfSNMP, "absent: Tcp counters unknown (capture: cat /proc/net/snmp or nstat -az)")
		}
	case s.nstat != nil:
		f.smp.Counters = make(map[string]uint64, len(s.nstat))
		for k, v := range s.nstat {
			if !isIPv6MIB(k) {
				f.smp.Counters[k] = v
			}
		}
	default:
		f.smp.Counters = map[string]uint64{}
		f.note(bfNstat, "absent (and no netstat.txt/snmp.txt): Tcp and TcpExt counters unknown (capture: nstat -az)")
	}
}

// isIPv6MIB says whether an nstat counter is of the IPv6 MIBs of
// /proc/net/snmp6, which are not part of a Sample (a live sample does not
// read them).
func isIPv6MIB(k string) bool {
	return strings.HasPrefix(k, "Ip6") || strings.HasPrefix(k, "Icmp6") || strings.HasPrefix(k, "Udp6") || strings.HasPrefix(k, "UdpLite6")
}

// sockstat fills the socket totals from sockstat, else from ss -s (which
// has no TCP memory).
func (f *snapFinish) sockstat() {
	s := f.s
	switch {
	case s.sockstat != nil:
		f.smp.Sockstat = *s.sockstat
		if s.sockstat6 != nil {
			f.smp.Sockstat.TCP6InUse = s.sockstat6.TCP6InUse
		}
	case s.summary != nil:
		f.smp.Sockstat = s.summary.Sockstat
		f.note(bfSockstat, "absent: sockstat taken from ss -s, which has no TCP memory (pages)")
	default:
		f.note(bfSockstat, "absent (and no ss-s.txt): socket totals and TCP memory unknown (capture: cat /proc/net/sockstat)")
	}
}

// sysctls keeps the sysctls a Sample holds (SysctlKeys) and names those
// the capture lacks.
func (f *snapFinish) sysctls() {
	f.smp.Sysctls = map[string]string{}
	if f.s.sysctls == nil {
		f.note(bfSysctl, "absent: sysctls unknown (capture: sysctl -a)")
		return
	}
	var absent []string
	for _, k := range SysctlKeys {
		if v, ok := f.s.sysctls[k]; ok {
			f.smp.Sysctls[k] = v
		} else {
			absent = append(absent, k)
		}
	}
	if len(absent) > 0 {
		f.note(bfSysctl, "lacks "+strings.Join(absent, ", "))
	}
}

// kernel fills the kernel log events, dated from the boot time (date
// minus uptime) when their stamps count from boot.
func (f *snapFinish) kernel() {
	s := f.s
	f.smp.Kernel = []KernelEvent{}
	if _, ok := s.seen[bfDmesg]; !ok {
		f.note(bfDmesg, "absent: kernel log lines (SYN flooding, TCP OOM, orphans, conntrack) unknown (capture: dmesg)")
	}
	var boot time.Time
	if s.hasDate && s.hasUptime {
		boot = s.date.Add(-s.uptime)
	}
	needBoot := false
	for _, d := range s.dmesg {
		ev := d.Event
		if d.HasSinceBoot {
			if boot.IsZero() {
				needBoot = true
			} else {
				ev.Time = boot.Add(d.SinceBoot).Round(time.Millisecond)
			}
		}
		f.smp.Kernel = append(f.smp.Kernel, ev)
	}
	if s.netns != "" {
		// As a live sample of a namespace: the kernel log is
		// host-wide, and another namespace's SYN flood is not this
		// one's.
		f.smp.Kernel = ownEvents(f.smp.Kernel, f.smp.Listeners)
	}
	if needBoot {
		f.note(bfUptime, "absent: times of kernel log lines unknown (capture: cat /proc/uptime with the date)")
	}
}

// noteOwners fills the owners of smp from processes.txt and says what is
// still unknown: "owners" when nothing could be filled (no processes.txt,
// or none of its lines matched), processes.txt itself when some owners
// have no line there.
func (s *bundleSnap) noteOwners(smp *Sample, note func(kind, reason string), add func(Missing)) {
	const how = "capture processes.txt with the /proc loop of README.md, Captured bundles"
	if s.procs == nil {
		reason := "captured text has no open-fd counts, RLIMIT_NOFILE or systemd units for owning processes (" + how + ")"
		if h, ok := s.collectLog[bfProcesses]; ok {
			reason += "; collect.txt: " + h
		}
		add(Missing{Source: "owners", Reason: reason})
		return
	}
	unknown := fillFromProcesses(smp, s.procs)
	if len(unknown) == 0 {
		return
	}
	var names []string
	for _, o := range unknown[:min(len(unknown), 5)] {
		names = append(names, fmt.Sprintf("pid %d (%s)", o.PID, o.Comm))
	}
	if len(unknown) > 5 {
		names = append(names, fmt.Sprintf("%d more", len(unknown)-5))
	}
	what := fmt.Sprintf("no line (or another command name: a pid reused) for %d owning processes: %s; their descriptor counts, limits and units are unknown", len(unknown), strings.Join(names, ", "))
	if len(unknown) == len(ownerPIDs(smp)) {
		add(Missing{Source: "owners", Reason: s.seen[bfProcesses] + " has " + what})
		return
	}
	note(bfProcesses, what)
}

// ownerPIDs lists the distinct pids of smp's owners.
func ownerPIDs(smp *Sample) map[int]bool {
	m := map[int]bool{}
	for _, l := range smp.Listeners {
		for _, o := range l.Owners {
			m[o.PID] = true
		}
	}
	for _, p := range smp.Processes {
		m[p.PID] = true
	}
	return m
}

// naturalCompare orders "2" before "10" and "snap-2" before "snap-10".
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da != "" && db != "" {
			na, _ := strconv.ParseUint(da, 10, 64)
			nb, _ := strconv.ParseUint(db, 10, 64)
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitsPrefix(s string) string {
	i := 0
	for i < len(s) && i < 18 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// lastByte passes a reader through and remembers its last byte and line
// count, so that a copy of a /proc file cut in the middle of a number (which
// the /proc parsers cannot see) is reported: /proc files end with a newline.
type lastByte struct {
	r     io.Reader
	last  byte
	n     int64
	lines int
}

func (l *lastByte) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 {
		l.last = p[n-1]
		l.n += int64(n)
		l.lines += bytes.Count(p[:n], []byte{'\n'})
	}
	return n, err
}

func (l *lastByte) check(name string) error {
	if l.n > 0 && l.last != '\n' {
		return fmt.Errorf("%w: %s: line %d: file ends in the middle of a line (truncated copy?); if the file is complete, end it with a newline", ErrParse, name, l.lines+1)
	}
	return nil
}
