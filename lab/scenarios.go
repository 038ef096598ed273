package lab

import (
	"slices"
	"time"
)

// Scenario is one pathology the lab can build.
type Scenario struct {
	// Name is stable: tests, docs and `sockwarden lab run` use it.
	Name string
	// Port is the application's listening port on 127.0.0.1, distinct
	// per scenario.
	Port uint16
	// Summary says what the scenario builds, in one line.
	Summary string
	// Expect is what a correct diagnosis says about it.
	Expect string
	// Sysctls are set inside the scenario's namespace, in order, before
	// its application starts. Nothing outside the namespace is touched.
	Sysctls []Sysctl
	// Firewall holds iptables-legacy rules (argument lists) added inside
	// the namespace.
	Firewall [][]string

	app appSpec
}

// Sysctl is one key (dotted name) and value.
type Sysctl struct{ Key, Value string }

// Stable scenario names.
const (
	BacklogCapped    = "backlog-capped"
	SomaxconnCapped  = "somaxconn-capped"
	SlowAcceptor     = "slow-acceptor"
	CloseWait        = "close-wait"
	TimeWait         = "time-wait"
	EphemeralPorts   = "ephemeral-ports"
	SynRecvCookies   = "syn-recv-cookies"
	SynRecvNoCookies = "syn-recv-nocookies"
	FinWait2         = "fin-wait-2"
	FDLimit          = "fd-limit"
)

// Figures the scenarios are built from; tests check the kernel against
// them.
const (
	// BurstSize connects arrive at once every BurstEvery; the
	// accept-queue scenarios cap the queue below it, so each burst
	// overflows, and a queue of twice the somaxconn cap holds it.
	BurstSize  = 96
	BurstEvery = 500 * time.Millisecond
	// SomaxconnCap is somaxconn-capped's net.core.somaxconn; its app
	// listens with AppBacklogLarge.
	SomaxconnCap    = 64
	AppBacklogLarge = 4096
	// AppBacklogSmall is backlog-capped's listen() backlog.
	AppBacklogSmall = 32
	// SlowSomaxconn caps slow-acceptor's queue.
	SlowSomaxconn = 128
	// SynBacklog is the SYN scenarios' listen backlog, which also bounds
	// their SYN queue.
	SynBacklog = 256
	// CloseWaitStart sockets are leaked at start, then one more every
	// CloseWaitEvery.
	CloseWaitStart = 300
	CloseWaitEvery = 50 * time.Millisecond
	// TimeWaitStart connections are made and closed by the client at
	// start, then one every TimeWaitEvery.
	TimeWaitStart = 6000
	TimeWaitEvery = 8 * time.Millisecond
	// PortRange is ephemeral-ports' narrowed ip_local_port_range (start
	// and end of different parity, every scenario's port outside).
	PortRange = "40000 40999"
	// FinWait2Start orphaned FIN-WAIT-2 sockets are made at start, then
	// one every FinWait2Every.
	FinWait2Start = 600
	FinWait2Every = 100 * time.Millisecond
	// FDLimitNofile is fd-limit's RLIMIT_NOFILE; its application holds
	// all but FDLimitSlack of it.
	FDLimitNofile = 256
	FDLimitSlack  = 4
)

// dropSynAck makes every handshake half-open: the server's SYN-ACKs are sent
// but never reach the client, as with a client that vanished or a spoofed
// source. The drop is on INPUT, not OUTPUT: when OUTPUT drops a
// retransmitted SYN-ACK the send fails, and the kernel then drops the
// request at its first retransmit (about 1s, reqsk_timer_handler), so the
// SYN queue would never fill at a modest SYN rate. Dropped on INPUT, each
// request lives through its tcp_synack_retries (about 63s), as in the wild.
var dropSynAck = []string{"-A", "INPUT", "-p", "tcp", "--tcp-flags", "SYN,ACK", "SYN,ACK", "-j", "DROP"}

var scenarios = []Scenario{
	{
		Name:    BacklogCapped,
		Port:    8081,
		Summary: "bursts of 96 connects every 500ms against a listener with listen(fd, 32); somaxconn stays 4096; the acceptor drains every 100ms",
		Expect:  "accept-queue-overflow on 127.0.0.1:8081, side app (Send-Q 32 < somaxconn 4096): raise the application's backlog; no sysctl change",
		app: appSpec{Role: roleListen, Comm: "backlog-app", Backlog: AppBacklogSmall,
			DrainEvery: 100 * time.Millisecond, Burst: BurstSize, BurstEvery: BurstEvery,
			DialTimeout: 300 * time.Millisecond, Hold: 200 * time.Millisecond},
	},
	{
		Name:    SomaxconnCapped,
		Port:    8082,
		Summary: "bursts of 96 connects every 500ms against listen(fd, 4096) with net.core.somaxconn 64 in the namespace; the acceptor drains every 100ms",
		Expect:  "accept-queue-overflow on 127.0.0.1:8082, side kernel (Send-Q 64 == somaxconn): raise net.core.somaxconn (64 -> 128 or more) and listen() again; with --relisten the app does, and overflows stop",
		Sysctls: []Sysctl{{"net.core.somaxconn", "64"}},
		app: appSpec{Role: roleListen, Comm: "somaxconn-app", Backlog: AppBacklogLarge,
			DrainEvery: 100 * time.Millisecond, Burst: BurstSize, BurstEvery: BurstEvery,
			DialTimeout: 300 * time.Millisecond, Hold: 200 * time.Millisecond},
	},
	{
		Name:    SlowAcceptor,
		Port:    8083,
		Summary: "250 connects/s against an application that accepts 50/s; listen(fd, 4096) capped by somaxconn 128, so the queue stays full",
		Expect:  "accept-queue-overflow on 127.0.0.1:8083, side app (the queue is full in every poll: slow accept), no sysctl change even though Send-Q == somaxconn",
		Sysctls: []Sysctl{{"net.core.somaxconn", "128"}},
		app: appSpec{Role: roleListen, Comm: "slow-app", Backlog: AppBacklogLarge,
			AcceptEvery: 20 * time.Millisecond, ConnectEvery: 4 * time.Millisecond,
			DialTimeout: 500 * time.Millisecond, Hold: time.Second},
	},
	{
		Name:    CloseWait,
		Port:    8084,
		Summary: "an application (leaky-app) that accepts and never close()s: 300 CLOSE-WAIT at start, 20 more a second (up to 5000); tcp_fin_timeout 1 so the peers' FIN-WAIT-2 go away",
		Expect:  "close-wait-pile, side app, naming leaky-app and its count; no sysctl change",
		Sysctls: []Sysctl{{"net.ipv4.tcp_fin_timeout", "1"}},
		app: appSpec{Role: roleHold, Comm: "leaky-app", Count: CloseWaitStart,
			ConnectEvery: CloseWaitEvery, Cap: 5000, DialTimeout: time.Second},
	},
	{
		Name:    TimeWait,
		Port:    8085,
		Summary: "a client (tw-client) that opens and closes first 6000 short connections at start, then 125 a second: a TIME-WAIT pile with plenty of ports",
		Expect:  "time-wait-pile, side none (normal for a busy client, ports plentiful); no proposal",
		app: appSpec{Role: roleShort, Comm: "tw-client", Count: TimeWaitStart,
			ConnectEvery: TimeWaitEvery, DialTimeout: time.Second},
	},
	{
		Name:    EphemeralPorts,
		Port:    8086,
		Summary: "ip_local_port_range 40000 40999 and tcp_tw_reuse 0 in the namespace; a client (port-hammer) connects to 127.0.0.1:8086 and closes first until connect() fails with EADDRNOTAVAIL, and keeps trying",
		Expect:  "ephemeral-port-exhaustion for 127.0.0.1:8086, side kernel: app fix (pooling, keep-alive) first, then widen net.ipv4.ip_local_port_range (kept above ip_unprivileged_port_start, 8086 kept out or reserved) and tcp_tw_reuse=1",
		Sysctls: []Sysctl{{"net.ipv4.ip_local_port_range", PortRange}, {"net.ipv4.tcp_tw_reuse", "0"}},
		app: appSpec{Role: roleShort, Comm: "port-hammer", Count: 1100,
			ConnectEvery: 5 * time.Millisecond, DialTimeout: time.Second},
	},
	{
		Name:     SynRecvCookies,
		Port:     8087,
		Summary:  "SYN-ACKs dropped before they reach the client (iptables-legacy in the namespace), tcp_syncookies 1, listen(fd, 256), 200 SYNs a second: a SYN-RECV pile and cookies sent",
		Expect:   "syn-queue-overflow/syn-flood on 127.0.0.1:8087 with syncookies already on (TCPReqQFullDoCookies rising): no tcp_max_syn_backlog change (it does nothing with cookies on)",
		Sysctls:  []Sysctl{{"net.ipv4.tcp_syncookies", "1"}},
		Firewall: [][]string{dropSynAck},
		app: appSpec{Role: roleSyn, Comm: "syn-server", Backlog: SynBacklog,
			ConnectEvery: 5 * time.Millisecond, DialTimeout: 100 * time.Millisecond},
	},
	{
		Name:     SynRecvNoCookies,
		Port:     8088,
		Summary:  "as syn-recv-cookies with tcp_syncookies 0: the full SYN queue drops (TCPReqQFullDrop rising)",
		Expect:   "syn-queue-overflow on 127.0.0.1:8088, side kernel: propose net.ipv4.tcp_syncookies 0 -> 1",
		Sysctls:  []Sysctl{{"net.ipv4.tcp_syncookies", "0"}},
		Firewall: [][]string{dropSynAck},
		app: appSpec{Role: roleSyn, Comm: "syn-server", Backlog: SynBacklog,
			ConnectEvery: 5 * time.Millisecond, DialTimeout: 100 * time.Millisecond},
	},
	{
		Name:    FinWait2,
		Port:    8089,
		Summary: "a client closes 600 connections (then 10 a second) to a peer (stuck-peer) that never closes its end: orphaned FIN-WAIT-2 on our side, CLOSE-WAIT on the peer's",
		Expect:  "fin-wait-2-pile, side peer (orphaned: the peer has not closed), no sysctl; the local peer's CLOSE-WAIT shows as close-wait-pile (app) for stuck-peer",
		app: appSpec{Role: roleHold, Comm: "stuck-peer", Count: FinWait2Start,
			ConnectEvery: FinWait2Every, MaxAge: 70 * time.Second, DialTimeout: time.Second},
	},
	{
		Name:    FDLimit,
		Port:    8090,
		Summary: "an application (fd-hog) with RLIMIT_NOFILE 256 holding all but 4 of them in TCP connections to itself, churning 10 a second",
		Expect:  "fd-exhaustion for fd-hog, side app: raise the unit's LimitNOFILE= (or the process limit), not a TCP sysctl",
		app: appSpec{Role: roleFDHog, Comm: "fd-hog", FDLimit: FDLimitNofile, Slack: FDLimitSlack,
			ConnectEvery: 100 * time.Millisecond, DialTimeout: time.Second},
	},
}

// Scenarios returns every scenario, in a stable order.
func Scenarios() []Scenario { return slices.Clone(scenarios) }

// Names returns the scenario names, in the order of Scenarios.
func Names() []string {
	n := make([]string, len(scenarios))
	for i, s := range scenarios {
		n[i] = s.Name
	}
	return n
}

func lookup(name string) (Scenario, bool) {
	for _, s := range scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}
