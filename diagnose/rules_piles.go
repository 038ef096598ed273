package diagnose

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/internal/policy"
	"github.com/sockwarden/sockwarden/sample"
)

const (
	kPortRange  = policy.KeyPortRange
	kReserved   = policy.KeyReserved
	kUnpriv     = "net.ipv4.ip_unprivileged_port_start"
	kTwReuse    = policy.KeyTwReuse
	kFinTimeout = "net.ipv4.tcp_fin_timeout"
	kTCPMem     = "net.ipv4.tcp_mem"
	kMaxOrphans = "net.ipv4.tcp_max_orphans"
	kFileNr     = "fs.file-nr"
)

func checkCloseWait(s *sample.Sample, _ []*sample.Sample, cfg config.Diagnose) []Observation {
	total := s.States[sample.StateCloseWait]
	var out []Observation
	attributed := 0
	for _, p := range s.Processes {
		n := p.States[sample.StateCloseWait]
		attributed += n
		if n < cfg.CloseWaitMin {
			continue
		}
		o := Observation{
			Kind: KindCloseWaitPile, Subject: ownerName(p.Owner), Side: SideApp, Severity: SevWarning,
			Title: fmt.Sprintf("CLOSE-WAIT pile: %s holds %d connections its peers closed", ownerLong(p.Owner), n),
			Explanation: fmt.Sprintf("%d connections of %s are in CLOSE-WAIT: the peer closed them and the application has not called close(). Each holds a descriptor and memory until the process closes it or exits. Only the application can fix this; no sysctl helps.",
				n, ownerLong(p.Owner)),
			Evidence: []string{
				fmt.Sprintf("%s: %d CLOSE-WAIT of its %d TCP sockets", ownerLong(p.Owner), n, p.Total),
				fmt.Sprintf("%d CLOSE-WAIT sockets in the namespace", total),
			},
			AppActions: closeWaitActions(p.Owner),
		}
		if p.FDLimit > 0 {
			o.Evidence = append(o.Evidence, fmt.Sprintf("%s has %d descriptors open of its limit %d", ownerName(p.Owner), p.FDs, p.FDLimit))
			if float64(p.FDs) >= cfg.FDUseRatio*float64(p.FDLimit) {
				o.Severity = SevCritical
			}
		}
		out = append(out, o)
	}
	if total-attributed >= cfg.CloseWaitMin {
		out = append(out, Observation{
			Kind: KindCloseWaitPile, Subject: "owner unknown", Side: SideApp, Severity: SevWarning,
			Title: fmt.Sprintf("CLOSE-WAIT pile: %d connections whose owner is unknown", total-attributed),
			Explanation: fmt.Sprintf("%d connections are in CLOSE-WAIT: the peer closed them and the local application has not called close(). The sample has no owner for them (run as root, or capture `ss -tanp`), so the process is not named. Only the application can fix this; no sysctl helps.",
				total-attributed),
			Evidence:   []string{fmt.Sprintf("%d CLOSE-WAIT sockets in the namespace, %d attributed to a process", total, attributed)},
			AppActions: closeWaitActions(sample.Owner{}),
		})
	}
	return out
}

func closeWaitActions(o sample.Owner) []string {
	who := "the owning process (`ss -tanp state close-wait`)"
	if o.PID != 0 {
		who = ownerLong(o)
	}
	acts := []string{
		fmt.Sprintf("Fix %s so that it close()s a connection when read() returns 0 (EOF): look for a connection pool that does not drop closed connections, an error path that skips close(), an HTTP response body never closed (Go: resp.Body.Close()).", who),
	}
	if o.PID != 0 {
		acts = append(acts, fmt.Sprintf("See where they point: `ss -tanp state close-wait | grep 'pid=%d,'`, `ls -l /proc/%d/fd | wc -l`.", o.PID, o.PID))
	}
	if o.Unit != "" {
		acts = append(acts, fmt.Sprintf("As a stopgap, `systemctl restart %s` releases them (they come back until the code is fixed).", o.Unit))
	}
	return acts
}

func destSubject(d sample.Destination) string {
	return dstPort(d.Dst, d.DstPort) + " from " + d.Src
}

// dstPort is "10.0.0.5:443", or "[2001:db8::5]:443".
func dstPort(dst string, port uint16) string {
	return net.JoinHostPort(dst, strconv.Itoa(int(port)))
}

// defaultPortPool is the size of the default ephemeral range, 32768-60999
// (Linux since 4.x; KERNEL-NOTES "Ephemeral ports"): the pool a pile is
// compared with when net.ipv4.ip_local_port_range was not read.
const defaultPortPool = 60999 - 32768 + 1

func checkPorts(s *sample.Sample, series []*sample.Sample, cfg config.Diagnose) []Observation {
	var out []Observation
	judged := map[dstKey]bool{} // destinations judged from their sockets
	rng, okR := sysInts(s, kPortRange, 2)
	pool, poolName := defaultPortPool, fmt.Sprintf("the %d ports of the default range 32768-60999 (%s not read)", defaultPortPool, kPortRange)
	if okR && rng[0] <= rng[1] {
		low, high := int(rng[0]), int(rng[1])
		reserved := parsePortSet(s.Sysctls[kReserved])
		usable := high - low + 1 - reserved.CountIn(low, high)
		pool, poolName = usable, fmt.Sprintf("the %d usable ports of %s", usable, kPortRange)
		for _, d := range s.Destinations {
			if usable <= 0 || float64(d.Total) < cfg.PortUseRatio*float64(usable) {
				continue
			}
			out = append(out, portsObservation(s, series, cfg, d, low, high, reserved, usable))
			judged[dstKey{d.Dst, d.DstPort}] = true
		}
	}
	// An application that logged EADDRNOTAVAIL from connect() says the
	// ports ran out, whatever the table pasted next to it shows: the
	// TIME-WAIT pile is then evidence of it, not "normal". A destination
	// judged above from its sockets is not named twice.
	out = append(out, connectErrorObservations(s, okR, poolName, judged)...)
	if len(out) > 0 {
		return out
	}
	tw := s.States[sample.StateTimeWait]
	ev := []string{fmt.Sprintf("%d TIME-WAIT sockets of %d TCP sockets", tw, s.Total)}
	// Without a socket table, ss -s (or /proc/net/sockstat) still
	// counts them: "timewait 30288" pasted alone is a pile whose
	// destinations were not read, judged as counts from a pipeline are.
	if cov := coverageOf(s); !cov.sockets && !cov.socketsPart && cov.sockstat && s.Sockstat.TCPTimeWait > tw {
		tw = s.Sockstat.TCPTimeWait
		ev = []string{fmt.Sprintf("%d TIME-WAIT sockets counted by ss -s or /proc/net/sockstat (tw); no socket table", tw)}
	}
	if tw < cfg.TimeWaitMin {
		return nil
	}
	if okR {
		ev = append(ev, fmt.Sprintf("%s = %d %d", kPortRange, rng[0], rng[1]))
	}
	o := Observation{
		Kind: KindTimeWaitPile, Subject: "host", Side: SideNone, Severity: SevInfo,
		Title:    fmt.Sprintf("%d TIME-WAIT sockets: normal for a busy client", tw),
		Evidence: ev,
	}
	const why = "The side that closes a connection first keeps it in TIME-WAIT for 60 seconds (fixed in the kernel; tcp_fin_timeout does not change it). TIME-WAIT sockets hold no descriptor and little memory. They matter only when, with the other sockets to one destination, they near the ephemeral port range"
	near := func(n int) bool { return pool > 0 && float64(n) >= cfg.PortUseRatio*float64(pool) }
	switch {
	case len(s.Destinations) > 0 && !near(s.Destinations[0].Total):
		d := s.Destinations[0]
		o.Evidence = append(o.Evidence, fmt.Sprintf("busiest destination %s holds %d ports", destSubject(d), d.Total))
		o.Explanation = why + "; no destination does, so nothing needs fixing."
		if !okR {
			o.Explanation = fmt.Sprintf("%s; the busiest destination holds %d ports, well below %s, so nothing needs fixing.", why, d.Total, poolName)
		}
	case len(s.Destinations) > 0:
		// Only without the range read: with it, portsObservation
		// judged the destination above.
		d := s.Destinations[0]
		o.Side, o.Severity, o.Subject = SideUnknown, SevWarning, destSubject(d)
		o.Title = fmt.Sprintf("%d TIME-WAIT sockets; %s holds %d ports, near the default ephemeral range", tw, destSubject(d), d.Total)
		o.Explanation = fmt.Sprintf("%s. %s holds %d ports, near %s: if the range is the default, connect() to it is close to failing with EADDRNOTAVAIL. Read the range (sysctl %s) to judge it.", why, destSubject(d), d.Total, poolName, kPortRange)
		o.Evidence = append(o.Evidence, fmt.Sprintf("busiest destination %s holds %d ports", destSubject(d), d.Total))
	case near(tw):
		// Counts without addresses: the destinations are unknown, and
		// this many could fill one destination's pool.
		o.Side, o.Severity = SideUnknown, SevWarning
		o.Title = fmt.Sprintf("%d TIME-WAIT sockets, destinations not read: enough to use up one destination's ephemeral ports", tw)
		o.Explanation = fmt.Sprintf("%s. Their destinations were not read (counts without addresses), and %d is near or above %s: if most go to one destination (a client opening a connection per request), connect() to it fails with EADDRNOTAVAIL. Capture `ss -tan state time-wait` to see where they go.", why, tw, poolName)
		o.Evidence = append(o.Evidence, "destinations not read (counts without addresses)")
	default:
		o.Explanation = fmt.Sprintf("%s. Their destinations were not read (counts without addresses), but %d is well below %s, so no destination can be near it.", why, tw, poolName)
		o.Evidence = append(o.Evidence, "destinations not read (counts without addresses)")
	}
	return []Observation{o}
}

// connectErrorObservations turns the lines of a paste in which an
// application says connect() failed with EADDRNOTAVAIL into one finding
// per destination named. The kernel found no free local port for that
// destination when the line was logged. Without the sockets to that
// destination and the range together nothing can size a kernel change,
// so the side is unknown; the application fix comes first either way.
func connectErrorObservations(s *sample.Sample, okR bool, poolName string, judged map[dstKey]bool) []Observation {
	var order []dstKey
	lines := map[dstKey][]sample.ConnectError{}
	for _, ce := range s.ConnectErrors {
		k := dstKey{ce.Dst, ce.Port}
		if _, ok := lines[k]; !ok {
			order = append(order, k)
		}
		lines[k] = append(lines[k], ce)
	}
	var out []Observation
	for _, k := range order {
		subject, dest := "host", "a destination the log line does not name"
		target, inferred := "that destination", ""
		failed := target // what the log line says ran out
		dk := k
		if k.dst != "" {
			subject = dstPort(k.dst, k.port)
			dest, target, failed = subject, subject, subject
		} else if d, ok := onlyDestination(s); ok {
			// The line names none, but every socket read goes to
			// one destination (hiredis issue 58, corpus 49: ten
			// TIME-WAIT rows to 127.0.0.1:6399): name it as the
			// likely one, said to be inferred, since a grep may
			// have chosen the rows. The sizing stays as without it.
			dk = dstKey{d.Dst, d.DstPort}
			target = dstPort(d.Dst, d.DstPort)
			subject = target + inferredMark
			dest = fmt.Sprintf("a destination the log line does not name, likely %s (the pasted sockets all go there)", target)
			inferred = fmt.Sprintf(" The log line names none; the sockets read all go to %s, so it is likely that one: inferred from the rows read (which a grep may have chosen), not from the log line.", target)
		}
		if judged[dk] {
			continue // its sockets near the pool made a finding of it
		}
		ls := lines[k]
		ev := []string{fmt.Sprintf("%s of connect() failing with EADDRNOTAVAIL, the first: %s", plural(len(ls), "application log line"), ls[0].Line)}
		ev = append(ev, stateCountLine(s, sample.StateTimeWait))
		for _, d := range s.Destinations {
			if d.Dst == dk.dst && d.DstPort == dk.port {
				ev = append(ev, fmt.Sprintf("%s holds %s (%s) in what was read", destSubject(d), plural(d.Total, "port"), statesLine(d.States)))
				break
			}
		}
		if okR {
			ev = append(ev, fmt.Sprintf("%s = %s", kPortRange, s.Sysctls[kPortRange]))
		} else {
			ev = append(ev, kPortRange+" not read")
		}
		out = append(out, Observation{
			Kind: KindEphemeralPorts, Subject: subject, Side: SideUnknown, Severity: SevCritical,
			Title: fmt.Sprintf("EADDRNOTAVAIL from connect() to %s: no free ephemeral port", dest),
			Explanation: fmt.Sprintf("An application logged connect() failing with EADDRNOTAVAIL (\"Cannot assign requested address\"): the kernel found no free local port for %s.%s A source port must be unique per (source, destination, port), so the pool (%s) is per destination; the usual cause is a client that opens a connection per request and closes it first, leaving each port in TIME-WAIT for 60 seconds. The input does not hold both the sockets to %s and the port range, so no kernel change is sized here: capture `ss -tan dst %s` and `sysctl %s %s %s`. (connect() also fails with EADDRNOTAVAIL on a socket bound to an address the host does not have; then the ports are not the cause.)",
				failed, inferred, poolName, target, hostOf(dk.dst), kPortRange, kReserved, kTwReuse),
			Evidence: ev,
			AppActions: []string{
				fmt.Sprintf("Reuse connections to %s: a connection pool with keep-alive instead of a connection per request. This is the real fix; a wider range (%s) or tcp_tw_reuse only moves the wall.", target, kPortRange),
				"If the client bind()s before connect(), set IP_BIND_ADDRESS_NO_PORT so the port is chosen per destination.",
			},
		})
	}
	return out
}

// dstKey is a destination address and port.
type dstKey struct {
	dst  string
	port uint16
}

// inferredMark ends the subject of an EADDRNOTAVAIL finding whose
// destination the log line does not name but the sockets read suggest.
const inferredMark = " (inferred)"

// onlyDestination is the destination every port-holding socket read goes
// to, when there is one: no group was dropped (sample.top_destinations)
// and they share the destination address and port (sources may differ).
func onlyDestination(s *sample.Sample) (sample.Destination, bool) {
	if len(s.Destinations) == 0 || s.DestinationGroups > len(s.Destinations) {
		return sample.Destination{}, false
	}
	d := s.Destinations[0]
	for _, o := range s.Destinations[1:] {
		if o.Dst != d.Dst || o.DstPort != d.DstPort {
			return sample.Destination{}, false
		}
	}
	return d, true
}

// hostOf is the address for an ss filter, or a placeholder when the line
// named none.
func hostOf(dst string) string {
	if dst == "" {
		return "DST"
	}
	return dst
}

func portsObservation(s *sample.Sample, series []*sample.Sample, cfg config.Diagnose, d sample.Destination, low, high int, reserved sample.PortSet, usable int) Observation {
	share := float64(d.Total) / float64(usable)
	tw := d.States[sample.StateTimeWait]
	o := Observation{
		Kind: KindEphemeralPorts, Subject: destSubject(d), Severity: SevWarning,
		Evidence: []string{
			fmt.Sprintf("%s holds %d ports (%s) of %d usable (%.0f%%)", destSubject(d), d.Total, statesLine(d.States), usable, 100*share),
			fmt.Sprintf("%s = %d %d, %d of them reserved (%s = %q)", kPortRange, low, high, reserved.CountIn(low, high), kReserved, s.Sysctls[kReserved]),
		},
		AppActions: []string{
			fmt.Sprintf("Reuse connections to %s:%d: a connection pool with keep-alive (HTTP keep-alive, a database pool) instead of a new connection per request. This is the real fix; a wider range only moves the wall.", d.Dst, d.DstPort),
			"If the client bind()s before connect(), set IP_BIND_ADDRESS_NO_PORT so the port is chosen per destination; spread load over more destination addresses or ports.",
		},
	}
	o.Title = fmt.Sprintf("ephemeral ports for %s nearly exhausted: %d of %d usable in use", destSubject(d), d.Total, usable)
	if share >= 0.98 {
		o.Severity = SevCritical
	}
	o.Explanation = fmt.Sprintf("Connections to %s:%d from %s hold %d of the %d usable ephemeral ports. A source port must be unique per (source, destination, port), so this destination is close to running out: connect() then fails with EADDRNOTAVAIL.", d.Dst, d.DstPort, d.Src, d.Total, usable)
	if tw*2 >= d.Total {
		o.Explanation += fmt.Sprintf(" Most of them (%d) are TIME-WAIT: the client opens and closes a connection per request.", tw)
	}
	plan := portsPlan(s, series, cfg, d, low, high, reserved)
	if plan == nil {
		o.Side = SideApp
		o.Explanation += " The port range cannot be widened further within its bounds (diagnose.port_range_floor, ip_unprivileged_port_start, 65535) and tcp_tw_reuse does not apply: only the application can fix it."
		return o
	}
	o.Side = SideKernel
	o.Explanation += " The application fix comes first; the kernel change below buys headroom."
	o.Plan = plan
	return o
}

// portsPlan widens the range (high end first, then the low end down to
// the floor), keeps listening ports out of it by reserving them in the same
// proposal, prefers a start and end of different parity, and turns on
// tcp_tw_reuse when TIME-WAIT dominates. nil when nothing can change.
// Listening ports are those of every sample in the series: a service
// seen listening once may listen again.
func portsPlan(s *sample.Sample, series []*sample.Sample, cfg config.Diagnose, d sample.Destination, low, high int, reserved sample.PortSet) *Plan {
	unpriv := 1024
	if v, ok := sysInt(s, kUnpriv); ok {
		unpriv = int(v)
	}
	floor := max(unpriv, cfg.PortRangeFloor)
	if low < floor {
		floor = low // never narrow the range
	}
	size := high - low + 1
	target := max(2*size, 2*d.Total)
	newLow, newHigh := low, max(high, min(65535, low+target-1))
	if newHigh-newLow+1 < target {
		newLow = max(floor, newHigh-target+1)
	}
	if newLow%2 == newHigh%2 && (newLow != low || newHigh != high) {
		switch {
		case newHigh < 65535:
			newHigh++
		case newLow > floor:
			newLow--
		case newHigh > high:
			newHigh--
		}
	}

	var changes []Change
	var notes []string
	if newLow != low || newHigh != high {
		// Listening ports inside the new range must be reserved, in the
		// same proposal and before the range is widened.
		var listen []int
		seen := map[int]bool{}
		for _, x := range append(series, s) {
			for _, l := range x.Listeners {
				p := int(l.Port)
				if p >= newLow && p <= newHigh && !reserved[p] && !seen[p] {
					seen[p] = true
					listen = append(listen, p)
				}
			}
		}
		if len(listen) > 0 {
			sort.Ints(listen)
			nr := sample.PortSet{}
			for p := range reserved {
				nr[p] = true
			}
			for _, p := range listen {
				nr[p] = true
			}
			changes = append(changes, Change{Key: kReserved, Current: s.Sysctls[kReserved], Proposed: nr.String()})
			notes = append(notes, fmt.Sprintf("Listening ports %s fall inside the new range and are reserved first, so connect() never takes them.", joinInts(listen)))
		}
		changes = append(changes, Change{Key: kPortRange, Current: fmt.Sprintf("%d %d", low, high), Proposed: fmt.Sprintf("%d %d", newLow, newHigh)})
		notes = append(notes, fmt.Sprintf("A service that starts later on a port inside %d-%d may fail to bind: reserve its port in %s.", newLow, newHigh, kReserved))
	}
	tw := d.States[sample.StateTimeWait]
	if tw*2 >= d.Total {
		reuse, ok := sysInt(s, kTwReuse)
		loop := false
		if a, err := netip.ParseAddr(d.Dst); err == nil {
			loop = a.IsLoopback()
		}
		if ok && reuse != 1 && !(reuse == 2 && loop) {
			changes = append(changes, Change{Key: kTwReuse, Current: fmt.Sprint(reuse), Proposed: "1"})
			notes = append(notes, "tcp_tw_reuse affects outgoing connections only and needs TCP timestamps (net.ipv4.tcp_timestamps=1) on both ends.")
		}
	}
	if len(changes) == 0 {
		return nil
	}
	pre := nsPrefix(s.Netns)
	newUsable := newHigh - newLow + 1 - reserved.CountIn(newLow, newHigh)
	return &Plan{
		Changes: changes,
		Reason: fmt.Sprintf("%s holds %d of the usable ephemeral ports; policy: at least double the range (high end first, low end not below %d), reserve listening ports inside it, different parity for start and end, tcp_tw_reuse=1 when TIME-WAIT dominates outgoing connections",
			destSubject(d), d.Total, floor),
		AppActions: []string{fmt.Sprintf("Pool and keep alive the connections to %s:%d first.", d.Dst, d.DstPort)},
		Notes:      notes,
		Verify: Verification{
			Commands: []string{
				pre + fmt.Sprintf("ss -Htan dst %s '( dport = :%d )' | wc -l", d.Dst, d.DstPort),
				pre + "sysctl " + kPortRange + " " + kReserved,
			},
			Fixed: fmt.Sprintf("sockets to %s:%d stay below %d%% of the %d usable ports of the new range (today's %d would be %.0f%%), and connect() no longer fails with EADDRNOTAVAIL.",
				d.Dst, d.DstPort, int(100*cfg.PortUseRatio), newUsable, d.Total, 100*float64(d.Total)/float64(max(newUsable, 1))),
		},
	}
}

func joinInts(xs []int) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprint(x))
	}
	return strings.Join(s, ", ")
}

// statesLine is "120 TIME-WAIT, 8 ESTAB" (largest first, zeros left out).
func statesLine(m map[string]int) string {
	type kv struct {
		k string
		v int
	}
	var kvs []kv
	for k, v := range m {
		if v > 0 {
			kvs = append(kvs, kv{k, v})
		}
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].v != kvs[j].v {
			return kvs[i].v > kvs[j].v
		}
		return kvs[i].k < kvs[j].k
	})
	var parts []string
	for _, x := range kvs {
		parts = append(parts, fmt.Sprintf("%d %s", x.v, x.k))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func checkFinWait2(s *sample.Sample, _ []*sample.Sample, cfg config.Diagnose) []Observation {
	total := s.States[sample.StateFinWait2]
	if total < cfg.FinWait2Min {
		return nil
	}
	timeout := "?"
	timeoutLine := kFinTimeout + " not read"
	if v, ok := s.Sysctls[kFinTimeout]; ok {
		timeout = v
		timeoutLine = fmt.Sprintf("%s = %s", kFinTimeout, v)
	}
	var out []Observation
	owned := 0
	for _, p := range s.Processes {
		n := p.States[sample.StateFinWait2]
		owned += n
		if n < cfg.FinWait2Min {
			continue
		}
		out = append(out, Observation{
			Kind: KindFinWait2Pile, Subject: ownerName(p.Owner), Side: SideApp, Severity: SevWarning,
			Title: fmt.Sprintf("FIN-WAIT-2 pile held open by %s", ownerLong(p.Owner)),
			Explanation: fmt.Sprintf("%d connections of %s are in FIN-WAIT-2 and still have a descriptor: the application called shutdown() but not close(), and the peer has not closed its side. They last until the application closes them; tcp_fin_timeout does not apply to them. No sysctl helps.",
				n, ownerLong(p.Owner)),
			Evidence:   []string{fmt.Sprintf("%s: %d FIN-WAIT-2 of its %d TCP sockets", ownerLong(p.Owner), n, p.Total), fmt.Sprintf("%d FIN-WAIT-2 sockets in the namespace", total)},
			AppActions: []string{fmt.Sprintf("Make %s close() connections after shutdown(), with a deadline for peers that never close their side.", ownerLong(p.Owner))},
		})
	}
	orphans, haveOrphans := s.Orphans[sample.StateFinWait2]
	switch {
	case haveOrphans && orphans >= cfg.FinWait2Min:
		out = append(out, Observation{
			Kind: KindFinWait2Pile, Subject: "orphaned", Side: SidePeer, Severity: SevWarning,
			Title:       fmt.Sprintf("%d orphaned FIN-WAIT-2 sockets: peers do not close", orphans),
			Explanation: fmt.Sprintf("We closed these connections and the peers acknowledged but never closed their side. They have no owner any more and the kernel drops them after net.ipv4.tcp_fin_timeout (%s s). Peer-side behaviour (clients that keep half-open connections, a middlebox eating FINs), not a kernel limit; no sysctl change is proposed.", timeout),
			Evidence:    []string{fmt.Sprintf("%d FIN-WAIT-2 sockets, %d of them orphaned", total, orphans), timeoutLine},
			AppActions:  []string{"Find the peers (`ss -tan state fin-wait-2`) and why they do not close: a client library that keeps sockets half-open, a proxy or firewall dropping FINs."},
		})
	case !haveOrphans && len(s.Processes) == 0:
		out = append(out, Observation{
			Kind: KindFinWait2Pile, Subject: "host", Side: SideUnknown, Severity: SevWarning,
			Title:       fmt.Sprintf("%d FIN-WAIT-2 sockets, owners unknown", total),
			Explanation: "We closed these connections and the peers have not closed theirs. Without owner data (capture `ss -tanep` or run as root) the samples cannot say whether they are orphaned (peer side, gone after tcp_fin_timeout) or held by an application that called shutdown() without close(). No sysctl helps either way.",
			Evidence:    []string{fmt.Sprintf("%d FIN-WAIT-2 sockets", total), timeoutLine},
		})
	}
	return out
}

func checkFDs(s *sample.Sample, _ []*sample.Sample, cfg config.Diagnose) []Observation {
	var out []Observation
	seen := map[int]bool{}
	var owners []sample.Owner
	for _, p := range s.Processes {
		owners = append(owners, p.Owner)
	}
	for _, l := range s.Listeners {
		owners = append(owners, l.Owners...)
	}
	for _, o := range owners {
		if seen[o.PID] || o.FDLimit == 0 || float64(o.FDs) < cfg.FDUseRatio*float64(o.FDLimit) {
			continue
		}
		seen[o.PID] = true
		fix := fmt.Sprintf("Raise the limit of %s: `prlimit --pid %d --nofile=N:N` now, and in its start-up (ulimit -n, or the container's nofile limit)", ownerLong(o), o.PID)
		if o.Unit != "" {
			fix = fmt.Sprintf("Raise LimitNOFILE= of %s (`systemctl edit %s`, [Service] LimitNOFILE=N, then restart it)", o.Unit, o.Unit)
		}
		sev := SevWarning
		if o.FDs >= int(o.FDLimit) {
			sev = SevCritical
		}
		out = append(out, Observation{
			Kind: KindFDExhaustion, Subject: ownerName(o), Side: SideApp, Severity: sev,
			Title: fmt.Sprintf("%s is near its open-file limit (%d of %d)", ownerLong(o), o.FDs, o.FDLimit),
			Explanation: fmt.Sprintf("%s has %d descriptors open against a limit (RLIMIT_NOFILE) of %d. At the limit accept() and connect() fail with EMFILE: listeners stop accepting and their queues overflow. The limit belongs to the process (its unit's LimitNOFILE=), not to a TCP sysctl; first check that the count is legitimate and not a leak.",
				ownerLong(o), o.FDs, o.FDLimit),
			Evidence:   []string{fmt.Sprintf("%s: %d open descriptors, soft limit %d (%.0f%%)", ownerLong(o), o.FDs, o.FDLimit, 100*float64(o.FDs)/float64(o.FDLimit))},
			AppActions: []string{fix + ".", fmt.Sprintf("Check for a descriptor leak first: `ls -l /proc/%d/fd | awk '{print $NF}' | sort | uniq -c | sort -rn | head`.", o.PID)},
		})
	}
	var ev []string
	title := "the system is near fs.file-max"
	why := "The whole system has nearly as many open files as fs.file-max allows; at the limit every unprivileged open(), socket() and accept() fails with ENFILE (processes with CAP_SYS_ADMIN are exempt), and services stop accepting. "
	if nr, ok := sysInts(s, kFileNr, 3); ok && nr[2] > 0 && float64(nr[0]) >= cfg.FDUseRatio*float64(nr[2]) {
		ev = append(ev, fmt.Sprintf("%s = %d %d %d (allocated, unused, max): %.0f%% of fs.file-max", kFileNr, nr[0], nr[1], nr[2], 100*float64(nr[0])/float64(nr[2])))
	}
	// The kernel's own line, and applications' ENFILE: the limit was
	// reached, whatever file-nr says now (or was not read).
	reached := kernelLines(s, sample.KernelFileMax)
	if e := fdErrorEvidence(s.FDErrors, "ENFILE", ""); e != "" {
		reached = append(reached, e)
	}
	if len(reached) > 0 {
		title = "the system reached fs.file-max"
		why = "The kernel refused new open files system-wide: the open files reached fs.file-max. While that lasts every unprivileged open(), socket() and accept() fails with ENFILE (processes with CAP_SYS_ADMIN are exempt, and the kernel logs \"VFS: file-max limit N reached\" for the others), so services stop accepting and connecting. "
		ev = append(ev, reached...)
	}
	if len(ev) > 0 {
		if len(s.Processes) > 0 {
			p := s.Processes[0]
			ev = append(ev, fmt.Sprintf("largest socket holder: %s with %d sockets, %d descriptors", ownerLong(p.Owner), p.Total, p.FDs))
		}
		out = append(out, Observation{
			Kind: KindFDExhaustion, Subject: "host", Side: SideApp, Severity: SevCritical,
			Title:       title,
			Explanation: why + "The kernel's default fs.file-max is about a tenth of RAM in KiB (some 100 files per MiB: about 50,000 on a 512 MiB router; systemd 240 and later raise it to the maximum), so it is reached by a descriptor leak, or, on a small host, by a load it was not sized for. Find the holders first: a leak is fixed in the application (or capped with its unit's LimitNOFILE=); raising fs.file-max is a host limit, not a TCP sysctl, and no change is proposed.",
			Evidence:    ev,
			AppActions:  []string{"Find the holder: `for p in /proc/[0-9]*; do echo $(ls $p/fd 2>/dev/null | wc -l) $p; done | sort -rn | head`, then fix its leak or bound it with LimitNOFILE=."},
		})
	}
	return append(out, emfileObservations(s)...)
}

// emfileObservations turns the lines of a paste in which an application
// says a call failed with EMFILE into one finding per listener named
// ("application" for lines that name none): the process was at its own
// open-file limit when it logged them.
func emfileObservations(s *sample.Sample) []Observation {
	var order []string
	for _, fe := range s.FDErrors {
		if fe.Errno == "EMFILE" && !slices.Contains(order, fe.Listener) {
			order = append(order, fe.Listener)
		}
	}
	var out []Observation
	for _, l := range order {
		subject, what, find := "application", "an application", "Find the process that logged it"
		if l != "" {
			subject, what = l, "the application listening on "+l
			find = fmt.Sprintf("Find the process: `ss -tlnp 'sport = :%d'`", findingPort(l))
		}
		out = append(out, Observation{
			Kind: KindFDExhaustion, Subject: subject, Side: SideApp, Severity: SevCritical,
			Title: fmt.Sprintf("%s logged EMFILE (too many open files): it is at its open-file limit", what),
			Explanation: "A call failed with EMFILE: the process has as many descriptors open as its own limit (RLIMIT_NOFILE, the soft \"Max open files\" of /proc/PID/limits) allows. " +
				"While it stays there it accepts no connection: the kernel still completes handshakes into the listen queue, which fills and then drops (TcpExtListenOverflows), so new clients time out while established connections keep working. " +
				"The limit belongs to the process (its unit's LimitNOFILE=, ulimit -n, the container's nofile), not to a TCP sysctl, and no kernel change is proposed. A count that grows under steady load is a descriptor leak, which a higher limit only delays.",
			Evidence: []string{fdErrorEvidence(s.FDErrors, "EMFILE", l)},
			AppActions: []string{
				find + ", then compare its descriptors with its limit: `ls /proc/PID/fd | wc -l; grep 'open files' /proc/PID/limits`.",
				"If the count grows under steady load, find the leak first (`ls -l /proc/PID/fd | awk '{print $NF}' | sort | uniq -c | sort -rn | head`); if it follows the load, raise the limit where the process starts (`systemctl edit UNIT`: [Service] LimitNOFILE=N, or ulimit -n) and restart it.",
			},
		})
	}
	return out
}

// fdErrorEvidence is the evidence line of the logged calls with this errno
// (and, for EMFILE, this listener): how many, and the first.
func fdErrorEvidence(fes []sample.FDError, errno, listener string) string {
	var first string
	n := 0
	for _, fe := range fes {
		if fe.Errno != errno || (errno == "EMFILE" && fe.Listener != listener) {
			continue
		}
		if n == 0 {
			first = fe.Line
		}
		n++
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%s of a call failing with %s, the first: %s", plural(n, "application log line"), errno, first)
}

func checkTCPMemory(s *sample.Sample, _ []*sample.Sample, cfg config.Diagnose) []Observation {
	mem, okM := sysInts(s, kTCPMem, 3)
	pages := s.Sockstat.TCPMemPages
	var ev []string
	sev := SevInfo
	if okM && int64(pages) >= mem[1] {
		sev = SevWarning
		if int64(pages) >= mem[2] {
			sev = SevCritical
		}
		ev = append(ev, fmt.Sprintf("sockstat TCP mem %d pages; %s = %d %d %d (low, pressure, high)", pages, kTCPMem, mem[0], mem[1], mem[2]))
	}
	if oom := kernelLines(s, sample.KernelTCPOOM); len(oom) > 0 {
		// The kernel prints it when tcp_mem's hard limit was passed
		// (tcp_out_of_memory): data was dropped, connections aborted.
		ev = append(ev, oom...)
		sev = SevCritical
	}
	if len(ev) == 0 {
		return nil
	}
	return []Observation{{
		Kind: KindTCPMemoryPressure, Subject: "host", Side: SideKernel, Severity: sev,
		Title:       "TCP memory pressure",
		Explanation: "TCP socket buffers use more pages than the pressure threshold of net.ipv4.tcp_mem: the kernel shrinks buffers, and at the high value it drops data and aborts connections (TCPAbortOnMemory). Either many sockets hold full queues (an application not reading, peers not reading) or tcp_mem is small for this machine's memory. tcp_mem is not on the remediation allowlist: check which sockets hold the memory (`ss -tmn`) before raising it by hand.",
		Evidence:    ev,
		AppActions:  []string{"Find sockets with large queues: `ss -tmn | sort -k2 -rn | head` (Recv-Q: the local application does not read; Send-Q: the peer does not)."},
	}}
}

// checkConntrack reads the kernel log only: the table's fill
// (nf_conntrack_count against nf_conntrack_max) is not sampled, and the
// line, which names no namespace, is the kernel's own word that packets
// were dropped.
func checkConntrack(s *sample.Sample, _ []*sample.Sample, _ config.Diagnose) []Observation {
	ev := kernelLines(s, sample.KernelConntrackFull)
	if len(ev) == 0 {
		return nil
	}
	return []Observation{{
		Kind: KindConntrackFull, Subject: "host", Side: SideKernel, Severity: SevCritical,
		Title:       "connection-tracking table full: new connections dropped",
		Explanation: "netfilter's connection-tracking table (nf_conntrack) is full, so the kernel drops the packets of connections it cannot track: SYNs vanish before TCP sees them, clients time out, and no TCP counter records it. The limit is net.netfilter.nf_conntrack_max, host-wide (a container's namespace cannot change it). It is not on the remediation allowlist: each entry costs kernel memory, so first see what fills the table, then raise the limit (with nf_conntrack_buckets) by hand on the host, or track less.",
		Evidence:    ev,
		AppActions: []string{
			"See how full it is and what fills it: `cat /proc/sys/net/netfilter/nf_conntrack_count /proc/sys/net/netfilter/nf_conntrack_max`, `conntrack -L -o extended | awk '{print $1, $3, $4}' | sort | uniq -c | sort -rn | head` (conntrack-tools).",
			"Track less: NOTRACK (raw table) for high-volume local traffic that needs no NAT or stateful filtering, or shorter timeouts (net.netfilter.nf_conntrack_tcp_timeout_time_wait, ..._established).",
		},
	}}
}

// kernelLines returns the sample's kernel log lines of kind, as evidence.
func kernelLines(s *sample.Sample, kind string) []string {
	var ev []string
	for _, e := range s.Kernel {
		if e.Kind == kind {
			ev = append(ev, "kernel: "+e.Line)
		}
	}
	return ev
}

func checkOrphans(s *sample.Sample, _ []*sample.Sample, cfg config.Diagnose) []Observation {
	var ev []string
	sev := SevWarning
	orph := s.Sockstat.TCPOrphan
	if mo, ok := sysInt(s, kMaxOrphans); ok && mo > 0 && float64(orph) >= cfg.OrphanUseRatio*float64(mo) {
		ev = append(ev, fmt.Sprintf("sockstat orphans %d; %s = %d (%.0f%%)", orph, kMaxOrphans, mo, 100*float64(orph)/float64(mo)))
		if int64(orph) >= mo {
			sev = SevCritical
		}
	}
	if lines := kernelLines(s, sample.KernelTooManyOrphans); len(lines) > 0 {
		// The kernel prints it when the limit was reached and it reset
		// a connection instead of keeping it.
		ev = append(ev, lines...)
		sev = SevCritical
	}
	if len(ev) == 0 {
		return nil
	}
	if len(s.Orphans) > 0 {
		ev = append(ev, "orphans by state: "+statesLine(s.Orphans))
	}
	o := Observation{
		Kind: KindOrphanPressure, Subject: "host", Side: SideUnknown, Severity: sev,
		Title:       "orphaned sockets at or near net.ipv4.tcp_max_orphans",
		Explanation: "Orphans are connections the application has closed that the kernel still finishes (FIN-WAIT-1, FIN-WAIT-2, LAST-ACK, CLOSING). Past tcp_max_orphans the kernel resets new orphans at once (`too many orphaned sockets`): clients see resets. Raising the limit only spends more memory on them. The input does not show who makes them (an application that closes many connections at once, or peers that do not acknowledge): capture `ss -tanpo state fin-wait-1 state last-ack state closing` to see the peers and timers.",
		Evidence:    ev,
		AppActions:  []string{"See which peers hold them: `ss -tan state fin-wait-1 state last-ack state closing`."},
	}
	// A CLOSE-WAIT pile in one process is evidence of the application:
	// it does not close what its peers closed and churns connections.
	for _, p := range s.Processes {
		if n := p.States[sample.StateCloseWait]; n >= cfg.CloseWaitMin {
			o.Side = SideApp
			o.Explanation = fmt.Sprintf("Orphans are connections the application has closed that the kernel still finishes (FIN-WAIT-1, FIN-WAIT-2, LAST-ACK, CLOSING). Past tcp_max_orphans the kernel resets new orphans at once (`too many orphaned sockets`): clients see resets. %s holds %d CLOSE-WAIT connections: it mishandles connection close, and its late, bulk close()s turn into orphans. The fix is in the application; raising the limit only spends memory.", ownerLong(p.Owner), n)
			o.Evidence = append(o.Evidence, fmt.Sprintf("%s holds %d CLOSE-WAIT sockets", ownerLong(p.Owner), n))
			o.AppActions = append(closeWaitActions(p.Owner), o.AppActions...)
			break
		}
	}
	return []Observation{o}
}

// checkTWBuckets reads the kernel's "time wait bucket table overflow": the
// host reached net.ipv4.tcp_max_tw_buckets (a kernel limit, hence side
// kernel) and a closing connection skipped TIME-WAIT. Usually benign
// (TIME-WAIT only guards against late segments of an old connection):
// informational, and tcp_max_tw_buckets is not on the allowlist.
func checkTWBuckets(s *sample.Sample, _ []*sample.Sample, _ config.Diagnose) []Observation {
	ev := kernelLines(s, sample.KernelTWBucketOverflow)
	if len(ev) == 0 {
		return nil
	}
	ev = append(ev, stateCountLine(s, sample.StateTimeWait))
	if v, ok := s.Sysctls["net.ipv4.tcp_max_tw_buckets"]; ok {
		ev = append(ev, "net.ipv4.tcp_max_tw_buckets = "+v)
	}
	return []Observation{{
		Kind: KindTWBucketOverflow, Subject: "host", Side: SideKernel, Severity: SevInfo,
		Title:       "TIME-WAIT bucket table overflow: net.ipv4.tcp_max_tw_buckets reached",
		Explanation: "The kernel reached net.ipv4.tcp_max_tw_buckets and closed some connections without keeping them in TIME-WAIT. This is usually benign: TIME-WAIT only protects a new connection on the same 4-tuple from late segments of an old one, and connections keep working. It means the host closes connections at a high rate (a client opening one connection per request, or a server closing first); connection reuse (keep-alive, pools) lowers it. Not a cause of refused or reset connections on its own. The limit, net.ipv4.tcp_max_tw_buckets, is not on the remediation allowlist: if the message floods the log, raise it by hand.",
		Evidence:    ev,
		AppActions:  []string{"If the rate is unexpected, see who closes first: `ss -tan state time-wait | awk '{print $4, $5}' | sort | uniq -c | sort -rn | head`."},
	}}
}

// synSentAllMin: this many SYN-SENT sockets to a destination with no other
// socket to it are a pile below diagnose.syn_sent_min.
const synSentAllMin = 3

// checkSynSent finds outgoing connects piling up in SYN-SENT towards one
// destination: the peer (or the path to it) does not answer; a responsive
// peer leaves a connect in SYN-SENT for one round trip.
func checkSynSent(s *sample.Sample, _ []*sample.Sample, cfg config.Diagnose) []Observation {
	var out []Observation
	for _, d := range s.Destinations {
		n := d.States[sample.StateSynSent]
		// A pile: syn_sent_min of them, or every one of at least
		// synSentAllMin sockets to the destination (not one connect
		// answered, as a pasted `ss -ant` of a dead upstream shows).
		pile := n >= cfg.SynSentMin || (n >= synSentAllMin && n == d.Total)
		if !pile || localListener(s, d.Dst, d.DstPort) != nil {
			// A destination that listens in this namespace is judged by
			// its own queues (the accept- and SYN-queue rules).
			continue
		}
		out = append(out, Observation{
			Kind: KindSynSentPile, Subject: destSubject(d), Side: SidePeer, Severity: SevWarning,
			Title:       fmt.Sprintf("%d connects to %s:%d unanswered (SYN-SENT)", n, d.Dst, d.DstPort),
			Explanation: fmt.Sprintf("%d connections from %s to %s:%d wait in SYN-SENT: SYNs were sent and no SYN-ACK came back. The peer is down or overloaded (its own accept or SYN queue full), or a firewall or route drops the packets. Our applications see connect() time out. No local sysctl helps; look at the peer and the path.", n, d.Src, d.Dst, d.DstPort),
			Evidence:    []string{fmt.Sprintf("%s: %s", destSubject(d), statesLine(d.States)), fmt.Sprintf("%d SYN-SENT sockets in the namespace", s.States[sample.StateSynSent])},
			AppActions: []string{
				fmt.Sprintf("Check the peer %s:%d: is it listening and accepting (`ss -tlnp` there: Recv-Q against Send-Q, nstat ListenOverflows)?", d.Dst, d.DstPort),
				fmt.Sprintf("Check the path: `tcpdump -ni any host %s and port %d` shows SYNs leaving and whether anything comes back; firewall rules on both ends.", d.Dst, d.DstPort),
				"Give the client a connect timeout and a bounded retry, so that a dead peer does not pile up connects.",
			},
		})
	}
	return out
}
