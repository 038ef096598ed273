package remediate

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/diagnose"
)

// commit journals, uses the approval (use, nil under a standing approval),
// writes, reads back, verifies and keeps or rolls back. The caller holds the
// change's lock and the namespace's; a zero tgt is the proposal's namespace
// as it is now.
func (e *Engine) commit(ctx context.Context, change string, p diagnose.Proposal, appr Approval, tgt Target, use func() error, o ApplyOptions) (Outcome, error) {
	vals := valuesOf(p)
	out := Outcome{Proposal: p.ID, Change: change, Host: p.Host, Netns: p.Netns, Values: vals, Approver: appr.Approver.String()}
	if tgt.ID.Ino == 0 {
		id, err := netnsIdentity(p.Netns)
		if err != nil {
			out.State, out.Reason = StateFailed, err.Error()
			return out, err
		}
		tgt = Target{Host: e.opts.Host, Netns: p.Netns, ID: id}
	}
	rec := func(r Record) error {
		r.Change, r.Proposal = change, p.ID
		tgt.stamp(&r)
		return e.journal.Append(r)
	}

	// The write-ahead record (the intent): fsynced before the approval
	// is used and before the kernel is touched, so that a kill at any
	// later moment leaves a change the journal knows.
	v := p.Verify
	if err := rec(Record{State: StateApplying, Finding: p.Finding, Subject: p.Subject, Values: vals, Approver: out.Approver, Reason: p.Reason, Verify: &v}); err != nil {
		out.State, out.Reason = StateFailed, "journal: "+err.Error()
		return out, err
	}
	if use != nil {
		if err := use(); err != nil {
			r := refuseErr(GuardApproval, err, "%v; nothing written", err)
			out.State, out.Guard, out.Reason = StateRefused, r.Guard, r.Reason
			return out, errors.Join(r, rec(Record{State: StateRefused, Guard: r.Guard, Reason: r.Reason}))
		}
		faultPoint("approval-used")
	}
	if ok, err := e.writeAll(change, p, tgt, &out, rec); !ok {
		return out, err
	}
	e.event(p.ID, change, StepApplied, "wrote %s", describeValues(p.Changes, true))
	if err := rec(Record{State: StateApplied, Values: vals, Reason: "written and read back"}); err != nil {
		return out, err
	}
	return e.verifyAndSettle(ctx, change, tgt, vals, p.Verify, nil, appr, o)
}

// writeAll writes p's values in order, each by compare-and-set and read
// back. On the first key that fails it undoes the keys already written,
// journals the failure, fills out and returns false (and the journal's
// error, or a write's when the journal failed too).
func (e *Engine) writeAll(change string, p diagnose.Proposal, tgt Target, out *Outcome, rec func(Record) error) (bool, error) {
	sc := e.sysctlAt(tgt)
	for i, c := range p.Changes {
		e.log.Info("writing sysctl", zap.String("change", change), zap.String("proposal", p.ID), zap.String("key", c.Key), zap.String("netns", NetnsName(p.Netns)),
			zap.String("old", out.Values[i].Old), zap.String("new", out.Values[i].New), zap.String("approver", out.Approver), zap.String("reason", p.Reason))
		res, err := sc.CompareAndSet(c.Key, out.Values[i].Old, out.Values[i].New)
		out.Values[i].Live = res.Live
		if res.Written {
			faultPoint("sysctl-written")
		}
		if errors.Is(err, ErrValueChanged) {
			// Changed between guard 5 and the write: nothing written.
			out.State = StateFailed
			out.Reason = fmt.Sprintf("%v; nothing written to %s", err, c.Key)
			if i > 0 {
				back, _ := e.restore(tgt, out.Values[:i], zap.String("change", change), zap.String("proposal", p.ID))
				out.Reason += "; earlier keys: " + back
			}
			return false, rec(Record{State: StateFailed, Values: out.Values, Error: err.Error(), Reason: out.Reason})
		}
		if err != nil {
			errno := ErrnoName(errnoOf(err))
			out.State, out.Errno = StateFailed, errno
			out.Reason = fmt.Sprintf("write %s = %q refused: %v; old value left in place", c.Key, out.Values[i].New, err)
			// Undo the changes of this proposal already written.
			if i > 0 {
				back, _ := e.restore(tgt, out.Values[:i], zap.String("change", change), zap.String("proposal", p.ID))
				out.Reason += "; earlier keys: " + back
			}
			if now, rerr := sc.Read(c.Key); rerr == nil {
				out.Values[i].Live = now
			}
			e.log.Error("sysctl write refused", zap.String("change", change), zap.String("key", c.Key), zap.String("errno", errno), zap.Error(err))
			if jerr := rec(Record{State: StateFailed, Values: out.Values, Error: err.Error(), Errno: errno, Reason: out.Reason}); jerr != nil {
				return false, errors.Join(err, jerr)
			}
			return false, nil
		}
		if res.Live != out.Values[i].New {
			// The kernel accepted the write but reads back something else
			// (clamped): record it and roll back what we can.
			out.State = StateFailed
			out.Reason = fmt.Sprintf("%s reads back %q after writing %q", c.Key, res.Live, out.Values[i].New)
			out.Values[i].New = res.Live
			back, st := e.restore(tgt, out.Values[:i+1], zap.String("change", change), zap.String("proposal", p.ID))
			out.Reason += "; " + back
			if st == StateDrift {
				out.State = StateDrift
			}
			return false, rec(Record{State: out.State, Values: out.Values, Reason: out.Reason})
		}
	}
	return true, nil
}
