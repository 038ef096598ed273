package diagnose

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/sample"
)

// verdict is what a test asserts of a finding.
type verdict struct {
	Kind, Subject string
	Side          Side
	Confirmed     bool
}

// change is what a test asserts of a proposal (nil: no proposal).
type proposed struct {
	Kind    string
	Changes []Change
	Ready   bool
}

type ruleCase struct {
	name      string
	n         int
	mut       func(i int, s *sample.Sample)
	cfg       func(*config.Diagnose)
	focus     Focus
	want      []verdict
	proposals []proposed
	healthy   bool
}

// burst: a listener that overflows in bursts and drains between them.
func burstListener(sendQ uint32, somax string) func(i int, s *sample.Sample) {
	return func(i int, s *sample.Sample) {
		s.Sysctls[kSomaxconn] = somax
		load(s, i, 100, 100)
		rise(s, i, cOverflows, 7000, 20)
		rise(s, i, cDrops, 7000, 20)
		s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 0, sendQ, nginx), listener("0.0.0.0:22", 22, 0, 128, nil)}
		s.States[sample.StateListen] = 2
		s.States[sample.StateEstab] = 40
		if i > 0 {
			s.Watch = watch(
				sample.ListenerPeak{Local: "0.0.0.0:8080", Port: 8080, SendQ: sendQ, PeakRecvQ: sendQ + 1, AtLimit: 12, Drained: 4, Polls: 250},
				sample.ListenerPeak{Local: "0.0.0.0:22", Port: 22, SendQ: 128, Polls: 250},
			)
		}
	}
}

func TestRules(t *testing.T) {
	cases := []ruleCase{
		{
			name: "idle host is healthy", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateEstab] = 3
				s.Listeners = []sample.Listener{listener("0.0.0.0:22", 22, 0, 128, nil)}
			},
			healthy: true,
		},
		{
			name: "idle host with an old ListenOverflows value is not overflowing", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Counters[cOverflows], s.Counters[cDrops] = 123456, 123456
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 0, 128, nginx)}
			},
			healthy: true,
		},
		{
			name: "backlog-capped burst is the application's", n: 2,
			mut:  burstListener(128, "4096"),
			want: []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideApp, true}},
		},
		{
			name: "somaxconn-capped burst is the kernel's", n: 3,
			mut:  burstListener(128, "128"),
			want: []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, true}},
			// 100 overflows over 12 polls at the limit: demand 128+9, doubled.
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "512"}}, true}},
		},
		{
			name: "somaxconn policy follows a peak demand above double", n: 2,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				rise(s, i, cOverflows, 7000, 400) // 2000 per interval, 4 bursts: 500 each
			},
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, true}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "1024"}}, true}},
		},
		{
			name: "somaxconn proposal never exceeds the cap", n: 2,
			mut:       burstListener(4096, "4096"),
			cfg:       func(c *config.Diagnose) { c.SomaxconnCap = 5000 },
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, true}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "4096", "5000"}}, true}},
		},
		{
			name: "somaxconn lowered after listen: the target exceeds the current Send-Q", n: 2,
			mut:       burstListener(1024, "128"),
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, true}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "4096"}}, true}},
		},
		{
			name: "somaxconn at the cap gives no proposal", n: 2,
			mut:  burstListener(65535, "65535"),
			want: []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, true}},
		},
		{
			name: "saturated acceptor is the application's even at somaxconn", n: 2,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				s.Listeners[0].RecvQ = 129
				if s.Watch != nil {
					s.Watch.Peaks[0].AtLimit, s.Watch.Peaks[0].Drained = 250, 0
				}
			},
			want: []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideApp, true}},
		},
		{
			name: "saturated acceptor whose watch began before the queue filled", n: 2,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				s.Listeners[0].RecvQ = 129
				if s.Watch != nil {
					s.Watch.Peaks[0].AtLimit, s.Watch.Peaks[0].Drained, s.Watch.Peaks[0].Polls = 67, 0, 75
				}
			},
			want: []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideApp, true}},
		},
		{
			name: "a burst that touched the limit once and never drained is not saturation", n: 2,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				if s.Watch != nil {
					s.Watch.Peaks[0].AtLimit, s.Watch.Peaks[0].Drained = 3, 0
				}
			},
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, true}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "512"}}, true}},
		},
		{
			name: "saturated without a watch: full in every sample", n: 3,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				s.Listeners[0].RecvQ = 129
				s.Watch = nil
			},
			want: []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideApp, true}},
		},
		{
			name: "verdict that changes between intervals is not confirmed", n: 3,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				if i == 1 {
					s.Watch.Peaks[0].AtLimit, s.Watch.Peaks[0].Drained = 250, 0
				}
			},
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, false}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "512"}}, false}},
		},
		{
			name: "drops in one interval only are not confirmed", n: 3,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				if i == 2 {
					s.Counters[cOverflows] = s.Counters[cOverflows] - 100
					s.Watch.Peaks[0].AtLimit = 0
				}
			},
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, false}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "512"}}, false}},
		},
		{
			name: "drops rising below the load floor are not confirmed", n: 2,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				s.Counters["TcpPassiveOpens"], s.Counters["TcpActiveOpens"] = 1000+uint64(i), 1000
			},
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, false}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "512"}}, false}},
		},
		{
			name: "one sample gives unconfirmed findings and a proposal not ready", n: 1,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				s.Listeners[0].RecvQ = 129
			},
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, false}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "256"}}, false}},
		},
		{
			// One snapshot tells the truth it holds: overflows since boot,
			// and the only listener in the input to own them (a pasted
			// netstat -s with ss -lnt). Unconfirmed; the proposal not ready.
			name: "one sample with an old counter and a single listener: an unconfirmed finding on it", n: 1,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				s.Listeners = s.Listeners[:1]
			},
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, false}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "256"}}, false}},
		},
		{
			name: "one sample with an old counter and several listeners, none full: not a finding", n: 1,
			mut:     burstListener(128, "128"),
			healthy: true,
		},
		{
			name: "overflow with several listeners and none at the limit is unattributed", n: 2,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				s.Watch = nil
			},
			want: []verdict{{KindAcceptQueueOverflow, "unattributed", SideUnknown, true}},
		},
		{
			name: "the only listener takes the overflows", n: 2,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				s.Listeners = s.Listeners[:1]
				s.Watch = nil
			},
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, true}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "512"}}, true}},
		},
		{
			name: "SYN queue dropping with syncookies off: turn cookies on, not tcp_max_syn_backlog", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kSyncookies] = "0"
				load(s, i, 0, 20)
				rise(s, i, cReqQDrop, 10, 30)
				s.States[sample.StateSynRecv] = 256
				s.Listeners = []sample.Listener{listener("127.0.0.1:9000", 9000, 0, 256, nil)}
			},
			want:      []verdict{{KindSynQueueOverflow, "127.0.0.1:9000", SideKernel, true}},
			proposals: []proposed{{KindSynQueueOverflow, []Change{{kSyncookies, "0", "1"}}, true}},
		},
		{
			// KERNEL-NOTES: the SYN queue is full at the listener's own
			// backlog; tcp_max_syn_backlog never raises that limit.
			name: "cookies kept off, TCPReqQFullDrop rising at somaxconn: somaxconn, not tcp_max_syn_backlog", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kSyncookies] = "0"
				load(s, i, 0, 20)
				rise(s, i, cReqQDrop, 10, 30)
				rise(s, i, cDrops, 10, 30)
				s.States[sample.StateSynRecv] = 900
				s.Listeners = []sample.Listener{listener("127.0.0.1:9000", 9000, 0, 4096, nil)}
			},
			cfg:       func(c *config.Diagnose) { c.KeepSyncookiesOff = true },
			want:      []verdict{{KindSynQueueOverflow, "127.0.0.1:9000", SideKernel, true}},
			proposals: []proposed{{KindSynQueueOverflow, []Change{{kSomaxconn, "4096", "8192"}}, true}},
		},
		{
			name: "cookies kept off, TCPReqQFullDrop rising below somaxconn: the application's backlog", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kSyncookies] = "0"
				load(s, i, 0, 20)
				rise(s, i, cReqQDrop, 10, 30)
				s.States[sample.StateSynRecv] = 511
				s.Listeners = []sample.Listener{listener("127.0.0.1:9000", 9000, 0, 511, nginx)}
			},
			cfg:  func(c *config.Diagnose) { c.KeepSyncookiesOff = true },
			want: []verdict{{KindSynQueueOverflow, "127.0.0.1:9000", SideApp, true}},
		},
		{
			// tcp_conn_request drops unproven peers past 3/4 of
			// tcp_max_syn_backlog (1024): 700 half-open is near 768.
			name: "cookies kept off, ListenDrops alone with SYN-RECV near 3/4 of tcp_max_syn_backlog: tcp_max_syn_backlog", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kSyncookies] = "0"
				load(s, i, 0, 20)
				rise(s, i, cDrops, 10, 30)
				s.States[sample.StateSynRecv] = 700
				s.Listeners = []sample.Listener{listener("127.0.0.1:9000", 9000, 0, 4096, nil)}
			},
			cfg:       func(c *config.Diagnose) { c.KeepSyncookiesOff = true },
			want:      []verdict{{KindSynQueueOverflow, "127.0.0.1:9000", SideKernel, true}},
			proposals: []proposed{{KindSynQueueOverflow, []Change{{kSynBacklog, "1024", "2048"}}, true}},
		},
		{
			name: "cookies kept off, ListenDrops alone with SYN-RECV far from 3/4: no tcp_max_syn_backlog", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kSyncookies] = "0"
				load(s, i, 0, 20)
				rise(s, i, cDrops, 10, 30)
				s.States[sample.StateSynRecv] = 200
				s.Listeners = []sample.Listener{listener("127.0.0.1:9000", 9000, 0, 4096, nil)}
			},
			cfg:  func(c *config.Diagnose) { c.KeepSyncookiesOff = true },
			want: []verdict{{KindSynQueueOverflow, "127.0.0.1:9000", SideUnknown, true}},
		},
		{
			name: "cookies kept off, ListenDrops with TCPReqQFullDrop rising too: the backlog, not tcp_max_syn_backlog", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kSyncookies] = "0"
				load(s, i, 0, 20)
				rise(s, i, cDrops, 10, 60)
				rise(s, i, cReqQDrop, 10, 30)
				s.States[sample.StateSynRecv] = 760
				s.Listeners = []sample.Listener{listener("127.0.0.1:9000", 9000, 0, 1024, nil)}
			},
			cfg:  func(c *config.Diagnose) { c.KeepSyncookiesOff = true },
			want: []verdict{{KindSynQueueOverflow, "127.0.0.1:9000", SideApp, true}},
		},
		{
			// tcp_syncookies=2 answers every SYN with a cookie: the
			// counters say nothing about a full queue.
			name: "syncookies=2: cookies sent and answered is not a legitimate burst", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kSyncookies] = "2"
				load(s, i, 100, 0)
				rise(s, i, cCookSent, 0, 100)
				rise(s, i, cReqQCook, 0, 100)
				rise(s, i, cCookRecv, 0, 100)
				s.Listeners = []sample.Listener{listener("0.0.0.0:443", 443, 0, 128, nil)}
			},
			healthy: true,
		},
		{
			name: "syncookies=2: cookies sent and never answered is not read as a full queue either", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kSyncookies] = "2"
				load(s, i, 100, 0)
				rise(s, i, cCookSent, 0, 100)
				s.Listeners = []sample.Listener{listener("0.0.0.0:443", 443, 0, 128, nil)}
			},
			healthy: true,
		},
		{
			name: "spoofed SYNs: cookies sent, failed, none received is the peer", n: 2,
			mut: func(i int, s *sample.Sample) {
				load(s, i, 0, 0)
				rise(s, i, cCookSent, 0, 500)
				rise(s, i, cReqQCook, 0, 500)
				rise(s, i, cCookFail, 0, 50)
				s.States[sample.StateSynRecv] = 128
				s.Listeners = []sample.Listener{listener("0.0.0.0:443", 443, 0, 128, nil), listener("0.0.0.0:22", 22, 0, 128, nil)}
				s.Kernel = []sample.KernelEvent{{Kind: "syn-flood", Addr: "0.0.0.0", Port: 443, Action: "cookies", Line: "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:443. Sending cookies."}}
			},
			want: []verdict{{KindSynFlood, "0.0.0.0:443", SidePeer, true}},
		},
		{
			name: "cookies answered on a backlog-capped listener is the application's", n: 2,
			mut: func(i int, s *sample.Sample) {
				load(s, i, 50, 0)
				rise(s, i, cCookSent, 0, 40)
				rise(s, i, cReqQCook, 0, 40)
				rise(s, i, cCookRecv, 0, 40)
				s.Listeners = []sample.Listener{listener("0.0.0.0:8443", 8443, 0, 64, nginx)}
			},
			want: []verdict{{KindSynQueueOverflow, "0.0.0.0:8443", SideApp, true}},
		},
		{
			name: "accept-queue overflow with cookies rising is reported once, as the accept queue", n: 2,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				rise(s, i, cReqQCook, 0, 40)
				rise(s, i, cCookSent, 0, 40)
				rise(s, i, cCookRecv, 0, 40)
			},
			want:      []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, true}},
			proposals: []proposed{{KindAcceptQueueOverflow, []Change{{kSomaxconn, "128", "512"}}, true}},
		},
		{
			name: "CLOSE-WAIT pile names the process", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateCloseWait] = 300 + i
				s.Processes = []sample.Process{{Owner: sample.Owner{PID: 777, Comm: "java", Unit: "orders.service", FDs: 400, FDLimit: 4096}, Total: 320, States: map[string]int{sample.StateCloseWait: 300 + i, sample.StateEstab: 20}}}
			},
			want: []verdict{{KindCloseWaitPile, "pid 777 (java)", SideApp, true}},
		},
		{
			name: "CLOSE-WAIT pile in one sample only is not confirmed", n: 2,
			mut: func(i int, s *sample.Sample) {
				if i == 1 {
					s.States[sample.StateCloseWait] = 300
					s.Processes = []sample.Process{{Owner: sample.Owner{PID: 777, Comm: "java"}, Total: 300, States: map[string]int{sample.StateCloseWait: 300}}}
				}
			},
		},
		{
			name: "TIME-WAIT pile with plenty of ports is normal", n: 2,
			mut: func(i int, s *sample.Sample) {
				load(s, i, 0, 200)
				s.States[sample.StateTimeWait] = 9000
				s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.5", DstPort: 5432, Total: 3000, States: map[string]int{sample.StateTimeWait: 3000}}}
			},
			want:    []verdict{{KindTimeWaitPile, "host", SideNone, true}},
			healthy: true,
		},
		{
			// ardb issue 74 (corpus 48): counts from a pipeline, no
			// addresses; "no destination does" would rest on nothing.
			name: "TIME-WAIT counts without destinations, enough to fill a pool, are not called normal", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateTimeWait] = 49589
				s.Destinations = nil
			},
			want: []verdict{{KindTimeWaitPile, "host", SideUnknown, false}},
		},
		{
			// A pasted ss -s alone: "timewait 30288/0" and no table.
			name: "TIME-WAIT counted by ss -s alone is judged against the pool", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.States = map[string]int{}
				s.Total = 0
				s.Destinations = nil
				s.Sockstat.TCPTimeWait = 30288
				s.Missing = append(s.Missing, sample.Missing{Source: "ss-tan.txt", Reason: "absent: socket states, listeners, destinations and processes unknown"})
			},
			want: []verdict{{KindTimeWaitPile, "host", SideUnknown, false}},
		},
		{
			name: "TIME-WAIT counts without destinations, well below the pool, are normal", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateTimeWait] = 12248
				s.Destinations = nil
			},
			want:    []verdict{{KindTimeWaitPile, "host", SideNone, false}},
			healthy: true,
		},
		{
			// A pasted log line: the ports for that destination ran
			// out, whatever TIME-WAIT count sits next to it.
			name: "connect() EADDRNOTAVAIL logged by an application is port exhaustion of its destination", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateTimeWait] = 9000
				s.Destinations = nil
				s.ConnectErrors = []sample.ConnectError{
					{Dst: "192.168.1.207", Port: 16379, Line: "Could not connect to Redis at 192.168.1.207:16379: Cannot assign requested address"},
					{Line: "Error connectRedis: Cannot assign requested address"},
				}
			},
			want: []verdict{
				{KindEphemeralPorts, "192.168.1.207:16379", SideUnknown, false},
				{KindEphemeralPorts, "host", SideUnknown, false},
			},
		},
		{
			// hiredis issue 58 (corpus 49): the line names no
			// destination, every row pasted goes to 127.0.0.1:6399.
			// Named as inferred; nothing is sized from a partial table.
			name: "connect() EADDRNOTAVAIL naming no destination, every socket read to one: that one, inferred", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateTimeWait] = 10
				s.Destinations = []sample.Destination{{Src: "127.0.0.1", Dst: "127.0.0.1", DstPort: 6399, Total: 10, States: map[string]int{sample.StateTimeWait: 10}}}
				s.DestinationGroups = 1
				s.ConnectErrors = []sample.ConnectError{{Line: "Error connectRedis: Cannot assign requested address"}}
			},
			want: []verdict{{KindEphemeralPorts, "127.0.0.1:6399 (inferred)", SideUnknown, false}},
		},
		{
			name: "connect() EADDRNOTAVAIL naming no destination, sockets read to two: the host", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateTimeWait] = 13
				s.Destinations = []sample.Destination{
					{Src: "11.1.1.1", Dst: "11.1.1.4", DstPort: 6379, Total: 8, States: map[string]int{sample.StateTimeWait: 8}},
					{Src: "11.1.1.1", Dst: "11.1.1.2", DstPort: 2003, Total: 5, States: map[string]int{sample.StateTimeWait: 5}},
				}
				s.DestinationGroups = 2
				s.ConnectErrors = []sample.ConnectError{{Line: "Error connectRedis: Cannot assign requested address"}}
			},
			want: []verdict{{KindEphemeralPorts, "host", SideUnknown, false}},
		},
		{
			// top_destinations dropped groups: the one kept may not be
			// the only one.
			name: "connect() EADDRNOTAVAIL naming no destination, destination groups dropped: the host", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateTimeWait] = 10
				s.Destinations = []sample.Destination{{Src: "127.0.0.1", Dst: "127.0.0.1", DstPort: 6399, Total: 10, States: map[string]int{sample.StateTimeWait: 10}}}
				s.DestinationGroups = 2
				s.ConnectErrors = []sample.ConnectError{{Line: "Error connectRedis: Cannot assign requested address"}}
			},
			want: []verdict{{KindEphemeralPorts, "host", SideUnknown, false}},
		},
		{
			// Another destination near its pool does not hide the one
			// the application logged; the one judged from its sockets
			// is not named twice.
			name: "connect() EADDRNOTAVAIL to another destination than the one near its pool is its own finding", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls["net.ipv4.ip_local_port_range"] = "32768 60999"
				s.States[sample.StateTimeWait] = 27000
				s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.5", DstPort: 443, Total: 27000, States: map[string]int{sample.StateTimeWait: 27000}}}
				s.ConnectErrors = []sample.ConnectError{
					{Dst: "10.0.0.5", Port: 443, Line: "connect() to 10.0.0.5:443 failed (99: Cannot assign requested address)"},
					{Dst: "10.0.0.7", Port: 6379, Line: "Could not connect to Redis at 10.0.0.7:6379: Cannot assign requested address"},
				}
			},
			want: []verdict{
				{KindEphemeralPorts, "10.0.0.7:6379", SideUnknown, false},
				{KindEphemeralPorts, "10.0.0.5:443 from 10.0.0.1", SideKernel, false},
			},
			proposals: []proposed{{KindEphemeralPorts, []Change{{kPortRange, "32768 60999", "10000 65535"}, {kTwReuse, "2", "1"}}, false}},
		},
		{
			// A pasted log line of EMFILE: the process was at its own
			// open-file limit; one finding per listener named, the
			// application's, and no kernel change.
			name: "EMFILE logged by an application is its descriptor limit, per listener", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.FDErrors = []sample.FDError{
					{Errno: "EMFILE", Listener: "127.0.0.1:9980", Line: "http: Accept error: accept tcp 127.0.0.1:9980: accept4: too many open files; retrying in 1s"},
					{Errno: "EMFILE", Listener: "127.0.0.1:9980", Line: "http: Accept error: accept tcp 127.0.0.1:9980: accept4: too many open files; retrying in 1s"},
					{Errno: "EMFILE", Line: "accept4() failed (24: Too many open files)"},
				}
			},
			want: []verdict{
				{KindFDExhaustion, "127.0.0.1:9980", SideApp, false},
				{KindFDExhaustion, "application", SideApp, false},
			},
		},
		{
			// The kernel's line, or an application's ENFILE: the host
			// reached fs.file-max, whatever file-nr says (not read).
			name: "file-max reached, in the kernel log or as ENFILE, is the host's", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Kernel = []sample.KernelEvent{{Kind: sample.KernelFileMax, Line: "VFS: file-max limit 51200 reached"}}
				s.FDErrors = []sample.FDError{{Errno: "ENFILE", Line: "socket: Too many open files in system"}}
			},
			want: []verdict{{KindFDExhaustion, "host", SideApp, false}},
		},
		{
			name: "one destination near its port pool: reserve listeners, widen, tw_reuse", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kPortRange] = "40000 40199"
				s.Sysctls[kReserved] = "40150"
				load(s, i, 0, 40)
				s.States[sample.StateTimeWait] = 170
				s.States[sample.StateEstab] = 10
				s.Listeners = []sample.Listener{listener("0.0.0.0:40300", 40300, 0, 128, nil), listener("0.0.0.0:22", 22, 0, 128, nil)}
				s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.5", DstPort: 5432, Total: 180, States: map[string]int{sample.StateTimeWait: 170, sample.StateEstab: 10}}}
			},
			want: []verdict{{KindEphemeralPorts, "10.0.0.5:5432 from 10.0.0.1", SideKernel, true}},
			proposals: []proposed{{KindEphemeralPorts, []Change{
				{kReserved, "40150", "40150,40300"},
				{kPortRange, "40000 40199", "40000 40399"},
				{kTwReuse, "2", "1"},
			}, true}},
		},
		{
			name: "loopback destination with tw_reuse=2 already reuses", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kPortRange] = "40000 40199"
				s.States[sample.StateTimeWait] = 190
				s.Destinations = []sample.Destination{{Src: "127.0.0.1", Dst: "127.0.0.1", DstPort: 8080, Total: 190, States: map[string]int{sample.StateTimeWait: 190}}}
			},
			want:      []verdict{{KindEphemeralPorts, "127.0.0.1:8080 from 127.0.0.1", SideKernel, true}},
			proposals: []proposed{{KindEphemeralPorts, []Change{{kPortRange, "40000 40199", "40000 40399"}}, true}},
		},
		{
			name: "widening stops at the floor and keeps different parity", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kPortRange] = "50000 65535"
				s.Sysctls[kTwReuse] = "1"
				s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.5", DstPort: 443, Total: 15000, States: map[string]int{sample.StateEstab: 15000}}}
			},
			want:      []verdict{{KindEphemeralPorts, "10.0.0.5:443 from 10.0.0.1", SideKernel, true}},
			proposals: []proposed{{KindEphemeralPorts, []Change{{kPortRange, "50000 65535", "34464 65535"}}, true}},
		},
		{
			name: "start and end of the same parity are moved apart", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kPortRange] = "30001 50000"
				s.Sysctls[kTwReuse] = "1"
				s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.5", DstPort: 443, Total: 18000, States: map[string]int{sample.StateEstab: 18000}}}
			},
			cfg:       func(c *config.Diagnose) { c.PortRangeFloor = 30001 },
			want:      []verdict{{KindEphemeralPorts, "10.0.0.5:443 from 10.0.0.1", SideKernel, true}},
			proposals: []proposed{{KindEphemeralPorts, []Change{{kPortRange, "30001 50000", "30001 65534"}}, true}},
		},
		{
			name: "a range below the floor is never narrowed", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kPortRange] = "2000 3000"
				s.Sysctls[kTwReuse] = "1"
				s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.5", DstPort: 443, Total: 900, States: map[string]int{sample.StateEstab: 900}}}
			},
			want:      []verdict{{KindEphemeralPorts, "10.0.0.5:443 from 10.0.0.1", SideKernel, true}},
			proposals: []proposed{{KindEphemeralPorts, []Change{{kPortRange, "2000 3000", "2000 4001"}}, true}},
		},
		{
			name: "range already widest and tw_reuse on: only the application can fix it", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kPortRange] = "10000 65535"
				s.Sysctls[kTwReuse] = "1"
				s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.5", DstPort: 443, Total: 55000, States: map[string]int{sample.StateTimeWait: 55000}}}
			},
			want: []verdict{{KindEphemeralPorts, "10.0.0.5:443 from 10.0.0.1", SideApp, true}},
		},
		{
			name: "orphaned FIN-WAIT-2 is the peers'", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateFinWait2] = 800
				s.Orphans = map[string]int{sample.StateFinWait2: 800}
			},
			want: []verdict{{KindFinWait2Pile, "orphaned", SidePeer, true}},
		},
		{
			name: "FIN-WAIT-2 held by a process is the application's", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateFinWait2] = 600
				s.Processes = []sample.Process{{Owner: sample.Owner{PID: 55, Comm: "proxy"}, Total: 600, States: map[string]int{sample.StateFinWait2: 600}}}
			},
			want: []verdict{{KindFinWait2Pile, "pid 55 (proxy)", SideApp, true}},
		},
		{
			name: "process near its fd limit", n: 2,
			mut: func(i int, s *sample.Sample) {
				o := sample.Owner{PID: 99, Comm: "api", Unit: "api.service", FDs: 1000, FDLimit: 1024}
				s.Listeners = []sample.Listener{listener("0.0.0.0:8000", 8000, 0, 4096, &o)}
				s.Processes = []sample.Process{{Owner: o, Total: 990, States: map[string]int{sample.StateEstab: 990}}}
			},
			want: []verdict{{KindFDExhaustion, "pid 99 (api)", SideApp, true}},
		},
		{
			name: "system near fs.file-max", n: 2,
			mut:  func(i int, s *sample.Sample) { s.Sysctls[kFileNr] = "95000 0 100000" },
			want: []verdict{{KindFDExhaustion, "host", SideApp, true}},
		},
		{
			name: "TCP memory above the pressure value", n: 2,
			mut:  func(i int, s *sample.Sample) { s.Sockstat.TCPMemPages = 130000 },
			want: []verdict{{KindTCPMemoryPressure, "host", SideKernel, true}},
		},
		{
			name: "somaxconn not recorded: the side is unknown", n: 2,
			mut: func(i int, s *sample.Sample) {
				burstListener(128, "128")(i, s)
				delete(s.Sysctls, kSomaxconn)
			},
			want: []verdict{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideUnknown, true}},
		},
		{
			name: "one sample with a SYN-RECV pile cannot tell a flood from a burst", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Counters[cReqQCook] = 5000
				s.States[sample.StateSynRecv] = 300
				s.Listeners = []sample.Listener{listener("0.0.0.0:443", 443, 0, 128, nil)}
			},
			want: []verdict{{KindSynQueueOverflow, "0.0.0.0:443", SideUnknown, false}},
		},
		{
			name: "cookies answered with several listeners and no kernel line", n: 2,
			mut: func(i int, s *sample.Sample) {
				load(s, i, 50, 0)
				rise(s, i, cCookSent, 0, 40)
				rise(s, i, cCookRecv, 0, 40)
				s.Listeners = []sample.Listener{listener("0.0.0.0:8443", 8443, 0, 64, nil), listener("0.0.0.0:22", 22, 0, 128, nil)}
			},
			want: []verdict{{KindSynQueueOverflow, "host", SideUnknown, true}},
		},
		{
			name: "cookies answered on a somaxconn-capped listener named by the kernel log", n: 2,
			mut: func(i int, s *sample.Sample) {
				load(s, i, 50, 0)
				rise(s, i, cReqQCook, 0, 40)
				rise(s, i, cCookRecv, 0, 40)
				s.Sysctls[kSomaxconn] = "128"
				s.Listeners = []sample.Listener{listener("0.0.0.0:8443", 8443, 0, 128, nil), listener("0.0.0.0:22", 22, 0, 128, nil)}
				s.Kernel = []sample.KernelEvent{{Kind: "syn-flood", Addr: "0.0.0.0", Port: 8443, Action: "cookies", Line: "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:8443. Sending cookies."}}
			},
			want:      []verdict{{KindSynQueueOverflow, "0.0.0.0:8443", SideKernel, true}},
			proposals: []proposed{{KindSynQueueOverflow, []Change{{kSomaxconn, "128", "256"}}, true}},
		},
		{
			name: "CLOSE-WAIT without owners", n: 2,
			mut:  func(i int, s *sample.Sample) { s.States[sample.StateCloseWait] = 400 },
			want: []verdict{{KindCloseWaitPile, "owner unknown", SideApp, true}},
		},
		{
			name: "FIN-WAIT-2 without owner data", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateFinWait2] = 700
				s.Orphans = nil
			},
			want: []verdict{{KindFinWait2Pile, "host", SideUnknown, true}},
		},
		{
			name: "TCP out of memory in the kernel log, one sample only", n: 2,
			mut: func(i int, s *sample.Sample) {
				if i == 1 {
					s.Kernel = []sample.KernelEvent{{Kind: "tcp-oom", Line: "TCP: out of memory -- consider tuning tcp_mem"}}
				}
			},
		},
		{
			name: "too many orphans in the kernel log of every sample", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Kernel = []sample.KernelEvent{{Kind: "too-many-orphans", Line: "TCP: too many orphaned sockets"}}
			},
			// Nothing in the input shows the peers: never peer on a guess.
			want: []verdict{{KindOrphanPressure, "host", SideUnknown, true}},
		},
		{
			name: "conntrack table full in the kernel log of every sample", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Kernel = []sample.KernelEvent{{Kind: "conntrack-full", Line: "nf_conntrack: nf_conntrack: table full, dropping packet"}}
			},
			want: []verdict{{KindConntrackFull, "host", SideKernel, true}},
		},
		{
			// The first sample's read of the log goes back to boot:
			// a line there and none since is no current drop.
			name: "conntrack table full once, before the first sample", n: 2,
			mut: func(i int, s *sample.Sample) {
				if i == 0 {
					s.Kernel = []sample.KernelEvent{{Kind: "conntrack-full", Line: "nf_conntrack: nf_conntrack: table full, dropping packet"}}
				}
			},
		},
		{
			name: "orphans near tcp_max_orphans", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kMaxOrphans] = "1000"
				s.Sockstat.TCPOrphan = 900
			},
			want: []verdict{{KindOrphanPressure, "host", SideUnknown, true}},
		},
		{
			name: "orphans at tcp_max_orphans with a CLOSE-WAIT pile in one process: the application", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kMaxOrphans] = "1000"
				s.Sockstat.TCPOrphan = 1000
				s.States[sample.StateCloseWait] = 150
				s.Processes = []sample.Process{{Owner: *nginx, Total: 160, States: map[string]int{sample.StateCloseWait: 150}}}
			},
			// Critical (at the limit) first.
			want: []verdict{{KindOrphanPressure, "host", SideApp, true}, {KindCloseWaitPile, "pid 4242 (nginx)", SideApp, true}},
		},
		{
			name: "refused on a port nothing listens on: no-listener", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Listeners = []sample.Listener{listener("0.0.0.0:22", 22, 0, 128, nil)}
			},
			focus: Focus{SymptomRefused, 8080},
			want:  []verdict{{KindNoListener, "port 8080", SideApp, false}},
		},
		{
			// netstat -nap | grep ardb: the rows of one process, so
			// nothing is known of what listens on 80.
			name: "refused on a port a filtered table cannot show: not judged", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Listeners = []sample.Listener{listener("192.168.1.207:16379", 16379, 0, 0, nil)}
				s.Missing = append(s.Missing, sample.Missing{Source: "listeners", Reason: "listeners other than the 1 shown not read: the socket tables pasted are filtered (piped through grep ardb)"})
			},
			focus:   Focus{SymptomRefused, 80},
			healthy: true,
		},
		{
			// ss -tln 'sport = :443' printing only its header: nothing
			// listens on 443, whatever listens elsewhere.
			name: "refused on the port a table was filtered by, nothing shown: no-listener", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Listeners = nil
				s.Missing = append(s.Missing, sample.Missing{Source: "listeners", Reason: "listeners on ports other than 443 not read"})
				s.ListenerPorts = []uint16{443}
			},
			focus: Focus{SymptomRefused, 443},
			want:  []verdict{{KindNoListener, "port 443", SideApp, false}},
		},
		{
			name: "refused on a port bound to loopback only: listener-local-only", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Listeners = []sample.Listener{listener("127.0.0.1:8080", 8080, 0, 4096, nginx)}
			},
			focus: Focus{SymptomRefused, 8080},
			want:  []verdict{{KindListenerLocalOnly, "127.0.0.1:8080", SideApp, true}},
		},
		{
			name: "refused on a port listening on the wildcard: no port finding", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Listeners = []sample.Listener{listener("127.0.0.1:8080", 8080, 0, 4096, nginx), listener("0.0.0.0:8080", 8080, 0, 4096, nginx)}
			},
			focus:   Focus{SymptomRefused, 8080},
			healthy: true,
		},
		{
			// Nothing read is nothing judged: without a listener table
			// "nothing listens" would be a guess.
			name: "refused without a listener table: not judged", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Missing = []sample.Missing{{Source: "ss-tan.txt", Reason: "absent: socket states, listeners, destinations and processes unknown (capture: ss -tanpe and ss -tlnp)"}}
			},
			focus:   Focus{SymptomRefused, 8080},
			healthy: true,
		},
		{
			name: "a timeout on a port is not judged by the port rule (it may be remote)", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Listeners = []sample.Listener{listener("0.0.0.0:22", 22, 0, 128, nil)}
			},
			focus:   Focus{SymptomTimeout, 5432},
			healthy: true,
		},
		{
			name: "time wait bucket table overflow is informational", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.Kernel = []sample.KernelEvent{{Kind: sample.KernelTWBucketOverflow, Line: "TCP: time wait bucket table overflow"}}
			},
			want:    []verdict{{KindTWBucketOverflow, "host", SideKernel, true}},
			healthy: true,
		},
		{
			name: "SYN-SENT pile to a remote destination is the peer's", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateSynSent] = 40
				s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.9", DstPort: 5432, Total: 40, States: map[string]int{sample.StateSynSent: 40}}}
			},
			want: []verdict{{KindSynSentPile, "10.0.0.9:5432 from 10.0.0.1", SidePeer, true}},
		},
		{
			// The destination listens here: its queue rules judge it.
			name: "SYN-SENT pile to a listener of this namespace is not a peer finding", n: 2,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateSynSent] = 40
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 0, 4096, nginx)}
				s.Destinations = []sample.Destination{{Src: "127.0.0.1", Dst: "127.0.0.1", DstPort: 8080, Total: 40, States: map[string]int{sample.StateSynSent: 40}}}
			},
		},
	}
	seen := map[string]map[Side]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg()
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			r := RunFocus(series(tc.n, tc.mut), c, tc.focus)
			var got []verdict
			for _, f := range r.Findings {
				got = append(got, verdict{f.Kind, f.Subject, f.Side, f.Confirmed})
				if seen[f.Kind] == nil {
					seen[f.Kind] = map[Side]bool{}
				}
				seen[f.Kind][f.Side] = true
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%s", diff, dump(r))
			}
			var gotP []proposed
			for _, p := range r.Proposals {
				gotP = append(gotP, proposed{p.Finding, p.Changes, p.Ready})
			}
			if diff := cmp.Diff(tc.proposals, gotP); diff != "" {
				t.Errorf("proposals (-want +got):\n%s", diff)
			}
			if r.Healthy != (tc.healthy || len(tc.want) == 0) {
				t.Errorf("Healthy = %v", r.Healthy)
			}
			checkInvariants(t, r)
		})
	}
	// Every side every rule can give is exercised above, so the
	// invariants (no sysctl for a non-kernel side ...) cover every rule.
	for _, rule := range Rules {
		for _, side := range rule.Sides {
			ok := false
			for _, k := range rule.Kinds {
				ok = ok || seen[k][side]
			}
			if !ok {
				t.Errorf("rule %s: no test case gives side %s", rule.Name, side)
			}
		}
	}
}

// checkInvariants holds for every report: only kernel findings carry
// changes, never tcp_tw_recycle, never tcp_max_syn_backlog with cookies on,
// proposals of unconfirmed findings are not ready and say why.
func checkInvariants(t *testing.T, r Report) {
	t.Helper()
	side := map[groupKey]Finding{}
	for _, f := range r.Findings {
		side[groupKey{f.Kind, f.Subject}] = f
		if !f.Confirmed && f.NotConfirmedReason == "" {
			t.Errorf("%s on %s: unconfirmed without a reason", f.Kind, f.Subject)
		}
		if len(f.Evidence) == 0 || f.Explanation == "" {
			t.Errorf("%s on %s: no evidence or explanation", f.Kind, f.Subject)
		}
	}
	for _, p := range r.Proposals {
		f, ok := side[groupKey{p.Finding, p.Subject}]
		if !ok {
			t.Errorf("proposal %s has no finding", p.ID)
			continue
		}
		if f.Side != SideKernel {
			t.Errorf("proposal %s carries a sysctl change for a %s-side finding", p.ID, f.Side)
		}
		if p.Ready != f.Confirmed || (!p.Ready && p.NotReadyReason == "") {
			t.Errorf("proposal %s: ready %v for confirmed %v (%q)", p.ID, p.Ready, f.Confirmed, p.NotReadyReason)
		}
		if p.ID != ProposalID(p.Host, p.Netns, p.Finding, p.Subject, p.Changes) || len(p.ID) != 12 {
			t.Errorf("proposal id %q is not the hash of its facts", p.ID)
		}
		if len(p.Verify.Commands) == 0 || p.Verify.Fixed == "" {
			t.Errorf("proposal %s: no verification", p.ID)
		}
		for _, c := range p.Changes {
			if strings.Contains(c.Key, "tw_recycle") {
				t.Errorf("proposal %s proposes %s", p.ID, c.Key)
			}
			if c.Key == kSynBacklog && !strings.Contains(p.Reason, "keep_syncookies_off") {
				t.Errorf("proposal %s raises tcp_max_syn_backlog with syncookies on", p.ID)
			}
		}
	}
}

func dump(r Report) string {
	var b strings.Builder
	_ = WriteText(&b, r)
	return b.String()
}

func TestAbortOnOverflowEvidence(t *testing.T) {
	for _, v := range []string{"0", "1"} {
		r := Run(series(2, func(i int, s *sample.Sample) {
			burstListener(128, "128")(i, s)
			s.Sysctls["net.ipv4.tcp_abort_on_overflow"] = v
		}), cfg())
		got := strings.Contains(strings.Join(r.Findings[0].Evidence, "\n"), "tcp_abort_on_overflow = 1")
		if got != (v == "1") {
			t.Errorf("tcp_abort_on_overflow=%s: evidence line present = %v", v, got)
		}
	}
}

// TestKernelLogSummary: the kernel log is host-wide; a SYN-flooding line
// for a port that does not listen here is not this namespace's.
func TestKernelLogSummary(t *testing.T) {
	cases := []struct {
		port uint16
		want string
	}{
		{443, "Kernel log: SYN flooding on 0.0.0.0:443 (sending cookies)."},
		{8443, ""},
	}
	for _, tc := range cases {
		ser := series(2, func(i int, s *sample.Sample) {
			s.Listeners = []sample.Listener{listener("0.0.0.0:443", 443, 0, 128, nil)}
			s.Kernel = []sample.KernelEvent{
				{Kind: "syn-flood", Addr: "0.0.0.0", Port: tc.port, Action: "cookies", Line: "..."},
				{Kind: "port-range-parity", Line: "ip_local_port_range: prefer different parity for start/end values."},
			}
		})
		if got := kernelLogLine(ser); got != tc.want {
			t.Errorf("port %d: %q, want %q", tc.port, got, tc.want)
		}
	}
}

// findingPort reads the port of every subject form, the inferred one of
// an EADDRNOTAVAIL finding included: --port 80 must not take a finding
// about 127.0.0.1:6399 for one whose port is unknown.
func TestFindingPort(t *testing.T) {
	for subject, want := range map[string]uint16{
		"port 80":                       80,
		"10.0.0.5:443 from 10.0.0.1":    443,
		"192.168.1.207:16379":           16379,
		"127.0.0.1:6399" + inferredMark: 6399,
		"host":                          0,
	} {
		if got := findingPort(subject); got != want {
			t.Errorf("findingPort(%q) = %d, want %d", subject, got, want)
		}
	}
}
