package agent

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/fleet"
	"github.com/sockwarden/sockwarden/remediate"
	"github.com/sockwarden/sockwarden/sample"
	"github.com/sockwarden/sockwarden/verify"
)

// rollouts is the agent's part in fleet rollouts: the host's registration,
// a watched copy of every rollout, its claims and the progress it still
// has to report. Everything but the watch runs on the agent's loop.
type rollouts struct {
	f      *fleet.Fleet
	claims *fleet.ClaimStore
	reg    *fleet.Registration
	log    *zap.Logger
	// wake is signalled by the watch after each change: the loop tries
	// to start or stop at once instead of at the next tick.
	wake chan struct{}

	mu   sync.Mutex
	snap fleet.Snapshot
	have bool

	// Owned by the loop.
	props   map[string]diagnose.Proposal // recorded proposals by id
	unsent  []fleet.Progress             // reports etcd did not take yet
	waitWhy map[string]string            // last "why not", logged on change
	// claimAfter is when this host may claim a free place it saw in a
	// rollout (its fleet.ClaimDelay).
	claimAfter map[string]time.Time
	// bakes are the samples seen during this host's bakes, by rollout.
	bakes    map[string]*bakeSamples
	stopW    context.CancelFunc
	watching sync.WaitGroup
}

func newRollouts(f *fleet.Fleet, claims *fleet.ClaimStore, ttl time.Duration, log *zap.Logger) *rollouts {
	return &rollouts{f: f, claims: claims, reg: f.Register(fleet.HostInfo{Host: f.Host()}, ttl), log: log.Named("rollouts"),
		wake: make(chan struct{}, 1), props: map[string]diagnose.Proposal{}, waitWhy: map[string]string{}, claimAfter: map[string]time.Time{},
		bakes: map[string]*bakeSamples{}}
}

// start runs the watch until stop.
func (r *rollouts) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stopW = cancel
	r.watching.Add(1)
	go func() {
		defer r.watching.Done()
		r.f.Watch(ctx, func(s fleet.Snapshot) {
			r.mu.Lock()
			r.snap, r.have = s, true
			r.mu.Unlock()
			r.poke()
		})
	}()
}

// claimSpread spreads the claims of hosts that see the same free place:
// short against a wave, long enough for a watch to carry the first claim.
const claimSpread = 500 * time.Millisecond

// poke wakes the loop.
func (r *rollouts) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *rollouts) stop() {
	if r.stopW != nil {
		r.stopW()
		r.watching.Wait()
	}
	r.reg.Close()
}

func (r *rollouts) snapshot() (fleet.Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snap, r.have
}

// me is this host as rollouts see it.
func (a *Agent) rolloutHost() fleet.HostInfo {
	h := fleet.HostInfo{Host: a.rollouts.f.Host(), Labels: a.cfg.Fleet.Labels, Kernel: fleet.KernelRelease(),
		Version: a.opts.Version, LastTick: time.Now().UTC(), Groups: []string{}, Findings: []string{}}
	if h.Labels == nil {
		h.Labels = map[string]string{}
	}
	a.mu.Lock()
	for id := range a.pending {
		if p, ok := a.rollouts.props[id]; ok {
			h.Groups = append(h.Groups, fleet.GroupOf(p).ID())
			h.Findings = append(h.Findings, p.Finding)
		}
	}
	a.mu.Unlock()
	sort.Strings(h.Groups)
	h.Groups = slices.Compact(h.Groups)
	sort.Strings(h.Findings)
	h.Findings = slices.Compact(h.Findings)
	return h
}

// rolloutsTick runs once a tick: registration, reports etcd did not take
// before, bake checks and the operator's rollbacks.
func (a *Agent) rolloutsTick(ctx context.Context, reports []diagnose.Report) {
	r := a.rollouts
	if r == nil || a.fleetDown() {
		return
	}
	if err := r.reg.Update(ctx, a.rolloutHost()); err != nil {
		r.log.Debug("fleet registration not written", zap.Error(err))
	}
	for len(r.unsent) > 0 {
		p := r.unsent[0]
		var err error
		if p.State == "" {
			err = r.f.Unclaim(ctx, p.Host, p.Rollout) // a place given back
		} else {
			err = r.f.Report(ctx, p)
		}
		if err != nil {
			break
		}
		r.unsent = r.unsent[1:]
		r.log.Info("fleet rollout: progress reported now that the fleet store answers", zap.String("rollout", p.Rollout), zap.String("state", p.State))
	}
	a.bakeCheck(ctx, reports)
	a.bakeLoad(ctx)
	a.rolloutRollbacks(ctx)
}

// mine is this host's progress in each rollout, by rollout id.
func (r *rollouts) mine(s fleet.Snapshot) map[string]fleet.Progress {
	out := map[string]fleet.Progress{}
	for _, p := range s.Progress {
		if p.Host == r.f.Host() {
			out[p.Rollout] = p
		}
	}
	return out
}

// bakeCheck: a host verified in a rollout and still baking reports the
// finding coming back in its namespace as a regression (counted toward
// the rollout's halt).
func (a *Agent) bakeCheck(ctx context.Context, reports []diagnose.Report) {
	r := a.rollouts
	s, ok := r.snapshot()
	if !ok {
		return
	}
	now := time.Now()
	for id, p := range r.mine(s) {
		ro, ok := s.Rollouts[id]
		if !ok || p.State != fleet.Verified || now.After(p.Settled.Add(time.Duration(ro.Bake))) {
			continue
		}
		if b := r.bakes[id]; b != nil && b.done {
			continue
		}
		for _, rep := range reports {
			if rep.Netns != p.Netns {
				continue
			}
			for _, f := range rep.Findings {
				if f.Kind == ro.Group.Finding && f.Confirmed {
					p.State, p.Reason = fleet.Regressed, "the finding came back during the bake: "+f.Title
					p.Events = append(p.Events, fleet.Event{Time: now.UTC(), What: fleet.Regressed, Detail: f.Subject})
					r.bake(id).done = true // not also judged by its load
					a.report(ctx, p)
					r.log.Warn("fleet rollout: the finding came back during the bake", zap.String("rollout", id), zap.String("subject", f.Subject))
				}
			}
		}
	}
}

// bakeSamples are the first and the latest cheap sample of the bake's
// namespace taken during a bake, and how many. done: this host settled
// the bake (baked, inconclusive or regressed) and waits for the watch to
// show it, so as not to judge it twice.
type bakeSamples struct {
	first, last *sample.Sample
	n           int
	done        bool
}

func (r *rollouts) bake(id string) *bakeSamples {
	b := r.bakes[id]
	if b == nil {
		b = &bakeSamples{}
		r.bakes[id] = b
	}
	return b
}

// bakeLoad measures the load of each bake this host runs from the tick's
// cheap samples of its namespace, and settles the bake when it is over
// (fleet.EndBake): under load it passes; without, it is inconclusive and
// the rollout pauses. A bake with no verdict from its host holds its wave
// back, so a host that dies while baking pauses the rollout too.
func (a *Agent) bakeLoad(ctx context.Context) {
	r := a.rollouts
	s, ok := r.snapshot()
	if !ok {
		return
	}
	now := time.Now()
	mine := r.mine(s)
	for id := range r.bakes {
		if p, ok := mine[id]; !ok || p.State != fleet.Verified || !p.Baked.IsZero() {
			delete(r.bakes, id)
		}
	}
	for id, p := range mine {
		ro, ok := s.Rollouts[id]
		bake := time.Duration(ro.Bake)
		if !ok || p.State != fleet.Verified || !p.Baked.IsZero() || bake <= 0 {
			continue
		}
		b := r.bake(id)
		if b.done {
			continue
		}
		for _, st := range a.ns {
			if st.path == p.Netns && st.prev != nil && !st.prev.Time.Before(p.Settled) && st.prev != b.last {
				if b.first == nil {
					b.first = st.prev
				}
				b.last = st.prev
				b.n++
			}
		}
		l := fleet.BakeLoad{Samples: b.n, Floor: a.cfg.Diagnose.MinArrivalsPerSec}
		if b.n >= 2 {
			l.ArrivalsPerSec = verify.Arrivals(sample.Diff(b.first, b.last))
		}
		q, done := fleet.EndBake(p, bake, l, now)
		if !done {
			continue
		}
		b.done = true
		if q.State == fleet.Inconclusive {
			r.log.Warn("fleet rollout: no load during the bake: the rollout pauses", zap.String("rollout", id), zap.String("reason", q.Reason))
		} else {
			r.log.Info("fleet rollout: bake passed under load", zap.String("rollout", id), zap.Float64("arrivals_per_sec", l.ArrivalsPerSec))
		}
		a.report(ctx, q)
	}
}

// rolloutRollbacks restores this host's change of each rollout the
// operator rolls back, through the engine (journal, drift rule kept).
func (a *Agent) rolloutRollbacks(ctx context.Context) {
	r := a.rollouts
	s, ok := r.snapshot()
	if !ok || a.work != nil {
		return
	}
	for id, p := range r.mine(s) {
		ro, ok := s.Rollouts[id]
		if !ok || !ro.Rollback || p.Change == "" || (p.State != fleet.Verified && p.State != fleet.Inconclusive && p.State != fleet.Regressed) {
			continue
		}
		out, err := a.engine.Rollback(ctx, p.Change)
		a.logOutcome(out, "fleet rollout "+id+" rolled back by the operator")
		if err != nil {
			r.log.Error("fleet rollback failed", zap.String("rollout", id), zap.String("change", p.Change), zap.Error(err))
			continue
		}
		p.State, p.Reason = fleet.Reverted, out.Reason
		p.Events = append(p.Events, fleet.Event{Time: time.Now().UTC(), What: fleet.Reverted, Detail: string(out.State) + ": " + out.Reason})
		a.report(ctx, p)
	}
}

// report writes p, or keeps it to write when etcd answers again.
func (a *Agent) report(ctx context.Context, p fleet.Progress) {
	r := a.rollouts
	if err := r.f.Report(ctx, p); err != nil {
		r.log.Warn("fleet rollout: progress not reported (fleet store unavailable): reported when it answers", zap.String("rollout", p.Rollout),
			zap.String("state", p.State), zap.Error(err))
		r.unsent = append(r.unsent, p)
	}
}

// tryRollouts starts the apply of a pending proposal some rollout covers,
// when that rollout lets this host start now. It returns whether it did.
func (a *Agent) tryRollouts() bool {
	r := a.rollouts
	s, ok := r.snapshot()
	if !ok || len(s.Rollouts) == 0 {
		return false
	}
	a.mu.Lock()
	ids := make([]string, 0, len(a.pending))
	for id := range a.pending {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	slices.Sort(ids)
	me := a.rolloutHost()
	now := time.Now()
	for _, id := range ids {
		p, ok := r.props[id]
		if !ok {
			continue
		}
		g := fleet.GroupOf(p).ID()
		var rids []string
		for rid, ro := range s.Rollouts {
			if ro.GroupID == g {
				rids = append(rids, rid)
			}
		}
		slices.Sort(rids)
		for _, rid := range rids {
			// The cached view first: most hosts, most of the time,
			// may not start, and need not ask etcd.
			if _, why := s.View(rid, now, a.cfg.Fleet.MaxChangesPerHour).Decide(me); why != "" {
				r.wait(rid, why)
				delete(r.claimAfter, rid)
				continue
			}
			// A place is free in our copy: wait this host's rank first
			// (fleet.ClaimDelay), then decide again on the copy the
			// watch kept current meanwhile.
			at, ok := r.claimAfter[rid]
			if !ok {
				at = now.Add(fleet.ClaimDelay(me.Host, rid, claimSpread))
				r.claimAfter[rid] = at
			}
			if now.Before(at) {
				time.AfterFunc(at.Sub(now), r.poke)
				continue
			}
			delete(r.claimAfter, rid)
			ctx, cancel := context.WithTimeout(context.Background(), 2*a.cfg.Fleet.Etcd.RequestTimeout)
			pr, why, err := r.f.Claim(ctx, rid, me, fleet.Progress{Proposal: id, Netns: p.Netns}, a.cfg.Fleet.MaxChangesPerHour, time.Now())
			cancel()
			switch {
			case errors.Is(err, fleet.ErrLostRace):
				r.wait(rid, "another host claimed first; deciding again")
				continue
			case err != nil:
				r.log.Warn("fleet rollout: claim failed", zap.String("rollout", rid), zap.Error(err))
				return false
			case why != "":
				r.wait(rid, why)
				continue
			}
			delete(r.waitWhy, rid)
			r.claims.Hold(&fleet.Claim{Rollout: s.Rollouts[rid], Progress: pr})
			r.log.Info("fleet rollout: this host starts", zap.String("rollout", rid), zap.Int("wave", pr.Wave), zap.String("proposal", id),
				zap.String("group", s.Rollouts[rid].Group.String()))
			a.tried[id] = true
			a.start(p)
			return true
		}
	}
	return false
}

func (r *rollouts) wait(rid, why string) {
	if r.waitWhy[rid] != why {
		r.waitWhy[rid] = why
		r.log.Debug("fleet rollout: not starting", zap.String("rollout", rid), zap.String("why", why))
	}
}

// rolloutFinished records the outcome of an apply made under a rollout
// claim in this host's progress. A refusal for want of a fleet slot or of
// the store gives the place back (nothing was written); any other refusal
// is a skip with its reason.
func (a *Agent) rolloutFinished(id string, res applyResult) {
	r := a.rollouts
	if r == nil {
		return
	}
	c := r.claims.Drop(id)
	if c == nil {
		return
	}
	p, o := c.Progress, res.out
	now := time.Now().UTC()
	if o.State == remediate.StateRefused && (errors.Is(res.err, remediate.ErrNoSlot) || errors.Is(res.err, remediate.ErrStoreUnavailable)) && p.Change == "" {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Fleet.Etcd.RequestTimeout)
		defer cancel()
		if err := r.f.Unclaim(ctx, p.Host, p.Rollout); err != nil {
			r.log.Warn("fleet rollout: place not given back yet (fleet store unavailable): given back when it answers", zap.String("rollout", p.Rollout), zap.Error(err))
			p.State = ""
			r.unsent = append(r.unsent, p)
		}
		return
	}
	// No load to judge by is no pass: the rollout pauses (the engine's
	// rollback outcome carries the verdict in its reason only).
	inconclusive := (o.Verdict != nil && o.Verdict.Outcome == verify.Inconclusive || strings.HasPrefix(o.Reason, string(verify.Inconclusive)+":")) &&
		!strings.Contains(o.Reason, "verification interrupted")
	switch {
	case o.State == remediate.StateVerified:
		p.State = fleet.Verified
	case inconclusive:
		p.State = fleet.Inconclusive
	case o.State == remediate.StateKept:
		p.State = fleet.Verified
	case o.State == remediate.StateRolledBack:
		p.State = fleet.RolledBack
	case o.State == remediate.StateRefused:
		p.State = fleet.Skipped
		o.Reason = "guard " + o.Guard + ": " + o.Reason
	default:
		p.State = fleet.Failed
		if o.Reason == "" && res.err != nil {
			o.Reason = res.err.Error()
		}
	}
	p.Reason, p.Settled, p.Change = o.Reason, now, orStr(o.Change, p.Change)
	p.Events = append(p.Events, fleet.Event{Time: now, What: p.State, Detail: o.Reason})
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Fleet.Etcd.RequestTimeout)
	defer cancel()
	a.report(ctx, p)
}

func orStr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
