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

// GuardNetnsLock refuses an apply while another sockwarden holds the
// namespace's lock (or the namespace cannot be identified to lock it): one
// apply per namespace, whatever path names it and whatever state directory
// the process was given, since two changes to one namespace would confuse
// each other's verification and both would pass guard 5 before either
// wrote. It is checked before the other guards.
const GuardNetnsLock = "0-netns-lock"

// applyRun is one Apply on its way through the guards: what each guard
// found, for the guards after it and for the write.
type applyRun struct {
	id  string
	o   ApplyOptions
	pp  Pending
	p   diagnose.Proposal
	out Outcome
	// unavailable: the store could not be read (guard 4 refuses).
	unavailable error
	tgt         Target
	unlock      func()
	series      []*sample.Sample
	rep         diagnose.Report
	fresh       *diagnose.Finding // the fresh diagnosis's finding of p, if any
	stale       *diagnose.Proposal
	appr        Approval
	standing    []Standing
}

// guard is one named step of Apply. A step refuses by returning a
// *Refusal, which Apply journals under the step's guard whatever name the
// check itself used; any other error ends the apply unjournaled (a lock
// file that cannot be opened, not a decision about the change).
type guard struct {
	name  string // for people reading this list
	guard string // the Guard... constant a refusal carries
	check func(e *Engine, ctx context.Context, r *applyRun) error
}

// guards are Apply's steps, in order. Cheap checks of the record come
// before the fresh samples (they cost 2 intervals); guard 1 reads both the
// recorded side and the fresh one, so it runs once, after the samples.
var guards = []guard{
	{"store readable", GuardApproval, (*Engine).checkStore},
	{"this host", GuardAllowed, (*Engine).checkHost},
	{"namespace lock", GuardNetnsLock, (*Engine).takeNetnsLock},
	{"static bounds", GuardAllowed, (*Engine).checkStaticBounds},
	{"stale before samples", GuardApproval, (*Engine).checkStaleLive},
	{"fresh samples", GuardSamples, (*Engine).takeFreshSamples},
	{"kernel side", GuardKernelSide, (*Engine).checkSides},
	{"kernel rules", GuardAllowed, (*Engine).checkKernel},
	{"fresh diagnosis agrees", GuardSamples, (*Engine).checkFreshAgrees},
	{"approval", GuardApproval, (*Engine).checkApprovalOf},
	{"live value", GuardLiveValue, (*Engine).checkLiveValues},
	{"fleet slot free", GuardFleetSlot, (*Engine).checkSlotFree},
}

// Apply runs the whole guarded path for one pending proposal: the guards
// (with fresh samples), the journaled write, verification, and keep or
// roll back. A refusal returns an Outcome in state refused and a *Refusal
// error; other failures are in the Outcome's state and reason.
func (e *Engine) Apply(ctx context.Context, id string, o ApplyOptions) (Outcome, error) {
	if o.Window <= 0 {
		o.Window = e.cfg.Verify.Window
	}
	if o.Interval <= 0 {
		o.Interval = e.cfg.Verify.Interval
	}
	run := &applyRun{id: id, o: o}
	pp, err := e.store.Proposal(id)
	switch {
	case errors.Is(err, ErrStoreUnavailable):
		run.unavailable = err
	case err != nil:
		return Outcome{Proposal: id, State: StateFailed, Reason: err.Error()}, err
	default:
		run.pp, run.p = pp, pp.Proposal
	}
	p := run.p
	run.out = Outcome{Proposal: id, Host: p.Host, Netns: p.Netns, Values: valuesOf(p), DryRun: o.DryRun}
	defer func() {
		if run.unlock != nil {
			run.unlock()
		}
	}()
	for _, g := range guards {
		err := g.check(e, ctx, run)
		var r *Refusal
		switch {
		case errors.As(err, &r):
			r.Guard = g.guard
			return e.refused(run, r)
		case err != nil:
			return run.out, err
		}
	}
	if o.DryRun {
		run.out.State = StateApproved
		run.out.Reason = "dry run: every guard passed; would write " + describeValues(p.Changes, false)
		e.event(id, "", StepDryRun, "%s", run.out.Reason)
		return run.out, nil
	}
	return e.write(ctx, run)
}

// refused journals a refusal (a dry run only reports it) and returns it.
func (e *Engine) refused(run *applyRun, r *Refusal) (Outcome, error) {
	p, out := run.p, &run.out
	out.State, out.Guard, out.Reason = StateRefused, r.Guard, r.Reason
	e.log.Warn("apply refused", zap.String("proposal", run.id), zap.String("guard", r.Guard), zap.String("reason", r.Reason))
	if !run.o.DryRun {
		if err := e.journal.Append(Record{Proposal: run.id, State: StateRefused, Host: p.Host, Netns: p.Netns, Finding: p.Finding,
			Subject: p.Subject, Values: out.Values, Guard: r.Guard, Reason: r.Reason}); err != nil {
			return *out, errors.Join(r, err)
		}
	}
	return *out, r
}

// write takes the change's lock and a fleet slot, and commits: every guard
// passed.
func (e *Engine) write(ctx context.Context, run *applyRun) (Outcome, error) {
	id, p := run.id, run.p
	change := newChangeID(e.now())
	cl, err := e.changeLock(change)
	if err != nil {
		return run.out, err
	}
	defer cl.Unlock()
	if e.opts.Rollout != nil {
		slot, err := e.takeSlot(ctx, id, change, p.Netns, run.out.Values, "fleet rollout slot taken")
		if err != nil {
			return e.refused(run, refuseErr(GuardFleetSlot, err, "%v", err))
		}
		// Released once the change is kept or rolled back (commit
		// returns only then); a dead process's slot expires with its
		// lease.
		defer slot.Release()
	}
	run.out.Change = change
	var use func() error
	if run.standing == nil {
		use = func() error {
			_, err := e.store.UseApproval(id, change, e.now())
			return err
		}
	} else {
		e.log.Warn("applying under a standing approval", zap.String("proposal", id), zap.String("approver", run.out.Approver))
	}
	return e.commit(ctx, change, p, run.appr, run.tgt, use, run.o)
}

// refusal turns a check's *Refusal into an error, nil staying nil.
func refusal(r *Refusal) error {
	if r == nil {
		return nil
	}
	return r
}

// checkStore fails closed: without the store there is no approval to
// check.
func (e *Engine) checkStore(_ context.Context, run *applyRun) error {
	if err := run.unavailable; err != nil {
		return refuseErr(GuardApproval, err, "cannot read proposal %s and its approval: %v; nothing applied", run.id, err)
	}
	return nil
}

func (e *Engine) checkHost(_ context.Context, run *applyRun) error {
	if h := run.p.Host; h != "" && e.opts.Host != "" && h != e.opts.Host {
		return refuse(GuardAllowed, "proposal %s is for host %q, this is %q", run.id, h, e.opts.Host)
	}
	return nil
}

// takeNetnsLock takes the namespace's lock for the rest of the apply; a
// lock held by another live process refuses. Apply releases it.
func (e *Engine) takeNetnsLock(_ context.Context, run *applyRun) error {
	ns := run.p.Netns
	nsid, err := netnsIdentity(ns)
	if err != nil {
		return refuseErr(GuardNetnsLock, err, "cannot identify the namespace to write: %v", err)
	}
	run.tgt = Target{Host: e.opts.Host, Netns: ns, ID: nsid}
	unlock, err := e.lockTarget(run.tgt)
	var busy *NetnsBusy
	switch {
	case errors.As(err, &busy):
		return refuseErr(GuardNetnsLock, err, "%v", err)
	case err != nil:
		return err
	}
	run.unlock = unlock
	return nil
}

func (e *Engine) checkStaticBounds(_ context.Context, run *applyRun) error {
	return refusal(checkStatic(run.p, e.cfg))
}

// checkStaleLive: an approval is for writing p's values over p's current
// ones, so a key that no longer holds its current value makes the approval
// stale (guard 4), whatever fresh samples would show. Checked before the
// samples, it cannot be masked by a pathology that happens to pause during
// them (the fresh diagnosis finds the same when it runs).
func (e *Engine) checkStaleLive(_ context.Context, run *applyRun) error {
	for _, c := range run.p.Changes {
		live, err := e.sysctlAt(run.tgt).Read(c.Key)
		if err == nil && Fold(live) != Fold(c.Current) {
			return refuse(GuardApproval, "stale: proposal %s was made for %s = %q; it is %q now; diagnose again and approve the new proposal if it is still wanted",
				run.id, c.Key, Fold(c.Current), Fold(live))
		}
	}
	return nil
}

// takeFreshSamples takes a baseline and two more samples, so drops must
// rise in two intervals, and diagnoses them.
func (e *Engine) takeFreshSamples(ctx context.Context, run *applyRun) error {
	p := run.p
	e.event(run.id, "", StepSample, "taking 3 fresh samples %s apart (guard 3)", run.o.Interval)
	series, err := e.opts.Sampler.Series(ctx, p.Netns, 3, run.o.Interval)
	if err != nil {
		return refuse(GuardSamples, "fresh samples: %v", err)
	}
	if len(series) < 3 {
		return refuse(GuardSamples, "fresh samples: got %d, need 3", len(series))
	}
	run.series, run.rep = series, e.opts.Diagnose(series)
	for i := range run.rep.Findings {
		if f := &run.rep.Findings[i]; f.Kind == p.Finding && f.Subject == p.Subject {
			run.fresh = f
		}
	}
	return nil
}

// checkSides is guard 1: the finding is kernel-side as recorded and, when
// the fresh diagnosis has it, there too, so a forged or outdated record
// cannot turn an application problem into a kernel change.
func (e *Engine) checkSides(_ context.Context, run *applyRun) error {
	p := run.p
	if r := checkSide(run.pp.Side, fmt.Sprintf("finding %s on %s", p.Finding, p.Subject)); r != nil {
		return r
	}
	// The fresh samples reading another side is a verdict of the moment
	// (an acceptor starved for a few seconds looks slow), not of the
	// change: the next census judges again.
	if run.fresh != nil {
		if r := checkSide(run.fresh.Side, fmt.Sprintf("finding %s on %s (fresh diagnosis)", p.Finding, p.Subject)); r != nil {
			return notNow(r)
		}
	}
	return nil
}

// checkKernel is guard 2 with live values: the kernel's own rules.
func (e *Engine) checkKernel(_ context.Context, run *applyRun) error {
	return refusal(checkKernelRules(run.p, e.sysctlAt(run.tgt).Read, run.series...))
}

// checkFreshAgrees is guard 3 on the fresh diagnosis.
func (e *Engine) checkFreshAgrees(_ context.Context, run *applyRun) error {
	p := run.p
	stale, r := checkFresh(p, run.fresh, run.rep, run.series)
	if r != nil {
		return r
	}
	run.stale = stale
	e.event(run.id, "", StepGuard, "fresh samples agree: %s on %s, confirmed in every interval%s", p.Finding, p.Subject,
		map[bool]string{true: " with drops rising", false: ""}[len(p.Verify.Counters) > 0 || run.fresh.Counter != ""])
	for _, q := range run.rep.Proposals {
		if q.Finding == p.Finding && q.Subject == p.Subject && q.ID != p.ID && stale == nil {
			e.event(run.id, "", StepGuard, "note: the fresh diagnosis would now propose %s (proposal %s); applying the approved %s",
				describeValues(q.Changes, false), q.ID, describeValues(p.Changes, false))
		}
	}
	return nil
}

// checkApprovalOf is guard 4: an approval of this exact proposal, not made
// stale by the fresh diagnosis.
func (e *Engine) checkApprovalOf(_ context.Context, run *applyRun) error {
	p := run.p
	if s := run.stale; s != nil {
		return refuse(GuardApproval, "stale: proposal %s was made for %s; the host now gives proposal %s (%s); approve that one if it is still wanted",
			run.id, describeValues(p.Changes, true), s.ID, describeValues(s.Changes, true))
	}
	appr, standing, r := e.approvalFor(run.id, p)
	if r != nil {
		return r
	}
	run.appr, run.standing = appr, standing
	run.out.Approver = appr.Approver.String()
	return nil
}

// checkLiveValues is guard 5: the live value is still the proposal's
// current (someone may have changed it since sampling).
func (e *Engine) checkLiveValues(_ context.Context, run *applyRun) error {
	sc := e.sysctlAt(run.tgt)
	for i, c := range run.p.Changes {
		v, err := sc.Read(c.Key)
		if err != nil {
			return refuse(GuardLiveValue, "read %s: %v", c.Key, err)
		}
		run.out.Values[i].Live = v
		if v != Fold(c.Current) {
			return refuse(GuardLiveValue, "%s is %q now, not the proposal's %q: someone changed it", c.Key, v, Fold(c.Current))
		}
	}
	return nil
}

// checkSlotFree is guard 6 for a dry run, which only looks: a real apply
// takes the slot after the guards (write).
func (e *Engine) checkSlotFree(ctx context.Context, run *applyRun) error {
	if e.opts.Rollout == nil || !run.o.DryRun {
		return nil
	}
	hs, max, err := e.opts.Rollout.Holders(ctx)
	if err != nil {
		return refuseErr(GuardFleetSlot, err, "fleet rollout slots unreadable: %v", err)
	}
	if len(hs) >= max {
		return refuseErr(GuardFleetSlot, ErrNoSlot, "%v: %s", ErrNoSlot, InFlight(hs, max))
	}
	return nil
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
	if r := checkApproval(appr, p, e.now()); r != nil {
		return appr, nil, r
	}
	return appr, nil, nil
}

// notNow marks a guard 3 refusal as one of the moment (ErrNotNow).
func notNow(r *Refusal) *Refusal {
	r.Err = ErrNotNow
	return r
}

// checkFresh is guard 3. It returns the fresh proposal when it differs from
// p only in the current values (the approval is then stale: guard 4).
func checkFresh(p diagnose.Proposal, fresh *diagnose.Finding, rep diagnose.Report, series []*sample.Sample) (*diagnose.Proposal, *Refusal) {
	if fresh == nil {
		return nil, notNow(refuse(GuardSamples, "the fresh samples do not show %s on %s any more", p.Finding, p.Subject))
	}
	if !fresh.Confirmed {
		return nil, notNow(refuse(GuardSamples, "%s on %s is not confirmed by the fresh samples: %s", p.Finding, p.Subject, orStr(fresh.NotConfirmedReason, "not in every interval")))
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
				return nil, notNow(refuse(GuardSamples, "%s did not rise in fresh interval %d/%d: no drops now", strings.Join(counters, "+"), i, len(series)-1))
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
