// Package diagnosetest builds random sample series for property tests of
// diagnose and of the packages that act on its reports (remediate's guard
// 2 must accept every proposal diagnose makes). It imports no diagnose
// code, so diagnose's own tests can use it too.
package diagnosetest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/sample"
)

var t0 = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

var counters = []string{
	"TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop", "TcpExtTCPReqQFullDoCookies",
	"TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed",
}

// kernelLines are the lines the rules read, as sample classifies them.
var kernelLines = []string{
	"TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:8001. Sending cookies.  Check SNMP counters.",
	"TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:9999. Dropping request.  Check SNMP counters.",
	"TCP: out of memory -- consider tuning tcp_mem",
	"TCP: too many orphaned sockets",
	"TCP: time wait bucket table overflow",
	"nf_conntrack: nf_conntrack: table full, dropping packet",
}

// Series returns 1 to 3 random samples of one namespace, 5 s apart, with
// random counters, sysctls (somaxconn from 16 to 65535, syncookies 0-2,
// narrow and odd port ranges), listeners (some overflowing), piles, a
// watch, destinations, processes and kernel lines. Sources go missing at
// random, as in pastes and partial bundles.
func Series(rng *rand.Rand) []*sample.Sample {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	pickN := func(xs ...int) int { return xs[rng.IntN(len(xs))] }
	n := 1 + rng.IntN(3)
	noCounters := rng.IntN(8) == 0
	out := make([]*sample.Sample, n)
	for i := range out {
		s := &sample.Sample{
			Schema: sample.Schema, Time: t0.Add(time.Duration(i) * 5 * time.Second),
			Host: "lab", Netns: "/run/netns/sw-prop", Source: "live",
			States: sample.NewStates(), Counters: map[string]uint64{}, Orphans: map[string]int{},
			Sysctls: map[string]string{},
		}
		if !noCounters {
			s.Counters["TcpPassiveOpens"] = 1000 + uint64(i)*5*uint64(rng.IntN(50))
			s.Counters["TcpActiveOpens"] = 1000 + uint64(i)*5*uint64(rng.IntN(50))
			for _, c := range counters {
				if rng.IntN(2) == 0 {
					s.Counters[c] = uint64(rng.IntN(100)) + uint64(i)*5*uint64(rng.IntN(40))
				}
			}
		} else {
			s.Missing = append(s.Missing, sample.Missing{Source: "nstat.txt", Reason: "absent: Tcp and TcpExt counters unknown"})
		}
		sys := map[string]string{
			"net.core.somaxconn":                  pick("16", "64", "100", "128", "4096", "65535", "100000"),
			"net.ipv4.tcp_max_syn_backlog":        pick("16", "128", "1024", "65536", "100000"),
			"net.ipv4.tcp_syncookies":             pick("0", "1", "2"),
			"net.ipv4.tcp_tw_reuse":               pick("0", "1", "2"),
			"net.ipv4.ip_local_port_range":        pick("32768 60999", "40000 40199", "1024 65535", "61000 61000", "10000 10001", "60000 65535"),
			"net.ipv4.ip_local_reserved_ports":    pick("", "40100", "8080,40000-40050"),
			"net.ipv4.ip_unprivileged_port_start": pick("1024", "0", "20000"),
			"net.ipv4.tcp_abort_on_overflow":      pick("0", "1"),
			"net.ipv4.tcp_max_orphans":            pick("1000", "65536"),
			"net.ipv4.tcp_mem":                    "94011 125350 188022",
			"net.ipv4.tcp_fin_timeout":            "60",
			"fs.file-nr":                          pick("2000 0 9223372036854775807", "950 0 1000"),
		}
		for k, v := range sys {
			if rng.IntN(10) > 0 {
				s.Sysctls[k] = v
			}
		}
		s.States[sample.StateSynRecv] = rng.IntN(2000)
		s.States[sample.StateSynSent] = rng.IntN(100)
		s.States[sample.StateCloseWait] = rng.IntN(300)
		s.States[sample.StateFinWait2] = rng.IntN(1000)
		s.States[sample.StateTimeWait] = rng.IntN(10000)
		s.Orphans[sample.StateFinWait2] = rng.IntN(1000)
		s.Sockstat.TCPMemPages = rng.IntN(200000)
		s.Sockstat.TCPOrphan = rng.IntN(70000)
		owner := sample.Owner{PID: 4242, Comm: "nginx", Unit: "nginx.service", FDs: rng.IntN(1100), FDLimit: 1024}
		for j := rng.IntN(4); j > 0; j-- {
			sq := uint32(pickN(16, 64, 100, 128, 511, 4096, 65535))
			port := uint16(pickN(8000, 40150, 40390, 60500, 65000) + j)
			local := fmt.Sprintf("%s:%d", pick("127.0.0.1", "0.0.0.0"), port)
			addr := local[:len(local)-len(fmt.Sprint(port))-1]
			s.Listeners = append(s.Listeners, sample.Listener{Local: local, Addr: addr, Port: port, Family: "ipv4",
				RecvQ: uint32(rng.IntN(int(sq) + 2)), SendQ: sq, Owners: []sample.Owner{owner}})
		}
		if rng.IntN(2) == 0 && len(s.Listeners) > 0 {
			l := s.Listeners[0]
			polls := 1 + rng.IntN(100)
			s.Watch = &sample.Watch{Start: t0, End: t0.Add(5 * time.Second), Polls: polls, Interval: 20 * time.Millisecond,
				Peaks: []sample.ListenerPeak{{Local: l.Local, Port: l.Port, SendQ: l.SendQ, PeakRecvQ: l.SendQ + 1, AtLimit: rng.IntN(polls + 1), Drained: rng.IntN(5), Polls: polls}}}
		}
		s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: pick("10.0.0.5", "127.0.0.1"), DstPort: uint16(pickN(443, 8001)), Total: rng.IntN(30000),
			States: map[string]int{sample.StateTimeWait: rng.IntN(30000), sample.StateSynSent: rng.IntN(60)}}}
		s.Processes = []sample.Process{{Owner: owner, Total: 10, States: map[string]int{sample.StateCloseWait: rng.IntN(300), sample.StateFinWait2: rng.IntN(800)}}}
		for _, line := range kernelLines {
			if rng.IntN(6) == 0 {
				if ev, ok := sample.ClassifyKernelLine(line); ok {
					s.Kernel = append(s.Kernel, ev)
				}
			}
		}
		total := 0
		for _, v := range s.States {
			total += v
		}
		s.Total = total
		out[i] = s
	}
	return out
}

// Config returns a random valid diagnose configuration around the
// defaults: caps at their floor or above, cookies kept off or not.
func Config(rng *rand.Rand) config.Diagnose {
	c := config.Defaults().Diagnose
	c.SomaxconnCap = []int{128, 5000, 65535, 1 << 20}[rng.IntN(4)]
	c.SynBacklogCap = []int{128, 4096, 65536}[rng.IntN(3)]
	c.KeepSyncookiesOff = rng.IntN(2) == 0
	c.PortRangeFloor = []int{1024, 10000, 60000}[rng.IntN(3)]
	return c
}
