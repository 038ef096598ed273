package diagnose

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/sockwarden/sockwarden/sample"
)

// coverage says which sources a sample actually holds. Nothing read is
// nothing judged: a claim of health, and a "not explained" answer to a
// symptom, rest only on what is true here. It is derived from the data and
// from Sample.Missing, so live samples, bundles and pastes answer alike.
type coverage struct {
	// sockets: the states of every TCP socket (ss -tan, sock_diag), so
	// piles, destinations and ports can be judged.
	sockets bool
	// socketsPart: only part of the table was read (one state, a grep,
	// counts from a pipeline).
	socketsPart bool
	// listeners: the LISTEN table (ss -tlnp, ss -tan, sock_diag).
	// listenersPart: not the table, but listener rows of a filtered one
	// (netstat -anlp | grep 8090): those shown were read, others not.
	listeners, listenersPart bool
	// owners: process owners with descriptor counts and limits.
	owners bool
	// tcpExt: the TcpExt counters (ListenOverflows ...); tcp: the Tcp ones
	// (PassiveOpens ...).
	tcpExt, tcp bool
	// sockstat: /proc/net/sockstat counts (orphans); sockstatMem: with the
	// TCP memory in pages (ss -s has no memory).
	sockstat, sockstatMem bool
	// kernelLog: dmesg or /dev/kmsg was read.
	kernelLog bool
	// dated: the sample has a time.
	dated bool
	s     *sample.Sample
}

// listenersOn says whether what listens on port is known: the listener
// table was read, or a paste's tables filtered by that port alone
// (Sample.ListenerPorts).
func (c coverage) listenersOn(port uint16) bool {
	return c.listeners || (port != 0 && slices.Contains(c.s.ListenerPorts, port))
}

func coverageOf(s *sample.Sample) coverage {
	c := coverage{s: s, dated: !s.Time.IsZero()}
	for k := range s.Counters {
		c.tcpExt = c.tcpExt || strings.HasPrefix(k, "TcpExt")
		c.tcp = c.tcp || (strings.HasPrefix(k, "Tcp") && !strings.HasPrefix(k, "TcpExt"))
	}
	sockDiag := missing(s, "sock_diag") != nil
	c.sockets = !s.Partial && !sockDiag
	c.listeners = !sockDiag
	if m := missing(s, "ss-tan"); m != nil && strings.HasPrefix(m.Reason, "absent") {
		c.sockets = false
		// Without ss -tlnp either, the bundle says "listeners ... unknown".
		c.listeners = c.listeners && !strings.Contains(m.Reason, "listeners")
	}
	// A paste whose tables all leave listeners out (ss without -a, a
	// state filter, a grep) says so under "listeners".
	if missing(s, "listeners") != nil {
		c.listeners = false
		c.listenersPart = len(s.Listeners) > 0
	}
	for _, m := range s.Missing {
		// A paste of part of the table (one state, one port, a grep) or
		// of counts from a pipeline judges what it shows, and claims
		// nothing of the rest.
		if strings.Contains(m.Reason, "only part of the socket table") || strings.Contains(m.Reason, "state counts from a pipeline") {
			c.sockets, c.socketsPart = false, true
		}
	}
	c.owners = missing(s, "owners") == nil && missing(s, "process owners") == nil
	c.sockstat, c.sockstatMem = true, true
	if m := missing(s, "sockstat"); m != nil {
		c.sockstatMem = false
		c.sockstat = strings.Contains(m.Reason, "ss -s")
	}
	if missing(s, "/proc/net/sockstat") != nil {
		c.sockstat, c.sockstatMem = false, false
	}
	c.kernelLog = missing(s, "dmesg") == nil && missing(s, "/dev/kmsg") == nil
	return c
}

// missing returns the Missing entry of a source: a live source by its name
// ("sock_diag", "/proc/net/sockstat", "owners"), a bundle file by its kind
// ("ss-tan" matches "ss-tan.txt" and "2/ss-tan.txt"), or nil.
func missing(s *sample.Sample, name string) *sample.Missing {
	for i := range s.Missing {
		m := &s.Missing[i]
		if m.Source == name || strings.TrimSuffix(path.Base(m.Source), ".txt") == name {
			return m
		}
	}
	return nil
}

// sysctl says whether a sysctl was read.
func (c coverage) sysctl(key string) bool {
	_, ok := c.s.Sysctls[key]
	return ok
}

// claims returns what a healthy read may claim of the series (fine) and
// what it may not, with the capture that would let it (notJudged). Every
// claim names the source it rests on: TestHealthyClaimsBacked removes each
// source from a lab bundle in turn and checks the claim moves across.
func claims(series []*sample.Sample) (fine, notJudged []string) {
	last := series[len(series)-1]
	c := coverageOf(last)
	// A counter claim needs the counter itself in every sample (a pasted
	// netstat -s has ListenOverflows but no TCPReqQFullDrop) and dates.
	everywhere := func(name string) bool {
		for _, s := range series {
			if _, ok := s.Counters[name]; !ok {
				return false
			}
		}
		return true
	}
	rates := len(series) > 1 && c.dated && !series[0].Time.IsZero()
	switch {
	case !c.listeners && c.listenersPart:
		notJudged = append(notJudged, "listen queues beyond the listeners shown (the table was filtered: capture ss -tlnp)")
	case !c.listeners:
		notJudged = append(notJudged, "listen queues (no listener table: capture ss -tlnp)")
	case rates && everywhere(cOverflows):
		fine = append(fine, "no listener overflowed")
	default:
		fine = append(fine, "no listener full in the snapshot")
	}
	switch {
	case !c.tcpExt:
		notJudged = append(notJudged, "listen and SYN-queue drops (no TcpExt counters: capture nstat -az, twice)")
	case rates && everywhere(cReqQDrop) && everywhere(cDrops):
		fine = append(fine, "no SYN-queue drops")
	case rates:
		notJudged = append(notJudged, "SYN-queue drops ("+cReqQDrop+" or "+cDrops+" not read: capture nstat -az)")
	default:
		notJudged = append(notJudged, "drop rates (counters without two dated samples are cumulative since boot: capture nstat -az twice, with date)")
	}
	switch {
	case !c.sockets && last.Partial:
		notJudged = append(notJudged, "state piles and ports (cheap sample)")
	case c.socketsPart:
		fine = append(fine, "nothing piles up in the part of the socket table read")
		notJudged = append(notJudged, "state piles and ports beyond the part of the socket table read (capture ss -tanp)")
	case !c.sockets:
		notJudged = append(notJudged, "state piles and ports (no socket table: capture ss -tanp)")
	default:
		fine = append(fine, "no state pile")
		if c.sysctl(kPortRange) {
			fine = append(fine, "ports within their range")
		} else {
			notJudged = append(notJudged, "ports ("+kPortRange+" not read)")
		}
	}
	if c.owners {
		fine = append(fine, "process descriptors within their limits")
	} else {
		notJudged = append(notJudged, "per-process descriptors (no owner fd counts in the input)")
	}
	switch {
	case !c.sysctl(kTCPMem):
		notJudged = append(notJudged, "TCP memory (net.ipv4.tcp_mem not read)")
	case !c.sockstatMem:
		notJudged = append(notJudged, "TCP memory (no /proc/net/sockstat memory count)")
	default:
		fine = append(fine, "TCP memory within its limits")
	}
	if !c.kernelLog {
		notJudged = append(notJudged, "kernel log (SYN flooding, TCP out of memory, orphans, conntrack: capture dmesg)")
	}
	return fine, notJudged
}

// stateCountLine is the count of one state as evidence, or that it was not
// read: from a paste without a socket table (a kernel log line alone)
// "0 SYN-RECV sockets" would be a claim about a table nobody captured.
func stateCountLine(s *sample.Sample, state string) string {
	cov := coverageOf(s)
	n := s.States[state]
	switch {
	case cov.sockets:
		return fmt.Sprintf("%d %s sockets", n, state)
	case cov.socketsPart:
		return fmt.Sprintf("%d %s sockets in what was pasted of the socket table", n, state)
	}
	return fmt.Sprintf("%s sockets not read (no socket table: capture ss -tan state %s)", state, strings.ToLower(state))
}
