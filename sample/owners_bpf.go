package sample

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/prometheus/procfs"
)

// The fast owner scan: a BPF task_file iterator (Linux 5.8+, BTF) walks
// every process's descriptor table in the kernel and writes one 16-byte
// record per descriptor: the socket inode (0 for anything that is not a
// socket), the process id (tgid) and the descriptor number. One read()
// loop replaces a getdents and a readlink per descriptor through /proc:
// about 5 ms instead of 250 ms for 80,000 socket descriptors here
// (docs/PERFORMANCE.md). The program only reads: it writes no map, no
// kernel memory, and is unloaded when the process exits.
//
// It needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), a kernel with BTF
// (/sys/kernel/btf/vmlinux) and the task_file iterator. Anything missing
// makes it fail once, and the census uses /proc as before
// (sample.owner_scan: auto); `proc` never tries it.

// bpfRecordSize is the size of one iterator record: u64 inode, u32 tgid,
// u32 fd, little-endian as the kernel writes it on x86-64 and arm64.
const bpfRecordSize = 16

var bpfIter struct {
	once sync.Once
	link *link.Iter
	err  error
}

// loadOwnerIter builds and attaches the iterator program once per process.
// Field offsets come from the running kernel's BTF, so no compiler and no
// per-kernel object are needed.
func loadOwnerIter() (*link.Iter, error) {
	bpfIter.once.Do(func() {
		bpfIter.link, bpfIter.err = attachOwnerIter()
	})
	return bpfIter.link, bpfIter.err
}

func attachOwnerIter() (*link.Iter, error) {
	// One decoded copy of the kernel's BTF serves both the field offsets
	// and the program load (decoding it is most of the ~60 ms set-up).
	cache := btf.NewCache()
	spec, err := cache.Kernel()
	if err != nil {
		return nil, fmt.Errorf("kernel BTF: %w", err)
	}
	off := func(typ, field string) (int16, error) {
		var s *btf.Struct
		if err := spec.TypeByName(typ, &s); err != nil {
			return 0, fmt.Errorf("BTF %s: %w", typ, err)
		}
		if o, ok := memberOffset(s.Members, field); ok {
			return int16(o), nil
		}
		return 0, fmt.Errorf("BTF %s has no field %s", typ, field)
	}
	var offs [9]int16
	for i, f := range [][2]string{
		{"bpf_iter__task_file", "meta"}, {"bpf_iter__task_file", "task"},
		{"bpf_iter__task_file", "fd"}, {"bpf_iter__task_file", "file"},
		{"bpf_iter_meta", "seq"}, {"file", "f_inode"}, {"inode", "i_mode"},
		{"inode", "i_ino"}, {"task_struct", "tgid"},
	} {
		if offs[i], err = off(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	offMeta, offTask, offFd, offFile, offSeq, offInode, offMode, offIno, offTgid :=
		offs[0], offs[1], offs[2], offs[3], offs[4], offs[5], offs[6], offs[7], offs[8]

	// r6 = ctx; skip the iterator's final call (file or task NULL);
	// record = {S_ISSOCK(inode) ? i_ino : 0, task->tgid, fd};
	// bpf_seq_write(meta->seq, &record, 16).
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, offFile, asm.DWord),
		asm.JEq.Imm(asm.R2, 0, "out"),
		asm.LoadMem(asm.R3, asm.R6, offTask, asm.DWord),
		asm.JEq.Imm(asm.R3, 0, "out"),
		asm.Mov.Imm(asm.R7, 0),
		asm.LoadMem(asm.R4, asm.R2, offInode, asm.DWord),
		asm.JEq.Imm(asm.R4, 0, "write"),
		asm.LoadMem(asm.R5, asm.R4, offMode, asm.Half),
		asm.And.Imm(asm.R5, 0xF000),
		asm.JNE.Imm(asm.R5, 0xC000, "write"), // S_IFSOCK
		asm.LoadMem(asm.R7, asm.R4, offIno, asm.DWord),
		asm.StoreMem(asm.RFP, -16, asm.R7, asm.DWord).WithSymbol("write"),
		asm.LoadMem(asm.R8, asm.R3, offTgid, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R8, asm.Word),
		asm.LoadMem(asm.R9, asm.R6, offFd, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R9, asm.Word),
		asm.LoadMem(asm.R1, asm.R6, offMeta, asm.DWord),
		asm.LoadMem(asm.R1, asm.R1, offSeq, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -bpfRecordSize),
		asm.Mov.Imm(asm.R3, bpfRecordSize),
		asm.FnSeqWrite.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{
		Programs: map[string]*ebpf.ProgramSpec{"sw_owners": {
			Name: "sw_owners", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceIter,
			AttachTo: "task_file", License: "GPL", Instructions: insns,
		}},
	}, ebpf.CollectionOptions{Cache: cache})
	if err != nil {
		return nil, fmt.Errorf("load task_file iterator: %w", err)
	}
	it, err := link.AttachIter(link.IterOptions{Program: coll.Programs["sw_owners"]})
	// The link holds its own reference to the program.
	coll.Close()
	if err != nil {
		return nil, fmt.Errorf("attach task_file iterator: %w", err)
	}
	return it, nil
}

// memberOffset finds a field by name, looking into anonymous unions and
// structs as C does.
func memberOffset(ms []btf.Member, name string) (uint32, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m.Offset.Bytes(), true
		}
	}
	for _, m := range ms {
		if m.Name != "" {
			continue
		}
		var inner []btf.Member
		switch t := btf.UnderlyingType(m.Type).(type) {
		case *btf.Union:
			inner = t.Members
		case *btf.Struct:
			inner = t.Members
		}
		if o, ok := memberOffset(inner, name); ok {
			return m.Offset.Bytes() + o, true
		}
	}
	return 0, false
}

// errPidNamespace: the iterator reports kernel (initial pid namespace)
// process ids, which are not the ones /proc shows from inside a pid
// namespace.
var errPidNamespace = errors.New("process ids of the BPF iterator are not this /proc's (sampler in a pid namespace)")

// scanOwnersBPF maps every process's sockets with the iterator. Owners'
// command, unit and limit are read from procRoot lazily, for the sockets a
// census actually looks up.
func scanOwnersBPF(procRoot string) (*ownerIndex, error) {
	it, err := loadOwnerIter()
	if err != nil {
		return nil, err
	}
	rd, err := it.Open()
	if err != nil {
		return nil, fmt.Errorf("read task_file iterator: %w", err)
	}
	defer rd.Close()
	x, err := parseOwnerRecords(rd, os.Getpid())
	if err != nil {
		return nil, err
	}
	if fs, err := procfs.NewFS(procRoot); err == nil {
		x.fs = &fs
	}
	return x, nil
}

// parseOwnerRecords builds the index from iterator records. self is the
// calling process's id as this /proc knows it: its own descriptors are
// always in the stream, so their absence means the ids are another pid
// namespace's.
func parseOwnerRecords(r io.Reader, self int) (*ownerIndex, error) {
	// The iterator visits one process's descriptors in a row: keep the
	// current process's index and count at hand instead of a map lookup
	// per descriptor, and size the inode map from the stream's length.
	buf, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read task_file iterator: %w", err)
	}
	if len(buf)%bpfRecordSize != 0 {
		return nil, fmt.Errorf("read task_file iterator: %d bytes is not a whole number of %d-byte records", len(buf), bpfRecordSize)
	}
	x := &ownerIndex{one: make(map[uint64]int32, len(buf)/bpfRecordSize), more: map[uint64][]Owner{}, byPID: map[int]int32{}}
	fds := map[int]int{}
	cur, curFDs, curIdx := -1, 0, int32(-1)
	flush := func() {
		if cur >= 0 {
			fds[cur] += curFDs
		}
	}
	for off := 0; off < len(buf); off += bpfRecordSize {
		rec := buf[off : off+bpfRecordSize]
		ino := binary.LittleEndian.Uint64(rec[0:])
		tgid := int(binary.LittleEndian.Uint32(rec[8:]))
		if tgid != cur {
			flush()
			cur, curFDs, curIdx = tgid, 0, -1
			if idx, ok := x.byPID[tgid]; ok {
				curIdx = idx
			}
		}
		curFDs++
		if ino == 0 {
			continue
		}
		if curIdx < 0 {
			x.owners = append(x.owners, Owner{PID: tgid})
			curIdx = int32(len(x.owners) - 1)
			x.byPID[tgid] = curIdx
		}
		x.add(ino, curIdx)
	}
	flush()
	if _, ok := fds[self]; !ok {
		return nil, errPidNamespace
	}
	for i := range x.owners {
		x.owners[i].FDs = fds[x.owners[i].PID]
	}
	x.filled = make([]bool, len(x.owners))
	return x, nil
}
