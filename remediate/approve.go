package remediate

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/diagnose"
)

// Propose records the proposals of a report as pending approval, each with
// the side of its finding, and journals the new ones. It returns the
// recorded proposals.
func (e *Engine) Propose(r diagnose.Report, source string) ([]Pending, error) {
	var out []Pending
	now := e.now().UTC()
	for _, p := range r.Proposals {
		if err := ValidID(p.ID); err != nil {
			return out, err
		}
		side := diagnose.SideUnknown
		for _, f := range r.Findings {
			if f.Kind == p.Finding && f.Subject == p.Subject {
				side = f.Side
			}
		}
		_, err := e.store.Proposal(p.ID)
		isNew := errors.Is(err, ErrNotFound)
		pp := Pending{Proposal: p, Side: side, Recorded: now, LastSeen: now, Source: source}
		if err := e.store.RecordProposal(pp); err != nil {
			return out, err
		}
		if isNew {
			if err := e.journal.Append(Record{Proposal: p.ID, State: StateProposed, Host: p.Host, Netns: p.Netns,
				Finding: p.Finding, Subject: p.Subject, Values: valuesOf(p), Reason: p.Reason}); err != nil {
				return out, err
			}
		}
		out = append(out, pp)
	}
	return out, nil
}

func valuesOf(p diagnose.Proposal) []Value {
	var v []Value
	for _, c := range p.Changes {
		v = append(v, Value{Key: c.Key, Old: Fold(c.Current), New: Fold(c.Proposed)})
	}
	return v
}

// ApproveOptions qualify an approval.
type ApproveOptions struct {
	TTL          time.Duration
	Comment      string
	AllowRestart bool
	// Approver defaults to CurrentApprover().
	Approver *Approver
}

// ErrBadTTL: an approval's lifetime is not positive or is over
// remediate.max_approval_ttl.
var ErrBadTTL = errors.New("invalid approval lifetime")

// ErrInFlight: a deny or approve came while a change of the proposal is
// open (verifying, or left open by a process that died); it changes nothing.
var ErrInFlight = errors.New("change in flight")

// Approve records an operator's approval of a pending proposal. A zero TTL
// is remediate.approval_ttl; a negative one, or one over
// remediate.max_approval_ttl, is an error: an approval that never expires
// is a standing approval by another name.
func (e *Engine) Approve(id string, o ApproveOptions) (Approval, error) {
	p, err := e.store.Proposal(id)
	if err != nil {
		return Approval{}, err
	}
	if o.TTL < 0 {
		return Approval{}, fmt.Errorf("%w: --ttl %s: an approval must last a positive time", ErrBadTTL, o.TTL)
	}
	if o.TTL == 0 {
		o.TTL = e.cfg.Remediate.ApprovalTTL
	}
	if max := e.cfg.Remediate.MaxApprovalTTL; max > 0 && o.TTL > max {
		return Approval{}, fmt.Errorf("%w: --ttl %s is over remediate.max_approval_ttl (%s)", ErrBadTTL, o.TTL, max)
	}
	if err := e.inFlight(id, "approve"); err != nil {
		return Approval{}, err
	}
	who := CurrentApprover()
	if o.Approver != nil {
		who = *o.Approver
	}
	now := e.now().UTC()
	a := Approval{Proposal: id, Host: p.Proposal.Host, Netns: p.Proposal.Netns, Changes: p.Proposal.Changes,
		Approver: who, Comment: o.Comment, AllowRestart: o.AllowRestart, Created: now, Expires: now.Add(o.TTL)}
	if err := e.store.PutApproval(a); err != nil {
		return a, err
	}
	reason := fmt.Sprintf("approved until %s", a.Expires.Format(time.RFC3339))
	if o.Comment != "" {
		reason += ": " + o.Comment
	}
	e.log.Info("proposal approved", zap.String("proposal", id), zap.String("approver", who.String()), zap.Time("expires", a.Expires), zap.Bool("allow_restart", o.AllowRestart))
	return a, e.journal.Append(Record{Proposal: id, State: StateApproved, Host: p.Proposal.Host, Netns: p.Proposal.Netns,
		Finding: p.Proposal.Finding, Subject: p.Proposal.Subject, Values: valuesOf(p.Proposal), Approver: who.String(), Reason: reason})
}

// Deny records that a proposal must not be applied (replacing any
// approval). While a change of the proposal is in flight it changes nothing
// and returns ErrInFlight saying what the change will do.
func (e *Engine) Deny(id, comment string) error {
	p, err := e.store.Proposal(id)
	if err != nil {
		return err
	}
	if err := e.inFlight(id, "deny"); err != nil {
		return err
	}
	who := CurrentApprover()
	now := e.now().UTC()
	d := Approval{Proposal: id, Host: p.Proposal.Host, Netns: p.Proposal.Netns, Changes: p.Proposal.Changes,
		Approver: who, Comment: comment, Created: now, Expires: now, Denied: true}
	if old, err := e.store.Approval(id); err == nil {
		// Who used the approval before stays on record.
		d.UsedBy, d.UsedAt = old.UsedBy, old.UsedAt
	}
	if err := e.store.PutApproval(d); err != nil {
		return err
	}
	return e.journal.Append(Record{Proposal: id, State: StateDenied, Host: p.Proposal.Host, Netns: p.Proposal.Netns,
		Finding: p.Proposal.Finding, Subject: p.Proposal.Subject, Values: valuesOf(p.Proposal), Approver: who.String(), Reason: comment})
}

// inFlight returns ErrInFlight when the approval of id was used by a change
// this journal holds open: a deny or a new approval then would say it
// changed something while the change goes on regardless.
func (e *Engine) inFlight(id, verb string) error {
	a, err := e.store.Approval(id)
	if err != nil || a.UsedBy == "" {
		return nil
	}
	c, err := e.journal.ChangeByID(a.UsedBy)
	if err != nil || !c.State.Open() {
		return nil
	}
	var vals []string
	for _, v := range c.Values {
		vals = append(vals, fmt.Sprintf("%s %q -> %q", v.Key, v.Old, v.New))
	}
	what := fmt.Sprintf("it is %s (pid %d); if verification passes it keeps %s, otherwise it restores the old values", c.State, c.PID, strings.Join(vals, ", "))
	if l, err := e.changeLock(c.ID); err == nil {
		l.Unlock()
		what = fmt.Sprintf("it was left %s by pid %d, which is gone; sockwarden resolve settles it (remediate.on_restart: %s)", c.State, c.PID, e.cfg.Remediate.OnRestart)
	}
	return fmt.Errorf("%w: proposal %s is being applied by change %s: %s does not stop it and was not recorded; %s. To undo it once settled: sockwarden rollback %s",
		ErrInFlight, id, c.ID, verb, what, c.ID)
}
