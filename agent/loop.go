package agent

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/sample"
)

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
	stopServers, err := a.serve(cfg)
	if err != nil {
		return err
	}
	defer stopServers()
	a.loop(ctx, hup)
	return nil
}

// serve starts the control socket and, when on, the metrics endpoint. The
// returned function stops them and waits until they have stopped.
func (a *Agent) serve(cfg config.Config) (stop func(), err error) {
	sctx, cancel := context.WithCancel(context.Background())
	var servers sync.WaitGroup
	stop = func() { cancel(); servers.Wait() }
	ctl, err := ListenControl(cfg.Agent.ControlSocket, a.opts.Log, a.Status, a.opts.ControlAllow)
	if err != nil {
		cancel()
		return nil, err
	}
	servers.Add(1)
	go func() { defer servers.Done(); ctl.Serve(sctx) }()
	if cfg.Metrics.Enabled {
		ms, err := ListenMetrics(cfg.Metrics, a.metrics, a.log.Named("metrics"))
		if err != nil {
			stop()
			return nil, err
		}
		servers.Add(1)
		go func() {
			defer servers.Done()
			if err := ms.Serve(sctx); err != nil {
				a.log.Error("metrics endpoint stopped", zap.Error(err))
			}
		}()
	}
	return stop, nil
}

// loop is the tick loop: it ticks, reloads, finishes applies and starts
// rollouts until ctx is done, and feeds the watchdog after each event.
// The ticks wait on the agent's clock; the watchdog's pings stay on real
// time, as systemd's watchdog does.
func (a *Agent) loop(ctx context.Context, hup <-chan os.Signal) {
	tick := a.clock.After(0)
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
			return
		case <-hup:
			a.reload()
		case r := <-done:
			a.finish(r)
		case <-wdC:
		case <-wake:
			// A rollout, a halt or a host's progress changed.
			a.maybeRollout()
		case <-tick:
			a.stallIfAsked(ctx)
			a.tick(ctx)
			tick = a.clock.After(a.cfg.Agent.Tick)
		}
		a.feedWatchdog()
		a.reportState()
	}
}

// reportState tells systemd's STATUS= and the proposals gauge the state after
// an event of the loop.
func (a *Agent) reportState() {
	st := a.Status()
	a.notify.Status(st.Line)
	byState := map[string]int{"pending": len(st.Pending), "verifying": 0}
	if st.Verifying != nil {
		byState["verifying"] = 1
	}
	a.metrics.SetProposals(byState)
}

// feedWatchdog pings systemd, unless an apply overran its deadline: then
// the loop lets the watchdog restart the agent, and Resolve settles the
// change at the next start.
func (a *Agent) feedWatchdog() {
	if w := a.work; w != nil && a.clock.Now().After(w.deadline) {
		if !w.overrun {
			w.overrun = true
			a.log.Error("apply overran its deadline; no more watchdog pings, systemd will restart the agent",
				zap.String("proposal", w.proposal.ID), zap.Time("deadline", w.deadline))
		}
		return
	}
	a.notify.Watchdog()
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
