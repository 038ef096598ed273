package bpfiter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The three bpf(2) commands the iterators need: load the program,
// link it to the task_file iterator, and open one iteration. A general
// loader (cilium/ebpf's) probes kernel features and needs the decoded BTF
// of the whole kernel for the attach target; these take the target's BTF id
// from btf.go and cost three system calls (docs/PERFORMANCE.md).

// littleEndian64: the records and the program's loads assume a 64-bit
// little-endian kernel (x86-64, arm64, ...).
var littleEndian64 = unsafe.Sizeof(uintptr(0)) == 8 && binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// progLoadAttr is union bpf_attr's BPF_PROG_LOAD member up to
// attach_btf_obj_fd (include/uapi/linux/bpf.h); the kernel zero-fills the
// rest.
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [unix.BPF_OBJ_NAME_LEN]byte
	progIfindex        uint32
	expectedAttachType uint32
	progBTFFd          uint32
	funcInfoRecSize    uint32
	funcInfo           uint64
	funcInfoCnt        uint32
	lineInfoRecSize    uint32
	lineInfo           uint64
	lineInfoCnt        uint32
	attachBTFID        uint32
	attachBTFObjFd     uint32
	_                  uint32
}

// linkCreateAttr is BPF_LINK_CREATE's member with an empty iter_info.
type linkCreateAttr struct {
	progFd      uint32
	targetFd    uint32
	attachType  uint32
	flags       uint32
	iterInfo    uint64
	iterInfoLen uint32
	_           uint32
}

// iterCreateAttr is BPF_ITER_CREATE's member.
type iterCreateAttr struct {
	linkFd uint32
	flags  uint32
}

func bpfCall(cmd uintptr, attr unsafe.Pointer, size uintptr) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// bpfProgLoad loads a BPF_PROG_TYPE_TRACING program named name for
// BPF_TRACE_ITER, attached to the vmlinux function with BTF id target. When the kernel
// refuses it, the load is retried with the verifier's log, which goes into
// the error.
func bpfProgLoad(name string, insns []byte, target uint32) (int, error) {
	license := []byte("GPL\x00")
	attr := progLoadAttr{
		progType:           unix.BPF_PROG_TYPE_TRACING,
		insnCnt:            uint32(len(insns) / 8),
		insns:              uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:            uint64(uintptr(unsafe.Pointer(&license[0]))),
		expectedAttachType: unix.BPF_TRACE_ITER,
		attachBTFID:        target,
	}
	copy(attr.progName[:], name)
	fd, err := bpfCall(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil && !errors.Is(err, unix.EPERM) {
		log := make([]byte, 64<<10)
		attr.logLevel, attr.logSize = 1, uint32(len(log))
		attr.logBuf = uint64(uintptr(unsafe.Pointer(&log[0])))
		if fd2, err2 := bpfCall(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err2 == nil {
			fd, err = fd2, nil // a load that only failed once
		} else if n := bytes.IndexByte(log, 0); n > 0 {
			err = fmt.Errorf("%w: verifier: %s", err, bytes.TrimSpace(log[:n]))
		}
		runtime.KeepAlive(log)
	}
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	return fd, err
}

// bpfLinkCreate links an iterator program; the link's descriptor keeps it
// loaded until closed (or the process exits).
func bpfLinkCreate(prog int) (int, error) {
	attr := linkCreateAttr{progFd: uint32(prog), attachType: unix.BPF_TRACE_ITER}
	return bpfCall(unix.BPF_LINK_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// bpfIterCreate opens one iteration: reading the descriptor runs the
// program over every (task, file) pair until EOF.
func bpfIterCreate(link int) (int, error) {
	attr := iterCreateAttr{linkFd: uint32(link)}
	return bpfCall(unix.BPF_ITER_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// loadLink loads an iterator program for target and attaches it, returning
// the link; what names the iterator in errors. The link holds its own
// reference to the program, so the program's descriptor is closed here.
func loadLink(name string, insns []byte, target uint32, what string) (int, error) {
	prog, err := bpfProgLoad(name, insns, target)
	if err != nil {
		return -1, fmt.Errorf("load %s: %w", what, err)
	}
	defer unix.Close(prog)
	link, err := bpfLinkCreate(prog)
	if err != nil {
		return -1, fmt.Errorf("attach %s: %w", what, err)
	}
	return link, nil
}
