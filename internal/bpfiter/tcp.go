package bpfiter

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The census iterator: a tcp iterator (Linux 5.9+) that writes, for every
// TCP socket of the calling thread's network namespace except listeners,
// the fields a census reads and nothing else: family, state, ports, inode
// and addresses. sock_diag builds a netlink message per socket with the
// queues, the cgroup id, the socket options, the mark and more, and the
// reader decodes them: for 500,000 established sockets the kernel's side
// of a sock_diag dump took about 450 ms here, this iteration about 270 ms
// (docs/PERFORMANCE.md). Listeners are left to sock_diag: the census needs
// their queues and IPV6_V6ONLY, and there are few of them.
//
// The walk is the kernel's (bpf_iter_tcp): the listening hash, then the
// established hash bucket by bucket, the order in which sock_diag dumps
// them, TIME-WAIT and request sockets included. The inode comes from
// sock.sk_ino, which kernels keep since 6.17 (sock_diag reads the same
// field there); an older kernel makes TCPAvailable fail and the caller
// dumps through sock_diag.

// TCP record layout: a 12-byte header (u8 family, u8 state, u16 local
// port, u16 remote port, u16 zero, u32 inode; native byte order but for
// the remote port, in network order as the kernel keeps it), then the
// local and the remote address: 4 bytes each for AF_INET, 16 for AF_INET6.
const (
	tcpHeaderSize = 12
	tcpRecord4    = tcpHeaderSize + 8
	tcpRecord6    = tcpHeaderSize + 32
)

// TCPSocket is one socket of a tcp iteration.
type TCPSocket struct {
	// Family is unix.AF_INET or unix.AF_INET6.
	Family uint8
	// State is the kernel's TCP state as sock_diag reports it: the
	// sub-state (TIME_WAIT or FIN_WAIT2) of a TIME-WAIT socket, 12
	// (TCP_NEW_SYN_RECV) for a request socket.
	State uint8
	// SPort and DPort are the local and remote ports.
	SPort, DPort uint16
	// Inode is the socket's inode, 0 for TIME-WAIT and request sockets
	// and for sockets without a file (orphans).
	Inode uint32
	// Src and Dst are the local and remote addresses; an AF_INET one is
	// in the first 4 bytes.
	Src, Dst [16]byte
}

// TCPAvailable loads and attaches the census iterator (once per process;
// later calls return the first one's result). nil means OpenTCP can run.
func TCPAvailable() error {
	_, err := loadTCPIter()
	return err
}

// OpenTCP starts one iteration over the TCP sockets of the calling
// thread's network namespace (the namespace is fixed when the iteration
// is created: enter it first, read anywhere). Read the stream with
// ReadTCP; close it when done.
func OpenTCP() (io.ReadCloser, error) {
	link, err := loadTCPIter()
	if err != nil {
		return nil, err
	}
	fd, err := bpfIterCreate(link)
	if err != nil {
		return nil, fmt.Errorf("open tcp iterator: %w", err)
	}
	return os.NewFile(uintptr(fd), "bpf-iter:tcp"), nil
}

// ReadTCP decodes a stream of census records through one 64 KiB buffer
// and calls each for every socket. The TCPSocket is reused: each must
// copy what it keeps. A stream that ends inside a record, or a record of
// an unknown family, is an error.
func ReadTCP(r io.Reader, each func(*TCPSocket)) error {
	buf := make([]byte, 64<<10)
	var sk TCPSocket
	have := 0
	for {
		n, err := r.Read(buf[have:])
		have += n
		off := 0
		for have-off >= tcpHeaderSize {
			b := buf[off:have]
			size := tcpRecord4
			switch b[0] {
			case unix.AF_INET:
			case unix.AF_INET6:
				size = tcpRecord6
			default:
				return fmt.Errorf("read tcp iterator: record of address family %d", b[0])
			}
			if len(b) < size {
				break
			}
			sk.Family, sk.State = b[0], b[1]
			sk.SPort = binary.NativeEndian.Uint16(b[2:4])
			sk.DPort = binary.BigEndian.Uint16(b[4:6])
			sk.Inode = binary.NativeEndian.Uint32(b[8:12])
			if size == tcpRecord4 {
				sk.Src, sk.Dst = [16]byte{}, [16]byte{}
				copy(sk.Src[:4], b[12:16])
				copy(sk.Dst[:4], b[16:20])
			} else {
				sk.Src, sk.Dst = [16]byte(b[12:28]), [16]byte(b[28:44])
			}
			each(&sk)
			off += size
		}
		have = copy(buf, buf[off:have])
		if err == io.EOF || (n == 0 && err == nil) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tcp iterator: %w", err)
		}
	}
	if have != 0 {
		return fmt.Errorf("read tcp iterator: %d bytes left over, not a whole record", have)
	}
	return nil
}

// loadTCPIter builds and attaches the census program once per process.
var loadTCPIter = sync.OnceValues(attachTCPIter)

// tcpIterFields are the kernel fields the census program reads, with the
// size each load assumes. The last four (size 0) must be at offset 0 (a tcp_sock
// starts with its sock, a tcp_timewait_sock with its inet_timewait_sock):
// the program reads sk_ino and tw_substate through the pointers the
// kernel's casting helpers return.
var tcpIterFields = []btfField{
	{"bpf_iter__tcp", "meta", 8}, {"bpf_iter__tcp", "sk_common", 8}, {"bpf_iter_meta", "seq", 8},
	{"sock_common", "skc_family", 2}, {"sock_common", "skc_state", 1},
	{"sock_common", "skc_num", 2}, {"sock_common", "skc_dport", 2},
	{"sock_common", "skc_rcv_saddr", 4}, {"sock_common", "skc_daddr", 4},
	{"sock_common", "skc_v6_rcv_saddr", 16}, {"sock_common", "skc_v6_daddr", 16},
	{"sock", "sk_ino", 8}, {"inet_timewait_sock", "tw_substate", 1},
	{"tcp_sock", "inet_conn", 0}, {"inet_connection_sock", "icsk_inet", 0},
	{"inet_sock", "sk", 0}, {"tcp_timewait_sock", "tw_sk", 0},
}

func attachTCPIter() (int, error) {
	_, spec := itersBTF()
	// 1<<14, not MaxInt16: the program adds up to 12 to the IPv6
	// addresses' offsets.
	return attachIter("sw_tcp", "tcp iterator", spec, tcpIterFields, 1<<14, func(offs []int16) ([]byte, error) {
		return tcpIterProgram([13]int16(offs))
	})
}

// tcpIterProgram assembles the census program. In C:
//
//	sk = ctx->sk_common; if (!sk || sk->skc_state == TCP_LISTEN) return 0;
//	rec = {family, state, skc_num, skc_dport, 0, inode, addresses};
//	state: tw_substate for TCP_TIME_WAIT (bpf_skc_to_tcp_timewait_sock);
//	inode: sk_ino of a full socket (bpf_skc_to_tcp_sock), else 0;
//	bpf_seq_write(ctx->meta->seq, &rec, family == AF_INET6 ? 44 : 20).
//
// The record is built on the stack at fp-48.
func tcpIterProgram(offs [13]int16) ([]byte, error) {
	offMeta, offSk, offSeq, offFamily, offState, offNum, offDport,
		offSaddr, offDaddr, offV6Saddr, offV6Daddr, offIno, offSubstate :=
		offs[0], offs[1], offs[2], offs[3], offs[4], offs[5], offs[6], offs[7], offs[8], offs[9], offs[10], offs[11], offs[12]
	const rec = -48
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, offSk, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, "out"),
		asm.LoadMem(asm.R8, asm.R7, offState, asm.Byte),
		asm.JEq.Imm(asm.R8, 10, "out"), // TCP_LISTEN: sock_diag's
		asm.LoadMem(asm.R9, asm.R7, offFamily, asm.Half),
		asm.LoadMem(asm.R2, asm.R7, offNum, asm.Half),
		asm.StoreMem(asm.RFP, rec+2, asm.R2, asm.Half),
		asm.LoadMem(asm.R2, asm.R7, offDport, asm.Half),
		asm.StoreMem(asm.RFP, rec+4, asm.R2, asm.Half),
		asm.StoreImm(asm.RFP, rec+6, 0, asm.Half),
		asm.StoreImm(asm.RFP, rec+8, 0, asm.Word),
		asm.JEq.Imm(asm.R8, 12, "addrs"), // TCP_NEW_SYN_RECV: no inode
		asm.JNE.Imm(asm.R8, 6, "full"),   // TCP_TIME_WAIT: its sub-state
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.FnSkcToTcpTimewaitSock.Call(),
		asm.JEq.Imm(asm.R0, 0, "addrs"),
		asm.LoadMem(asm.R8, asm.R0, offSubstate, asm.Byte),
		asm.Ja.Label("addrs"),
		asm.Mov.Reg(asm.R1, asm.R7).WithSymbol("full"),
		asm.FnSkcToTcpSock.Call(),
		asm.JEq.Imm(asm.R0, 0, "addrs"),
		asm.LoadMem(asm.R2, asm.R0, offIno, asm.DWord),
		asm.StoreMem(asm.RFP, rec+8, asm.R2, asm.Word),
		asm.StoreMem(asm.RFP, rec, asm.R9, asm.Byte).WithSymbol("addrs"),
		asm.StoreMem(asm.RFP, rec+1, asm.R8, asm.Byte),
		asm.LoadMem(asm.R1, asm.R6, offMeta, asm.DWord),
		asm.LoadMem(asm.R1, asm.R1, offSeq, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, rec),
		asm.JEq.Imm(asm.R9, unix.AF_INET6, "v6"),
		asm.LoadMem(asm.R3, asm.R7, offSaddr, asm.Word),
		asm.StoreMem(asm.RFP, rec+12, asm.R3, asm.Word),
		asm.LoadMem(asm.R3, asm.R7, offDaddr, asm.Word),
		asm.StoreMem(asm.RFP, rec+16, asm.R3, asm.Word),
		asm.Mov.Imm(asm.R3, tcpRecord4),
		asm.FnSeqWrite.Call(),
		asm.Ja.Label("out"),
	}
	v6 := asm.Instructions{}
	for i := int16(0); i < 4; i++ {
		v6 = append(v6,
			asm.LoadMem(asm.R3, asm.R7, offV6Saddr+4*i, asm.Word),
			asm.StoreMem(asm.RFP, rec+12+4*i, asm.R3, asm.Word),
			asm.LoadMem(asm.R3, asm.R7, offV6Daddr+4*i, asm.Word),
			asm.StoreMem(asm.RFP, rec+28+4*i, asm.R3, asm.Word),
		)
	}
	v6[0] = v6[0].WithSymbol("v6")
	insns = append(insns, v6...)
	insns = append(insns,
		asm.Mov.Imm(asm.R3, tcpRecord6),
		asm.FnSeqWrite.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	)
	var b bytes.Buffer
	if err := insns.Marshal(&b, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("BPF program: %w", err)
	}
	return b.Bytes(), nil
}
