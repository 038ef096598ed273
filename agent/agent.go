// Package agent is `sockwarden agent`: a loop that samples every watched
// network namespace cheaply on each tick, takes the full census and a
// diagnosis only when a cheap signal moves (or every Nth tick), turns
// confirmed kernel findings into pending proposals, applies the ones an
// operator approved through the remediate engine (whose guards all hold),
// and reports over sd_notify, journald, a root-only control socket and
// Prometheus. docs/agent.md describes the tiers, modes and metrics.
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/fleet"
	"github.com/sockwarden/sockwarden/remediate"
	"github.com/sockwarden/sockwarden/sample"
)

// Options configure an Agent.
type Options struct {
	Config config.Config
	// Load reads the configuration again on SIGHUP (nil: reload refused).
	Load    func() (config.Config, error)
	Version string
	Log     *zap.Logger
	// Notifier defaults to NewNotifier(Log).
	Notifier *Notifier
	// StallFile is test-only: when set and the file exists, the loop
	// stalls (and stops feeding the watchdog) until it is removed. The
	// command sets it only from the SWTEST_STALL_FILE environment
	// variable, which the nspawn test's drop-in sets.
	StallFile string
	// ControlAllow overrides the control socket's policy (tests).
	ControlAllow func(Peer) bool
}

// nsState is one watched namespace.
type nsState struct {
	path           string
	prev, lastFull *sample.Sample
	ticksSinceFull int
	kmsgAfter      uint64
	// kmsg keeps /dev/kmsg open between ticks: each tick reads only the
	// records logged since the last one, not the whole ring.
	kmsg   *sample.KmsgReader
	report *diagnose.Report
	open   bool
	// opens is the history of connection opens of the cheap samples, for
	// fleet bakes (noteOpens).
	opens []*sample.Sample
	info  NetnsInfo
	// findings are the findings last logged (logFindings), to log only
	// what changed between two diagnoses.
	findings map[findingKey]seenFinding
}

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

// Agent is the running agent.
type Agent struct {
	opts    Options
	log     *zap.Logger
	notify  *Notifier
	metrics *Metrics
	started time.Time

	// Owned by the loop goroutine.
	cfg       config.Config
	engine    *remediate.Engine
	ns        []*nsState
	announced map[string]bool
	tried     map[string]bool
	work      *work
	newCfg    *config.Config // a reload waiting for the apply in flight
	running   bool           // Run started (rollout watches run then)
	// fleet is the fleet store (nil without one). While it does not
	// answer (fleetDown), nothing is applied and proposals are kept in
	// unrecorded (by namespace) until it does.
	fleet      fleet.Store
	rollouts   *rollouts // fleet rollouts (nil without a fleet)
	unrecorded map[string]diagnose.Report
	waitLogged map[string]bool

	// mu guards what the control socket and engine events read or write.
	mu        sync.Mutex
	pending   map[string]ProposalBrief
	verifying *ChangeBrief
	recent    []ChangeBrief
	ticks     uint64
	full      uint64
	lastErr   string
	ready     bool
	fleetInfo *FleetInfo
}

// New builds an agent. The engine's journal and store are opened in the
// state directory now, so that a bad state directory fails at start.
func New(opts Options) (*Agent, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Notifier == nil {
		opts.Notifier = NewNotifier(opts.Log)
	}
	a := &Agent{
		opts: opts, log: opts.Log.Named("agent"), notify: opts.Notifier, started: time.Now(),
		announced: map[string]bool{}, tried: map[string]bool{}, pending: map[string]ProposalBrief{},
		unrecorded: map[string]diagnose.Report{}, waitLogged: map[string]bool{},
	}
	if err := a.configure(opts.Config); err != nil {
		return nil, err
	}
	return a, nil
}

// Metrics returns the agent's collectors (nil when metrics are off).
func (a *Agent) Metrics() *Metrics { return a.metrics }

// configure installs a configuration: the namespaces (state kept for those
// still watched) and a remediate engine built for it.
func (a *Agent) configure(cfg config.Config) error {
	var eng *remediate.Engine
	eo := remediate.OptionsFromConfig(cfg, a.opts.Log)
	// Events come from the engine's Apply, in the apply goroutine.
	eo.OnEvent = func(ev remediate.Event) { a.onEvent(eng, ev) }
	var fleetStore fleet.Store
	var ro *rollouts
	if cfg.Fleet.Enabled() {
		// Connecting does not wait for etcd: an agent started during an
		// outage runs, observes, and applies nothing until it answers.
		fs, err := fleet.OpenEtcdStore(cfg.Fleet, "", a.opts.Log)
		if err != nil {
			return err
		}
		fleetStore = fs
		f := fleet.New(fs, fs.Host(), a.opts.Log)
		claims := fleet.NewClaimStore(fs, f)
		ro = newRollouts(f, claims, cfg.Fleet.SlotTTL, a.opts.Log)
		eo.Store, eo.Rollout = claims, fs
	}
	eng, err := remediate.New(eo)
	if err != nil {
		if fleetStore != nil {
			fleetStore.Close()
		}
		return err
	}
	old := map[string]*nsState{}
	for _, st := range a.ns {
		old[st.path] = st
	}
	var ns []*nsState
	for _, p := range append([]string{""}, cfg.Agent.Netns...) {
		if st := old[p]; st != nil {
			ns = append(ns, st)
			continue
		}
		ns = append(ns, &nsState{path: p, info: NetnsInfo{Path: p}, kmsg: sample.NewKmsgReader("")})
	}
	for p, st := range old {
		if !slices.ContainsFunc(ns, func(n *nsState) bool { return n.path == p }) {
			st.kmsg.Close() // a namespace no longer watched after a reload
		}
	}
	oldFleet, oldRollouts := a.fleet, a.rollouts
	if oldRollouts != nil {
		oldRollouts.stop()
	}
	a.rollouts = ro
	if ro != nil && a.running {
		ro.start()
	}
	a.mu.Lock()
	a.cfg, a.engine, a.ns = cfg, eng, ns
	a.fleet, a.fleetInfo = fleetStore, nil
	if fleetStore != nil {
		a.fleetInfo = &FleetInfo{Endpoints: fleetStore.Endpoints()}
	}
	a.mu.Unlock()
	if oldFleet != nil {
		oldFleet.Close()
	}
	if a.metrics == nil {
		a.metrics = NewMetrics(a.opts.Version, string(cfg.Agent.Mode))
	}
	a.metrics.Configure(string(cfg.Agent.Mode), append([]string{""}, cfg.Agent.Netns...), cfg.Remediate.Allowlist)
	return nil
}

func (a *Agent) sampleOpts(cfg config.Config, netns string) sample.Options {
	return sample.OptionsFrom(cfg.Sample, netns, a.opts.Log)
}

// Run runs the loop until ctx is done (SIGTERM), reloading the
// configuration on each value from hup (SIGHUP).
func (a *Agent) Run(ctx context.Context, hup <-chan os.Signal) error {
	cfg := a.cfg
	a.log.Info("agent starting", zap.String("version", a.opts.Version), zap.String("mode", string(cfg.Agent.Mode)),
		zap.Duration("tick", cfg.Agent.Tick), zap.Int("full_every", cfg.Agent.FullEvery),
		zap.Strings("netns", cfg.Agent.Netns), zap.Duration("watchdog", a.notify.WatchdogInterval()))

	a.running = true
	if a.rollouts != nil {
		a.rollouts.start()
	}
	defer func() {
		if a.rollouts != nil {
			a.rollouts.stop()
		}
		if a.fleet != nil {
			a.fleet.Close()
		}
		for _, st := range a.ns {
			st.kmsg.Close()
		}
	}()
	// Changes left open by a previous run are settled before anything.
	outs, err := a.engine.Resolve(ctx)
	for _, o := range outs {
		a.logOutcome(o, "resolved at start")
	}
	if err != nil {
		a.log.Error("resolving unfinished changes", zap.Error(err))
	}

	sctx, stopServers := context.WithCancel(context.Background())
	ctl, err := ListenControl(cfg.Agent.ControlSocket, a.opts.Log, a.Status, a.opts.ControlAllow)
	if err != nil {
		stopServers()
		return err
	}
	var servers sync.WaitGroup
	servers.Add(1)
	go func() { defer servers.Done(); ctl.Serve(sctx) }()
	// Stop the servers, then wait for them (defers run last first).
	defer servers.Wait()
	defer stopServers()
	if cfg.Metrics.Enabled {
		ms, err := ListenMetrics(cfg.Metrics, a.metrics, a.log.Named("metrics"))
		if err != nil {
			return err
		}
		servers.Add(1)
		go func() {
			defer servers.Done()
			if err := ms.Serve(sctx); err != nil {
				a.log.Error("metrics endpoint stopped", zap.Error(err))
			}
		}()
	}

	tick := time.NewTimer(0)
	defer tick.Stop()
	var wdC <-chan time.Time
	if iv := a.notify.WatchdogInterval(); iv > 0 {
		wd := time.NewTicker(iv)
		defer wd.Stop()
		wdC = wd.C
	}
	for {
		var done <-chan applyResult
		if a.work != nil {
			done = a.work.done
		}
		var wake <-chan struct{}
		if a.rollouts != nil {
			wake = a.rollouts.wake
		}
		select {
		case <-ctx.Done():
			a.shutdown()
			return nil
		case <-hup:
			a.reload()
		case r := <-done:
			a.finish(r)
		case <-wdC:
		case <-wake:
			// A rollout, a halt or a host's progress changed.
			a.maybeApply()
		case <-tick.C:
			a.stallIfAsked(ctx)
			a.tick(ctx)
			tick.Reset(a.cfg.Agent.Tick)
		}
		a.feedWatchdog()
		st := a.Status()
		a.notify.Status(st.Line)
		byState := map[string]int{"pending": len(st.Pending), "verifying": 0}
		if st.Verifying != nil {
			byState["verifying"] = 1
		}
		a.metrics.SetProposals(byState)
	}
}

// feedWatchdog pings systemd, unless an apply overran its deadline: then
// the loop lets the watchdog restart the agent, and Resolve settles the
// change at the next start.
func (a *Agent) feedWatchdog() {
	if w := a.work; w != nil && time.Now().After(w.deadline) {
		if !w.overrun {
			w.overrun = true
			a.log.Error("apply overran its deadline; no more watchdog pings, systemd will restart the agent",
				zap.String("proposal", w.proposal.ID), zap.Time("deadline", w.deadline))
		}
		return
	}
	a.notify.Watchdog()
}

// stallIfAsked is the test-only stall (Options.StallFile).
func (a *Agent) stallIfAsked(ctx context.Context) {
	if a.opts.StallFile == "" {
		return
	}
	if _, err := os.Stat(a.opts.StallFile); err != nil {
		return
	}
	a.log.Warn("test stall file present: loop stalled, watchdog not fed", zap.String("file", a.opts.StallFile))
	for ctx.Err() == nil {
		if _, err := os.Stat(a.opts.StallFile); err != nil {
			a.log.Info("test stall file removed: loop resumes")
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tick samples every namespace, takes the full census where a cheap signal
// moved, proposes and starts approved applies.
func (a *Agent) tick(ctx context.Context) {
	a.mu.Lock()
	a.ticks++
	a.mu.Unlock()
	a.checkFleet(ctx)
	var errs []string
	var reports []diagnose.Report
	for _, st := range a.ns {
		before := st.report
		if err := a.tickNS(ctx, st); err != nil {
			if ctx.Err() != nil {
				return
			}
			errs = append(errs, err.Error())
		}
		// A full census blocks for diagnose.interval per namespace: feed
		// the watchdog between namespaces, still from the loop.
		a.feedWatchdog()
		if st.report != nil && st.report != before {
			// Only a diagnosis of this tick: the bake check must not
			// read the one from before the change.
			reports = append(reports, *st.report)
		}
	}
	a.mu.Lock()
	a.lastErr = strings.Join(errs, "; ")
	a.mu.Unlock()
	a.rolloutsTick(ctx, reports)
	a.maybeApply()
}

func (a *Agent) tickNS(ctx context.Context, st *nsState) error {
	cfg := a.cfg
	lbl := nsLabel(st.path)
	opts := a.sampleOpts(cfg, st.path)
	opts.KmsgAfter, opts.Kmsg = st.kmsgAfter, st.kmsg
	cur, err := sample.TakeCheap(ctx, opts)
	if err != nil {
		a.metrics.ObserveError(st.path)
		a.setInfo(st, func(i *NetnsInfo) { i.Error = err.Error() })
		a.log.Warn("cheap sample failed", zap.String("netns", lbl), zap.Error(err))
		return fmt.Errorf("%s: %w", lbl, err)
	}
	st.kmsgAfter = maxSeq(st.kmsgAfter, cur)
	a.metrics.ObserveSample(st.path, TierCheap, cur)
	if st.path == "" {
		a.markReady()
	}
	st.ticksSinceFull++
	tier := decideCensus(tierInput{prev: st.prev, lastFull: st.lastFull, cur: cur, ticksSinceFull: st.ticksSinceFull, open: st.open}, cfg)
	reason := tier.why
	st.prev = cur
	st.noteOpens(cur)
	if reason != "" && a.work != nil && a.work.proposal.Netns == st.path {
		// The namespace under verification is sampled by the verifier.
		reason = ""
	}
	if reason == "" {
		a.setInfo(st, func(i *NetnsInfo) {
			i.LastSample, i.Tier, i.Duration, i.Error = cur.Time, TierCheap, cur.Duration, ""
			i.Listeners = len(cur.Listeners)
		})
		return nil
	}
	a.log.Debug("full census", zap.String("netns", lbl), zap.String("why", reason))
	opts.KmsgAfter = st.kmsgAfter
	opts.Owners = opts.Owners && !tier.routine
	series, err := sample.Series(ctx, opts, cfg.Diagnose.Samples, cfg.Diagnose.Interval, cfg.Sample.WatchInterval)
	if err != nil {
		a.metrics.ObserveError(st.path)
		a.setInfo(st, func(i *NetnsInfo) { i.Error = err.Error() })
		a.log.Warn("full census failed", zap.String("netns", lbl), zap.Error(err))
		return fmt.Errorf("%s: %w", lbl, err)
	}
	for _, s := range series {
		a.metrics.ObserveSample(st.path, TierFull, s)
		st.kmsgAfter = maxSeq(st.kmsgAfter, s)
	}
	last := series[len(series)-1]
	st.prev, st.lastFull, st.ticksSinceFull = last, last, 0
	a.mu.Lock()
	a.full++
	a.mu.Unlock()

	rep := diagnose.Run(series, cfg.Diagnose)
	a.mu.Lock()
	st.report = &rep
	a.mu.Unlock()
	st.open = false
	for _, f := range rep.Findings {
		if f.Severity != diagnose.SevInfo && !f.Confirmed {
			st.open = true
		}
	}
	a.metrics.ObserveFindings(st.path, rep.Findings)
	evs, seen := diffFindings(st.findings, rep)
	st.findings = seen
	logFindings(a.log, st.path, evs)
	a.setInfo(st, func(i *NetnsInfo) {
		i.LastSample, i.Tier, i.FullReason, i.Duration, i.Error = last.Time, TierFull, reason, last.Duration, ""
		i.Sockets, i.Listeners, i.Healthy = last.Total, len(last.Listeners), rep.Healthy
	})
	a.propose(st, rep)
	return nil
}

// checkFleet asks the fleet store whether it answers, once a tick. A
// warning is logged once per outage, and when it answers again the
// proposals kept locally meanwhile are recorded.
func (a *Agent) checkFleet(ctx context.Context) {
	if a.fleet == nil {
		return
	}
	err := a.fleet.Ping(ctx)
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	a.mu.Lock()
	info := a.fleetInfo
	first, was := info.Since.IsZero(), info.Reachable
	prevSince := info.Since
	info.Reachable = err == nil
	if first || was != info.Reachable {
		info.Since = now
	}
	info.Error = ""
	if err != nil {
		info.Error = err.Error()
		info.Waiting = ""
	}
	a.mu.Unlock()
	a.metrics.SetFleetUp(err == nil)
	switch {
	case err != nil && (first || was):
		a.log.Warn("fleet store unreachable: nothing is applied until it answers; still observing and proposing locally",
			zap.String("endpoints", a.fleet.Endpoints()), zap.Error(err))
	case err == nil && !first && !was:
		a.log.Info("fleet store reachable again", zap.String("endpoints", a.fleet.Endpoints()), zap.Duration("outage", now.Sub(prevSince)))
		for path, rep := range a.unrecorded {
			delete(a.unrecorded, path)
			recorded, err := a.engine.Propose(rep, "agent")
			if err != nil {
				a.log.Error("recording proposals kept during the outage", zap.Error(err))
				a.unrecorded[path] = rep
				continue
			}
			a.announce(recorded)
		}
	case err == nil && first:
		a.log.Info("fleet store reachable", zap.String("endpoints", a.fleet.Endpoints()))
	}
}

// markReady sends READY=1 once, after the first good sample of the
// agent's own namespace.
func (a *Agent) markReady() {
	a.mu.Lock()
	first := !a.ready
	a.ready = true
	a.mu.Unlock()
	if first {
		a.log.Info("first sample taken: ready")
		a.notify.Ready(StatusLine(a.Status()))
	}
}

func maxSeq(after uint64, s *sample.Sample) uint64 {
	for _, k := range s.Kernel {
		after = max(after, k.Seq)
	}
	return after
}

func (a *Agent) setInfo(st *nsState, f func(*NetnsInfo)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&st.info)
}

// propose records the confirmed kernel proposals of a diagnosis as pending
// (journaled by the engine) and announces each new one once.
func (a *Agent) propose(st *nsState, rep diagnose.Report) {
	ready := rep
	ready.Proposals = nil
	for _, p := range rep.Proposals {
		if p.Ready {
			ready.Proposals = append(ready.Proposals, p)
		}
	}
	a.mu.Lock()
	for id, p := range a.pending {
		if p.Netns == st.path && !slices.ContainsFunc(ready.Proposals, func(q diagnose.Proposal) bool { return q.ID == id }) {
			delete(a.pending, id) // the condition is gone
		}
	}
	a.mu.Unlock()
	if a.cfg.Agent.Mode == config.AgentObserve || len(ready.Proposals) == 0 {
		return
	}
	if a.work != nil {
		return // the engine is busy; the next census proposes again
	}
	delete(a.unrecorded, st.path)
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
func (a *Agent) keepLocal(path string, rep diagnose.Report) {
	a.unrecorded[path] = rep
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range rep.Proposals {
		if _, ok := a.pending[p.ID]; ok {
			continue
		}
		a.pending[p.ID] = briefOf(p, now)
	}
}

// announce lists recorded proposals as pending and logs each new one once.
func (a *Agent) announce(recorded []remediate.Pending) {
	for _, pp := range recorded {
		p := pp.Proposal
		if a.rollouts != nil {
			a.rollouts.props[p.ID] = p
		}
		a.mu.Lock()
		a.pending[p.ID] = briefOf(p, pp.Recorded)
		a.mu.Unlock()
		if a.announced[p.ID] {
			continue
		}
		a.announced[p.ID] = true
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

// maybeApply starts the apply of one pending proposal an operator approved
// (or, in auto mode, one a standing approval may cover). Every guard runs
// in the engine.
func (a *Agent) maybeApply() {
	if a.work != nil || a.cfg.Agent.Mode == config.AgentObserve || a.fleetDown() {
		return // busy, observing, or failing closed: no approval can be checked
	}
	a.mu.Lock()
	ids := make([]string, 0, len(a.pending))
	for id := range a.pending {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	if a.rollouts != nil && a.tryRollouts() {
		return
	}
	slices.Sort(ids)
	now := time.Now()
	for _, id := range ids {
		appr, err := a.engine.Store().Approval(id)
		if errors.Is(err, remediate.ErrStoreUnavailable) {
			return // the next tick's check logs the outage
		}
		approved := err == nil && appr.Usable(now) == nil
		if !approved && !(a.cfg.Agent.Mode == config.AgentAuto && !a.tried[id]) {
			continue
		}
		if a.fleet != nil && !a.slotFree(id) {
			return
		}
		a.tried[id] = true
		pp, err := a.engine.Store().Proposal(id)
		if err != nil {
			a.log.Error("approved proposal unreadable", zap.String("proposal", id), zap.Error(err))
			continue
		}
		a.start(pp.Proposal)
		return
	}
}

// fleetDown says whether the fleet store did not answer its last check.
// fleetInfo is written by the agent's loop only, which is the caller.
func (a *Agent) fleetDown() bool { return a.fleet != nil && !a.fleetInfo.Reachable }

// slotFree says whether the fleet has a rollout slot free for proposal id
// now; when not, status says what it waits for (logged once per proposal).
// Guard 6 takes the slot for real: this only spares a refusal in the
// journal at every tick while another host's change is in flight.
func (a *Agent) slotFree(id string) bool {
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
		delete(a.waitLogged, id)
		return true
	}
	if !a.waitLogged[id] {
		a.waitLogged[id] = true
		a.log.Info(waiting, zap.String("proposal", id))
	}
	return false
}

func (a *Agent) start(p diagnose.Proposal) {
	cfg := a.cfg
	ctx, cancel := context.WithCancel(context.Background())
	// Guard 3 takes three samples, then the window, then the slack of a
	// slow sample or two.
	budget := 3*cfg.Verify.Interval + cfg.Verify.Window + 2*cfg.Verify.Interval + time.Minute
	w := &work{proposal: p, cancel: cancel, done: make(chan applyResult, 1), deadline: time.Now().Add(budget)}
	a.work = w
	brief := &ChangeBrief{Proposal: p.ID, Netns: p.Netns, State: "guards", Since: time.Now()}
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
func (a *Agent) onEvent(eng *remediate.Engine, ev remediate.Event) {
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
func (a *Agent) finish(r applyResult) {
	w := a.work
	a.work = nil
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
		delete(a.tried, w.proposal.ID)
		a.log.Info("apply deferred: tried again at a later tick", zap.String("proposal", w.proposal.ID), zap.String("reason", r.out.Reason))
	}
	a.mu.Lock()
	if !retry {
		delete(a.pending, w.proposal.ID)
	}
	a.verifying = nil
	a.mu.Unlock()
	if a.newCfg != nil {
		cfg := *a.newCfg
		a.newCfg = nil
		a.install(cfg)
	}
}

// logOutcome writes one journal entry per key with the outcome's fields,
// counts it in the metrics and keeps it for status.
func (a *Agent) logOutcome(o remediate.Outcome, prefix string) {
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
	brief := ChangeBrief{Proposal: o.Proposal, Netns: o.Netns, State: string(o.State), Since: time.Now(), Detail: o.Reason}
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

// reload reads the configuration again (SIGHUP). A bad file is refused and
// the running configuration kept.
func (a *Agent) reload() {
	a.notify.Reloading()
	if a.opts.Load == nil {
		a.log.Error("config reload refused: no loader")
		a.notify.Ready(StatusLine(a.Status()))
		return
	}
	cfg, err := a.opts.Load()
	if err != nil {
		a.log.Error("config reload refused, keeping the running configuration", zap.Error(err))
		a.notify.Ready(StatusLine(a.Status()))
		return
	}
	if a.work != nil {
		a.log.Info("config reload deferred until the change being verified settles")
		a.newCfg = &cfg
		a.notify.Ready(StatusLine(a.Status()))
		return
	}
	a.install(cfg)
	a.notify.Ready(StatusLine(a.Status()))
}

func (a *Agent) install(cfg config.Config) {
	old := a.cfg
	if err := a.configure(cfg); err != nil {
		a.log.Error("config reload refused, keeping the running configuration", zap.Error(err))
		return
	}
	if cfg.Agent.ControlSocket != old.Agent.ControlSocket || cfg.Metrics != old.Metrics {
		a.log.Warn("control socket and metrics endpoint changes take effect at the next restart")
	}
	a.log.Info("configuration reloaded", zap.String("file", cfg.File), zap.String("mode", string(cfg.Agent.Mode)),
		zap.Duration("tick", cfg.Agent.Tick), zap.Strings("netns", cfg.Agent.Netns))
}

// shutdown handles SIGTERM: a verification in flight is interrupted, which
// makes the engine settle it (rolled back) before the agent exits.
func (a *Agent) shutdown() {
	w := a.work
	if w == nil {
		a.notify.Stopping("stopping")
		a.log.Info("agent stopping")
		return
	}
	key := w.proposal.ID
	if len(w.proposal.Changes) > 0 {
		key = w.proposal.Changes[0].Key
	}
	a.notify.Stopping("stopping: settling the change to " + key)
	a.log.Warn("stopping during an apply: interrupting it so that the change is rolled back", zap.String("proposal", w.proposal.ID))
	w.cancel()
	select {
	case r := <-w.done:
		a.finish(r)
	case <-time.After(20 * time.Second):
		a.log.Error("apply did not settle within 20s; the next start resolves it", zap.String("proposal", w.proposal.ID))
	}
}

// Status is the agent's state for the control socket and STATUS=.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{
		Schema: StatusSchema, Version: a.opts.Version, PID: os.Getpid(), Mode: string(a.cfg.Agent.Mode),
		Started: a.started, Ready: a.ready, Ticks: a.ticks, Full: a.full, LastError: a.lastErr,
		Recent: slices.Clone(a.recent),
		// Empty lists are [], never null, in every JSON document.
		Namespaces: []NetnsInfo{}, Findings: []FindingBrief{}, Pending: []ProposalBrief{},
	}
	if st.Recent == nil {
		st.Recent = []ChangeBrief{}
	}
	for _, ns := range a.ns {
		st.Namespaces = append(st.Namespaces, ns.info)
		if ns.report == nil {
			continue
		}
		st.Diagnosed = st.Diagnosed || ns.path == ""
		for _, f := range ns.report.Findings {
			if f.Severity == diagnose.SevInfo {
				continue
			}
			st.Unhealthy++
			st.Findings = append(st.Findings, FindingBrief{Netns: ns.path, Kind: f.Kind, Side: string(f.Side),
				Severity: string(f.Severity), Subject: f.Subject, Confirmed: f.Confirmed, Title: f.Title})
		}
	}
	for _, p := range a.pending {
		if a.verifying != nil && a.verifying.Proposal == p.ID {
			continue
		}
		st.Pending = append(st.Pending, p)
	}
	slices.SortFunc(st.Pending, func(x, y ProposalBrief) int { return strings.Compare(x.ID, y.ID) })
	if a.verifying != nil {
		v := *a.verifying
		st.Verifying = &v
	}
	if a.fleetInfo != nil {
		f := *a.fleetInfo
		st.Fleet = &f
	}
	st.Line = StatusLine(st)
	return st
}
