package sample

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// benchDatagrams builds the dump of the census benchmark's namespace
// (scripts/bench-census.sh): a listener, 40,000 established loopback pairs
// and 75,000 TIME-WAIT sockets towards 8 ports, in 32 KiB datagrams as the
// kernel sends them, with attributes as a root reader gets them.
func benchDatagrams() [][]byte {
	var dgrams [][]byte
	cur := make([]byte, 0, diagRecvBufferSize)
	put := func(m []byte) {
		l := 16 + len(m)
		if len(cur)+l > diagRecvBufferSize {
			dgrams = append(dgrams, cur)
			cur = make([]byte, 0, diagRecvBufferSize)
		}
		var h [16]byte
		binary.NativeEndian.PutUint32(h[0:], uint32(l))
		binary.NativeEndian.PutUint16(h[4:], tcpDiagGetSock)
		cur = append(cur, h[:]...)
		cur = append(cur, m...)
		for len(cur)%4 != 0 {
			cur = append(cur, 0)
		}
	}
	// SHUTDOWN, MARK and SOCKOPT, as inet_diag_msg_attrs_fill adds them.
	attrs := []byte{5, 0, 8, 0, 0, 0, 0, 0, 8, 0, 15, 0, 0, 0, 0, 0, 6, 0, 22, 0, 0, 0, 0, 0}
	full := func(m []byte) []byte { return append(m, attrs...) }
	put(full(diagMsg(10, "127.0.0.1:40000", "0.0.0.0:0", 0, 4096, 0, 1, nil).Data))
	ino := uint32(100)
	for i := range 40000 {
		cli := fmt.Sprintf("127.0.0.1:%d", 1024+i)
		put(full(diagMsg(1, cli, "127.0.0.1:40000", 0, 0, 0, ino, nil).Data))
		put(full(diagMsg(1, "127.0.0.1:40000", cli, 0, 0, 0, ino+1, nil).Data))
		ino += 2
	}
	for i := range 75000 {
		put(diagMsg(6, fmt.Sprintf("127.0.0.1:%d", 1024+i%60000), fmt.Sprintf("127.0.0.1:%d", 41000+i%8), 0, 0, 0, 0, nil).Data)
	}
	done := make([]byte, 20)
	binary.NativeEndian.PutUint32(done[0:], 20)
	binary.NativeEndian.PutUint16(done[4:], unix.NLMSG_DONE)
	cur = append(cur, done...)
	return append(dgrams, cur)
}

// BenchmarkDumpDecode: our side of a census dump of 155,001 sockets,
// decoding and aggregation, without the kernel's (go test -bench
// DumpDecode ./sample).
func BenchmarkDumpDecode(b *testing.B) {
	dgrams := benchDatagrams()
	b.ResetTimer()
	for b.Loop() {
		c := NewCensus(20, 20)
		pending := newPendingOwners(80_064) // sized as take sizes it, from sockstat
		for _, d := range dgrams {
			_, err := parseDatagram(d, func(m []byte) {
				sk, err := decodeDiagMsg(m)
				if err != nil {
					b.Fatal(err)
				}
				c.Add(sk, nil)
				if sk.Inode != 0 {
					pending.add(uint32(sk.Inode), uint8(stateIndex(sk.State)))
				}
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		var s Sample
		c.Fill(&s)
		if s.Total != 155001 {
			b.Fatalf("total %d", s.Total)
		}
	}
}

// BenchmarkOwnerJoin: the join of a census of 500,000 sockets held by 32
// processes with the owner index (attachPending), the dump's sockets in
// an order unrelated to their inodes, as the kernel's hash gives them.
// The host's other processes hold a few sockets with inodes far from
// theirs (an old daemon's, a new one's), which widens the directory's
// buckets over the benchmark's clump.
func BenchmarkOwnerJoin(b *testing.B) {
	const n, procs = 500_000, 32
	x := &ownerIndex{more: map[uint32][]Owner{}}
	for p := range procs + 1 {
		x.owners = append(x.owners, Owner{PID: 1000 + p})
	}
	for _, ino := range []uint32{1200, 1201, 25_000, 90_000_000} {
		x.add(ino, procs)
	}
	pending := newPendingOwners(n)
	rng := uint32(1)
	for i := range n {
		ino := uint32(3_000_000 + i + i/1000*37) // batches of inodes with gaps
		x.add(ino, int32(i*procs/n))
	}
	x.seal()
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	for i := n - 1; i > 0; i-- {
		rng = rng*1664525 + 1013904223
		j := int(rng % uint32(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
	clump := x.ents[3 : 3+n]
	for _, i := range perm {
		pending.add(uint32(clump[i]>>32), 1)
	}
	b.ResetTimer()
	for b.Loop() {
		c := NewCensus(20, 20)
		attachPending(context.Background(), c, Options{}, x, nil, pending, 0)
		var s Sample
		c.Fill(&s)
		if len(s.Processes) != 20 || s.Processes[0].Total != n/procs {
			b.Fatalf("processes %+v", s.Processes[:1])
		}
	}
}

// BenchmarkTCPIterDecode: our side of a census read through the tcp
// iterator: 32 listeners (from sock_diag) and 250,000 established
// loopback pairs to them, as the census benchmark's est layout holds
// (scripts/bench-census-scale.sh), decoded and aggregated with the
// (inode, state) queue of the owner join.
func BenchmarkTCPIterDecode(b *testing.B) {
	const listeners, pairs = 32, 250_000
	rec := func(st uint8, sport, dport uint16, ino uint32) []byte {
		r := make([]byte, 20)
		r[0], r[1] = unix.AF_INET, st
		binary.NativeEndian.PutUint16(r[2:], sport)
		binary.BigEndian.PutUint16(r[4:], dport)
		binary.NativeEndian.PutUint32(r[8:], ino)
		copy(r[12:], []byte{127, 0, 0, 1, 127, 0, 0, 1})
		return r
	}
	var stream []byte
	ino := uint32(1000)
	for i := range pairs {
		lport, eph := uint16(40000+i%listeners), uint16(1024+i/listeners)
		stream = append(stream, rec(1, eph, lport, ino)...)
		stream = append(stream, rec(1, lport, eph, ino+1)...)
		ino += 2
	}
	b.SetBytes(int64(len(stream)))
	b.ResetTimer()
	for b.Loop() {
		c := NewCensus(20, 20)
		d := censusDump{c: c, pending: newPendingOwners(2*pairs + 64)}
		for i := range listeners {
			d.add(sock(StateListen, fmt.Sprintf("127.0.0.1:%d", 40000+i), "0.0.0.0:0", uint64(10+i)))
		}
		if err := readTCPIter(bytes.NewReader(stream), d.addState); err != nil {
			b.Fatal(err)
		}
		var s Sample
		c.Fill(&s)
		if s.Total != 2*pairs+listeners || d.pending.len() != s.Total || s.DestinationGroups != listeners {
			b.Fatalf("total %d, pending %d, groups %d", s.Total, d.pending.len(), s.DestinationGroups)
		}
	}
}
