package agent

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
)

// proposals is the agent's proposal bookkeeping: which proposals are
// pending (status lists them, the scheduler picks from them), which were
// announced already (each is logged once), and which the fleet store could
// not record yet. The loop goroutine owns it; pending is also read by the
// control socket, under the agent's mu.
type proposals struct {
	a *Agent
	// pending is guarded by a.mu.
	pending   map[string]ProposalBrief
	announced map[string]bool
	// unrecorded holds, by namespace, proposals kept while the fleet
	// store did not answer; recordKept records them when it does.
	unrecorded map[string]diagnose.Report
	// missed is when a census of its namespace first missed a pending
	// proposal (reset when one shows it again): see pendingGrace.
	missed map[string]time.Time
}

// pendingGrace is how long a pending proposal outlives the censuses that
// miss it. Bursty load comes and goes: one census in a lull would drop the
// proposal, and take this host out of a fleet rollout's claimants and
// out of `fleet proposals`, only for the next burst to bring it back. The
// apply's own fresh samples (guard 3) still decide whether the finding is
// there when it runs.
const pendingGrace = time.Minute

func newProposals(a *Agent) proposals {
	return proposals{a: a, pending: map[string]ProposalBrief{}, announced: map[string]bool{}, unrecorded: map[string]diagnose.Report{},
		missed: map[string]time.Time{}}
}

// forgetGone drops the pending proposals of namespace path that the
// census's ready proposals no longer hold and have not held for
// pendingGrace: the condition is gone.
func (pr *proposals) forgetGone(path string, ready []diagnose.Proposal) {
	now := pr.a.clock.Now()
	pr.a.mu.Lock()
	defer pr.a.mu.Unlock()
	for id := range pr.missed {
		if _, ok := pr.pending[id]; !ok {
			delete(pr.missed, id) // applied or dropped meanwhile
		}
	}
	for id, p := range pr.pending {
		if p.Netns != path {
			continue
		}
		if slices.ContainsFunc(ready, func(q diagnose.Proposal) bool { return q.ID == id }) {
			delete(pr.missed, id)
			continue
		}
		first, ok := pr.missed[id]
		if !ok {
			first = now
			pr.missed[id] = now
		}
		if now.Sub(first) >= pendingGrace {
			pr.forget(id)
		}
	}
}

// forget drops a proposal whose condition is gone (the censuses missed
// it for pendingGrace): when a later census proposes it again (a problem
// that recurs after hours), it is announced again, with the command that
// approves it. Callers hold a.mu.
func (pr *proposals) forget(id string) {
	pr.dropPending(id)
	delete(pr.announced, id)
}

// dropPending takes a proposal off the pending list, and the rollouts'
// copy with it (they only look up pending proposals; announce records it
// again). After an apply it stays announced: the scheduler does not try
// an id twice in auto mode, and announcing it again would promise an
// apply that will not come. Callers hold a.mu.
func (pr *proposals) dropPending(id string) {
	delete(pr.pending, id)
	delete(pr.missed, id)
	if pr.a.rollouts != nil {
		delete(pr.a.rollouts.props, id)
	}
}

// propose records the confirmed kernel proposals of a diagnosis as pending
// (journaled by the engine) and announces each new one once.
func (pr *proposals) propose(st *nsState, rep diagnose.Report) {
	a := pr.a
	ready := rep
	ready.Proposals = nil
	for _, p := range rep.Proposals {
		if p.Ready {
			ready.Proposals = append(ready.Proposals, p)
		}
	}
	pr.forgetGone(st.path, ready.Proposals)
	if a.cfg.Agent.Mode == config.AgentObserve || len(ready.Proposals) == 0 {
		return
	}
	if a.work != nil {
		return // the engine is busy; the next census proposes again
	}
	delete(pr.unrecorded, st.path)
	if a.fleetDown() {
		a.keepLocal(st.path, ready)
		return
	}
	recorded, err := a.engine.Propose(ready, "agent")
	if errors.Is(err, remediate.ErrStoreUnavailable) {
		a.log.Debug("fleet store unavailable: proposals kept locally", zap.Error(err))
		a.keepLocal(st.path, ready)
		return
	}
	if err != nil {
		a.log.Error("recording proposals", zap.Error(err))
	}
	a.announce(recorded)
}

// keepLocal lists proposals the fleet store could not record: status shows
// them, and they are recorded when the store answers again.
func (pr *proposals) keepLocal(path string, rep diagnose.Report) {
	a := pr.a
	pr.unrecorded[path] = rep
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range rep.Proposals {
		if _, ok := pr.pending[p.ID]; ok {
			continue
		}
		pr.pending[p.ID] = briefOf(p, now)
	}
}

// announce lists recorded proposals as pending and logs each new one once.
func (pr *proposals) announce(recorded []remediate.Pending) {
	a := pr.a
	for _, pp := range recorded {
		p := pp.Proposal
		if a.rollouts != nil {
			a.rollouts.props[p.ID] = p
		}
		a.mu.Lock()
		pr.pending[p.ID] = briefOf(p, pp.Recorded)
		a.mu.Unlock()
		if pr.announced[p.ID] {
			continue
		}
		pr.announced[p.ID] = true
		fields := []zap.Field{zap.String("proposal", p.ID), zap.String("netns", nsLabel(p.Netns)),
			zap.String("finding", p.Finding), zap.String("subject", p.Subject), zap.String("reason", p.Reason)}
		if len(p.Changes) > 0 {
			fields = append(fields, zap.String("key", p.Changes[0].Key), zap.String("old", p.Changes[0].Current), zap.String("new", p.Changes[0].Proposed))
		}
		switch a.cfg.Agent.Mode {
		case config.AgentAuto:
			a.log.Info("proposal recorded; applied if a standing approval covers it", fields...)
		default:
			a.log.Info("proposal pending approval: sockwarden approve "+p.ID, fields...)
		}
	}
}

// briefOf is the status line of a pending proposal, pending since since.
func briefOf(p diagnose.Proposal, since time.Time) ProposalBrief {
	return ProposalBrief{ID: p.ID, Netns: p.Netns, Finding: p.Finding, Subject: p.Subject,
		Changes: changeStrings(p.Changes), Since: since}
}

func changeStrings(cs []diagnose.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s %s->%s", c.Key, c.Current, c.Proposed)
	}
	return out
}

// recordKept records the proposals kept locally while the fleet store did
// not answer, now that it does; those it still cannot record stay kept.
func (pr *proposals) recordKept() {
	a := pr.a
	for path, rep := range pr.unrecorded {
		delete(pr.unrecorded, path)
		recorded, err := a.engine.Propose(rep, "agent")
		if err != nil {
			a.log.Error("recording proposals kept during the outage", zap.Error(err))
			pr.unrecorded[path] = rep
			continue
		}
		pr.announce(recorded)
	}
}
