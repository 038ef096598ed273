package remediate

import (
	"context"
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
)

// takeSlot takes a fleet rollout slot for this host's change of proposal
// id and records the event saying so; the caller releases it once the
// change is settled.
func (e *Engine) takeSlot(ctx context.Context, id, change, netns string, v []Value, event string) (Slot, error) {
	slot, err := e.opts.Rollout.Acquire(ctx, SlotHolder{Host: e.opts.Host, Change: change, Proposal: id, Netns: netns,
		Values: v, PID: os.Getpid(), Since: e.now().UTC()})
	if err != nil {
		return nil, err
	}
	e.event(id, change, StepGuard, "%s", event)
	return slot, nil
}

// resume verifies an interrupted change again. The change is live on the
// host, so with a fleet store it holds a rollout slot while it is verified
// (the dead process's own slot, if its lease has not expired, is taken
// over); when no slot can be had it is rolled back instead: resuming must
// not take the fleet over fleet.max_concurrent.
func (e *Engine) resume(ctx context.Context, c Change, t Target, why string) (Outcome, error) {
	if e.opts.Rollout != nil {
		slot, err := e.takeSlot(ctx, c.Proposal, c.ID, c.Netns, c.Values, "fleet rollout slot taken to resume verification")
		if err != nil {
			return e.rollback(c.ID, t, c.Values, fmt.Sprintf("%s; not resumed: no fleet rollout slot: %v", why, err))
		}
		defer slot.Release()
	}
	unlock, err := e.lockTarget(t)
	if err != nil {
		return Outcome{Proposal: c.Proposal, Change: c.ID, State: c.State, Netns: c.Netns, Values: c.Values, Reason: "not resumed: " + err.Error()}, err
	}
	defer unlock()
	appr, _ := e.store.Approval(c.Proposal)
	return e.verifyAndSettle(ctx, c.ID, t, c.Values, *c.Verify, c.Persist, appr,
		ApplyOptions{Window: e.cfg.Verify.Window, Interval: e.cfg.Verify.Interval})
}

// Resolve settles every change left open (applying, applied, verifying) by
// a process that is gone (killed, host rebooted): rolled back by default,
// or verified again when remediate.on_restart is "resume". Changes whose
// process is still alive are left to it.
func (e *Engine) Resolve(ctx context.Context) ([]Outcome, error) {
	recs, damage, err := e.journal.Read()
	if err != nil {
		return nil, err
	}
	for _, d := range damage {
		e.log.Warn("journal line skipped", zap.String("line", d))
	}
	var outs []Outcome
	var errs []error
	for _, c := range Changes(recs) {
		if !c.State.Open() {
			continue
		}
		l, err := e.changeLock(c.ID)
		if errors.Is(err, ErrLocked) {
			continue // its process is alive
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		why := fmt.Sprintf("resolved at start: change left %s by pid %d, which is gone", c.State, c.PID)
		e.log.Warn("resolving an interrupted change", zap.String("change", c.ID), zap.String("state", string(c.State)), zap.String("on_restart", string(e.cfg.Remediate.OnRestart)))
		var o Outcome
		t, perr := e.proveTarget(c)
		switch {
		case errors.Is(perr, ErrUnprovenTarget):
			o, err = e.unproven(c, perr)
		case e.cfg.Remediate.OnRestart == config.OnRestartResume && c.State != StateApplying && c.Verify != nil && e.opts.Sampler != nil && perr == nil:
			o, err = e.resume(ctx, c, t, why)
		default:
			// A namespace that is gone or was replaced comes out of
			// restore as drift: nothing of ours is left to restore.
			o, err = e.rollback(c.ID, t, c.Values, why)
		}
		if errors.Is(err, ErrLocked) {
			// Another process is changing that namespace: the change
			// stays open for a later resolve, and says so.
			e.log.Warn("interrupted change left open: its namespace is busy", zap.String("change", c.ID), zap.Error(err))
			o = Outcome{Proposal: c.Proposal, Change: c.ID, State: c.State, Host: c.Host, Netns: c.Netns, Values: c.Values,
				Reason: "left open for a later resolve: " + err.Error()}
			err = nil
		}
		l.Unlock()
		outs = append(outs, o)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return outs, errors.Join(errs...)
}
