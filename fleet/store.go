package fleet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
)

// Store is the fleet's shared store as the agent and the CLI use it:
// proposals and approvals (remediate.Store), the rollout slots
// (remediate.Rollout), the connection rollouts share (Backend), and the
// fleet-wide listing. EtcdStore implements it; nothing outside this
// package names EtcdStore.
type Store interface {
	remediate.Store
	remediate.Rollout
	Backend
	// Host is the host this store records proposals as.
	Host() string
	// FleetProposals lists every host's pending proposals, newest first.
	FleetProposals() ([]remediate.Pending, error)
	// Ping checks that a quorum answers.
	Ping(ctx context.Context) error
	Close() error
}

var _ Store = (*EtcdStore)(nil)

// Claim is this host's place in a rollout, held while its apply runs.
type Claim struct {
	Rollout  Rollout
	Progress Progress
}

// ClaimStore is the remediate.Store the agent's engine uses in a fleet:
// the proposal store, plus, for a proposal this host holds a rollout claim
// for, the approval the rollout gives. That approval names the rollout's
// approver and carries the group's exact values, so the engine's guard 4
// still checks that the proposal is that change on this host; using it
// records the change in the host's progress (its own key). Every other
// guard runs as for any approval.
type ClaimStore struct {
	remediate.Store
	f      *Fleet
	mu     sync.Mutex
	claims map[string]*Claim
}

// NewClaimStore wraps base.
func NewClaimStore(base remediate.Store, f *Fleet) *ClaimStore {
	return &ClaimStore{Store: base, f: f, claims: map[string]*Claim{}}
}

// Hold makes the engine see c's approval for proposal c.Progress.Proposal.
func (s *ClaimStore) Hold(c *Claim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims[c.Progress.Proposal] = c
}

// Drop forgets the claim for proposal id and returns it (nil: none).
func (s *ClaimStore) Drop(id string) *Claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.claims[id]
	delete(s.claims, id)
	return c
}

func (s *ClaimStore) claim(id string) *Claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims[id]
}

// ChangesOf turns a group back into the changes it stands for.
func ChangesOf(g Group) []diagnose.Change {
	k, c, n := strings.Split(g.Key, ","), strings.Split(g.Current, ","), strings.Split(g.Proposed, ",")
	var out []diagnose.Change
	for i := range k {
		if i < len(c) && i < len(n) {
			out = append(out, diagnose.Change{Key: k[i], Current: c[i], Proposed: n[i]})
		}
	}
	return out
}

func (c *Claim) approval(p remediate.Pending) remediate.Approval {
	r := c.Rollout
	changes := ChangesOf(r.Group)
	// The group's keys are sorted; the proposal lists its own in its
	// order: present them in the proposal's when they are the same keys.
	byKey := map[string]diagnose.Change{}
	for _, x := range changes {
		byKey[x.Key] = x
	}
	if len(byKey) == len(p.Proposal.Changes) {
		ordered := make([]diagnose.Change, 0, len(changes))
		for _, x := range p.Proposal.Changes {
			if g, ok := byKey[x.Key]; ok {
				ordered = append(ordered, g)
			}
		}
		if len(ordered) == len(changes) {
			changes = ordered
		}
	}
	return remediate.Approval{Proposal: c.Progress.Proposal, Host: p.Proposal.Host, Netns: p.Proposal.Netns, Changes: changes,
		Approver: r.Approver, Created: r.Created, Expires: r.Expires,
		Comment: strings.TrimSpace(fmt.Sprintf("fleet rollout %s wave %d %s", r.ID, c.Progress.Wave, r.Comment))}
}

// Approval implements remediate.Store.
func (s *ClaimStore) Approval(id string) (remediate.Approval, error) {
	c := s.claim(id)
	if c == nil {
		return s.Store.Approval(id)
	}
	p, err := s.Store.Proposal(id)
	if err != nil {
		return remediate.Approval{}, err
	}
	return c.approval(p), nil
}

// UseApproval implements remediate.Store: a claim's approval is used by
// recording the change in this host's progress; the store must take the
// write (fail closed).
func (s *ClaimStore) UseApproval(id, change string, now time.Time) (remediate.Approval, error) {
	c := s.claim(id)
	if c == nil {
		return s.Store.UseApproval(id, change, now)
	}
	p, err := s.Store.Proposal(id)
	if err != nil {
		return remediate.Approval{}, err
	}
	a := c.approval(p)
	if !now.Before(a.Expires) {
		return a, fmt.Errorf("%w: rollout %s expired at %s", remediate.ErrApprovalExpired, c.Rollout.ID, a.Expires.Format(time.RFC3339))
	}
	if c.Progress.Change != "" {
		return a, fmt.Errorf("%w: rollout %s by change %s on this host", remediate.ErrApprovalUsed, c.Rollout.ID, c.Progress.Change)
	}
	pr := c.Progress
	pr.Change = change
	pr.Events = append(pr.Events, Event{Time: now.UTC(), What: "applying", Detail: "change " + change})
	if err := s.f.Report(context.Background(), pr); err != nil {
		return a, err
	}
	s.mu.Lock()
	c.Progress = pr
	s.mu.Unlock()
	a.UsedBy, a.UsedAt = change, now.UTC()
	return a, nil
}
