// Package sample is the only code that reads the kernel: TCP sockets through
// netlink sock_diag, counters and sysctls through /proc, kernel log lines
// through /dev/kmsg, socket owners through /proc/PID/fd or, faster, the BPF
// task_file iterator of internal/bpfiter (which only sample calls). It builds the same Sample from captured text (a bundle
// of `ss`, `sysctl`, `nstat` and `dmesg` output) so that everything
// downstream is indifferent to where the data came from.
//
// A Sample is a census, not a socket list: memory grows with the number of
// listeners, processes and (bounded) destinations, never with the number of
// sockets.
package sample

import (
	"errors"
	"time"
)

// Schema names the JSON layout of a Sample. Bump it on any incompatible
// change; docs/sample-schema.md documents every field.
const Schema = "sockwarden.sample/v1"

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrParse: captured text could not be read; the error names the
	// file and line.
	ErrParse = errors.New("parse error")
	// ErrNoData: a source does not exist on this kernel or host. It is an
	// outcome, not a failure: the sample lists it under Missing.
	ErrNoData = errors.New("no data")
)

// TCP states as `ss` names them, in kernel order (TCP_ESTABLISHED = 1 ...
// TCP_NEW_SYN_RECV = 12 is reported by ss as SYN-RECV and folded into it).
const (
	StateEstab     = "ESTAB"
	StateSynSent   = "SYN-SENT"
	StateSynRecv   = "SYN-RECV"
	StateFinWait1  = "FIN-WAIT-1"
	StateFinWait2  = "FIN-WAIT-2"
	StateTimeWait  = "TIME-WAIT"
	StateClose     = "UNCONN"
	StateCloseWait = "CLOSE-WAIT"
	StateLastAck   = "LAST-ACK"
	StateListen    = "LISTEN"
	StateClosing   = "CLOSING"
)

// States lists the eleven TCP states in kernel order (index+1 is the
// kernel's TCP_* number).
var States = []string{
	StateEstab, StateSynSent, StateSynRecv, StateFinWait1, StateFinWait2,
	StateTimeWait, StateClose, StateCloseWait, StateLastAck, StateListen,
	StateClosing,
}

// Sample is one census of a network namespace at one instant.
type Sample struct {
	Schema string    `json:"schema"`
	Time   time.Time `json:"time"`
	// Host is the host name (uname nodename) the sample describes.
	Host string `json:"host"`
	// Netns is the namespace path given with --netns, "" for the
	// sampler's own namespace. NetnsID is its inode number when known.
	Netns   string `json:"netns,omitempty"`
	NetnsID uint64 `json:"netns_id,omitempty"`
	// Source is "live" or "bundle:PATH[#N]".
	Source string `json:"source"`
	// Duration is how long taking the sample took (live only).
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Partial is set on a cheap sample (TakeCheap): counters, sockstat,
	// sysctls, listeners and kernel lines only; States, Destinations and
	// Processes are left empty.
	Partial bool `json:"partial,omitempty"`

	// States counts TCP sockets by state (ss names), IPv4 and IPv6
	// together; every one of the eleven states is present, zero or not.
	States map[string]int `json:"states"`
	// StatesV4 and StatesV6 split the same counts by family.
	StatesV4 map[string]int `json:"states_ipv4,omitempty"`
	StatesV6 map[string]int `json:"states_ipv6,omitempty"`
	// Total is the number of TCP sockets counted in States.
	Total int `json:"total"`

	// Listeners holds every LISTEN socket.
	Listeners []Listener `json:"listeners"`

	// Destinations holds the port-holding (non-listening) sockets
	// grouped by (source IP, destination IP, destination port), the
	// largest groups first, at most Config.TopDestinations of them.
	// DestinationGroups is how many groups there were in all.
	Destinations      []Destination `json:"destinations"`
	DestinationGroups int           `json:"destination_groups"`

	// Processes holds socket counts by state for each process owning at
	// least one TCP socket, the largest first (bounded like
	// Destinations). Orphans counts sockets with no owning descriptor
	// (inode 0: TIME-WAIT, orphaned FIN-WAIT-2 ...), by state.
	Processes []Process `json:"processes"`
	// OwnersVia says how owners were found: "bpf-iter" (a BPF task_file
	// iterator) or "proc" (/proc/PID/fd); empty when owners were not read.
	OwnersVia string         `json:"owners_via,omitempty"`
	Orphans   map[string]int `json:"orphans,omitempty"`

	// Counters holds the Tcp and TcpExt counters of /proc/net/snmp and
	// /proc/net/netstat under nstat's names ("TcpExtListenOverflows",
	// "TcpActiveOpens"). A counter the kernel lacks is absent.
	Counters map[string]uint64 `json:"counters"`

	// Sockstat holds /proc/net/sockstat and sockstat6.
	Sockstat Sockstat `json:"sockstat"`

	// Sysctls holds the sysctls that matter, keyed by dotted name, value
	// with whitespace folded to single spaces ("32768 60999"). A sysctl
	// the kernel lacks is absent.
	Sysctls map[string]string `json:"sysctls"`

	// Kernel holds the kernel log lines that matter (SYN flooding, TCP
	// out of memory, orphans, conntrack full) seen in the log.
	Kernel []KernelEvent `json:"kernel_log"`

	// ConnectErrors holds the lines of a paste in which an application
	// says connect() failed with EADDRNOTAVAIL ("Cannot assign requested
	// address"): the kernel found no free local port for that
	// destination. Only pastes have them (a live sample reads no
	// application log).
	ConnectErrors []ConnectError `json:"connect_errors,omitempty"`

	// ListenerPorts: in a paste whose socket tables are all filtered, the
	// ports for which they are whole all the same (filtered by local port
	// alone: ss 'sport = :443', netstat -tlnp | grep 8080): whether
	// anything listens on one of them is known. Omitted otherwise.
	ListenerPorts []uint16 `json:"listener_ports,omitempty"`

	// FDErrors holds the lines of a paste in which an application says a
	// call failed for want of a descriptor: EMFILE ("too many open
	// files", the process at its RLIMIT_NOFILE) or ENFILE ("too many open
	// files in system", the host at fs.file-max). A server at its limit
	// accepts nothing while it lasts. Only pastes have them.
	FDErrors []FDError `json:"fd_errors,omitempty"`

	// Watch summarises the listener queues polled at a fine grain in the
	// interval that ends with this sample (nil when nobody watched).
	Watch *Watch `json:"watch,omitempty"`

	// Missing lists what could not be read and why (no root, no
	// /dev/kmsg, a kernel without a file, a bundle without a file).
	Missing []Missing `json:"missing,omitempty"`

	// Read says, for a sample read from a paste (one text holding
	// several command outputs), which block of it went where, in the
	// order of the paste; IgnoredLines counts the lines of the paste
	// recognised as no capture (on the last sample of the paste). Both
	// are absent for live samples and bundles.
	Read         []ReadBlock `json:"read,omitempty"`
	IgnoredLines int         `json:"ignored_lines,omitempty"`
}

// Listener is one LISTEN socket.
type Listener struct {
	// Local is the address as ss prints it: "0.0.0.0:80", "[::]:443",
	// "127.0.0.1:8080", "*:22" for a dual-stack wildcard.
	Local  string `json:"local"`
	Addr   string `json:"addr"`
	Port   uint16 `json:"port"`
	Family string `json:"family"` // "ipv4" or "ipv6"
	// RecvQ is the accept-queue length, SendQ its limit (the effective
	// backlog: min(listen() backlog, somaxconn at listen time)).
	RecvQ uint32 `json:"recv_q"`
	SendQ uint32 `json:"send_q"`
	// Inode is the socket inode (0 in bundles without it).
	Inode uint64 `json:"inode,omitempty"`
	// LimitUnknown: the capture does not show the queue's limit, and
	// SendQ (0) means nothing. net-tools and busybox netstat read
	// /proc/net/tcp, whose tx_queue is 0 for a listener.
	LimitUnknown bool    `json:"limit_unknown,omitempty"`
	Owners       []Owner `json:"owners,omitempty"`
}

// Owner is a process holding a descriptor for a socket.
type Owner struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// Unit is the systemd unit of the process's cgroup ("nginx.service"),
	// "" when not in one or unknown.
	Unit string `json:"unit,omitempty"`
	// FDs is the process's open descriptor count, FDLimit its soft
	// RLIMIT_NOFILE (0 when unknown).
	FDs     int    `json:"fds,omitempty"`
	FDLimit uint64 `json:"fd_limit,omitempty"`
}

// Destination groups port-holding sockets by 4-tuple minus the source port.
type Destination struct {
	Src     string         `json:"src"`
	Dst     string         `json:"dst"`
	DstPort uint16         `json:"dst_port"`
	Total   int            `json:"total"`
	States  map[string]int `json:"states"`
}

// Process is one socket-owning process and its TCP sockets by state.
type Process struct {
	Owner
	Total  int            `json:"total"`
	States map[string]int `json:"states"`
}

// Sockstat mirrors /proc/net/sockstat{,6}. Memory is in pages.
type Sockstat struct {
	SocketsUsed int `json:"sockets_used"`
	TCPInUse    int `json:"tcp_inuse"`
	TCPOrphan   int `json:"tcp_orphan"`
	TCPTimeWait int `json:"tcp_tw"`
	TCPAlloc    int `json:"tcp_alloc"`
	TCPMemPages int `json:"tcp_mem_pages"`
	TCP6InUse   int `json:"tcp6_inuse"`
}

// KernelEvent is one kernel log line that matters.
type KernelEvent struct {
	// Time is the wall-clock time of the line, derived from the kernel's
	// monotonic stamp and the boot time (zero when unknown).
	Time time.Time `json:"time,omitzero"`
	// Seq is the /dev/kmsg sequence number (0 from dmesg text), so that
	// an agent reports each line once.
	Seq uint64 `json:"seq,omitempty"`
	// Kind: "syn-flood", "tcp-oom", "too-many-orphans", "conntrack-full",
	// "port-range-parity".
	Kind string `json:"kind"`
	// Addr and Port are the listener named by a SYN-flooding line.
	Addr string `json:"addr,omitempty"`
	Port uint16 `json:"port,omitempty"`
	// Action is "cookies" or "drop" for SYN flooding.
	Action string `json:"action,omitempty"`
	Line   string `json:"line"`
}

// ConnectError is one application log line saying connect() failed with
// EADDRNOTAVAIL. Dst and Port are the destination when the line names it
// by address ("192.168.1.207:16379", "tcp://146.59.192.30:6379"), empty
// otherwise.
type ConnectError struct {
	Dst  string `json:"dst,omitempty"`
	Port uint16 `json:"port,omitempty"`
	Line string `json:"line"`
}

// FDError is one application log line of a call that failed for want of
// a file descriptor.
type FDError struct {
	// Errno is "EMFILE" (the process's own limit) or "ENFILE" (the
	// system's, fs.file-max).
	Errno string `json:"errno"`
	// Listener is the address:port of a failed accept the line names
	// ("accept tcp [::]:8080", "while accepting new connection on
	// 0.0.0.0:443"), "" when it names none.
	Listener string `json:"listener,omitempty"`
	Line     string `json:"line"`
}

// Watch is the result of polling the listeners' queues between two samples:
// bursts that overflow a queue last milliseconds and are missed by two
// instant snapshots.
type Watch struct {
	Start    time.Time      `json:"start"`
	End      time.Time      `json:"end"`
	Polls    int            `json:"polls"`
	Interval time.Duration  `json:"interval_ns"`
	Peaks    []ListenerPeak `json:"listeners"`
}

// ListenerPeak is one listener's queue over a Watch.
type ListenerPeak struct {
	Local string `json:"local"`
	Port  uint16 `json:"port"`
	SendQ uint32 `json:"send_q"`
	// PeakRecvQ is the longest queue seen; AtLimit how many polls saw
	// it at or above SendQ; Drained how many polls saw it below half of
	// SendQ after having been at the limit (a burst drains; a saturated
	// acceptor does not).
	PeakRecvQ uint32 `json:"peak_recv_q"`
	AtLimit   int    `json:"at_limit"`
	Drained   int    `json:"drained"`
	Polls     int    `json:"polls"`
}

// Missing records a source that could not be read.
type Missing struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// Counter returns the named counter and whether the kernel has it.
func (s *Sample) Counter(name string) (uint64, bool) {
	v, ok := s.Counters[name]
	return v, ok
}

// Listener returns the listener with the given local address, or nil.
func (s *Sample) Listener(local string) *Listener {
	for i := range s.Listeners {
		if s.Listeners[i].Local == local {
			return &s.Listeners[i]
		}
	}
	return nil
}

// Delta is the change between two samples of the same namespace.
type Delta struct {
	From, To time.Time
	Seconds  float64
	// Counters holds To-From for every counter present in both; a
	// counter that went backwards (reset, wrap) is absent.
	Counters map[string]uint64
}

// Rate returns the per-second rate of a counter over the delta, and whether
// it is known.
func (d Delta) Rate(name string) (float64, bool) {
	v, ok := d.Counters[name]
	if !ok || d.Seconds <= 0 {
		return 0, false
	}
	return float64(v) / d.Seconds, true
}

// Diff returns the counter changes from a to b (a taken first).
func Diff(a, b *Sample) Delta {
	d := Delta{From: a.Time, To: b.Time, Seconds: b.Time.Sub(a.Time).Seconds(), Counters: map[string]uint64{}}
	for k, bv := range b.Counters {
		if av, ok := a.Counters[k]; ok && bv >= av {
			d.Counters[k] = bv - av
		}
	}
	return d
}

// NewStates returns a map with all eleven states at zero.
func NewStates() map[string]int {
	m := make(map[string]int, len(States))
	for _, s := range States {
		m[s] = 0
	}
	return m
}
