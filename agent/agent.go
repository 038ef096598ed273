// Package agent is `sockwarden agent`: a loop that samples every watched
// network namespace cheaply on each tick, takes the full census and a
// diagnosis only when a cheap signal moves (or every Nth tick), turns
// confirmed kernel findings into pending proposals, applies the ones an
// operator approved through the remediate engine (whose guards all hold),
// and reports over sd_notify, journald, a root-only control socket and
// Prometheus. docs/agent.md describes the tiers, modes and metrics.
package agent

import (
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
	// Clock tells the time for the agent and its engine (nil: the wall
	// clock), so that tests can own it.
	Clock remediate.Clock
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

// Agent is the running agent: the tick loop (loop.go) with the proposal
// bookkeeping (proposals.go), the apply scheduler (scheduler.go) and the
// fleet store's health check (fleethealth.go), each its own type.
type Agent struct {
	opts    Options
	log     *zap.Logger
	notify  *Notifier
	metrics *Metrics
	clock   remediate.Clock
	started time.Time

	// Owned by the loop goroutine.
	cfg      config.Config
	engine   *remediate.Engine
	ns       []*nsState
	running  bool      // Run started (rollout watches run then)
	rollouts *rollouts // fleet rollouts (nil without a fleet)
	proposals
	scheduler
	fleetHealth

	// mu guards what the control socket and engine events read or write
	// (with proposals.pending and fleetHealth.fleetInfo).
	mu        sync.Mutex
	verifying *ChangeBrief
	recent    []ChangeBrief
	ticks     uint64
	full      uint64
	lastErr   string
	ready     bool
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
	if opts.Clock == nil {
		opts.Clock = remediate.WallClock
	}
	a := &Agent{opts: opts, log: opts.Log.Named("agent"), notify: opts.Notifier, clock: opts.Clock, started: opts.Clock.Now()}
	a.proposals, a.scheduler, a.fleetHealth = newProposals(a), newScheduler(a), fleetHealth{a: a}
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
	eo.Clock = a.clock
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
