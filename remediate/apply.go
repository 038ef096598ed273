package remediate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/sample"
)

// ApplyOptions qualify one apply.
type ApplyOptions struct {
	// DryRun runs every guard and reports what would be written.
	DryRun bool
	// Window and Interval of the verification (default: config verify.*).
	Window, Interval time.Duration
}

func newChangeID(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return "c-" + now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
}

// Apply runs the whole guarded path for one pending proposal: fresh
// samples, the five guards, the journaled write, verification, and keep or
// roll back. A refusal returns an Outcome in state refused and a *Refusal
// error; other failures are in the Outcome's state and reason.
func (e *Engine) Apply(ctx context.Context, id string, o ApplyOptions) (Outcome, error) {
	if o.Window <= 0 {
		o.Window = e.cfg.Verify.Window
	}
	if o.Interval <= 0 {
		o.Interval = e.cfg.Verify.Interval
	}
	pp, err := e.store.Proposal(id)
	unavailable := errors.Is(err, ErrStoreUnavailable)
	if err != nil && !unavailable {
		return Outcome{Proposal: id, State: StateFailed, Reason: err.Error()}, err
	}
	p := pp.Proposal
	if unavailable {
		p = diagnose.Proposal{}
	}
	out := Outcome{Proposal: id, Host: p.Host, Netns: p.Netns, Values: valuesOf(p), DryRun: o.DryRun}
	refused := func(r *Refusal) (Outcome, error) {
		out.State, out.Guard, out.Reason = StateRefused, r.Guard, r.Reason
		e.log.Warn("apply refused", zap.String("proposal", id), zap.String("guard", r.Guard), zap.String("reason", r.Reason))
		if !o.DryRun {
			if err := e.journal.Append(Record{Proposal: id, State: StateRefused, Host: p.Host, Netns: p.Netns, Finding: p.Finding,
				Subject: p.Subject, Values: out.Values, Guard: r.Guard, Reason: r.Reason}); err != nil {
				return out, errors.Join(r, err)
			}
		}
		return out, r
	}
	if unavailable {
		// Fail closed: without the store there is no approval to check.
		return refused(refuseErr(GuardApproval, err, "cannot read proposal %s and its approval: %v; nothing applied", id, err))
	}
	if p.Host != "" && e.opts.Host != "" && p.Host != e.opts.Host {
		return refused(refuse(GuardAllowed, "proposal %s is for host %q, this is %q", id, p.Host, e.opts.Host))
	}

	// One apply at a time per namespace, whatever path names it and
	// whatever state directory the process was given: two changes to the
	// same namespace would confuse each other's verification, and both
	// would pass guard 5 before either wrote.
	nsid, err := netnsIdentity(p.Netns)
	if err != nil {
		return refused(refuseErr(GuardLiveValue, err, "cannot identify the namespace to write: %v", err))
	}
	tgt := Target{Host: e.opts.Host, Netns: p.Netns, ID: nsid}
	unlock, err := e.lockTarget(tgt)
	if err != nil {
		var busy *NetnsBusy
		if errors.As(err, &busy) {
			return refused(refuseErr(GuardLiveValue, err, "%v", err))
		}
		return out, err
	}
	defer unlock()

	// Guards 1 and 2 on the recorded proposal: cheap, before sampling.
	if r := checkSide(pp.Side, fmt.Sprintf("finding %s on %s", p.Finding, p.Subject)); r != nil {
		return refused(r)
	}
	if r := checkStatic(p, e.cfg); r != nil {
		return refused(r)
	}
	// An approval is for writing p's values over p's current ones: if a
	// key no longer holds its current value, the approval is stale
	// (guard 4), whatever fresh samples would show. Checked before the
	// samples, it cannot be masked by a pathology that happens to pause
	// during them (the fresh diagnosis finds the same when it runs).
	for _, c := range p.Changes {
		live, err := e.sysctlAt(tgt).Read(c.Key)
		if err == nil && Fold(live) != Fold(c.Current) {
			return refused(refuse(GuardApproval, "stale: proposal %s was made for %s = %q; it is %q now; diagnose again and approve the new proposal if it is still wanted",
				id, c.Key, Fold(c.Current), Fold(live)))
		}
	}

	// Fresh samples: a baseline and two more, so drops must rise in two
	// intervals.
	e.event(id, "", StepSample, "taking 3 fresh samples %s apart (guard 3)", o.Interval)
	series, err := e.opts.Sampler.Series(ctx, p.Netns, 3, o.Interval)
	if err != nil {
		return refused(refuse(GuardSamples, "fresh samples: %v", err))
	}
	if len(series) < 3 {
		return refused(refuse(GuardSamples, "fresh samples: got %d, need 3", len(series)))
	}
	rep := e.opts.Diagnose(series)

	// Guard 1 again, with the fresh diagnosis: a forged or outdated
	// record cannot turn an application problem into a kernel change.
	var fresh *diagnose.Finding
	for i := range rep.Findings {
		if rep.Findings[i].Kind == p.Finding && rep.Findings[i].Subject == p.Subject {
			fresh = &rep.Findings[i]
		}
	}
	if fresh != nil {
		if r := checkSide(fresh.Side, fmt.Sprintf("finding %s on %s (fresh diagnosis)", p.Finding, p.Subject)); r != nil {
			return refused(r)
		}
	}
	// Guard 2, the kernel's rules with live values.
	sc := e.sysctlAt(tgt)
	if r := checkKernelRules(p, sc.Read, series...); r != nil {
		return refused(r)
	}
	// Guard 3: the fresh diagnosis agrees.
	stale, r := checkFresh(p, fresh, rep, series)
	if r != nil {
		return refused(r)
	}
	e.event(id, "", StepGuard, "fresh samples agree: %s on %s, confirmed in every interval%s", p.Finding, p.Subject,
		map[bool]string{true: " with drops rising", false: ""}[len(p.Verify.Counters) > 0 || fresh.Counter != ""])
	for _, q := range rep.Proposals {
		if q.Finding == p.Finding && q.Subject == p.Subject && q.ID != p.ID && stale == nil {
			e.event(id, "", StepGuard, "note: the fresh diagnosis would now propose %s (proposal %s); applying the approved %s",
				describeValues(q.Changes, false), q.ID, describeValues(p.Changes, false))
		}
	}

	// Guard 4: an approval of this exact proposal.
	var appr Approval
	var standing []Standing
	if stale != nil {
		return refused(refuse(GuardApproval, "stale: proposal %s was made for %s; the host now gives proposal %s (%s); approve that one if it is still wanted",
			id, describeValues(p.Changes, true), stale.ID, describeValues(stale.Changes, true)))
	}
	appr, standing, r = e.approvalFor(id, p)
	if r != nil {
		return refused(r)
	}
	out.Approver = appr.Approver.String()

	// Guard 5: the live value is still the proposal's current.
	for i, c := range p.Changes {
		v, err := sc.Read(c.Key)
		if err != nil {
			return refused(refuse(GuardLiveValue, "read %s: %v", c.Key, err))
		}
		out.Values[i].Live = v
		if v != Fold(c.Current) {
			return refused(refuse(GuardLiveValue, "%s is %q now, not the proposal's %q: someone changed it", c.Key, v, Fold(c.Current)))
		}
	}

	// Guard 6: a fleet rollout slot (a dry run only looks).
	if e.opts.Rollout != nil && o.DryRun {
		hs, max, err := e.opts.Rollout.Holders(ctx)
		if err != nil {
			return refused(refuseErr(GuardFleetSlot, err, "fleet rollout slots unreadable: %v", err))
		}
		if len(hs) >= max {
			return refused(refuseErr(GuardFleetSlot, ErrNoSlot, "%v: %s", ErrNoSlot, InFlight(hs, max)))
		}
	}

	if o.DryRun {
		out.State = StateApproved
		out.Reason = "dry run: every guard passed; would write " + describeValues(p.Changes, false)
		e.event(id, "", StepDryRun, "%s", out.Reason)
		return out, nil
	}

	change := newChangeID(e.opts.Now())
	cl, err := e.changeLock(change)
	if err != nil {
		return out, err
	}
	defer cl.Unlock()
	if e.opts.Rollout != nil {
		slot, err := e.takeSlot(ctx, id, change, p.Netns, out.Values, "fleet rollout slot taken")
		if err != nil {
			return refused(refuseErr(GuardFleetSlot, err, "%v", err))
		}
		// Released once the change is kept or rolled back (commit
		// returns only then); a dead process's slot expires with its
		// lease.
		defer slot.Release()
	}
	out.Change = change
	var use func() error
	if standing == nil {
		use = func() error {
			_, err := e.store.UseApproval(id, change, e.opts.Now())
			return err
		}
	} else {
		e.log.Warn("applying under a standing approval", zap.String("proposal", id), zap.String("approver", out.Approver))
	}
	return e.commit(ctx, change, p, appr, tgt, use, o)
}

// approvalFor is guard 4 without side effects: the approval of id, or the
// standing rules covering p when there is none (then standing is not nil).
func (e *Engine) approvalFor(id string, p diagnose.Proposal) (appr Approval, standing []Standing, r *Refusal) {
	appr, err := e.store.Approval(id)
	switch {
	case errors.Is(err, ErrNotFound):
		standing = standingFor(p, e.standing)
		if standing == nil {
			return Approval{}, nil, refuse(GuardApproval, "no approval for proposal %s (sockwarden approve %s)", id, id)
		}
		rules := make([]string, len(standing))
		for i, s := range standing {
			rules[i] = s.Rule
		}
		return Approval{Proposal: id, Approver: Approver{Standing: strings.Join(rules, ",")}}, standing, nil
	case err != nil:
		return Approval{}, nil, refuseErr(GuardApproval, err, "approval for %s unreadable: %v", id, err)
	}
	if r := checkApproval(appr, p, e.opts.Now()); r != nil {
		return appr, nil, r
	}
	return appr, nil, nil
}

// checkFresh is guard 3. It returns the fresh proposal when it differs from
// p only in the current values (the approval is then stale: guard 4).
func checkFresh(p diagnose.Proposal, fresh *diagnose.Finding, rep diagnose.Report, series []*sample.Sample) (*diagnose.Proposal, *Refusal) {
	if fresh == nil {
		return nil, refuse(GuardSamples, "the fresh samples do not show %s on %s any more", p.Finding, p.Subject)
	}
	if !fresh.Confirmed {
		return nil, refuse(GuardSamples, "%s on %s is not confirmed by the fresh samples: %s", p.Finding, p.Subject, orStr(fresh.NotConfirmedReason, "not in every interval"))
	}
	counters := p.Verify.Counters
	if len(counters) == 0 && fresh.Counter != "" {
		counters = []string{fresh.Counter}
	}
	if len(counters) > 0 {
		for i := 1; i < len(series); i++ {
			d := sample.Diff(series[i-1], series[i])
			rising := false
			for _, c := range counters {
				if d.Counters[c] > 0 {
					rising = true
				}
			}
			if !rising {
				return nil, refuse(GuardSamples, "%s did not rise in fresh interval %d/%d: no drops now", strings.Join(counters, "+"), i, len(series)-1)
			}
		}
	}
	// The fresh diagnosis must propose a change to the same keys. Its id
	// equals p's when current and proposed values are the same. A
	// different current value means the approval is stale (guard 4). A
	// different proposed value alone (the target follows the observed peak
	// demand, which moves from one burst to the next) does not undo the
	// agreement: the operator approved writing exactly p's values over
	// exactly p's current ones, guard 5 checks the latter, and verification
	// judges whether they are enough.
	var same *diagnose.Proposal
	for i := range rep.Proposals {
		q := &rep.Proposals[i]
		if q.Finding != p.Finding || q.Subject != p.Subject {
			continue
		}
		if q.ID == p.ID {
			return nil, nil
		}
		if sameKeys(p.Changes, q.Changes) {
			same = q
		}
	}
	if same == nil {
		return nil, refuse(GuardSamples, "the fresh diagnosis of %s on %s proposes no change to %s", p.Finding, p.Subject, keysOf(p.Changes))
	}
	for i := range p.Changes {
		if Fold(p.Changes[i].Current) != Fold(same.Changes[i].Current) {
			return same, nil
		}
	}
	return nil, nil
}

func sameKeys(a, b []diagnose.Change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key {
			return false
		}
	}
	return true
}

func keysOf(cs []diagnose.Change) string {
	var k []string
	for _, c := range cs {
		k = append(k, c.Key)
	}
	return strings.Join(k, ", ")
}

func describeValues(cs []diagnose.Change, withCurrent bool) string {
	var parts []string
	for _, c := range cs {
		if withCurrent {
			parts = append(parts, fmt.Sprintf("%s %q -> %q", c.Key, Fold(c.Current), Fold(c.Proposed)))
		} else {
			parts = append(parts, fmt.Sprintf("%s = %q", c.Key, Fold(c.Proposed)))
		}
	}
	return strings.Join(parts, ", ")
}

// checkApproval is guard 4 on a stored approval.
func checkApproval(a Approval, p diagnose.Proposal, now time.Time) *Refusal {
	if err := a.Usable(now); err != nil {
		return refuseErr(GuardApproval, err, "%v", err)
	}
	switch {
	case a.Approver.User == "" && a.Approver.Standing == "" && a.Approver.SudoUser == "":
		return refuse(GuardApproval, "the approval of %s names no approver", p.ID)
	case a.Host != p.Host || a.Netns != p.Netns || !sameChanges(a.Changes, p.Changes):
		return refuse(GuardApproval, "the approval of %s does not match the proposal (host, namespace or values differ): stale or forged", p.ID)
	}
	return nil
}

func sameChanges(a, b []diagnose.Change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || Fold(a[i].Current) != Fold(b[i].Current) || Fold(a[i].Proposed) != Fold(b[i].Proposed) {
			return false
		}
	}
	return true
}
