package remediate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/verify"
)

// settling is one applied change on its way through verification.
type settling struct {
	change string
	c      Change // as journaled when verification starts
	tgt    Target
	vals   []Value
	appr   Approval
	o      ApplyOptions
	out    Outcome
}

// recSettling journals r for the change, in its namespace, with its values unless
// r has its own.
func (e *Engine) recSettling(s *settling, r Record) error {
	r.Change, r.Proposal = s.change, s.c.Proposal
	s.tgt.stamp(&r)
	if r.Values == nil {
		r.Values = s.vals
	}
	return e.journal.Append(r)
}

// verifyAndSettle runs the verification window for an applied change and
// keeps it, rolls it back, or records drift. notes are the sysctl.d files a
// dead process already planned (resume); nil plans them now.
func (e *Engine) verifyAndSettle(ctx context.Context, change string, tgt Target, vals []Value, plan diagnose.Verification, notes []PersistNote, appr Approval, o ApplyOptions) (Outcome, error) {
	c, _ := e.journal.ChangeByID(change)
	s := &settling{change: change, c: c, tgt: tgt, vals: vals, appr: appr, o: o,
		out: Outcome{Proposal: c.Proposal, Change: change, Host: tgt.Host, Netns: tgt.Netns, Values: vals, Approver: c.Approver}}
	// Persistence is planned (and journaled with what the files held)
	// before any file is written, so that a rollback, even of a change
	// killed while persisting, can put the files back.
	var persistErr error
	if e.cfg.Remediate.Persist && notes == nil {
		notes, persistErr = e.planPersist(tgt, vals)
	}
	if err := e.recSettling(s, Record{State: StateVerifying, Persist: notes, Reason: fmt.Sprintf("watching for %s, a sample every %s", o.Window, o.Interval)}); err != nil {
		return s.out, err
	}
	e.event(c.Proposal, change, StepVerifying, "verifying for %s, a sample every %s", o.Window, o.Interval)
	in := verify.Input{Plan: plan, MaxDropsPerSec: e.cfg.Verify.MaxDropsPerSec, MinArrivalsPerSec: e.cfg.Diagnose.MinArrivalsPerSec,
		MinCleanIntervals: e.cfg.Verify.MinCleanIntervals}
	if drift := e.watch(ctx, s, &in); drift != "" {
		s.out.State, s.out.Reason = StateDrift, drift
		e.event(c.Proposal, change, StepDrift, "%s", drift)
		return s.out, e.recSettling(s, Record{State: StateDrift, Values: vals, Reason: drift})
	}
	return e.settle(ctx, s, in, notes, persistErr)
}

// watch samples the namespace every o.Interval until the window ends or
// ctx is cancelled, restarting the listener's unit once if verification
// waits for it and that is allowed. It returns a reason when someone else
// changed one of our values (drift), "" otherwise.
func (e *Engine) watch(ctx context.Context, s *settling, in *verify.Input) (drift string) {
	deadline := e.now().Add(s.o.Window)
	restarted := false
	for {
		got, err := e.opts.Sampler.Series(ctx, s.tgt.Netns, 1, 0)
		if err != nil || len(got) == 0 {
			if ctx.Err() != nil {
				// Cancelled (signal): settle by rolling back.
				return ""
			}
			e.log.Warn("verification sample failed", zap.Error(err))
		} else {
			in.Samples = append(in.Samples, got[0])
		}
		if d := e.drifted(s); d != "" {
			return d
		}
		verdict := verify.Judge(*in)
		if verdict.Waiting != "" {
			e.event(s.c.Proposal, s.change, StepWaiting, "%s", verdict.Waiting)
			if !restarted {
				restarted = e.restartUnits(ctx, s, verdict)
			}
		} else if len(in.Samples) > 1 {
			e.event(s.c.Proposal, s.change, StepVerifying, "%s", verdict.Reason)
		}
		if !e.now().Before(deadline) || ctx.Err() != nil {
			return ""
		}
		wait := min(s.o.Interval, deadline.Sub(e.now()))
		select {
		case <-ctx.Done():
		case <-e.opts.Clock.After(wait):
		}
	}
}

// drifted reads the live values back: one that is neither ours nor
// unreadable was changed by someone else during verification.
func (e *Engine) drifted(s *settling) string {
	sc := e.sysctlAt(s.tgt)
	for i := range s.vals {
		v := &s.vals[i]
		live, err := sc.Read(v.Key)
		if err != nil {
			continue
		}
		v.Live = live
		if live != v.New {
			e.log.Error("DRIFT: sysctl changed under us; leaving it", zap.String("change", s.change), zap.String("key", v.Key),
				zap.String("ours", v.New), zap.String("live", live), zap.String("old", v.Old), zap.String("netns", NetnsName(s.tgt.Netns)))
			return fmt.Sprintf("drift: %s changed to %q by someone else during verification (we wrote %q); not rolled back, left as found", v.Key, live, v.New)
		}
	}
	return ""
}

// restartUnits restarts the units verification waits for, when config
// remediate.restart_unit and the approval both allow it. It reports
// whether it tried (a unit is restarted once per verification).
func (e *Engine) restartUnits(ctx context.Context, s *settling, verdict verify.Verdict) bool {
	if e.opts.Restarter == nil || !e.cfg.Remediate.RestartUnit || !s.appr.AllowRestart {
		return false
	}
	restarted := false
	for _, u := range verdict.Units() {
		restarted = true
		e.log.Warn("restarting unit so that it listens again", zap.String("unit", u), zap.String("change", s.change))
		if err := e.opts.Restarter.RestartUnit(ctx, u); err != nil {
			e.event(s.c.Proposal, s.change, StepRestart, "restart of %s failed: %v", u, err)
		} else {
			e.event(s.c.Proposal, s.change, StepRestart, "restarted %s so that it listens again", u)
		}
	}
	return restarted
}

// settle judges the whole window and keeps the change (persisting it when
// configured) or rolls it back.
func (e *Engine) settle(ctx context.Context, s *settling, in verify.Input, notes []PersistNote, persistErr error) (Outcome, error) {
	c, out := s.c, &s.out
	in.Final = true
	in.Finding, in.Subject = c.Finding, c.Subject
	if e.opts.Diagnose != nil && len(in.Samples) > 1 {
		rep := e.opts.Diagnose(in.Samples)
		in.After = &rep
	}
	verdict := verify.Judge(in)
	if ctx.Err() != nil {
		verdict = verify.Verdict{Outcome: verify.Inconclusive, Reason: "verification interrupted: " + ctx.Err().Error()}
		out.Interrupted = true
	}
	out.Verdict = &verdict
	switch {
	case verdict.Outcome == verify.Verified:
		out.State, out.Reason = StateVerified, verdict.Reason
		if e.cfg.Remediate.Persist {
			f, err := e.persist(notes, persistErr, s.change, c.Proposal, s.vals)
			switch {
			case err != nil:
				out.Reason += "; not persisted: " + err.Error()
			case f != "":
				out.Persisted = f
				out.Reason += "; persisted to " + f
				faultPoint("persisted")
			}
		}
		e.event(c.Proposal, s.change, StepVerified, "%s", out.Reason)
		return *out, e.recSettling(s, Record{State: StateVerified, Reason: out.Reason})
	case verdict.Outcome == verify.Inconclusive && e.cfg.Verify.Inconclusive == "keep" && ctx.Err() == nil:
		out.State, out.Reason = StateKept, "inconclusive, kept (verify.inconclusive: keep): "+verdict.Reason
		e.event(c.Proposal, s.change, StepKept, "%s", out.Reason)
		return *out, e.recSettling(s, Record{State: StateKept, Reason: out.Reason})
	}
	why := string(verdict.Outcome) + ": " + verdict.Reason
	e.event(c.Proposal, s.change, StepRollback, "rolling back (%s)", why)
	o, err := e.rollback(s.change, s.tgt, s.vals, why)
	o.Verdict = &verdict // the rollback's outcome says why too, not only in its reason
	o.Interrupted = out.Interrupted
	return o, err
}

// restore writes the old values back, in reverse order, but only where the
// live value is still ours, and only in the namespace t identifies. It
// returns a description and StateRolledBack or StateDrift. ids (the change
// and proposal) go on every log line.
func (e *Engine) restore(t Target, vals []Value, ids ...zap.Field) (string, State) {
	ns := t.Netns
	if now, err := netnsIdentity(ns); err != nil || now != t.ID {
		return fmt.Sprintf("namespace %q is gone or was replaced (%s when changed, %s now): nothing of ours to restore", ns, t.ID, now), StateDrift
	}
	sc := e.sysctlAt(t)
	state := StateRolledBack
	var parts []string
	for i := len(vals) - 1; i >= 0; i-- {
		v := &vals[i]
		live, err := sc.Read(v.Key)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: read failed (%v), left alone", v.Key, err))
			state = StateDrift
			continue
		}
		switch live {
		case v.Old:
			v.Live = live
			parts = append(parts, fmt.Sprintf("%s already %q", v.Key, v.Old))
		case v.New:
			res, err := sc.CompareAndSet(v.Key, v.New, v.Old)
			v.Live = res.Live
			if errors.Is(err, ErrValueChanged) {
				parts = append(parts, fmt.Sprintf("drift: %s changed to %q while being restored; left alone", v.Key, res.Live))
				if state == StateRolledBack {
					state = StateDrift
				}
				continue
			}
			if err != nil || res.Live != v.Old {
				parts = append(parts, fmt.Sprintf("%s: restore to %q failed: %v (live %q)", v.Key, v.Old, err, res.Live))
				state = StateFailed
				continue
			}
			// OLD/NEW are this write's, as on "writing sysctl": ours
			// before, the old value after.
			e.log.Info("sysctl restored", append([]zap.Field{zap.String("key", v.Key), zap.String("netns", NetnsName(ns)),
				zap.String("old", v.New), zap.String("new", v.Old), zap.String("state", string(StateRolledBack))}, ids...)...)
			parts = append(parts, fmt.Sprintf("%s restored %q -> %q", v.Key, v.New, v.Old))
		default:
			v.Live = live
			e.log.Error("DRIFT: sysctl is neither ours nor the old value; leaving it", append([]zap.Field{zap.String("key", v.Key), zap.String("netns", NetnsName(ns)),
				zap.String("old", v.Old), zap.String("ours", v.New), zap.String("live", live), zap.String("state", string(StateDrift))}, ids...)...)
			parts = append(parts, fmt.Sprintf("drift: %s is %q, neither ours (%q) nor the old value (%q); left alone", v.Key, live, v.New, v.Old))
			if state == StateRolledBack {
				state = StateDrift
			}
		}
	}
	return strings.Join(parts, "; "), state
}

// rollback restores a change's values in the namespace t identifies, puts
// back the sysctl.d files it wrote, and journals the outcome. The caller has
// proven t (the apply's own, or proveTarget's).
func (e *Engine) rollback(change string, t Target, vals []Value, why string) (Outcome, error) {
	c, _ := e.journal.ChangeByID(change)
	out := Outcome{Proposal: c.Proposal, Change: change, Host: t.Host, Netns: t.Netns, Values: vals, Approver: c.Approver}
	unlock, err := e.lockTarget(t)
	if err != nil {
		out.State, out.Reason = c.State, fmt.Sprintf("not rolled back: %v", err)
		return out, err
	}
	defer unlock()
	desc, st := e.restore(t, vals, zap.String("change", change), zap.String("proposal", c.Proposal))
	if d := e.unpersist(change, c.Persist); d != "" {
		desc += "; " + d
	}
	out.State, out.Reason = st, desc
	if why != "" {
		out.Reason = why + "; " + desc
	}
	e.event(c.Proposal, change, stepOf(st), "%s", out.Reason)
	r := Record{Change: change, Proposal: c.Proposal, State: st, Values: vals, Reason: out.Reason}
	t.stamp(&r)
	return out, e.journal.Append(r)
}

// unproven closes change c, whose namespace cannot be proven, without
// writing anything, and says how to restore it by hand.
func (e *Engine) unproven(c Change, perr error) (Outcome, error) {
	err := fmt.Errorf("%w change %s touched: restore by hand: %s (%v)", ErrUnprovenTarget, c.ID, restoreByHand(c), strings.TrimPrefix(perr.Error(), ErrUnprovenTarget.Error()+" change "+c.ID+" touched: "))
	out := Outcome{Proposal: c.Proposal, Change: c.ID, State: StateUnproven, Host: c.Host, Netns: c.Netns, Values: c.Values, Approver: c.Approver, Reason: err.Error()}
	e.log.Error("change left alone: its namespace cannot be proven", zap.String("change", c.ID), zap.Error(err))
	e.event(c.Proposal, c.ID, stepOf(StateUnproven), "%s", out.Reason)
	jerr := e.journal.Append(Record{Change: c.ID, Proposal: c.Proposal, State: StateUnproven, Reason: out.Reason})
	return out, errors.Join(err, jerr)
}

// Rollback restores a change by hand (sockwarden rollback CHANGE_ID), under
// the drift rule: only values still ours are restored.
func (e *Engine) Rollback(ctx context.Context, changeID string) (Outcome, error) {
	c, err := e.journal.ChangeByID(changeID)
	if err != nil {
		return Outcome{Change: changeID, State: StateFailed, Reason: err.Error()}, err
	}
	switch c.State {
	case StateRolledBack, StateFailed, StateDrift, StateRefused, StateUnproven:
		return Outcome{Proposal: c.Proposal, Change: c.ID, State: c.State, Netns: c.Netns, Values: c.Values,
			Reason: fmt.Sprintf("change %s is already closed (%s): nothing to roll back", c.ID, c.State)}, nil
	}
	l, err := e.changeLock(c.ID)
	if err != nil {
		return Outcome{Change: c.ID, State: c.State, Reason: "change is being verified by a live process (pid " + fmt.Sprint(c.PID) + "); try again when it settles"}, err
	}
	defer l.Unlock()
	t, perr := e.proveTarget(c)
	if errors.Is(perr, ErrUnprovenTarget) {
		return e.unproven(c, perr)
	}
	return e.rollback(c.ID, t, c.Values, "rolled back by hand by "+CurrentApprover().String())
}
