// Package diagnose turns samples into findings, verdicts and proposals. It is
// pure: Run(series, cfg) reads nothing but its arguments, so the same code
// judges a live host, a namespace and a captured bundle.
package diagnose

// ReportSchema names the JSON layout of a Report (docs/report-schema.md).
const ReportSchema = "sockwarden.report/v1"

// Side says whose fault a finding is.
type Side string

const (
	SideApp    Side = "app"    // the application must change; never a sysctl
	SideKernel Side = "kernel" // a kernel limit is the cap; a sysctl change helps
	SidePeer   Side = "peer"   // the remote side or the network (e.g. a SYN flood)
	SideNone   Side = "none"   // normal behaviour, nothing to fix
	// SideUnknown: the symptom is real but the samples cannot tie it to a
	// cause (for example overflow counters rising while no listener was
	// seen at its limit). Never carries a change.
	SideUnknown Side = "unknown"
)

// Severity of a finding.
type Severity string

const (
	SevInfo     Severity = "info"
	SevWarning  Severity = "warning"
	SevCritical Severity = "critical"
)

// Finding kinds. Stable: scripts and alerts key on them.
const (
	KindAcceptQueueOverflow = "accept-queue-overflow"
	KindSynQueueOverflow    = "syn-queue-overflow"
	KindSynFlood            = "syn-flood"
	KindCloseWaitPile       = "close-wait-pile"
	KindTimeWaitPile        = "time-wait-pile"
	KindEphemeralPorts      = "ephemeral-port-exhaustion"
	KindFinWait2Pile        = "fin-wait-2-pile"
	KindFDExhaustion        = "fd-exhaustion"
	KindTCPMemoryPressure   = "tcp-memory-pressure"
	KindOrphanPressure      = "orphan-pressure"
	KindConntrackFull       = "conntrack-full"
	// KindNoListener: nothing listens on the port the user names
	// (--port), judged only when the listener table was read.
	KindNoListener = "no-listener"
	// KindListenerLocalOnly: the port listens on loopback only, so
	// clients from other hosts are refused.
	KindListenerLocalOnly = "listener-local-only"
	// KindTWBucketOverflow: net.ipv4.tcp_max_tw_buckets reached.
	KindTWBucketOverflow = "time-wait-bucket-overflow"
	// KindSynSentPile: outgoing connects to one destination unanswered.
	KindSynSentPile = "syn-sent-pile"
)

// Finding is one diagnosed condition.
type Finding struct {
	Kind     string   `json:"kind"`
	Side     Side     `json:"side"`
	Severity Severity `json:"severity"`
	// Subject is what the finding is about, stable across samples: a
	// listener ("0.0.0.0:8080"), a destination ("10.0.0.5:5432 from
	// 10.0.0.1"), a process ("pid 1234 (java)") or "host".
	Subject string `json:"subject"`
	// Confirmed is true when every interval of the series shows the
	// finding under load (see docs/rules.md).
	Confirmed bool `json:"confirmed"`
	// NotConfirmedReason says why not, when not.
	NotConfirmedReason string `json:"not_confirmed_reason,omitempty"`
	// Title is one line; Explanation one paragraph of plain English.
	Title       string `json:"title"`
	Explanation string `json:"explanation"`
	// Evidence quotes the observed numbers, one fact per line.
	Evidence []string `json:"evidence"`
	// AppActions are the application-side fixes, first choice first.
	AppActions []string `json:"app_actions,omitempty"`
	// Counter is the counter (nstat name) whose rate per interval shows
	// the symptom, "" for state piles; Report.Rates holds its values.
	Counter string `json:"counter,omitempty"`
}

// Change is one sysctl change.
type Change struct {
	Key      string `json:"key"`
	Current  string `json:"current"`
	Proposed string `json:"proposed"`
}

// Verification says how a person proves the change worked.
type Verification struct {
	// Commands to run, verbatim.
	Commands []string `json:"commands"`
	// Fixed describes what "fixed" looks like, in numbers.
	Fixed string `json:"fixed"`
	// Counters are the counters whose rate must fall (nstat names), for
	// the verify package.
	Counters []string `json:"counters,omitempty"`
	// ListenerPort, when set, is the listener whose Send-Q must reach
	// ListenerSendQ (a somaxconn change takes effect only at listen()).
	ListenerLocal string `json:"listener,omitempty"`
	ListenerSendQ uint32 `json:"listener_send_q,omitempty"`
}

// Proposal is a kernel change proposed for a kernel-side finding.
type Proposal struct {
	// ID is stable: the same host, namespace, finding, subject, keys,
	// current and proposed values give the same id.
	ID      string `json:"id"`
	Host    string `json:"host"`
	Netns   string `json:"netns,omitempty"`
	Finding string `json:"finding"` // the finding's kind
	Subject string `json:"subject"`
	// Changes are applied in order and rolled back in reverse.
	Changes    []Change     `json:"changes"`
	Reason     string       `json:"reason"`
	AppActions []string     `json:"app_actions,omitempty"`
	Verify     Verification `json:"verify"`
	// Ready is true only when the finding is confirmed.
	Ready          bool   `json:"ready"`
	NotReadyReason string `json:"not_ready_reason,omitempty"`
	// Notes are caveats a person must read (e.g. the application must
	// listen() again).
	Notes []string `json:"notes,omitempty"`
}

// Report is the outcome of a diagnosis.
type Report struct {
	Schema  string `json:"schema"`
	Host    string `json:"host"`
	Netns   string `json:"netns,omitempty"`
	Source  string `json:"source"`
	Samples int    `json:"samples"`
	// IntervalSeconds is the mean spacing of the samples; absent for one
	// sample or samples without times (a paste has none).
	IntervalSeconds *float64 `json:"interval_seconds,omitempty"`
	// Symptom answers first, when the user named a symptom or a port,
	// whether the evidence explains it (absent otherwise).
	Symptom *SymptomAnswer `json:"symptom,omitempty"`
	// Summary is the plain-English read of the socket census.
	Summary []string `json:"summary"`
	// Healthy is true when there is no finding above info.
	Healthy bool `json:"healthy"`
	// NothingJudged is true when the input held no source any rule could
	// judge (a netstat -s alone, say): Healthy then means "nothing seen",
	// not "fine", and the report says so.
	NothingJudged bool `json:"nothing_judged,omitempty"`
	// NotJudged names what the input did not let the rules judge, each
	// with the capture that would (the same list the read's "Not judged"
	// gives): a healthy report with any is healthy only in what was read.
	NotJudged []string   `json:"not_judged,omitempty"`
	Findings  []Finding  `json:"findings"`
	Proposals []Proposal `json:"proposals"`
	// Rates holds per-interval rates of the drop counters (per second),
	// for sparklines and evidence: counter name -> one value per interval.
	Rates map[string][]float64 `json:"rates,omitempty"`
	// Read says, for a paste, which block of it went where
	// (sample.ReadSummary); "" otherwise.
	Read string `json:"read,omitempty"`
}
