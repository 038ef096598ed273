package sample

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// ownerIndex maps socket inodes to the processes holding a descriptor for
// them, as `ss -p` does: every /proc/PID/fd/N link reading "socket:[INODE]".
type ownerIndex struct {
	owners []Owner
	// ents holds one (inode<<32 | owner index) per socket descriptor
	// found; seal sorts it and keeps one entry per inode, whose owner
	// index is sharedInode for the few inodes shared by several
	// processes (after fork), whose owner list is in more. Inodes are
	// 32-bit: socket inodes come from get_next_ino(), and sock_diag
	// reports them as u32. 8 bytes a descriptor, where a
	// map[uint32]int32 took 18 to 28 with its growth (9.4 + 4.7 MB
	// allocated for 500,000 sockets, docs/PERFORMANCE.md).
	ents []uint64
	// dir[k] is the first entry whose inode minus lo, shifted right by
	// shift, is at least k: a lookup searches one bucket of a few
	// entries, not the whole slice (a binary search of 500,000 entries
	// missed the cache at every step and took seven times the map's
	// time).
	dir   []uint32
	lo    uint32
	shift uint
	more  map[uint32][]Owner

	// Lazy details (the BPF scan indexes every process on the host and
	// reads comm, unit and limit only for the owners a census looks up):
	// filled is nil when every owner is already complete.
	fs     *procfs.FS
	filled []bool
	byPID  map[int]int32
}

// find returns the owner index of a socket inode: an index into owners,
// or sharedInode (see more). The index must be sealed.
func (x *ownerIndex) find(ino uint32) (int32, bool) {
	if len(x.ents) == 0 || ino < x.lo {
		return 0, false
	}
	k := uint64(ino-x.lo) >> x.shift
	if k >= uint64(len(x.dir)-1) {
		return 0, false
	}
	b := x.ents[x.dir[k]:x.dir[k+1]]
	if len(b) > 16 {
		b = narrow(b, ino)
	}
	// A bucket holds about four entries: a scan of them beats a
	// binary search's calls and unpredictable branches (the join of
	// 500,000 sockets: BenchmarkOwnerJoin).
	for _, e := range b {
		if h := uint32(e >> 32); h >= ino {
			if h == ino {
				return int32(uint32(e)), true
			}
			break
		}
	}
	return 0, false
}

// narrow returns the part of a crowded bucket that may hold ino, at most
// 16 entries. Buckets are crowded when a few inodes far from the others
// (an old daemon's sockets, a new one's) widen them over a clump of
// nearly consecutive inodes (the sockets of one busy process, made in a
// burst): the entry's place is guessed from its value, as in a dictionary
// (interpolation search: one or two probes in a clump, where a binary
// search of a 1,000-entry bucket took ten), and a binary search finishes
// the job if four guesses were not enough.
func narrow(b []uint64, ino uint32) []uint64 {
	key := func(i int) uint32 { return uint32(b[i] >> 32) }
	lo, hi := 0, len(b)-1
	for range 4 {
		if lo > hi || ino < key(lo) || ino > key(hi) {
			return nil
		}
		if hi-lo < 16 {
			return b[lo : hi+1]
		}
		// Inodes are unique in the index: key(hi) > key(lo).
		g := lo + int(uint64(ino-key(lo))*uint64(hi-lo)/uint64(key(hi)-key(lo)))
		switch k := key(g); {
		case k == ino:
			return b[g : g+1]
		case k < ino:
			lo = g + 1
		default:
			hi = g - 1
		}
	}
	if lo > hi {
		return nil
	}
	b = b[lo : hi+1]
	i, _ := slices.BinarySearchFunc(b, ino, func(e uint64, ino uint32) int { return cmp.Compare(uint32(e>>32), ino) })
	return b[i:min(i+1, len(b))]
}

// lookup returns the owners of a socket inode (nil when none or unknown).
// The slice is shared: callers must not modify it. Not safe for concurrent
// use (it fills owners' details on first use).
func (x *ownerIndex) lookup(inode uint64) []Owner {
	if x == nil || inode == 0 || inode > math.MaxUint32 {
		return nil
	}
	i, ok := x.find(uint32(inode))
	if !ok {
		return nil
	}
	if i == sharedInode {
		o := x.more[uint32(inode)]
		if x.filled != nil {
			for j := range o {
				if i, ok := x.byPID[o[j].PID]; ok {
					o[j] = x.fill(i)
				}
			}
		}
		return o
	}
	if x.filled != nil {
		x.fill(i)
	}
	return x.owners[i : i+1 : i+1]
}

// fill returns owners[i], completed with command, unit and limit on first
// use when the index fills lazily (the BPF iterator's).
func (x *ownerIndex) fill(i int32) Owner {
	if x.filled != nil && !x.filled[i] {
		x.filled[i] = true
		if x.fs != nil {
			fillOwner(*x.fs, &x.owners[i])
		}
	}
	return x.owners[i]
}

// ownerWorkers is how many goroutines read /proc/PID/fd at once.
var ownerWorkers = 2

// ownerScan says which processes scanOwners looks at.
type ownerScan struct {
	// netns, when not 0, limits the scan to processes whose network
	// namespace has this inode; the others are returned as skipped.
	netns uint64
	// pids, when not nil, is the list of processes to scan instead of
	// every /proc entry.
	pids []int
	// only, when not nil, keeps only these socket inodes.
	only map[uint64]bool
}

// procSockets is what one process holds.
type procSockets struct {
	pid    int
	fds    int
	inodes []uint64
}

// scanOwners maps the sockets of every process (see scanOwnersScoped).
func scanOwners(procRoot string) (*ownerIndex, *Missing, error) {
	x, _, miss, err := scanOwnersScoped(procRoot, ownerScan{})
	return x, miss, err
}

// scanOwnersScoped walks procRoot/[0-9]*/fd once, on up to two workers.
// Processes whose descriptors cannot be read (no root) are counted and
// reported as one Missing entry; processes that exit during the walk are
// skipped.
func scanOwnersScoped(procRoot string, sc ownerScan) (x *ownerIndex, skipped []int, miss *Missing, err error) {
	pids, skipped, err := scopePIDs(procRoot, sc)
	if err != nil {
		return nil, nil, nil, err
	}
	workers := max(1, min(ownerWorkers, runtime.NumCPU(), len(pids)))
	results := make(chan procSockets, 64)
	var denied deniedPIDs
	var wg sync.WaitGroup
	// Workers take the next process from a shared counter: a few
	// processes often hold most descriptors, and a fixed split would leave
	// one worker with them.
	var next atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			link := make([]byte, 64)
			for i := int(next.Add(1) - 1); i < len(pids); i = int(next.Add(1) - 1) {
				ps, err := scanProcess(procRoot, pids[i], link, sc.only)
				if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
					denied.add(pids[i])
				}
				if len(ps.inodes) > 0 {
					results <- ps
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	x = &ownerIndex{more: map[uint32][]Owner{}}
	for ps := range results {
		x.owners = append(x.owners, Owner{PID: ps.pid, FDs: ps.fds})
		idx := int32(len(x.owners) - 1)
		for _, ino := range ps.inodes {
			if ino <= math.MaxUint32 {
				x.add(uint32(ino), idx)
			}
		}
	}
	x.seal()
	if fs, err := procfs.NewFS(procRoot); err == nil {
		for i := range x.owners {
			fillOwner(fs, &x.owners[i])
		}
	}
	completeShared(x)
	if len(denied.pids) > 0 {
		miss = &Missing{Source: "process owners", Reason: denied.reason(procRoot, os.Geteuid() == 0)}
	}
	return x, skipped, miss, nil
}

// deniedPIDs collects, from the scan's workers, the processes whose
// descriptors could not be read.
type deniedPIDs struct {
	mu   sync.Mutex
	pids []int
}

func (d *deniedPIDs) add(pid int) {
	d.mu.Lock()
	d.pids = append(d.pids, pid)
	d.mu.Unlock()
}

// reason says how many processes could not be read and names the first
// few, so that an operator knows whose sockets show no owner. As root the
// refusal is the kernel's ptrace check (a process made non-dumpable, a
// security module, CAP_SYS_PTRACE dropped), not a missing privilege that
// running as root would give.
func (d *deniedPIDs) reason(procRoot string, root bool) string {
	slices.Sort(d.pids)
	fs, fsErr := procfs.NewFS(procRoot)
	var names []string
	for _, pid := range d.pids[:min(len(d.pids), 3)] {
		name := strconv.Itoa(pid)
		if fsErr == nil {
			if p, err := fs.Proc(pid); err == nil {
				if c, err := p.Comm(); err == nil {
					name += " (" + c + ")"
				}
			}
		}
		names = append(names, name)
	}
	if len(d.pids) > len(names) {
		names = append(names, fmt.Sprintf("%d more", len(d.pids)-len(names)))
	}
	what, whose := "1 process, pid ", "its"
	if len(d.pids) > 1 {
		what, whose = strconv.Itoa(len(d.pids))+" processes, pids ", "their"
	}
	why := "run as root"
	if root {
		why = "refused to root too, by the kernel's ptrace check: a non-dumpable process, a security module, or CAP_SYS_PTRACE not granted"
	}
	return fmt.Sprintf("permission denied reading /proc/PID/fd of %s%s: %s sockets show no owner (%s)", what, strings.Join(names, ", "), whose, why)
}

// scopePIDs lists the processes a scan reads: sc.pids, or every process
// of procRoot; with sc.netns, those of other namespaces are left out and
// returned as skipped.
func scopePIDs(procRoot string, sc ownerScan) (pids, skipped []int, err error) {
	pids = sc.pids
	if pids == nil {
		d, err := os.Open(procRoot)
		if err != nil {
			return nil, nil, procNoData(err)
		}
		names, _ := d.Readdirnames(-1)
		d.Close()
		pids = make([]int, 0, len(names))
		for _, name := range names {
			if pid, err := strconv.Atoi(name); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
	}
	if sc.netns == 0 {
		return pids, nil, nil
	}
	in := pids[:0:0]
	for _, pid := range pids {
		if ino, ok := procNetns(procRoot, pid); ok && ino != sc.netns {
			skipped = append(skipped, pid)
			continue
		}
		in = append(in, pid)
	}
	return in, skipped, nil
}

// completeShared gives the owners of shared inodes their command and
// limits: they were recorded before those were known, in the order the
// workers happened to finish; they are sorted by pid (as ss lists them).
func completeShared(x *ownerIndex) {
	for ino, list := range x.more {
		slices.SortFunc(list, func(a, b Owner) int { return cmp.Compare(a.PID, b.PID) })
		for j := range list {
			for i := range x.owners {
				if x.owners[i].PID == list[j].PID {
					list[j] = x.owners[i]
					break
				}
			}
		}
		x.more[ino] = list
	}
}

// procNetns returns the inode of a process's network namespace.
func procNetns(procRoot string, pid int) (uint64, bool) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"), &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

// scanProcess lists the socket descriptors of one process.
func scanProcess(procRoot string, pid int, link []byte, only map[uint64]bool) (procSockets, error) {
	ps := procSockets{pid: pid}
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ps, err
	}
	f := os.NewFile(uintptr(dfd), dir)
	defer f.Close()
	// The directory may open while each link is refused: reading a link
	// takes the kernel's ptrace check, listing the directory does not.
	// Such a process is denied, not one without sockets.
	var denied error
	for {
		names, err := f.Readdirnames(1024)
		for _, name := range names {
			ps.fds++
			n, err := unix.Readlinkat(dfd, name, link)
			if err != nil {
				if denied == nil && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
					denied = fmt.Errorf("%s/%s: %w", dir, name, err)
				}
				continue
			}
			if n < 10 || n >= len(link) || string(link[:8]) != "socket:[" || link[n-1] != ']' {
				continue
			}
			ino, err := strconv.ParseUint(string(link[8:n-1]), 10, 64)
			if err != nil || (only != nil && !only[ino]) {
				continue
			}
			ps.inodes = append(ps.inodes, ino)
		}
		if err != nil {
			break
		}
	}
	return ps, denied
}

func (x *ownerIndex) add(ino uint32, idx int32) {
	x.ents = append(x.ents, uint64(ino)<<32|uint64(uint32(idx)))
}

// seal sorts the entries added, keeps one per inode (a process holding a
// socket twice owns it once; an inode of several processes points to
// more, its owners in the order of their index) and builds the
// directory. The iterator lists each process's descriptors in order,
// whose inodes mostly rise with them: the sort is cheap next to the
// map inserts it replaced.
func (x *ownerIndex) seal() {
	slices.Sort(x.ents)
	out := x.ents[:0]
	for i := 0; i < len(x.ents); {
		ino := uint32(x.ents[i] >> 32)
		j := i + 1
		for j < len(x.ents) && uint32(x.ents[j]>>32) == ino {
			j++
		}
		e := x.ents[i]
		if uint32(x.ents[j-1]) != uint32(e) { // several owners
			var list []Owner
			for _, f := range x.ents[i:j] {
				if n := len(list); n == 0 || list[n-1].PID != x.owners[uint32(f)].PID {
					list = append(list, Owner{PID: x.owners[uint32(f)].PID})
				}
			}
			if len(list) > 1 {
				x.more[ino] = list
				e = uint64(ino)<<32 | math.MaxUint32 // sharedInode as a uint32
			}
		}
		out = append(out, e)
		i = j
	}
	x.ents = out
	x.buildDir()
}

// buildDir cuts the inodes' range into about len(ents)/4 buckets of equal
// width (a power of two).
func (x *ownerIndex) buildDir() {
	x.dir, x.lo, x.shift = nil, 0, 0
	if len(x.ents) == 0 {
		return
	}
	x.lo = uint32(x.ents[0] >> 32)
	span := uint64(uint32(x.ents[len(x.ents)-1]>>32) - x.lo)
	want := uint64(max(len(x.ents)/4, 1))
	for span>>x.shift >= want {
		x.shift++
	}
	n := span>>x.shift + 1
	x.dir = make([]uint32, n+1)
	i := 0
	for k := range n {
		for i < len(x.ents) && uint64(uint32(x.ents[i]>>32)-x.lo)>>x.shift < k {
			i++
		}
		x.dir[k] = uint32(i)
	}
	x.dir[n] = uint32(len(x.ents))
}

// sharedInode as an entry's owner index sends a lookup to ownerIndex.more.
const sharedInode = -1

// fillOwner adds the command, systemd unit and descriptor limit of a
// process; what cannot be read stays empty.
func fillOwner(fs procfs.FS, o *Owner) {
	p, err := fs.Proc(o.PID)
	if err != nil {
		return
	}
	if c, err := p.Comm(); err == nil {
		o.Comm = c
	}
	if l, err := p.Limits(); err == nil {
		o.FDLimit = l.OpenFiles
	}
	if cg, err := p.Cgroups(); err == nil {
		o.Unit = unitOf(cg)
	}
}

// unitOf returns the systemd unit named by a process's cgroup path: the
// deepest ".service" component, else the deepest ".scope" one
// ("0::/system.slice/nginx.service" -> "nginx.service"). The unified (v2)
// hierarchy or the v1 "name=systemd" one is used.
func unitOf(cgs []procfs.Cgroup) string {
	path := ""
	for _, c := range cgs {
		if c.HierarchyID == 0 {
			path = c.Path
			break
		}
		for _, ctl := range c.Controllers {
			if ctl == "name=systemd" {
				path = c.Path
			}
		}
	}
	return unitFromPath(path)
}

func unitFromPath(path string) string {
	parts := strings.Split(path, "/")
	for _, suffix := range []string{".service", ".scope"} {
		for i := len(parts) - 1; i >= 0; i-- {
			if strings.HasSuffix(parts[i], suffix) && len(parts[i]) > len(suffix) {
				return parts[i]
			}
		}
	}
	return ""
}
