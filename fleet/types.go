// Package fleet is sockwarden's fleet rollouts: one operator approval for a
// class of hosts showing the same change, applied canary first, then in
// growing waves, halted by itself when verifications fail. Everything is
// kept in etcd, the fleet's existing store; there is no coordinator. Each
// agent decides for itself whether it may start, from the rollout and the
// progress every host records, and claims its place with one etcd Txn that
// fails if anything it decided on changed meanwhile.
//
// Keys, under fleet.etcd.prefix P (besides EtcdStore's):
//
//	P/hosts/HOST/info        HostInfo, bound to the host's lease (agent of HOST)
//	P/progress/HOST/ROLLOUT  Progress of HOST in ROLLOUT (agent of HOST)
//	P/rollouts/ROLLOUT       Rollout (operator)
//	P/halt                   Halt: every rollout stops starting hosts (operator)
//
// A host writes only keys with its own name; the operator writes rollouts,
// the halt and approvals. SetupRoles makes etcd enforce that.
package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
)

// Group is one change as the fleet sees it: the finding and the exact
// values, whatever the host. Identical proposals on many hosts share it.
type Group struct {
	Finding  string `json:"finding"`
	Key      string `json:"key"`
	Current  string `json:"current"`
	Proposed string `json:"proposed"`
}

// GroupOf is p's group. Several changes in one proposal are joined with
// "," in key order, so the group still names the exact change.
func GroupOf(p diagnose.Proposal) Group {
	cs := append([]diagnose.Change(nil), p.Changes...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Key < cs[j].Key })
	var k, c, n []string
	for _, x := range cs {
		k, c, n = append(k, x.Key), append(c, remediate.Fold(x.Current)), append(n, remediate.Fold(x.Proposed))
	}
	return Group{Finding: p.Finding, Key: strings.Join(k, ","), Current: strings.Join(c, ","), Proposed: strings.Join(n, ",")}
}

// ID is the group's short name, "g-" and 10 hex digits of a hash.
func (g Group) ID() string {
	h := sha256.Sum256([]byte(g.Finding + "\x00" + g.Key + "\x00" + g.Current + "\x00" + g.Proposed))
	return "g-" + hex.EncodeToString(h[:5])
}

func (g Group) String() string {
	return fmt.Sprintf("%s %s %s -> %s", g.Finding, g.Key, g.Current, g.Proposed)
}

// Duration is a time.Duration written as "10m0s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Rollout is an operator's approval of one group for the hosts its
// selector picks, with the pace of the waves.
type Rollout struct {
	ID       string            `json:"id"`
	Group    Group             `json:"group"`
	GroupID  string            `json:"group_id"`
	Selector map[string]string `json:"selector"`
	// Canary hosts go first; each later wave is WaveFactor times the
	// one before, at most MaxConcurrent hosts.
	Canary        int      `json:"canary"`
	WaveFactor    float64  `json:"wave_factor"`
	MaxConcurrent int      `json:"max_concurrent"`
	Bake          Duration `json:"bake"`
	// HaltAfter failed or rolled-back verifications halt the rollout.
	HaltAfter int                `json:"halt_after"`
	Approver  remediate.Approver `json:"approver"`
	Comment   string             `json:"comment,omitempty"`
	Created   time.Time          `json:"created"`
	Expires   time.Time          `json:"expires"`
	// Forced: started despite the storm guard.
	Forced bool `json:"forced,omitempty"`
	// Paused by the operator (or, in effect, by an inconclusive
	// verification until ResumedAt).
	Paused    bool      `json:"paused,omitempty"`
	ResumedAt time.Time `json:"resumed_at,omitzero"`
	// Rollback asks every host that applied the change to restore it.
	Rollback bool `json:"rollback,omitempty"`
	// Events are the operator's steps: approved, paused, resumed, rollback.
	Events []Event `json:"events"`
}

// Event is one step of a rollout's timeline.
type Event struct {
	Time   time.Time `json:"time"`
	Host   string    `json:"host,omitempty"`
	What   string    `json:"what"`
	Detail string    `json:"detail,omitempty"`
}

// Host states in a rollout (Progress.State).
const (
	InFlight     = "in-flight"    // claimed: guards, write, verification
	Verified     = "verified"     // verified; baking until Settled+Bake
	RolledBack   = "rolled-back"  // verification failed: restored
	Failed       = "failed"       // the change failed (drift, write error)
	Inconclusive = "inconclusive" // no load to judge by: pauses the rollout
	Regressed    = "regressed"    // the finding came back during the bake
	Skipped      = "skipped"      // a local guard refused: nothing written
	Reverted     = "reverted"     // restored on the operator's fleet rollback
)

// bad says whether a state counts toward HaltAfter.
func bad(state string) bool { return state == RolledBack || state == Failed || state == Regressed }

// Progress is one host's part in one rollout, written by that host only.
type Progress struct {
	Rollout  string    `json:"rollout"`
	Host     string    `json:"host"`
	Proposal string    `json:"proposal"`
	Netns    string    `json:"netns,omitempty"`
	Kernel   string    `json:"kernel,omitempty"`
	Wave     int       `json:"wave"`
	State    string    `json:"state"`
	Change   string    `json:"change,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Started  time.Time `json:"started"`
	Settled  time.Time `json:"settled,omitzero"`
	// Baked is when the host found its bake over with load seen (see
	// EndBake); until then a verified host holds its wave back.
	Baked  time.Time `json:"baked,omitzero"`
	Events []Event   `json:"events"`
}

// HostInfo is a registered host: it disappears with its lease.
type HostInfo struct {
	Host     string            `json:"host"`
	Labels   map[string]string `json:"labels"`
	Kernel   string            `json:"kernel"`
	Version  string            `json:"version"`
	LastTick time.Time         `json:"last_tick"`
	// Groups are the groups of the proposals pending on the host, and
	// Findings their finding kinds (for the storm guard).
	Groups   []string `json:"groups"`
	Findings []string `json:"findings"`
}

// Matches says whether labels satisfy selector (every pair equal).
func Matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// ParseSelector reads "role=web,zone=a".
func ParseSelector(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("selector %q: %q is not NAME=VALUE", s, kv)
		}
		out[k] = v
	}
	return out, nil
}

// Halt stops every rollout from starting hosts until cleared.
type Halt struct {
	Time     time.Time          `json:"time"`
	Approver remediate.Approver `json:"approver"`
	Comment  string             `json:"comment,omitempty"`
}
