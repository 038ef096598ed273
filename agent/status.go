package agent

import "time"

// StatusSchema names the JSON layout `sockwarden status -o json` prints and
// the control socket returns.
const StatusSchema = "sockwarden.agent-status/v1"

// Status is the agent's state as the control socket reports it.
type Status struct {
	Schema  string    `json:"schema"`
	Version string    `json:"version"`
	PID     int       `json:"pid"`
	Mode    string    `json:"mode"`
	Started time.Time `json:"started"`
	// Ready is true once the first good sample was taken (READY=1).
	Ready bool `json:"ready"`
	// Diagnosed is true once the first full census of the agent's own
	// namespace was judged: until then nothing says the host is healthy.
	Diagnosed bool `json:"diagnosed"`
	// Line is the STATUS= one-liner systemd shows.
	Line string `json:"line"`
	// Ticks counts loop iterations; Full how many took the full census.
	Ticks uint64 `json:"ticks"`
	Full  uint64 `json:"full_censuses"`
	// LastError is the last sampling error ("" after a good sample).
	LastError  string      `json:"last_error,omitempty"`
	Namespaces []NetnsInfo `json:"namespaces"`
	// Unhealthy counts findings above info in the last diagnosis.
	Unhealthy int             `json:"unhealthy"`
	Findings  []FindingBrief  `json:"findings"`
	Pending   []ProposalBrief `json:"pending"`
	// Verifying is the change being verified, nil when none.
	Verifying *ChangeBrief `json:"verifying,omitempty"`
	// Recent holds the last outcomes (verified, rolled back, refused).
	Recent []ChangeBrief `json:"recent"`
	// Fleet is the fleet store's state, nil without one.
	Fleet *FleetInfo `json:"fleet,omitempty"`
}

// FleetInfo is the fleet store (etcd) as the agent last found it.
type FleetInfo struct {
	Endpoints string `json:"endpoints"`
	// Reachable: the last check was answered. While it is false nothing
	// is applied (an approval that cannot be checked is no approval);
	// the agent keeps observing and proposing locally.
	Reachable bool `json:"reachable"`
	// Since is when the store went down or came back (zero before the
	// first check).
	Since time.Time `json:"since,omitzero"`
	Error string    `json:"error,omitempty"`
	// Waiting says why an approved proposal waits (no free rollout slot).
	Waiting string `json:"waiting,omitempty"`
}

// NetnsInfo is one watched namespace.
type NetnsInfo struct {
	// Path is "" for the agent's own namespace.
	Path       string    `json:"path"`
	LastSample time.Time `json:"last_sample"`
	// Tier is "cheap" or "full": what the last tick read.
	Tier string `json:"tier"`
	// Why the last full census was taken ("drops rising", "every 30 ticks").
	FullReason string        `json:"full_reason,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
	Sockets    int           `json:"sockets"`
	Listeners  int           `json:"listeners"`
	Healthy    bool          `json:"healthy"`
	Error      string        `json:"error,omitempty"`
}

// FindingBrief is a finding as status lists it.
type FindingBrief struct {
	Netns     string `json:"netns,omitempty"`
	Kind      string `json:"kind"`
	Side      string `json:"side"`
	Severity  string `json:"severity"`
	Subject   string `json:"subject"`
	Confirmed bool   `json:"confirmed"`
	Title     string `json:"title"`
}

// ProposalBrief is a proposal waiting for an operator.
type ProposalBrief struct {
	ID      string    `json:"id"`
	Netns   string    `json:"netns,omitempty"`
	Finding string    `json:"finding"`
	Subject string    `json:"subject"`
	Changes []string  `json:"changes"` // "net.core.somaxconn 4096->8192"
	Since   time.Time `json:"since"`
}

// ChangeBrief is one kernel change in flight or done.
type ChangeBrief struct {
	Proposal string    `json:"proposal"`
	Netns    string    `json:"netns,omitempty"`
	Key      string    `json:"key"`
	Old      string    `json:"old"`
	New      string    `json:"new"`
	State    string    `json:"state"`
	Since    time.Time `json:"since"`
	Detail   string    `json:"detail,omitempty"`
}
