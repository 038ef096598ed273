package diagnose

import (
	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/sample"
)

// ConfirmMode says how a rule's finding is confirmed over a series.
type ConfirmMode int

const (
	// ConfirmCounters: judged per interval from counter deltas; an
	// interval counts when the drops rose in it and arrivals were above
	// diagnose.min_arrivals_per_sec.
	ConfirmCounters ConfirmMode = iota
	// ConfirmPile: judged on each sample; an interval counts when the
	// samples at both of its ends show the pile.
	ConfirmPile
)

// Rule is one diagnosis rule: data with a name, a condition and an
// explanation, in the manner of node-problem-detector's monitor rules.
// docs/rules.md describes every rule in Rules; TestRulesDocumented keeps
// the two in step.
type Rule struct {
	// Name is stable; Kinds are the finding kinds the rule can produce
	// and Sides the sides it can give them.
	Name  string
	Kinds []string
	Sides []Side
	// Condition states in one line when the rule fires, naming the
	// config keys of its thresholds.
	Condition string
	// Why is the explanation: what the condition means and whose fix it
	// is, in one or two sentences (each finding explains itself at length).
	Why     string
	Confirm ConfirmMode
	// Exactly one of Counters (ConfirmCounters) and Pile (ConfirmPile)
	// is set.
	Counters func(w *window, cfg config.Diagnose) []Observation
	// Pile judges one sample; series is the whole series, for what must
	// hold over all of it (a widened port range keeps out every port
	// that listened in any sample).
	Pile func(s *sample.Sample, series []*sample.Sample, cfg config.Diagnose) []Observation
	// Focused, instead of Pile, judges one sample for what the user named
	// (--symptom, --port); confirmed as a pile is.
	Focused func(s *sample.Sample, f Focus, cfg config.Diagnose) []Observation
}

// Observation is what a rule saw in one window.
type Observation struct {
	Kind        string
	Subject     string
	Side        Side
	Severity    Severity
	Title       string
	Explanation string
	Evidence    []string
	AppActions  []string
	Counter     string
	// Unconfirmed, when set, says why this window does not count toward
	// confirmation (for example arrivals below the load floor).
	Unconfirmed string
	// Plan is the kernel change for a kernel-side observation.
	Plan *Plan
}

// Plan is the change a kernel-side observation calls for.
type Plan struct {
	Changes    []Change
	Reason     string
	AppActions []string
	Verify     Verification
	Notes      []string
}

// Rules is the rule set, in the order the report lists kinds of equal
// severity. Every rule reads only its arguments.
var Rules = []Rule{
	{
		Name: "accept-queue", Kinds: []string{KindAcceptQueueOverflow},
		Sides:     []Side{SideApp, SideKernel, SideUnknown},
		Condition: "TcpExtListenOverflows rises faster than diagnose.min_drops_per_sec and a listener reached its limit (Recv-Q >= Send-Q in a sample, or at the limit in the listener watch)",
		Why:       "Send-Q of a listener is its accept-queue limit, min(listen() backlog, somaxconn at listen time): below somaxconn the application's backlog is the cap (app), at somaxconn the kernel's (kernel); a queue that never drains is a slow acceptor (app) that a bigger queue would only slow down.",
		Confirm:   ConfirmCounters, Counters: checkAcceptQueue,
	},
	{
		Name: "syn-queue", Kinds: []string{KindSynQueueOverflow, KindSynFlood},
		Sides:     []Side{SideKernel, SideApp, SidePeer, SideUnknown},
		Condition: "TcpExtTCPReqQFullDrop rises (syncookies off), or cookies are sent (TcpExtSyncookiesSent, TcpExtTCPReqQFullDoCookies) while the accept queue is not overflowing",
		Why:       "With syncookies off a full SYN queue drops SYNs: turn cookies on (kernel); tcp_max_syn_backlog only matters while they stay off. Cookies sent and never answered are a flood or lost SYN-ACKs (peer): no queue growth.",
		Confirm:   ConfirmCounters, Counters: checkSynQueue,
	},
	{
		Name: "close-wait", Kinds: []string{KindCloseWaitPile}, Sides: []Side{SideApp},
		Condition: "a process holds at least diagnose.close_wait_min CLOSE-WAIT sockets",
		Why:       "The peer closed and the application never called close(): only the application can fix it.",
		Confirm:   ConfirmPile, Pile: checkCloseWait,
	},
	{
		Name: "ports", Kinds: []string{KindEphemeralPorts, KindTimeWaitPile},
		Sides:     []Side{SideKernel, SideApp, SideNone, SideUnknown},
		Condition: "one destination holds at least diagnose.port_use_ratio of the usable ephemeral ports, or a pasted application log line says connect() failed with EADDRNOTAVAIL; otherwise at least diagnose.time_wait_min TIME-WAIT sockets",
		Why:       "The ephemeral pool is per destination: pooling and keep-alive first, then a wider range that keeps listening ports out, and tcp_tw_reuse for outgoing TIME-WAIT. A TIME-WAIT pile with ports to spare is normal; one whose destinations were not read is judged against the pool, not called normal.",
		Confirm:   ConfirmPile, Pile: checkPorts,
	},
	{
		Name: "fin-wait-2", Kinds: []string{KindFinWait2Pile}, Sides: []Side{SidePeer, SideApp, SideUnknown},
		Condition: "at least diagnose.fin_wait2_min FIN-WAIT-2 sockets orphaned, or held by one process",
		Why:       "We closed and the peer did not: orphaned ones are the peers' (gone after tcp_fin_timeout), owned ones the application's (shutdown() without close()).",
		Confirm:   ConfirmPile, Pile: checkFinWait2,
	},
	{
		Name: "fd", Kinds: []string{KindFDExhaustion}, Sides: []Side{SideApp},
		Condition: "a process at diagnose.fd_use_ratio of its RLIMIT_NOFILE, or fs.file-nr at that share of fs.file-max",
		Why:       "A process at RLIMIT_NOFILE fails accept() and connect() with EMFILE: the unit's LimitNOFILE= or the process limit, not a TCP sysctl.",
		Confirm:   ConfirmPile, Pile: checkFDs,
	},
	{
		Name: "tcp-memory", Kinds: []string{KindTCPMemoryPressure}, Sides: []Side{SideKernel},
		Condition: "sockstat TCP mem at or above the pressure value of net.ipv4.tcp_mem, or a `TCP: out of memory` kernel line",
		Why:       "Socket buffers above the tcp_mem pressure value make the kernel shrink buffers and, at the high value, drop data: find the sockets holding it before raising tcp_mem by hand.",
		Confirm:   ConfirmPile, Pile: checkTCPMemory,
	},
	{
		Name: "orphans", Kinds: []string{KindOrphanPressure}, Sides: []Side{SideUnknown, SideApp},
		Condition: "sockstat orphans at diagnose.orphan_use_ratio of net.ipv4.tcp_max_orphans (critical at it), or a `too many orphaned sockets` kernel line",
		Why:       "Past tcp_max_orphans the kernel resets closing connections. Whose they are needs evidence: a CLOSE-WAIT pile in one process makes it the application's; otherwise unknown, never the peers' on a guess. Raising the limit only spends memory.",
		Confirm:   ConfirmPile, Pile: checkOrphans,
	},
	{
		Name: "tw-buckets", Kinds: []string{KindTWBucketOverflow}, Sides: []Side{SideKernel},
		Condition: "a `TCP: time wait bucket table overflow` kernel line",
		Why:       "The kernel limit net.ipv4.tcp_max_tw_buckets was reached and some closing connections skipped TIME-WAIT: usually benign (informational), a sign of a high close rate; the limit is not on the allowlist.",
		Confirm:   ConfirmPile, Pile: checkTWBuckets,
	},
	{
		Name: "syn-sent", Kinds: []string{KindSynSentPile}, Sides: []Side{SidePeer},
		Condition: "at least diagnose.syn_sent_min SYN-SENT sockets to one destination, or at least 3 with no other socket to it",
		Why:       "Our connects to that destination get no SYN-ACK: the peer or the path does not answer (connect() times out); no local sysctl helps.",
		Confirm:   ConfirmPile, Pile: checkSynSent,
	},
	{
		Name: "port", Kinds: []string{KindNoListener, KindListenerLocalOnly}, Sides: []Side{SideApp},
		Condition: "with --port N (and --symptom refused, or none): the listener table was read (or a paste's table filtered by port N alone) and nothing listens on N, or every listener on N is bound to loopback",
		Why:       "Connection refused is the kernel's answer to a SYN for a port nobody listens on, in this namespace and on this address: the service, its bind address or its namespace is the cause, never a sysctl.",
		Confirm:   ConfirmPile, Focused: checkPort,
	},
	{
		Name: "conntrack", Kinds: []string{KindConntrackFull}, Sides: []Side{SideKernel},
		Condition: "an `nf_conntrack: table full, dropping packet` kernel line",
		Why:       "A full connection-tracking table makes netfilter drop the packets of new connections before TCP sees them: clients time out and no TCP counter moves. The limit, net.netfilter.nf_conntrack_max, is host-wide and not on the remediation allowlist.",
		Confirm:   ConfirmPile, Pile: checkConntrack,
	},
}
