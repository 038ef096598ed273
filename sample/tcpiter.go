package sample

import (
	"context"
	"fmt"
	"io"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/internal/bpfiter"
)

// tcpIterMin is how many sockets (sockstat's TCP in use, IPv6 included,
// and TIME-WAIT) make a full census read them through the BPF tcp
// iterator instead of sock_diag. Below it, loading the program (reading
// the kernel's BTF, the verifier: a few ms once per process) costs more
// than the iterator saves (about 0.35 us a socket, docs/PERFORMANCE.md).
const tcpIterMin = 20_000

// tcpIterMinShared is tcpIterMin when the owner scan runs through the BPF
// task_file iterator: that scan reads the kernel's BTF anyway (once per
// process, for both programs), and what is left of the tcp iterator's
// cost, the verifier's check of 60 instructions, is under a millisecond.
// Measured with owners read by BPF (docs/PERFORMANCE.md, session 7): at
// 1,000 and 3,000 sockets the census costs the same either way; at 10,000
// the iterator saves ~3 ms of CPU (45.6 -> 42.6) for the same or a
// slightly lower wall time (bench-census-scale.sh at 5k and 10k against
// a build with 20,000: 0.955-0.970 x ss against 0.958-1.026 at 10k).
const tcpIterMinShared = 2_000

// useTCPIter says whether a full census of a namespace with these socket
// counts reads its sockets through the BPF tcp iterator: when BPF is
// allowed at all (not with owner_scan proc, which asks for no BPF, nor
// against a fixture /proc) and the namespace holds at least tcpIterMin
// sockets, or tcpIterMinShared when ownersBPF (the owner scan will read
// the BTF: Options.ownersByBPF).
func (o Options) useTCPIter(st Sockstat, ownersBPF bool) bool {
	if !o.bpfAllowed() || o.sockDiagOnly {
		return false
	}
	min := tcpIterMin
	if ownersBPF {
		min = tcpIterMinShared
	}
	return o.tcpIterAlways || st.TCPInUse+st.TCP6InUse+st.TCPTimeWait >= min
}

// ctxReader ends an iteration once ctx is done (at the next read of 32
// KiB): an iteration of a million sockets takes about a second.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// readTCPIter feeds add with the sockets of one iteration of the BPF tcp
// iterator (every state but LISTEN), as decodeDiagMsg would from a
// sock_diag dump of the same sockets, with their state's kernel number
// (1..11). add must not keep sk.
func readTCPIter(r io.Reader, add func(st int, sk *Socket)) error {
	var ferr error
	var sk Socket
	err := bpfiter.ReadTCP(r, func(t *bpfiter.TCPSocket) {
		if ferr != nil {
			return // read the rest of the iteration after an error
		}
		var st int
		if st, ferr = iterSocket(t, &sk); ferr == nil {
			add(st, &sk)
		}
	})
	if err != nil {
		return err
	}
	return ferr
}

// iterSocket fills sk from an iterator record and returns its state's
// kernel number. RecvQ, SendQ and UID stay 0: the census does not read
// them for sockets other than listeners, and listeners come from
// sock_diag.
func iterSocket(t *bpfiter.TCPSocket, sk *Socket) (int, error) {
	st, ok := kernelState(t.State)
	if !ok {
		return 0, fmt.Errorf("%w: tcp iterator record with TCP state %d", ErrParse, t.State)
	}
	sk.State = States[st-1]
	var src, dst netip.Addr
	if t.Family == unix.AF_INET6 {
		sk.Family = "ipv6"
		src, dst = netip.AddrFrom16(t.Src), netip.AddrFrom16(t.Dst)
	} else {
		sk.Family = "ipv4"
		src, dst = netip.AddrFrom4([4]byte(t.Src[:4])), netip.AddrFrom4([4]byte(t.Dst[:4]))
	}
	sk.Local = netip.AddrPortFrom(src, t.SPort)
	sk.Remote = netip.AddrPortFrom(dst, t.DPort)
	sk.Inode = uint64(t.Inode)
	return st, nil
}
