package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
)

// work is an apply (guards, write, verification) running in its own
// goroutine while the loop keeps ticking and feeding the watchdog.
type work struct {
	proposal diagnose.Proposal
	cancel   context.CancelFunc
	done     chan applyResult
	deadline time.Time
	overrun  bool
}

type applyResult struct {
	out remediate.Outcome
	err error
}

// scheduler is the agent's apply scheduler: it picks an approved pending
// proposal, runs its apply (every guard is the engine's) in a goroutine,
// one at a time, and records the outcome. The loop goroutine owns it.
type scheduler struct {
	a *Agent
	// work is the apply in flight (nil: none).
	work *work
	// tried marks proposals started once, so that auto mode tries each
	// once; a deferred apply (no slot, store down) is tried again.
	tried map[string]bool
	// waitLogged marks proposals whose wait for a slot was logged.
	waitLogged map[string]bool
	// newCfg is a reload waiting for the apply in flight.
	newCfg *config.Config
}

func newScheduler(a *Agent) scheduler {
	return scheduler{a: a, tried: map[string]bool{}, waitLogged: map[string]bool{}}
}

// maybeApply starts the apply of one pending proposal an operator approved
// (or, in auto mode, one a standing approval may cover). Every guard runs
// in the engine.
func (s *scheduler) maybeApply() {
	a := s.a
	ids, ok := s.applicable()
	if !ok || a.rollouts != nil && a.tryRollouts(ids) {
		return
	}
	now := a.clock.Now()
	for _, id := range ids {
		appr, err := a.engine.Store().Approval(id)
		if errors.Is(err, remediate.ErrStoreUnavailable) {
			return // the next tick's check logs the outage
		}
		approved := err == nil && appr.Usable(now) == nil
		if !approved && !(a.cfg.Agent.Mode == config.AgentAuto && !s.tried[id]) {
			continue
		}
		if a.fleet != nil && !a.slotFree(id) {
			return
		}
		s.tried[id] = true
		pp, err := a.engine.Store().Proposal(id)
		if err != nil {
			a.log.Error("approved proposal unreadable", zap.String("proposal", id), zap.Error(err))
			continue
		}
		a.start(pp.Proposal)
		return
	}
}

// maybeRollout starts the apply of a pending proposal some rollout lets
// this host start now. The rollouts' watch wakes the loop for it: what
// changed is a rollout, a halt or a host's progress, so only the rollouts
// may have something new; the approvals, read from the store, wait for
// the tick.
func (s *scheduler) maybeRollout() {
	if ids, ok := s.applicable(); ok && s.a.rollouts != nil {
		s.a.tryRollouts(ids)
	}
}

// applicable lists the pending proposals, sorted, when an apply may start
// now at all.
func (s *scheduler) applicable() ([]string, bool) {
	a := s.a
	if s.work != nil || a.cfg.Agent.Mode == config.AgentObserve || a.fleetDown() {
		return nil, false // busy, observing, or failing closed: no approval can be checked
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Sorted(maps.Keys(a.pending)), true
}

// slotFree says whether the fleet has a rollout slot free for proposal id
// now; when not, status says what it waits for (logged once per proposal).
// Guard 6 takes the slot for real: this only spares a refusal in the
// journal at every tick while another host's change is in flight.
func (s *scheduler) slotFree(id string) bool {
	a := s.a
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Fleet.Etcd.RequestTimeout)
	defer cancel()
	hs, max, err := a.fleet.Holders(ctx)
	waiting := ""
	switch {
	case err != nil:
		waiting = fmt.Sprintf("approved proposal %s waits: fleet rollout slots unreadable: %v", id, err)
	case len(hs) >= max:
		waiting = fmt.Sprintf("approved proposal %s waits for a fleet rollout slot: %s", id, remediate.InFlight(hs, max))
	}
	a.mu.Lock()
	if a.fleetInfo != nil {
		a.fleetInfo.Waiting = waiting
	}
	a.mu.Unlock()
	if waiting == "" {
		delete(s.waitLogged, id)
		return true
	}
	if !s.waitLogged[id] {
		s.waitLogged[id] = true
		a.log.Info(waiting, zap.String("proposal", id))
	}
	return false
}

func (s *scheduler) start(p diagnose.Proposal) {
	a := s.a
	cfg := a.cfg
	ctx, cancel := context.WithCancel(context.Background())
	// Guard 3 takes three samples, then the window, then the slack of a
	// slow sample or two.
	budget := 3*cfg.Verify.Interval + cfg.Verify.Window + 2*cfg.Verify.Interval + time.Minute
	w := &work{proposal: p, cancel: cancel, done: make(chan applyResult, 1), deadline: a.clock.Now().Add(budget)}
	s.work = w
	brief := &ChangeBrief{Proposal: p.ID, Netns: p.Netns, State: "guards", Since: a.clock.Now()}
	if len(p.Changes) > 0 {
		brief.Key, brief.Old, brief.New = p.Changes[0].Key, p.Changes[0].Current, p.Changes[0].Proposed
	}
	a.mu.Lock()
	a.verifying = brief
	a.mu.Unlock()
	a.log.Info("applying approved proposal", zap.String("proposal", p.ID), zap.String("netns", nsLabel(p.Netns)),
		zap.String("key", brief.Key), zap.String("old", brief.Old), zap.String("new", brief.New))
	eng := a.engine
	go func() {
		out, err := eng.Apply(ctx, p.ID, remediate.ApplyOptions{})
		w.done <- applyResult{out, err}
	}()
}

// onEvent runs in the apply goroutine: it tracks the change's step for
// status and writes the kernel-change journal entry when the write is done.
func (s *scheduler) onEvent(eng *remediate.Engine, ev remediate.Event) {
	a := s.a
	a.mu.Lock()
	if a.verifying != nil && a.verifying.Proposal == ev.Proposal {
		a.verifying.State, a.verifying.Detail = string(ev.Step), ev.Message
	}
	a.mu.Unlock()
	if ev.Step != remediate.StepApplied || ev.Change == "" {
		return
	}
	c, err := eng.Journal().ChangeByID(ev.Change)
	if err != nil {
		return
	}
	o := remediate.Outcome{Proposal: c.Proposal, Change: c.ID, Approver: c.Approver, Reason: c.Reason, Netns: c.Netns, State: remediate.StateApplied}
	for _, v := range c.Values {
		a.log.Info("kernel change applied", remediate.OutcomeFields(o, v)...)
	}
}

// finish records an apply's outcome.
func (s *scheduler) finish(r applyResult) {
	a := s.a
	w := s.work
	s.work = nil
	w.cancel()
	if r.err != nil && r.out.State == "" {
		a.log.Error("apply failed", zap.String("proposal", w.proposal.ID), zap.Error(r.err))
	}
	a.logOutcome(r.out, "")
	a.rolloutFinished(w.proposal.ID, r)
	// Refused for want of a rollout slot, or because the fleet store did
	// not answer: nothing was written and the approval is unused; try
	// again at a later tick.
	retry := errors.Is(r.err, remediate.ErrNoSlot) || errors.Is(r.err, remediate.ErrStoreUnavailable)
	if retry {
		delete(s.tried, w.proposal.ID)
		a.log.Info("apply deferred: tried again at a later tick", zap.String("proposal", w.proposal.ID), zap.String("reason", r.out.Reason))
	}
	a.mu.Lock()
	if !retry {
		a.dropPending(w.proposal.ID)
	}
	a.verifying = nil
	a.mu.Unlock()
	if s.newCfg != nil {
		cfg := *s.newCfg
		s.newCfg = nil
		a.install(cfg)
	}
}

// logOutcome writes one journal entry per key with the outcome's fields,
// counts it in the metrics and keeps it for status.
func (s *scheduler) logOutcome(o remediate.Outcome, prefix string) {
	a := s.a
	if o.State == "" {
		return
	}
	msg := "kernel change " + string(o.State)
	if o.State == remediate.StateRefused {
		msg = "apply refused by guard " + o.Guard
	}
	if prefix != "" {
		msg = prefix + ": " + msg
	}
	lvl := a.log.Info
	switch o.State {
	case remediate.StateRolledBack, remediate.StateRefused:
		lvl = a.log.Warn
	case remediate.StateFailed, remediate.StateDrift:
		lvl = a.log.Error
	}
	vals := o.Values
	if len(vals) == 0 {
		vals = []remediate.Value{{}}
	}
	for _, v := range vals {
		lvl(msg, remediate.OutcomeFields(o, v)...)
		if v.Key != "" {
			// The state as the journal spells it (rolled-back), in
			// the metrics label too.
			a.metrics.ChangeOutcome(o.Netns, v.Key, string(o.State))
		}
	}
	brief := ChangeBrief{Proposal: o.Proposal, Netns: o.Netns, State: string(o.State), Since: a.clock.Now(), Detail: o.Reason}
	if len(o.Values) > 0 {
		brief.Key, brief.Old, brief.New = o.Values[0].Key, o.Values[0].Old, o.Values[0].New
	}
	a.mu.Lock()
	a.recent = append([]ChangeBrief{brief}, a.recent...)
	if len(a.recent) > 10 {
		a.recent = a.recent[:10]
	}
	a.mu.Unlock()
}
