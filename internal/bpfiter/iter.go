// Package bpfiter reads two things through BPF iterators: which process
// holds which socket (this file), and the TCP sockets of a network
// namespace for a large census (tcp.go).
//
// The owner scan is a task_file iterator (Linux 5.8+, BTF): it walks every process's descriptor
// table in the kernel and writes one 16-byte record per descriptor: the
// socket inode (0 for anything that is not a socket), the process id (tgid)
// and the descriptor number. One read() loop replaces a getdents and a
// readlink per descriptor through /proc: about 0.5 µs per descriptor
// instead of 3 (docs/PERFORMANCE.md).
//
// What it touches: it reads /sys/kernel/btf/vmlinux and loads one program
// with bpf(2). The program only reads: it writes no map and no kernel
// memory, and is unloaded when the process exits (its link descriptor
// closes). It is the only code of the project that uses unsafe.
//
// Setting it up costs about 6 ms: the function id and nine field offsets
// come from the running kernel's BTF (btf.go reads only those), the
// program is assembled with cilium/ebpf's asm package and loaded with
// three bpf(2) calls (sys.go). Nothing is compiled, no object per kernel
// is shipped.
//
// It needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), a kernel with BTF
// and the task_file iterator. Anything missing makes Available and
// ScanOwners fail, once per process: the caller (package sample) falls back
// to /proc/PID/fd.
package bpfiter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sync"

	"github.com/cilium/ebpf/asm"
)

// RecordSize is the size of one iterator record: u64 inode, u32 tgid,
// u32 fd, little-endian as the kernel writes it on x86-64 and arm64.
const RecordSize = 16

// Record is one descriptor of one process.
type Record struct {
	// Inode is the socket's inode number, 0 when the descriptor is not
	// a socket.
	Inode uint64
	// PID is the process (thread group) id, as the initial pid
	// namespace knows it.
	PID uint32
	// FD is the descriptor number.
	FD uint32
}

// ErrPidNamespace: the iterator reports kernel (initial pid namespace)
// process ids, which are not the ones /proc shows from inside a pid
// namespace.
var ErrPidNamespace = errors.New("process ids of the BPF iterator are not this /proc's (sampler in a pid namespace)")

// Available loads and attaches the iterator program (once per process; the
// later calls return the first one's result). nil means ScanOwners can run.
func Available() error {
	_, err := loadOwnerIter()
	return err
}

// ScanOwners runs one iteration over every descriptor of every process on
// the host and calls each for each, in the kernel's order: one process's
// descriptors in a row. It fails with ErrPidNamespace, after the calls,
// when the calling process is in a pid namespace (the ids are not its
// /proc's).
func ScanOwners(each func(Record)) error {
	link, err := loadOwnerIter()
	if err != nil {
		return err
	}
	fd, err := bpfIterCreate(link)
	if err != nil {
		return fmt.Errorf("read task_file iterator: %w", err)
	}
	rd := os.NewFile(uintptr(fd), "bpf-iter:task_file")
	defer rd.Close()
	return ReadRecords(rd, os.Getpid(), each)
}

// ReadRecords decodes a stream of iterator records, read through one
// 64 KiB buffer (the records of 80,000 descriptors are 1.3 MB), and calls
// each for every record. self is the calling process's id as this /proc
// knows it: its own descriptors are always in the stream, so their absence
// means the ids are another pid namespace's (ErrPidNamespace). A stream
// that ends inside a record is an error.
func ReadRecords(r io.Reader, self int, each func(Record)) error {
	seen := false
	buf := make([]byte, 64<<10)
	have := 0
	for {
		n, err := r.Read(buf[have:])
		have += n
		whole := have - have%RecordSize
		for off := 0; off < whole; off += RecordSize {
			rec := Record{
				Inode: binary.LittleEndian.Uint64(buf[off:]),
				PID:   binary.LittleEndian.Uint32(buf[off+8:]),
				FD:    binary.LittleEndian.Uint32(buf[off+12:]),
			}
			seen = seen || int(rec.PID) == self
			each(rec)
		}
		have = copy(buf, buf[whole:have])
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read task_file iterator: %w", err)
		}
	}
	if have != 0 {
		return fmt.Errorf("read task_file iterator: %d bytes left over, not a whole %d-byte record", have, RecordSize)
	}
	if !seen {
		return ErrPidNamespace
	}
	return nil
}

// loadOwnerIter builds and attaches the iterator program once per process
// (the link's descriptor is kept for the process's life). Field offsets
// come from the running kernel's BTF, so no compiler and no per-kernel
// object are needed.
var loadOwnerIter = sync.OnceValues(attachOwnerIter)

// ownerIterFields are the kernel fields the program reads, with the size
// each load assumes; a kernel whose BTF says otherwise gets the /proc scan.
var ownerIterFields = []btfField{
	{"bpf_iter__task_file", "meta", 8}, {"bpf_iter__task_file", "task", 8},
	{"bpf_iter__task_file", "fd", 4}, {"bpf_iter__task_file", "file", 8},
	{"bpf_iter_meta", "seq", 8}, {"file", "f_inode", 8}, {"inode", "i_mode", 2},
	{"inode", "i_ino", 8}, {"task_struct", "tgid", 4},
}

func attachOwnerIter() (int, error) {
	// Only what the program needs is read from the kernel's BTF: one
	// function's id and nine field offsets (btf.go).
	spec, _ := itersBTF()
	return attachIter("sw_owners", "task_file iterator", spec, ownerIterFields, math.MaxInt16, func(offs []int16) ([]byte, error) {
		return ownerIterProgram([9]int16(offs))
	})
}

// attachIter builds and attaches one iterator program from what the
// kernel's BTF says of it: the fields' offsets, each at most limit, as
// the displacements build assembles the program with.
func attachIter(name, what string, spec iterBTF, fields []btfField, limit uint32, build func([]int16) ([]byte, error)) (int, error) {
	if !littleEndian64 {
		return -1, fmt.Errorf("%s: records are read as 64-bit little-endian (%s)", what, runtime.GOARCH)
	}
	if spec.err != nil {
		return -1, fmt.Errorf("%s: %w", what, spec.err)
	}
	offs, err := spec.displacements(fields, limit)
	if err != nil {
		return -1, err
	}
	insns, err := build(offs)
	if err != nil {
		return -1, err
	}
	return loadLink(name, insns, spec.target, what)
}

// ownerIterProgram assembles the iterator program:
//
//	r6 = ctx; skip the iterator's final call (file or task NULL);
//	record = {S_ISSOCK(inode) ? i_ino : 0, task->tgid, fd};
//	bpf_seq_write(meta->seq, &record, 16).
func ownerIterProgram(offs [9]int16) ([]byte, error) {
	offMeta, offTask, offFd, offFile, offSeq, offInode, offMode, offIno, offTgid :=
		offs[0], offs[1], offs[2], offs[3], offs[4], offs[5], offs[6], offs[7], offs[8]
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
		asm.Add.Imm(asm.R2, -RecordSize),
		asm.Mov.Imm(asm.R3, RecordSize),
		asm.FnSeqWrite.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
	// Marshal resolves the jumps to labels (WithSymbol) itself.
	var b bytes.Buffer
	if err := insns.Marshal(&b, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("BPF program: %w", err)
	}
	return b.Bytes(), nil
}
