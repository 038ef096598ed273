package sample

import (
	"cmp"
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strconv"
)

// maxDestGroups bounds the destination table of a Census. When it is full,
// groups holding a single socket are dropped to make room (they cannot be
// near port exhaustion); DestinationGroups still counts them.
const maxDestGroups = 1 << 16

// Census aggregates a stream of sockets into the tables of a Sample:
// counts by state, every listener, the top destinations and the top
// processes. Memory grows with listeners, processes and destination groups,
// never with the number of sockets. The live sampler feeds it from the
// netlink dump, the bundle reader from `ss` text: there is one aggregator.
//
// Feed listeners before the sockets they accepted (the kernel's dump order,
// and therefore ss's, does this): a socket whose local address and port
// belong to a listener is an inbound connection and is not counted in the
// destination table, which is about the ephemeral ports of outgoing ones.
type Census struct {
	// InodesUnknown says the source does not report socket inodes (`ss`
	// without -e or -p): Orphans is then left empty rather than claiming
	// every socket has no descriptor.
	InodesUnknown bool

	topDest, topProc int
	all, v4, v6      [nStates]int
	orphans          [nStates]int
	total            int
	listeners        []Listener
	listenAddrs      map[uint32][]netip.Addr // by port (a uint32 key hashes fastest)
	// listenPorts has bit p set when listenAddrs has port p: most
	// sockets of a large census are outbound from an ephemeral port
	// and skip the map lookup (8 KiB).
	listenPorts *[1 << 16 / 64]uint64
	dests       map[destKey]*destCount
	evicted     int
	procs       map[int]*procCount
}

// nStates: index 1..11 are the kernel's TCP_* numbers, 0 is unused.
const nStates = 12

// destKey is (source, destination, destination port), the addresses in
// their 16-byte form (IPv4 as IPv4-mapped): one contiguous key, hashed in
// one pass, where two netip.Addr fields were hashed field by field (a
// third of the census's own CPU, BenchmarkDumpDecode).
type destKey struct {
	src, dst [16]byte
	port     uint16
}

func (k destKey) srcAddr() netip.Addr { return netip.AddrFrom16(k.src).Unmap() }
func (k destKey) dstAddr() netip.Addr { return netip.AddrFrom16(k.dst).Unmap() }

type destCount struct {
	total  int
	states [nStates]int
}

type procCount struct {
	owner  Owner
	total  int
	states [nStates]int
}

// NewCensus returns an empty Census that keeps the topDest largest
// destination groups and the topProc largest processes (<= 0: 20).
func NewCensus(topDest, topProc int) *Census {
	if topDest <= 0 {
		topDest = 20
	}
	if topProc <= 0 {
		topProc = 20
	}
	return &Census{
		topDest:     topDest,
		topProc:     topProc,
		listenAddrs: map[uint32][]netip.Addr{},
		listenPorts: new([1 << 16 / 64]uint64),
		dests:       map[destKey]*destCount{},
		procs:       map[int]*procCount{},
	}
}

// stateIndex returns the kernel number of an ss state name (0: unknown).
func stateIndex(name string) int {
	switch name {
	case StateEstab:
		return 1
	case StateSynSent:
		return 2
	case StateSynRecv:
		return 3
	case StateFinWait1:
		return 4
	case StateFinWait2:
		return 5
	case StateTimeWait:
		return 6
	case StateClose:
		return 7
	case StateCloseWait:
		return 8
	case StateLastAck:
		return 9
	case StateListen:
		return 10
	case StateClosing:
		return 11
	}
	return 0
}

// Add counts one socket. owners are the processes holding a descriptor for
// it (nil when unknown); the slice is copied where it is kept. A socket
// with a state name Census does not know is ignored.
func (c *Census) Add(sk Socket, owners []Owner) {
	if st := stateIndex(sk.State); st != 0 {
		c.add(st, &sk, owners)
	}
}

// add is Add for a socket whose state's kernel number st (1..11) the
// caller knows already (the live sampler's dump).
func (c *Census) add(st int, sk *Socket, owners []Owner) {
	c.total++
	c.all[st]++
	if sk.Family == "ipv6" {
		c.v6[st]++
	} else {
		c.v4[st]++
	}
	if sk.Inode == 0 && !c.InodesUnknown {
		c.orphans[st]++
	}
	for _, o := range owners {
		p := c.proc(o)
		p.total++
		p.states[st]++
	}
	if st == 10 {
		c.addListener(*sk, owners)
		return
	}
	if sk.Remote.Port() == 0 || c.inbound(sk.Local) {
		return
	}
	k := destKey{src: sk.Local.Addr().As16(), dst: sk.Remote.Addr().As16(), port: sk.Remote.Port()}
	d := c.dests[k]
	if d == nil {
		if len(c.dests) >= maxDestGroups && !c.evictSingletons() {
			c.evicted++
			return
		}
		d = &destCount{}
		c.dests[k] = d
	}
	d.total++
	d.states[st]++
}

func (c *Census) evictSingletons() bool {
	n := len(c.dests)
	for k, d := range c.dests {
		if d.total == 1 {
			delete(c.dests, k)
			c.evicted++
		}
	}
	return len(c.dests) < n
}

func (c *Census) addListener(sk Socket, owners []Owner) {
	a := sk.Local.Addr().Unmap()
	port := uint32(sk.Local.Port())
	c.listenAddrs[port] = append(c.listenAddrs[port], a)
	c.listenPorts[port/64] |= 1 << (port % 64)
	fam := "ipv4"
	if sk.Family == "ipv6" {
		fam = "ipv6"
	}
	l := Listener{
		Local:  FormatLocal(sk.Local, sk.V6Only),
		Addr:   sk.Local.Addr().String(),
		Port:   sk.Local.Port(),
		Family: fam,
		RecvQ:  sk.RecvQ,
		SendQ:  sk.SendQ,
		Inode:  sk.Inode,
	}
	if len(owners) > 0 {
		l.Owners = slices.Clone(owners)
	}
	c.listeners = append(c.listeners, l)
}

// inbound says whether a local address belongs to a listener seen so far.
func (c *Census) inbound(local netip.AddrPort) bool {
	p := uint32(local.Port())
	if c.listenPorts[p/64]&(1<<(p%64)) == 0 {
		return false
	}
	addrs, ok := c.listenAddrs[p]
	if !ok {
		return false
	}
	la := local.Addr().Unmap()
	for _, a := range addrs {
		if a.IsUnspecified() || a == la {
			return true
		}
	}
	return false
}

// FormatLocal prints a local address as `ss -n` does: "127.0.0.1:80",
// "[::1]:80", "0.0.0.0:80", "[::]:80" for an IPv6-only wildcard and "*:80"
// for a dual-stack one.
func FormatLocal(ap netip.AddrPort, v6only bool) string {
	a := ap.Addr()
	port := strconv.Itoa(int(ap.Port()))
	if a.Is4() {
		return a.String() + ":" + port
	}
	if a.IsUnspecified() && !v6only {
		return "*:" + port
	}
	return "[" + a.String() + "]:" + port
}

func stateMap(counts *[nStates]int, all bool) map[string]int {
	m := make(map[string]int, len(States))
	for i, name := range States {
		if n := counts[i+1]; n != 0 || all {
			m[name] = n
		}
	}
	return m
}

// Fill writes the census into s: States (all eleven), StatesV4, StatesV6,
// Total, Listeners (by port, then address), the top Destinations and
// DestinationGroups, the top Processes and Orphans.
func (c *Census) Fill(s *Sample) {
	s.States = stateMap(&c.all, true)
	s.StatesV4 = stateMap(&c.v4, true)
	s.StatesV6 = stateMap(&c.v6, true)
	s.Total = c.total

	s.Listeners = slices.Clone(c.listeners)
	slices.SortStableFunc(s.Listeners, func(a, b Listener) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Local, b.Local))
	})
	if s.Listeners == nil {
		s.Listeners = []Listener{}
	}

	type dest struct {
		k destKey
		d *destCount
	}
	top := topK(func(yield func(dest) bool) {
		for k, d := range c.dests {
			if !yield(dest{k, d}) {
				return
			}
		}
	}, c.topDest, func(a, b dest) int {
		return cmp.Or(cmp.Compare(b.d.total, a.d.total),
			a.k.srcAddr().Compare(b.k.srcAddr()), a.k.dstAddr().Compare(b.k.dstAddr()), cmp.Compare(a.k.port, b.k.port))
	})
	s.DestinationGroups = len(c.dests) + c.evicted
	s.Destinations = make([]Destination, 0, len(top))
	for _, t := range top {
		s.Destinations = append(s.Destinations, Destination{
			Src: t.k.srcAddr().String(), Dst: t.k.dstAddr().String(), DstPort: t.k.port,
			Total: t.d.total, States: stateMap(&t.d.states, false),
		})
	}

	procs := topK(maps.Values(c.procs), c.topProc, func(a, b *procCount) int {
		return cmp.Or(cmp.Compare(b.total, a.total), cmp.Compare(a.owner.PID, b.owner.PID))
	})
	s.Processes = make([]Process, 0, len(procs))
	for _, p := range procs {
		s.Processes = append(s.Processes, Process{Owner: p.owner, Total: p.total, States: stateMap(&p.states, false)})
	}

	s.Orphans = nil
	if !c.InodesUnknown {
		if m := stateMap(&c.orphans, false); len(m) > 0 {
			s.Orphans = m
		}
	}
}

// proc returns o's row of the per-process table, adding it on first use.
func (c *Census) proc(o Owner) *procCount {
	p := c.procs[o.PID]
	if p == nil {
		p = &procCount{owner: o}
		c.procs[o.PID] = p
	}
	return p
}

// addProcess adds counts by state of sockets held by one process, counted
// elsewhere (the live sampler's join of the dump with the owner scan).
func (c *Census) addProcess(o Owner, states *[nStates]int) {
	p := c.proc(o)
	for st, n := range states {
		p.total += n
		p.states[st] += n
	}
}

// attachOwners adds owners found after a socket was counted (the live
// sampler's second look at processes outside the sampled namespace): the
// per-process table, and the listener's owners when st is LISTEN.
func (c *Census) attachOwners(st int, inode uint64, owners []Owner) {
	if st <= 0 || st >= nStates || len(owners) == 0 {
		return
	}
	for _, o := range owners {
		p := c.proc(o)
		p.total++
		p.states[st]++
	}
	if st == 10 {
		for i := range c.listeners {
			if c.listeners[i].Inode == inode && len(c.listeners[i].Owners) == 0 {
				c.listeners[i].Owners = slices.Clone(owners)
			}
		}
	}
}

// topK returns the k smallest elements of all by cmp (a total order), in
// order, from one pass that keeps a sorted list of the best k so far: a
// table of 65,536 destination groups costs about a millisecond instead of
// a full sort (docs/PERFORMANCE.md).
func topK[T any](all iter.Seq[T], k int, cmp func(a, b T) int) []T {
	var best []T
	for t := range all {
		if len(best) == k && (k == 0 || cmp(t, best[k-1]) >= 0) {
			continue
		}
		i, _ := slices.BinarySearchFunc(best, t, cmp)
		best = slices.Insert(best, i, t)
		if len(best) > k {
			best = best[:k]
		}
	}
	return best
}
