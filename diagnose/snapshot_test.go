package diagnose

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/sample"
)

// noCounters is a paste of `ss -tlnp` and sysctls: no nstat.
func noCounters(s *sample.Sample) {
	s.Counters = map[string]uint64{}
	s.Missing = append(s.Missing, sample.Missing{Source: "nstat.txt", Reason: "absent (and no netstat.txt/snmp.txt): Tcp and TcpExt counters unknown (capture: nstat -az)"})
}

// TestOneSnapshotRules: section 3 of issue 9, one rule per case, with the
// severity and what the finding must say.
func TestOneSnapshotRules(t *testing.T) {
	type want struct {
		Kind, Subject string
		Side          Side
		Severity      Severity
		Confirmed     bool
	}
	for _, tc := range []struct {
		name  string
		n     int
		mut   func(i int, s *sample.Sample)
		want  []want
		says  string // in the first finding's title, explanation or reason
		notIn string // in no finding's explanation
	}{
		{
			name: "Recv-Q > Send-Q below somaxconn, no counters: an overflow now, the app's backlog", n: 1,
			mut: func(i int, s *sample.Sample) {
				noCounters(s)
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 129, 128, nginx)}
			},
			want: []want{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideApp, SevWarning, false}},
			says: "confirm with a second sample and the counters",
		},
		{
			name: "Recv-Q > Send-Q at somaxconn: the kernel's cap", n: 1,
			mut: func(i int, s *sample.Sample) {
				noCounters(s)
				s.Sysctls[kSomaxconn] = "128"
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 129, 128, nginx)}
			},
			want: []want{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideKernel, SevWarning, false}},
		},
		{
			name: "Recv-Q > Send-Q, somaxconn not read: side unknown, says what to capture", n: 1,
			mut: func(i int, s *sample.Sample) {
				noCounters(s)
				delete(s.Sysctls, kSomaxconn)
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 129, 128, nginx)}
			},
			want: []want{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideUnknown, SevWarning, false}},
			says: "net.core.somaxconn was not recorded",
		},
		{
			name: "Recv-Q == Send-Q alone is a full queue, not proof of an overflow", n: 1,
			mut: func(i int, s *sample.Sample) {
				noCounters(s)
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 128, 128, nginx)}
			},
		},
		{
			name: "two samples without counters: the snapshot finding, unconfirmed for lack of counters", n: 2,
			mut: func(i int, s *sample.Sample) {
				noCounters(s)
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 129, 128, nginx)}
			},
			want: []want{{KindAcceptQueueOverflow, "0.0.0.0:8080", SideApp, SevWarning, false}},
			says: "confirm with the counters",
		},
		{
			name: "every listener of one process full: it is not accepting", n: 1,
			mut: func(i int, s *sample.Sample) {
				noCounters(s)
				s.Sysctls[kSomaxconn] = "128"
				s.Listeners = []sample.Listener{listener("0.0.0.0:80", 80, 129, 128, nginx), listener("0.0.0.0:443", 443, 129, 128, nginx)}
			},
			want: []want{
				{KindAcceptQueueOverflow, "0.0.0.0:443", SideApp, SevWarning, false},
				{KindAcceptQueueOverflow, "0.0.0.0:80", SideApp, SevWarning, false},
			},
			says: "is not accepting: all 2 of its listeners are full",
		},
		{
			name: "SYN flooding line for a listener not in the input: its port named", n: 1,
			mut: func(i int, s *sample.Sample) {
				noCounters(s)
				s.Kernel = []sample.KernelEvent{{Kind: sample.KernelSynFlood, Addr: "10.1.2.3", Port: 8443, Action: "cookies", Line: "TCP: request_sock_TCP: Possible SYN flooding on port 10.1.2.3:8443. Sending cookies.  Check SNMP counters."}}
			},
			want: []want{{KindSynQueueOverflow, "10.1.2.3:8443", SideUnknown, SevWarning, false}},
			says: "is not in the input: capture `ss -tlnp`",
		},
		{
			name: "old-kernel SYN flooding line with a port only", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Kernel = []sample.KernelEvent{{Kind: sample.KernelSynFlood, Port: 80, Action: "drop", Line: "possible SYN flooding on port 80. Dropping request."}}
				s.Sysctls[kSyncookies] = "0"
			},
			want: []want{{KindSynQueueOverflow, "port 80", SideKernel, SevWarning, false}},
			says: "turn cookies on",
		},
		{
			name: "TCP out of memory is critical", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Kernel = []sample.KernelEvent{{Kind: sample.KernelTCPOOM, Line: "TCP: out of memory -- consider tuning tcp_mem"}}
			},
			want: []want{{KindTCPMemoryPressure, "host", SideKernel, SevCritical, false}},
		},
		{
			name: "orphans at tcp_max_orphans: critical, side unknown, never peer on a guess", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kMaxOrphans] = "4096"
				s.Sockstat.TCPOrphan = 4100
			},
			want:  []want{{KindOrphanPressure, "host", SideUnknown, SevCritical, false}},
			notIn: "peers that do not answer",
		},
		{
			name: "orphans near the limit: warning", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Sysctls[kMaxOrphans] = "4096"
				s.Sockstat.TCPOrphan = 3500
			},
			want: []want{{KindOrphanPressure, "host", SideUnknown, SevWarning, false}},
		},
		{
			name: "time wait bucket overflow: info, said to be benign", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Kernel = []sample.KernelEvent{{Kind: sample.KernelTWBucketOverflow, Line: "TCP: time wait bucket table overflow"}}
			},
			want: []want{{KindTWBucketOverflow, "host", SideKernel, SevInfo, false}},
			says: "usually benign",
		},
		{
			name: "SYN-SENT pile to one destination in one snapshot: the peer", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateSynSent] = 25
				s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.9", DstPort: 443, Total: 25, States: map[string]int{sample.StateSynSent: 25}}}
			},
			want: []want{{KindSynSentPile, "10.0.0.9:443 from 10.0.0.1", SidePeer, SevWarning, false}},
		},
		{
			name: "two SYN flooding lines for two ports: one finding each", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Kernel = []sample.KernelEvent{
					{Kind: sample.KernelSynFlood, Addr: "0.0.0.0", Port: 8080, Action: "cookies", Line: "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:8080. Sending cookies.  Check SNMP counters."},
					{Kind: sample.KernelSynFlood, Addr: "0.0.0.0", Port: 25565, Action: "cookies", Line: "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:25565. Sending cookies.  Check SNMP counters."},
					{Kind: sample.KernelSynFlood, Addr: "0.0.0.0", Port: 8080, Action: "cookies", Line: "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:8080. Sending cookies.  Check SNMP counters."},
				}
			},
			want: []want{
				{KindSynQueueOverflow, "0.0.0.0:25565", SideUnknown, SevWarning, false},
				{KindSynQueueOverflow, "0.0.0.0:8080", SideUnknown, SevWarning, false},
			},
		},
		{
			// net-tools netstat prints 0 for a listener's Send-Q.
			name: "net-tools listener with Recv-Q 101, limit unknown: full at Tomcat's 100, side unknown", n: 1,
			mut: func(i int, s *sample.Sample) {
				noCounters(s)
				l := listener("0.0.0.0:80", 80, 101, 0, nginx)
				l.LimitUnknown = true
				s.Listeners = []sample.Listener{l}
			},
			want: []want{{KindAcceptQueueOverflow, "0.0.0.0:80", SideUnknown, SevWarning, false}},
			says: "capture does not show the queue's limit",
		},
		{
			name: "net-tools listener with Recv-Q 2, limit unknown: not judged an overflow", n: 1,
			mut: func(i int, s *sample.Sample) {
				noCounters(s)
				l := listener("0.0.0.0:80", 80, 2, 0, nginx)
				l.LimitUnknown = true
				s.Listeners = []sample.Listener{l}
			},
		},
		{
			name: "one sample: overflows since boot and the only listener in the input", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.Counters[cOverflows] = 3220
				delete(s.Sysctls, kSomaxconn)
				s.Listeners = []sample.Listener{listener("0.0.0.0:20880", 20880, 0, 50, nil)}
			},
			want: []want{{KindAcceptQueueOverflow, "0.0.0.0:20880", SideUnknown, SevWarning, false}},
			says: "cumulative since boot",
		},
		{
			// A pasted `ss -ant` of a dead upstream: four connects, none answered.
			name: "every socket to a destination in SYN-SENT (4 of 4): the peer", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateSynSent] = 4
				s.Destinations = []sample.Destination{{Src: "172.27.233.198", Dst: "10.1.1.1", DstPort: 8080, Total: 4, States: map[string]int{sample.StateSynSent: 4}}}
			},
			want: []want{{KindSynSentPile, "10.1.1.1:8080 from 172.27.233.198", SidePeer, SevWarning, false}},
		},
		{
			name: "a few SYN-SENT among answered connections: no pile", n: 1,
			mut: func(i int, s *sample.Sample) {
				s.States[sample.StateSynSent] = 4
				s.States[sample.StateEstab] = 300
				s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.9", DstPort: 443, Total: 304, States: map[string]int{sample.StateSynSent: 4, sample.StateEstab: 300}}}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Run(series(tc.n, tc.mut), cfg())
			var got []want
			for _, f := range r.Findings {
				got = append(got, want{f.Kind, f.Subject, f.Side, f.Severity, f.Confirmed})
				if tc.notIn != "" && strings.Contains(f.Explanation, tc.notIn) {
					t.Errorf("%s says %q", f.Kind, tc.notIn)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%s", diff, dump(r))
			}
			if tc.says != "" && len(r.Findings) > 0 {
				f := r.Findings[0]
				if all := f.Title + " " + f.Explanation + " " + f.NotConfirmedReason; !strings.Contains(all, tc.says) {
					t.Errorf("finding does not say %q:\n%s", tc.says, all)
				}
			}
			checkInvariants(t, r)
		})
	}
}

// TestSymptomAnswer: the report says first whether the evidence explains
// the symptom, and what was not read that could.
func TestSymptomAnswer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mut       func(i int, s *sample.Sample)
		focus     Focus
		explained bool
		by        []string
		notRead   string
	}{
		{
			name: "refused, nothing listens",
			mut: func(i int, s *sample.Sample) {
				s.Listeners = []sample.Listener{listener("0.0.0.0:22", 22, 0, 128, nil)}
			},
			focus:     Focus{SymptomRefused, 8080},
			explained: true, by: []string{"no-listener on port 8080"},
		},
		{
			name: "refused without a listener table: not explained, says to capture ss -tlnp",
			mut: func(i int, s *sample.Sample) {
				s.Missing = []sample.Missing{{Source: "ss-tan.txt", Reason: "absent: socket states, listeners, destinations and processes unknown (capture: ss -tanpe and ss -tlnp)"}}
			},
			focus:   Focus{SymptomRefused, 8080},
			notRead: "the listener table (ss -tlnp)",
		},
		{
			name: "reset with abort_on_overflow and an overflowing listener",
			mut: func(i int, s *sample.Sample) {
				s.Sysctls["net.ipv4.tcp_abort_on_overflow"] = "1"
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 129, 128, nginx)}
			},
			focus:     Focus{SymptomReset, 8080},
			explained: true, by: []string{"accept-queue-overflow on 0.0.0.0:8080"},
		},
		{
			name: "timeout with abort_on_overflow=1: an overflow resets, it does not explain timeouts",
			mut: func(i int, s *sample.Sample) {
				s.Sysctls["net.ipv4.tcp_abort_on_overflow"] = "1"
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 129, 128, nginx)}
			},
			focus: Focus{SymptomTimeout, 8080},
		},
		{
			name: "timeout with abort_on_overflow=0: the overflow explains it",
			mut: func(i int, s *sample.Sample) {
				s.Sysctls["net.ipv4.tcp_abort_on_overflow"] = "0"
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 129, 128, nginx)}
			},
			focus:     Focus{SymptomTimeout, 8080},
			explained: true, by: []string{"accept-queue-overflow on 0.0.0.0:8080"},
		},
		{
			name: "timeout on another port than the overflowing one is not explained by it",
			mut: func(i int, s *sample.Sample) {
				s.Listeners = []sample.Listener{listener("0.0.0.0:8080", 8080, 129, 128, nginx)}
			},
			focus: Focus{SymptomTimeout, 9090},
		},
		{
			name: "exhausted without owners: descriptors not read",
			mut: func(i int, s *sample.Sample) {
				s.Missing = []sample.Missing{{Source: "owners", Reason: "no owners"}}
			},
			focus:   Focus{Symptom: SymptomExhausted},
			notRead: "descriptors per process",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := RunFocus(series(1, tc.mut), cfg(), tc.focus)
			a := r.Symptom
			if a == nil {
				t.Fatal("no symptom answer")
			}
			if a.Explained != tc.explained || !cmp.Equal(a.ExplainedBy, tc.by) {
				t.Errorf("explained %v by %q, want %v by %q: %s", a.Explained, a.ExplainedBy, tc.explained, tc.by, a.Answer)
			}
			if tc.notRead != "" && !strings.Contains(strings.Join(a.NotRead, "; "), tc.notRead) {
				t.Errorf("not read %q lacks %q", a.NotRead, tc.notRead)
			}
		})
	}
	if r := Run(series(1, nil), cfg()); r.Symptom != nil {
		t.Errorf("a plain diagnosis has a symptom answer: %+v", r.Symptom)
	}
}
