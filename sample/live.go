package sample

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mdlayher/netlink"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/internal/bpfiter"
	"github.com/sockwarden/sockwarden/internal/netns"
)

// Take takes one full live census of the namespace opts.Netns: every TCP
// socket through netlink sock_diag (aggregated as it streams, never held),
// the Tcp/TcpExt counters, sockstat, the sysctls of SysctlKeys, the socket
// owners (when opts.Owners) and the matching kernel log lines. A source that
// cannot be read is listed in Sample.Missing; only a namespace that cannot
// be entered or a failing dump is an error.
func Take(ctx context.Context, opts Options) (*Sample, error) {
	s, _, err := take(ctx, opts, false)
	return s, err
}

// TakeCheap is the agent's cheap tier: counters, sockstat, sysctls, the
// listeners (a LISTEN-only dump, filtered in the kernel, without owners) and
// new kernel log lines. States, Destinations and Processes are left empty
// and Partial is set.
func TakeCheap(ctx context.Context, opts Options) (*Sample, error) {
	s, _, err := take(ctx, opts, true)
	return s, err
}

// ownersFound is what an owner scan found.
type ownersFound struct {
	x *ownerIndex
	// skipped lists the processes of other namespaces that a /proc scan
	// left out (attachPending reads them when sockets are left unowned).
	skipped []int
	// miss says which processes could not be read, nil when all could.
	miss *Missing
	// via is Sample.OwnersVia: ownersViaBPF or ownersViaProc.
	via string
}

// The values of Sample.OwnersVia.
const (
	ownersViaBPF  = "bpf-iter"
	ownersViaProc = "proc"
)

// scanOwnersAuto finds socket owners the cheapest way allowed: the BPF
// task_file iterator (every process at once, no second pass needed), or
// /proc/PID/fd, processes of the sampled namespace first. nsSockets is the
// sampled namespace's sockets in use (sockstat) and hostFiles the host's
// open files (fs.file-nr, 0 when unknown), both read by the sample already,
// for procCheaper.
func scanOwnersAuto(opts Options, netnsID uint64, nsSockets, hostFiles int) (ownersFound, error) {
	bpf := opts.ownersByBPF(nsSockets, hostFiles)
	if !bpf && opts.bpfAllowed() {
		opts.logger().Debug("owner scan: /proc, the namespace's processes first (few of the host's open files are its sockets)",
			zap.Int("namespace_sockets", nsSockets), zap.Int("host_open_files", hostFiles))
	}
	if bpf {
		x, err := scanOwnersBPF(opts.proc(), hostFiles)
		if err == nil {
			return ownersFound{x: x, via: ownersViaBPF}, nil
		}
		if opts.OwnerScan == OwnerScanBPF {
			return ownersFound{}, fmt.Errorf("sample.owner_scan bpf: %w", err)
		}
		opts.logger().Debug("BPF owner scan unavailable; reading /proc/PID/fd", zap.Error(err))
	}
	x, sk, miss, err := scanOwnersScoped(opts.proc(), ownerScan{netns: netnsID})
	return ownersFound{x: x, skipped: sk, miss: miss, via: ownersViaProc}, err
}

// ownersByBPF says whether scanOwnersAuto tries the BPF task_file
// iterator first, for a namespace with nsSockets sockets in use on a host
// with hostFiles open files.
func (o Options) ownersByBPF(nsSockets, hostFiles int) bool {
	return o.bpfAllowed() && (o.OwnerScan == OwnerScanBPF || !procCheaper(nsSockets, hostFiles))
}

// procCheaper says whether reading /proc/PID/fd of the sampled
// namespace's processes (about 3 us per descriptor, the namespace's only)
// beats the BPF iterator (about 0.5 us per descriptor, every descriptor on
// the host): when the namespace's sockets are under a tenth of the host's
// open files, as for a container on a busy host. A namespace holding most
// of the host's descriptors (the host's own, or the census benchmark's)
// gets the iterator.
func procCheaper(nsSockets, hostFiles int) bool {
	return nsSockets >= 0 && hostFiles > 0 && nsSockets*10 < hostFiles
}

// pendingOwner is a socket with a descriptor, seen in the dump, waiting for
// the owner scan.
type pendingOwner struct {
	inode uint32 // sock_diag's idiag_inode is a u32
	state uint8
}

// pendingOwners holds the dump's sockets with a descriptor as two
// columns: 5 bytes a socket where a []pendingOwner takes 8 (padding), 2.5
// MB less for a million sockets.
type pendingOwners struct {
	inodes []uint32
	states []uint8
}

func newPendingOwners(n int) *pendingOwners {
	return &pendingOwners{inodes: make([]uint32, 0, n), states: make([]uint8, 0, n)}
}

func (p *pendingOwners) add(inode uint32, state uint8) {
	p.inodes = append(p.inodes, inode)
	p.states = append(p.states, state)
}

// len is the sockets held; 0 for nil (no owner scan).
func (p *pendingOwners) len() int {
	if p == nil {
		return 0
	}
	return len(p.inodes)
}

// minUnowned is how many sockets without an owner justify reading the
// processes of other namespaces. A few are normal on a busy host (sockets
// opened between the owner scan and the dump, kernel sockets): chasing
// them would read every container's descriptors at every sample.
const minUnowned = 16

// worthLooking says whether the sockets left without an owner call for a
// look at the processes outside the namespace: an unowned listener always
// does (its owner is what a diagnosis names), otherwise a pile of them.
func worthLooking(unowned []pendingOwner) bool {
	if len(unowned) >= minUnowned {
		return true
	}
	for _, u := range unowned {
		if u.state == 10 {
			return true
		}
	}
	return false
}

// attachPending gives the dumped sockets their owners from the scan of the
// sampled namespace's processes. Sockets left without one are looked up in
// the other processes (those skipped by the first scan) when worthLooking.
func attachPending(ctx context.Context, c *Census, opts Options, x *ownerIndex, skipped []int, pending *pendingOwners, hostFiles int) {
	var unowned []pendingOwner
	// Sockets of a single owner (nearly all) are counted per owner in a
	// dense table and handed to the census once per process; listeners
	// and shared sockets go through attachOwners.
	counts := make([][nStates]int, len(x.owners))
	for k, ino := range pending.inodes {
		p := pendingOwner{inode: ino, state: pending.states[k]}
		i, ok := x.find(p.inode)
		switch {
		case !ok:
			unowned = append(unowned, p)
		case i != sharedInode && p.state != 10 && int(p.state) < nStates:
			counts[i][p.state]++
		default:
			c.attachOwners(int(p.state), uint64(p.inode), x.lookup(uint64(p.inode)))
		}
	}
	for i := range counts {
		if counts[i] != ([nStates]int{}) {
			c.addProcess(x.fill(int32(i)), &counts[i])
		}
	}
	if len(skipped) == 0 || !worthLooking(unowned) || ctx.Err() != nil {
		return
	}
	// The other processes can be most of the host's descriptors (the
	// containers of a busy host): the iterator reads them six times
	// faster than /proc when it is allowed.
	var more *ownerIndex
	if opts.bpfAllowed() {
		more, _ = scanOwnersBPF(opts.proc(), hostFiles)
	}
	if more == nil {
		only := make(map[uint64]bool, len(unowned))
		for _, u := range unowned {
			only[uint64(u.inode)] = true
		}
		var err error
		if more, _, _, err = scanOwnersScoped(opts.proc(), ownerScan{pids: skipped, only: only}); err != nil {
			return
		}
	}
	for _, u := range unowned {
		c.attachOwners(int(u.state), uint64(u.inode), more.lookup(uint64(u.inode)))
	}
}

// dumpCensus feeds the census: listeners first (the census tells inbound
// from outbound connections by them), then, unless cheap, every other
// state. One connection, one pass over the kernel's socket hash: splitting
// the dump over two connections was measured to cost more CPU (each dump
// walks the whole hash, every namespace's sockets included) for no gain in
// wall time on a busy 2-CPU host (docs/PERFORMANCE.md).
//
// tcp, when not nil, is an iteration of the BPF tcp iterator opened in the
// namespace: it replaces the dump of every state but LISTEN (the
// listeners, whose queues and IPV6_V6ONLY it does not give, still come
// from sock_diag).
func dumpCensus(ctx context.Context, conn diagConn, tcp io.Reader, cheap bool, d *censusDump) error {
	add := d.add
	if err := dumpBoth(ctx, conn, 1<<10, add); err != nil {
		return fmt.Errorf("listeners: %w", err)
	}
	if cheap {
		return nil
	}
	if tcp != nil {
		if err := readTCPIter(ctxReader{ctx, tcp}, d.addState); err != nil {
			return fmt.Errorf("sockets: %w", err)
		}
		return nil
	}
	all, _ := stateMask(nil)
	if err := dumpBoth(ctx, conn, all&^(1<<10), add); err != nil {
		return fmt.Errorf("sockets: %w", err)
	}
	return nil
}

// take returns the sample and the last kernel log sequence number read.
//
// Three reads run beside the socket dump, each a small type started once
// its inputs are known and waited for when its result is needed: the
// kernel log (kmsgRead: formatting the ring's records takes the kernel 2
// to 20 ms here, for nothing the dump needs) and the owner scan
// (ownerRead: /proc/PID/fd or the BPF iterator, the other cost of a census,
// on another CPU). The counters and sysctls are read first, inside the
// namespace: the owner scan chooses its way by them.
func take(ctx context.Context, opts Options, cheap bool) (*Sample, uint64, error) {
	start := time.Now()
	s := newLiveSample(opts, start, cheap)
	var t censusTimes
	tCounters := time.Now()
	conn, tcp, dialErr, err := readNamespace(s, opts, cheap)
	if err != nil {
		return nil, 0, err
	}
	if tcp != nil {
		defer tcp.Close()
	}
	klog := startKmsgRead(opts)
	defer klog.close()
	if opts.Netns != "" {
		fillGlobalSysctls(s, opts.proc())
	}
	t.counters = time.Since(tCounters)
	hostFiles := openFiles(s.Sysctls["fs.file-nr"])
	var owners *ownerRead
	if opts.Owners && !cheap {
		owners = startOwnerRead(opts, s.NetnsID, s.Sockstat.SocketsUsed, hostFiles)
	}
	c := opts.newCensus()
	d := censusDump{c: c}
	if owners != nil {
		// Sized from sockstat's sockets in use (those with a
		// descriptor are among them): no regrowth for the 80,000 of a
		// busy host, a few MB of garbage less.
		d.pending = newPendingOwners(min(s.Sockstat.TCPInUse+s.Sockstat.TCP6InUse+64, 1<<20))
	}
	if dialErr != nil && !errors.Is(dialErr, ErrNoData) {
		owners.wait()
		klog.drop()
		return nil, 0, dialErr
	}
	if dialErr != nil {
		s.noteMissing("sock_diag", dialErr)
	} else {
		defer conn.Close()
		t0 := time.Now()
		if err := dumpCensus(ctx, conn, tcp, cheap, &d); err != nil {
			owners.wait()
			klog.drop()
			return nil, 0, err
		}
		t.dump, t.dumpVia = time.Since(t0), "sock_diag"
		if tcp != nil { // opened for a full census only (readNamespace)
			t.dumpVia = "bpf-tcp-iter"
		}
	}
	t0 := time.Now()
	if r := owners.wait(); r != nil {
		r.attach(ctx, s, c, opts, d.pending, hostFiles)
	}
	t.join = time.Since(t0)
	c.Fill(s)
	if cheap {
		s.States, s.StatesV4, s.StatesV6, s.Total = map[string]int{}, nil, nil, 0
		s.Destinations, s.DestinationGroups, s.Processes, s.Orphans = []Destination{}, 0, []Process{}, nil
	}
	last := klog.finish(s, opts)
	s.Duration = time.Since(start)
	logCensus(opts.logger(), s, t, d.pending.len(), klog, owners)
	return s, max(last, opts.KmsgAfter), nil
}

// newLiveSample starts a live sample: its time, host and namespace.
func newLiveSample(opts Options, start time.Time, cheap bool) *Sample {
	s := &Sample{Schema: Schema, Time: start, Netns: opts.Netns, Source: "live", Partial: cheap}
	if h, err := os.Hostname(); err == nil {
		s.Host = h
	}
	if id, err := netns.ID(opts.Netns); err == nil {
		s.NetnsID = id
	}
	return s
}

// readNamespace reads the counters, sockstat and sysctls of the sampled
// namespace and opens the sock_diag socket there, and, for a full census
// of a namespace holding many sockets, an iteration of the BPF tcp
// iterator (tcp, nil when not used: see useTCPIter). err is a namespace
// that cannot be entered; dialErr a socket that cannot be opened.
func readNamespace(s *Sample, opts Options, cheap bool) (conn *netlink.Conn, tcp io.ReadCloser, dialErr, err error) {
	err = netns.Do(opts.Netns, func() error {
		readCounters(s, opts.proc(), filepath.Join(opts.proc(), "thread-self", "net"))
		conn, dialErr = dialDiag()
		ownersBPF := opts.Owners && opts.ownersByBPF(s.Sockstat.SocketsUsed, openFiles(s.Sysctls["fs.file-nr"]))
		if dialErr == nil && !cheap && opts.useTCPIter(s.Sockstat, ownersBPF) {
			var err error
			if tcp, err = bpfiter.OpenTCP(); err != nil {
				opts.logger().Debug("BPF tcp iterator unavailable; dumping through sock_diag", zap.Error(err))
			}
		}
		return nil
	})
	return conn, tcp, dialErr, err
}

// censusTimes are the phases of a census, for the debug log, and how the
// sockets were read (dumpVia).
type censusTimes struct {
	counters, dump, join time.Duration
	dumpVia              string
}

// censusDump feeds dumped sockets to the census and remembers those with a
// descriptor as (inode, state) when an owner scan runs (pending not nil).
type censusDump struct {
	c       *Census
	pending *pendingOwners
}

func (d *censusDump) add(sk Socket) error {
	if st := stateIndex(sk.State); st != 0 {
		d.addState(st, &sk)
	}
	return nil
}

// addState is add for a socket whose state's kernel number is st.
func (d *censusDump) addState(st int, sk *Socket) {
	d.c.add(st, sk, nil)
	if d.pending != nil && sk.Inode != 0 {
		d.pending.add(uint32(sk.Inode), uint8(st))
	}
}

// kmsgRead reads the kernel log in the background, started once the
// namespace is entered.
type kmsgRead struct {
	r     *KmsgReader
	owned bool // opened by this sample: closed at its end
	done  chan struct{}

	events []KernelEvent
	last   uint64
	err    error
	took   time.Duration
}

// startKmsgRead reads opts.Kmsg (the agent's kept reader) or, when nil, a
// reader of the whole ring opened for this sample.
func startKmsgRead(opts Options) *kmsgRead {
	k := &kmsgRead{r: opts.Kmsg, done: make(chan struct{})}
	if k.r == nil {
		k.r, k.owned = NewKmsgReader(opts.kmsgPath), true
	}
	go func() {
		defer close(k.done)
		t0 := time.Now()
		k.events, k.last, k.err = k.r.Read(opts.KmsgAfter)
		k.took = time.Since(t0)
	}()
	return k
}

func (k *kmsgRead) wait() { <-k.done }

// drop is for a sample that fails after the log was read: it is thrown
// away, and a kept reader (the agent's) has moved past its records.
// Closing the reader makes the next read start again from the ring,
// filtered by KmsgAfter, so no line is lost.
func (k *kmsgRead) drop() {
	k.wait()
	k.r.Close()
}

// close closes a reader opened for this sample, once its read is done.
func (k *kmsgRead) close() {
	if k.owned {
		k.wait()
		k.r.Close()
	}
}

// finish waits for the read, puts its events in s (only the namespace's
// own SYN-flooding lines when sampling another namespace) and returns the
// last sequence number read.
func (k *kmsgRead) finish(s *Sample, opts Options) uint64 {
	k.wait()
	events := k.events
	if k.err != nil {
		s.noteMissing(k.r.path, k.err)
	}
	if opts.Netns != "" {
		events = ownEvents(events, s.Listeners)
	}
	if events == nil {
		events = []KernelEvent{}
	}
	s.Kernel = events
	return k.last
}

// ownerRead runs the owner scan in the background, started once sockstat
// is read (it chooses between the iterator and /proc by the namespace's
// sockets). Processes in the sampled namespace are read first: on a host
// full of containers this skips most descriptors; sockets they do not
// explain are looked up in the other processes afterwards (attach).
type ownerRead struct {
	done  chan struct{}
	found ownersFound
	err   error
	took  time.Duration
}

func startOwnerRead(opts Options, nsID uint64, nsSockets, hostFiles int) *ownerRead {
	o := &ownerRead{done: make(chan struct{})}
	go func() {
		defer close(o.done)
		t0 := time.Now()
		o.found, o.err = scanOwnersAuto(opts, nsID, nsSockets, hostFiles)
		o.took = time.Since(t0)
	}()
	return o
}

// wait returns the finished scan; nil for no scan.
func (o *ownerRead) wait() *ownerRead {
	if o == nil {
		return nil
	}
	<-o.done
	return o
}

// attach notes what the scan could not read and gives the dumped sockets
// their owners. It runs after the dump, in one tight loop, even when the
// scan finished first: looked up between messages, the inode index was
// out of the cache every time (a fifth of the census's user time for
// 80,000 sockets).
func (o *ownerRead) attach(ctx context.Context, s *Sample, c *Census, opts Options, pending *pendingOwners, hostFiles int) {
	switch {
	case o.err != nil:
		s.noteMissing("process owners", o.err)
		return
	case o.found.miss != nil:
		s.noteMissing(o.found.miss.Source, errors.New(o.found.miss.Reason))
	}
	s.OwnersVia = o.found.via
	attachPending(ctx, c, opts, o.found.x, o.found.skipped, pending, hostFiles)
}

// logCensus writes the census's phases and missing sources to the debug
// log.
func logCensus(log *zap.Logger, s *Sample, t censusTimes, pending int, k *kmsgRead, o *ownerRead) {
	if ce := log.Check(zap.DebugLevel, "census"); ce != nil {
		fields := []zap.Field{zap.Duration("took", s.Duration), zap.Duration("counters", t.counters), zap.Duration("dump", t.dump), zap.String("dump_via", t.dumpVia), zap.Int("sockets", s.Total),
			zap.Int("waiting_for_owner", pending), zap.Duration("owners_wait_and_join", t.join), zap.Duration("kmsg", k.took)}
		if o != nil {
			fields = append(fields, zap.Duration("owner_scan", o.took), zap.String("owners_via", o.found.via))
		}
		ce.Write(fields...)
	}
	for _, m := range s.Missing {
		log.Debug("source missing", zap.String("source", m.Source), zap.String("reason", m.Reason))
	}
}

// ownEvents drops the SYN-flooding lines that name no listener of the
// sampled namespace: the kernel log is host-wide, and another namespace's
// flood is not this one's. Other kinds are kept (they carry no address).
func ownEvents(events []KernelEvent, listeners []Listener) []KernelEvent {
	return slices.DeleteFunc(events, func(ev KernelEvent) bool {
		if ev.Kind != KernelSynFlood {
			return false
		}
		for _, l := range listeners {
			if l.Port == ev.Port && (ev.Addr == "" || ev.Addr == l.Addr) {
				return false
			}
		}
		return true
	})
}

// Series takes n full samples interval apart (counted from the start of
// the previous one). Between consecutive samples a listener watch polls the
// queues every watchEvery (0: no watch) and is attached to the later
// sample's Watch. Kernel log lines are reported once: each sample after the
// first holds only the lines logged since the previous one.
func Series(ctx context.Context, opts Options, n int, interval, watchEvery time.Duration) ([]*Sample, error) {
	if n < 1 {
		return nil, fmt.Errorf("sample series: n must be at least 1, got %d", n)
	}
	if n > 1 && interval <= 0 {
		return nil, fmt.Errorf("sample series: interval must be positive, got %s", interval)
	}
	out := make([]*Sample, 0, n)
	s, last, err := take(ctx, opts, false)
	if err != nil {
		return nil, err
	}
	out = append(out, s)
	for len(out) < n {
		opts.KmsgAfter = last
		wctx, cancel := context.WithDeadline(ctx, out[len(out)-1].Time.Add(interval))
		var w *Watch
		if watchEvery > 0 {
			w, err = WatchListeners(wctx, opts, watchEvery)
		} else {
			<-wctx.Done()
		}
		cancel()
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if err != nil {
			return out, fmt.Errorf("listener watch: %w", err)
		}
		if s, last, err = take(ctx, opts, false); err != nil {
			return out, err
		}
		s.Watch = w
		out = append(out, s)
	}
	return out, nil
}
