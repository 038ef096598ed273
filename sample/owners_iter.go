package sample

import (
	"io"
	"math"
	"strconv"

	"github.com/prometheus/procfs"

	"github.com/sockwarden/sockwarden/internal/bpfiter"
)

// The fast owner scan: internal/bpfiter's task_file iterator lists every
// descriptor of every process on the host; this file turns its records
// into an ownerIndex. Owners' command, unit and limit are read from /proc
// lazily, for the sockets a census actually looks up.

// scanOwnersBPF maps every process's sockets with the iterator.
func scanOwnersBPF(procRoot string, hostFiles int) (*ownerIndex, error) {
	// The index is sized from the host's open files, an upper bound on
	// its socket descriptors: 8 bytes each, of which only those written
	// become resident (a fresh allocation's pages stay untouched until
	// used), so regrowth and its copies are avoided up to 2M descriptors.
	b := newRecordIndexer(min(max(hostFiles, 1<<10), 1<<21))
	if err := bpfiter.ScanOwners(b.add); err != nil {
		return nil, err
	}
	x := b.finish()
	if fs, err := procfs.NewFS(procRoot); err == nil {
		x.fs = &fs
	}
	return x, nil
}

// parseOwnerRecords builds the index from a stream of iterator records.
// self is the calling process's id as this /proc knows it (see
// bpfiter.ReadRecords).
func parseOwnerRecords(r io.Reader, self, sizeHint int) (*ownerIndex, error) {
	b := newRecordIndexer(sizeHint)
	if err := bpfiter.ReadRecords(r, self, b.add); err != nil {
		return nil, err
	}
	return b.finish(), nil
}

// recordIndexer builds an ownerIndex from iterator records, one at a time.
type recordIndexer struct {
	x   *ownerIndex
	fds map[int]int
	// The iterator visits one process's descriptors in a row: the
	// current process's index and count are kept at hand instead of a
	// map lookup per descriptor.
	cur, curFDs int
	curIdx      int32
}

// newRecordIndexer sizes the index from sizeHint (growing a map from
// empty doubled the parse's time; a slice regrown copies itself).
func newRecordIndexer(sizeHint int) *recordIndexer {
	return &recordIndexer{
		x:   &ownerIndex{ents: make([]uint64, 0, sizeHint), more: map[uint32][]Owner{}, byPID: map[int]int32{}},
		fds: map[int]int{}, cur: -1, curIdx: -1,
	}
}

func (b *recordIndexer) add(rec bpfiter.Record) {
	x := b.x
	if tgid := int(rec.PID); tgid != b.cur {
		b.flush()
		b.cur, b.curFDs, b.curIdx = tgid, 0, -1
		if idx, ok := x.byPID[tgid]; ok {
			b.curIdx = idx
		}
	}
	b.curFDs++
	if rec.Inode == 0 || rec.Inode > math.MaxUint32 {
		return
	}
	if b.curIdx < 0 {
		x.owners = append(x.owners, Owner{PID: b.cur})
		b.curIdx = int32(len(x.owners) - 1)
		x.byPID[b.cur] = b.curIdx
	}
	x.add(uint32(rec.Inode), b.curIdx)
}

func (b *recordIndexer) flush() {
	if b.cur >= 0 {
		b.fds[b.cur] += b.curFDs
	}
}

// finish gives every owner its descriptor count; owners are filled lazily.
func (b *recordIndexer) finish() *ownerIndex {
	b.flush()
	x := b.x
	for i := range x.owners {
		x.owners[i].FDs = b.fds[x.owners[i].PID]
	}
	x.filled = make([]bool, len(x.owners))
	x.seal()
	return x
}

// openFiles returns the host's allocated file handles from the value of
// fs.file-nr ("allocated free max"), 0 when absent or unreadable. They tell
// whether the BPF iterator, whose cost grows with every descriptor on the
// host, is worth it (procCheaper), and size its index.
func openFiles(fileNr string) int {
	n, err := strconv.Atoi(firstField(fileNr))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
