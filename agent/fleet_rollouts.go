package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
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
	// notNow backs off the claims of a rollout whose last apply here was
	// refused because the finding was not seen at that moment.
	notNow map[string]retryBackoff
	// baked are the rollouts whose bake this host settled (baked,
	// inconclusive or regressed), until the watch shows it: not judged
	// twice.
	baked    map[string]bool
	stopW    context.CancelFunc
	watching sync.WaitGroup
}

func newRollouts(f *fleet.Fleet, claims *fleet.ClaimStore, ttl time.Duration, log *zap.Logger) *rollouts {
	return &rollouts{f: f, claims: claims, reg: f.Register(fleet.HostInfo{Host: f.Host()}, ttl), log: log.Named("rollouts"),
		wake: make(chan struct{}, 1), props: map[string]diagnose.Proposal{}, waitWhy: map[string]string{}, claimAfter: map[string]time.Time{},
		notNow: map[string]retryBackoff{},
		baked:  map[string]bool{}}
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
		Version: a.opts.Version, LastTick: a.clock.Now().UTC(), Groups: []string{}, Findings: []string{}}
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
	now := a.clock.Now()
	for id, p := range r.mine(s) {
		ro, ok := s.Rollouts[id]
		if !ok || p.State != fleet.Verified || now.After(p.Settled.Add(time.Duration(ro.Bake))) {
			continue
		}
		if r.baked[id] {
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
					r.baked[id] = true // not also judged by its load
					a.report(ctx, p)
					r.log.Warn("fleet rollout: the finding came back during the bake", zap.String("rollout", id), zap.String("subject", f.Subject))
				}
			}
		}
	}
}

// bakeLoad settles each bake of this host that is over (fleet.EndBake),
// judged by the load its namespace had during it: under load it passes;
// without, it is inconclusive and the rollout pauses. The load comes from
// the namespace's history of cheap samples (nsState.opens), taken every
// tick whatever etcd does, so a bake that ran during an etcd outage is
// judged by what happened then. A bake with no verdict from its host holds
// its wave back, so a host that dies while baking does not let the rollout
// pass either.
func (a *Agent) bakeLoad(ctx context.Context) {
	r := a.rollouts
	s, ok := r.snapshot()
	if !ok {
		return
	}
	now := a.clock.Now()
	mine := r.mine(s)
	for id := range r.baked {
		if p, ok := mine[id]; !ok || p.State != fleet.Verified || !p.Baked.IsZero() {
			delete(r.baked, id)
		}
	}
	for id, p := range mine {
		ro, ok := s.Rollouts[id]
		bake := time.Duration(ro.Bake)
		if !ok || p.State != fleet.Verified || !p.Baked.IsZero() || bake <= 0 || r.baked[id] || now.Before(p.Settled.Add(bake)) {
			continue
		}
		var opens []*sample.Sample
		watched := false
		for _, st := range a.ns {
			if st.path == p.Netns {
				opens, watched = st.opens, true
			}
		}
		l, ready := bakeWindow(opens, p.Settled, p.Settled.Add(bake), a.cfg.Diagnose.MinArrivalsPerSec)
		if watched && !ready {
			continue // the sample that closes the bake comes next tick
		}
		q, done := fleet.EndBake(p, bake, l, now)
		if !done {
			continue
		}
		r.baked[id] = true
		if q.State == fleet.Inconclusive {
			r.log.Warn("fleet rollout: no load during the bake: the rollout pauses", zap.String("rollout", id), zap.String("reason", q.Reason))
		} else {
			r.log.Info("fleet rollout: bake passed under load", zap.String("rollout", id), zap.Float64("arrivals_per_sec", l.ArrivalsPerSec))
		}
		a.report(ctx, q)
	}
}

// bakeWindow measures the load over a bake from..to from a namespace's
// opens history (oldest first): across the fewest samples that cover the
// window, from the last taken at or before its start (the first after it
// when none) to the first at or after its end. ready is false while no
// sample closes the window yet.
func bakeWindow(opens []*sample.Sample, from, to time.Time, floor float64) (_ fleet.BakeLoad, ready bool) {
	l := fleet.BakeLoad{Floor: floor}
	i := 0
	for k, s := range opens {
		if !s.Time.After(from) {
			i = k
		}
	}
	for j := i; j < len(opens); j++ {
		if !opens[j].Time.Before(to) {
			l.Samples = j - i + 1
			if j > i {
				l.ArrivalsPerSec = verify.Arrivals(sample.Diff(opens[i], opens[j]))
			}
			return l, true
		}
	}
	return l, false
}

// Opens history: how long and how many samples a namespace keeps.
const (
	opensKeep    = time.Hour
	opensKeepMax = 4096
)

// noteOpens adds the connection opens of cur, a tick's cheap sample, to
// the namespace's history, which bakes are measured from; only those two
// counters are kept.
func (st *nsState) noteOpens(cur *sample.Sample) {
	c := map[string]uint64{}
	for _, k := range []string{"TcpPassiveOpens", "TcpActiveOpens"} {
		if v, ok := cur.Counters[k]; ok {
			c[k] = v
		}
	}
	st.opens = append(st.opens, &sample.Sample{Time: cur.Time, Counters: c})
	drop := max(len(st.opens)-opensKeepMax, 0)
	for drop < len(st.opens)-2 && cur.Time.Sub(st.opens[drop].Time) > opensKeep {
		drop++
	}
	st.opens = st.opens[drop:]
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
		p.Events = append(p.Events, fleet.Event{Time: a.clock.Now().UTC(), What: fleet.Reverted, Detail: string(out.State) + ": " + out.Reason})
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

// tryRollouts starts the apply of one of the pending proposals ids
// (sorted) that some rollout covers, when that rollout lets this host
// start now. It returns whether it did.
func (a *Agent) tryRollouts(ids []string) bool {
	r := a.rollouts
	s, ok := r.snapshot()
	if !ok || len(s.Rollouts) == 0 {
		return false
	}
	me := a.rolloutHost()
	now := a.clock.Now()
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
			if why := r.backingOff(rid, now); why != "" {
				r.wait(rid, why)
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
			pr, why, err := r.f.Claim(ctx, rid, me, fleet.Progress{Proposal: id, Netns: p.Netns}, a.cfg.Fleet.MaxChangesPerHour, a.clock.Now())
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

// wait notes why this host does not start in rollout rid. It is logged
// at info, once per reason: "why has this host not taken the change yet"
// is the question an operator asks the journal first.
func (r *rollouts) wait(rid, why string) {
	if r.waitWhy[rid] != why {
		r.waitWhy[rid] = why
		r.log.Info("fleet rollout: not starting", zap.String("rollout", rid), zap.String("why", why))
	}
}

// rolloutFinished records the outcome of an apply made under a rollout
// claim in this host's progress. A refusal for want of a fleet slot or of
// the store, or because the fresh samples did not show the finding at
// that moment (remediate.ErrNotNow: a flickering load), gives the place
// back: nothing was written, and the host claims again once its census
// confirms the finding again. Skipping it for good would leave a host that
// still has the problem out of the rollout, which then says done. Any
// other refusal is a skip with its reason.
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
	now := a.clock.Now().UTC()
	if o.State == remediate.StateRefused && giveBack(res.err) && p.Change == "" {
		if errors.Is(res.err, remediate.ErrNotNow) {
			b := r.notNow[p.Rollout].next(now)
			r.notNow[p.Rollout] = b
			r.log.Info("fleet rollout: place given back: the finding is not seen now; this host claims again when its census confirms it",
				zap.String("rollout", p.Rollout), zap.String("reason", o.Reason), zap.Int("tries", b.tries), zap.Time("not_before", b.at))
		}
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Fleet.Etcd.RequestTimeout)
		defer cancel()
		if err := r.f.Unclaim(ctx, p.Host, p.Rollout); err != nil {
			r.log.Warn("fleet rollout: place not given back yet (fleet store unavailable): given back when it answers", zap.String("rollout", p.Rollout), zap.Error(err))
			p.State = ""
			r.unsent = append(r.unsent, p)
		}
		return
	}
	// No load to judge by is no pass: the rollout pauses (kept or rolled
	// back, the outcome carries the verification's verdict).
	inconclusive := o.Verdict != nil && o.Verdict.Outcome == verify.Inconclusive && !o.Interrupted
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
	p.Reason, p.Settled, p.Change = o.Reason, now, cmp.Or(o.Change, p.Change)
	p.Events = append(p.Events, fleet.Event{Time: now, What: p.State, Detail: o.Reason})
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Fleet.Etcd.RequestTimeout)
	defer cancel()
	a.report(ctx, p)
}

// retryBackoff spaces the claims of a host whose applies keep finding
// the condition gone (a load that comes and goes): each try costs three
// fresh samples and a journaled refusal, so the wait doubles from
// notNowFirst up to notNowMax.
type retryBackoff struct {
	tries int
	at    time.Time
}

const (
	notNowFirst = 15 * time.Second
	notNowMax   = 10 * time.Minute
)

func (b retryBackoff) next(now time.Time) retryBackoff {
	b.tries++
	d := notNowFirst
	for i := 1; i < b.tries && d < notNowMax; i++ {
		d *= 2
	}
	b.at = now.Add(min(d, notNowMax))
	return b
}

// backingOff says why this host does not claim in rollout rid yet after
// a try that found the condition gone; "" when it may.
func (r *rollouts) backingOff(rid string, now time.Time) string {
	b, ok := r.notNow[rid]
	if !ok || !now.Before(b.at) {
		return ""
	}
	return fmt.Sprintf("the finding was not seen at this host's last %d try(s); trying again from %s", b.tries, b.at.UTC().Format(time.RFC3339))
}

// giveBack says whether a refused apply under a rollout claim gives its
// place back instead of being skipped: the refusal was of the moment.
func giveBack(err error) bool {
	return errors.Is(err, remediate.ErrNoSlot) || errors.Is(err, remediate.ErrStoreUnavailable) || errors.Is(err, remediate.ErrNotNow)
}
