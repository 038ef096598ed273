package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/fleet"
	"github.com/sockwarden/sockwarden/internal/etcdtest"
	"github.com/sockwarden/sockwarden/remediate"
	"github.com/sockwarden/sockwarden/sample"
	"github.com/sockwarden/sockwarden/verify"
)

// fleetAgent is an agent with its state in a temporary directory and its
// fleet store in srv, logging at info level to the returned observer; mod
// adjusts the config first. Its store is closed at the end of the test.
func fleetAgent(t *testing.T, srv *etcdtest.Server, mod func(*config.Config)) (*Agent, *observer.ObservedLogs) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Agent.ControlSocket = filepath.Join(dir, "control.sock")
	cfg.Fleet.Etcd.Endpoints = []string{srv.Endpoint}
	mod(&cfg)
	core, logs := observer.New(zapcore.InfoLevel)
	a, err := New(Options{Config: cfg, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.fleet.Close() })
	return a, logs
}

// A fleet store outage, against a real etcd killed and restarted: one
// warning per outage, status and the gauge show it, nothing is applied,
// proposals are kept locally and recorded once etcd answers again.
func TestFleetOutage(t *testing.T) {
	srv := etcdtest.Start(t)
	a, logs := fleetAgent(t, srv, func(c *config.Config) { c.Fleet.Etcd.RequestTimeout = time.Second })
	ctx := context.Background()
	up := func() float64 {
		t.Helper()
		n, err := testutil.GatherAndCount(a.metrics.Registry(), "sockwarden_fleet_store_up")
		if err != nil || n != 1 {
			t.Fatalf("sockwarden_fleet_store_up: %d series, %v", n, err)
		}
		mfs, _ := a.metrics.Registry().Gather()
		for _, mf := range mfs {
			if mf.GetName() == "sockwarden_fleet_store_up" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}

	a.checkFleet(ctx)
	if st := a.Status(); st.Fleet == nil || !st.Fleet.Reachable || st.Fleet.Endpoints != srv.Endpoint || up() != 1 {
		t.Fatalf("etcd up: status fleet %+v, gauge %v", st.Fleet, up())
	}

	srv.Kill()
	for i := 0; i < 3; i++ {
		a.checkFleet(ctx)
	}
	st := a.Status()
	if st.Fleet.Reachable || !strings.Contains(st.Fleet.Error, srv.Endpoint) || up() != 0 {
		t.Fatalf("etcd down: status fleet %+v, gauge %v", st.Fleet, up())
	}
	if !strings.Contains(st.Line, "fleet store unreachable") {
		t.Fatalf("STATUS= line %q does not say the fleet store is unreachable", st.Line)
	}
	if n := logs.FilterMessageSnippet("fleet store unreachable").FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Fatalf("%d warnings for one outage of three checks, want 1", n)
	}

	// A confirmed kernel proposal during the outage is kept locally.
	p := diagnose.Proposal{ID: "b265cfbe0f28", Finding: diagnose.KindAcceptQueueOverflow, Subject: "127.0.0.1:8082", Ready: true,
		Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "64", Proposed: "128"}}}
	rep := diagnose.Report{Findings: []diagnose.Finding{{Kind: p.Finding, Subject: p.Subject, Side: diagnose.SideKernel, Confirmed: true,
		Severity: diagnose.SevWarning}}, Proposals: []diagnose.Proposal{p}}
	a.propose(a.ns[0], rep)
	if st := a.Status(); len(st.Pending) != 1 || st.Pending[0].ID != p.ID {
		t.Fatalf("pending during the outage: %+v", st.Pending)
	}
	a.maybeApply()
	if a.work != nil {
		t.Fatal("an apply started while the fleet store is unreachable")
	}

	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for a.checkFleet(ctx); !a.Status().Fleet.Reachable; a.checkFleet(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("fleet store not reachable again: %+v", a.Status().Fleet)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if up() != 1 || logs.FilterMessage("fleet store reachable again").Len() != 1 {
		t.Fatalf("after restart: gauge %v, 'reachable again' lines %d", up(), logs.FilterMessage("fleet store reachable again").Len())
	}
	got, err := a.engine.Store().Proposal(p.ID)
	if err != nil || got.Source != "agent" || got.Side != diagnose.SideKernel {
		t.Fatalf("the proposal kept during the outage is not in etcd now: %+v, %v", got, err)
	}
	if logs.FilterMessage("proposal pending approval: sockwarden approve "+p.ID).Len() != 1 {
		t.Fatal("the proposal recorded after the outage was not announced")
	}
}

// While another host holds the fleet's only rollout slot, an approved
// proposal waits (said in status, logged once) and no apply starts; an
// apply refused by guard 6 anyway (a race) keeps its proposal pending for
// a later tick.
func TestFleetSlotWait(t *testing.T) {
	srv := etcdtest.Start(t)
	a, logs := fleetAgent(t, srv, func(c *config.Config) { c.Fleet.SlotTTL = 2 * time.Second })
	other, err := fleet.OpenEtcdStore(a.cfg.Fleet, "other-host", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	slot, err := other.Acquire(context.Background(), remediate.SlotHolder{Host: "other-host", Change: "c-other", Proposal: "p0"})
	if err != nil {
		t.Fatal(err)
	}
	defer slot.Release()

	host, _ := os.Hostname()
	p := diagnose.Proposal{ID: "b265cfbe0f28", Host: host, Finding: diagnose.KindAcceptQueueOverflow, Subject: "127.0.0.1:8082", Ready: true,
		Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "64", Proposed: "128"}}}
	rep := diagnose.Report{Findings: []diagnose.Finding{{Kind: p.Finding, Subject: p.Subject, Side: diagnose.SideKernel, Confirmed: true,
		Severity: diagnose.SevWarning}}, Proposals: []diagnose.Proposal{p}}
	a.checkFleet(context.Background())
	a.propose(a.ns[0], rep)
	if _, err := a.engine.Approve(p.ID, remediate.ApproveOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		a.maybeApply()
	}
	if a.work != nil {
		t.Fatal("an apply started while the fleet's only slot is held by another host")
	}
	if w := a.Status().Fleet.Waiting; !strings.Contains(w, "other-host change c-other") {
		t.Fatalf("status fleet waiting %q, want it to name the holder", w)
	}
	if n := logs.FilterMessageSnippet("waits for a fleet rollout slot").Len(); n != 1 {
		t.Fatalf("%d 'waits for a fleet rollout slot' lines for three ticks, want 1", n)
	}

	// A guard-6 refusal (another host took the slot between the check
	// and the apply) keeps the proposal for a later tick.
	a.work = &work{proposal: p, cancel: func() {}}
	a.tried[p.ID] = true
	err = &remediate.Refusal{Guard: remediate.GuardFleetSlot, Reason: "no slot", Err: remediate.ErrNoSlot}
	a.finish(applyResult{out: remediate.Outcome{Proposal: p.ID, State: remediate.StateRefused, Guard: remediate.GuardFleetSlot}, err: err})
	if st := a.Status(); len(st.Pending) != 1 || a.tried[p.ID] {
		t.Fatalf("after a guard-6 refusal: pending %+v, tried %v; want kept and not tried", st.Pending, a.tried[p.ID])
	}

	slot.Release()
	a.maybeApply()
	if a.work == nil {
		t.Fatal("no apply started once the slot was free")
	}
	a.work.cancel()
	r := <-a.work.done
	a.finish(r)
}

// A bake is judged by the load in its namespace, from the agent's cheap
// samples, against a real etcd: quiet (under diagnose.min_arrivals_per_sec),
// the host reports it inconclusive and the rollout pauses; under load, it
// is baked and the rollout runs on.
func TestFleetBakeLoad(t *testing.T) {
	srv := etcdtest.Start(t)
	for _, tc := range []struct {
		name        string
		opensPerSec uint64
		wantState   string
		wantRollout string
	}{
		{"quiet", 1, fleet.Inconclusive, fleet.Paused},
		{"under load", 40, fleet.Verified, fleet.Running},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := fleetAgent(t, srv, func(c *config.Config) {
				c.Fleet.Etcd.Prefix = "/bake-" + strings.ReplaceAll(tc.name, " ", "-") + "/"
				c.Diagnose.MinArrivalsPerSec = 5
			})
			ctx := context.Background()
			r := a.rollouts
			const bake = 2 * time.Second
			now := time.Now().UTC()
			ro := fleet.Rollout{ID: "r-1", GroupID: "g-1", Canary: 1, WaveFactor: 2, MaxConcurrent: 2, HaltAfter: 1, Bake: fleet.Duration(bake),
				Created: now, Expires: now.Add(time.Hour), Events: []fleet.Event{}}
			if err := r.f.CreateRollout(ctx, ro); err != nil {
				t.Fatal(err)
			}
			settled := now
			p := fleet.Progress{Rollout: ro.ID, Host: r.f.Host(), Proposal: "p-1", State: fleet.Verified, Started: now.Add(-time.Minute), Settled: settled, Events: []fleet.Event{}}
			if err := r.f.Report(ctx, p); err != nil {
				t.Fatal(err)
			}
			sync := func() fleet.Snapshot {
				t.Helper()
				s, err := r.f.Snapshot(ctx, false)
				if err != nil {
					t.Fatal(err)
				}
				r.mu.Lock()
				r.snap, r.have = s, true
				r.mu.Unlock()
				return s
			}
			sync()
			st := a.ns[0]
			// The tick's cheap samples: opens at 1000 half a second before
			// the host verified, growing by opensPerSec.
			note := func(at time.Duration) {
				opens := 1000 + tc.opensPerSec*uint64(at+500*time.Millisecond)/uint64(time.Second)
				st.noteOpens(&sample.Sample{Time: settled.Add(at), Counters: map[string]uint64{"TcpPassiveOpens": opens, "TcpActiveOpens": 10, "TcpExtListenDrops": 3}})
			}
			note(-500 * time.Millisecond)
			note(bake / 2)
			a.bakeLoad(ctx)
			if got := r.mine(sync())[ro.ID]; got.State != fleet.Verified || !got.Baked.IsZero() {
				t.Fatalf("while baking: %+v, want verified, not yet baked", got)
			}
			time.Sleep(time.Until(settled.Add(bake)))
			a.bakeLoad(ctx) // no sample closes the bake yet: wait
			if got := r.mine(sync())[ro.ID]; got.State != fleet.Verified || !got.Baked.IsZero() {
				t.Fatalf("bake over, before a sample closed it: %+v, want verified, not yet baked", got)
			}
			note(bake + 200*time.Millisecond)
			a.bakeLoad(ctx)
			s := sync()
			got := r.mine(s)[ro.ID]
			if got.State != tc.wantState || (tc.wantState == fleet.Verified) == got.Baked.IsZero() {
				t.Fatalf("after the bake: %s, baked %v (%s); want %s", got.State, got.Baked, got.Reason, tc.wantState)
			}
			if st, why := s.View(ro.ID, time.Now(), 0).State(); st != tc.wantRollout {
				t.Fatalf("rollout %s (%s), want %s", st, why, tc.wantRollout)
			}
		})
	}
}

// bakeWindow covers the bake with the fewest samples: from the last at or
// before its start to the first at or after its end, so that a bake judged
// late (etcd was down) is judged by the samples taken while it ran.
func TestBakeWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	pt := func(sec, opens int) *sample.Sample {
		return &sample.Sample{Time: t0.Add(time.Duration(sec) * time.Second), Counters: map[string]uint64{"TcpPassiveOpens": uint64(opens), "TcpActiveOpens": 0}}
	}
	// 10/s until second 10, then nothing.
	hist := []*sample.Sample{pt(-2, 0), pt(0, 20), pt(5, 70), pt(10, 120), pt(15, 120), pt(20, 120), pt(25, 120)}
	for _, tc := range []struct {
		name      string
		opens     []*sample.Sample
		from, to  int
		wantReady bool
		want      fleet.BakeLoad
	}{
		{"busy bake", hist, 0, 10, true, fleet.BakeLoad{Samples: 3, ArrivalsPerSec: 10, Floor: 5}},
		{"ends between samples: the next closes it", hist, 1, 9, true, fleet.BakeLoad{Samples: 3, ArrivalsPerSec: 10, Floor: 5}},
		{"quiet bake, judged long after", hist, 10, 20, true, fleet.BakeLoad{Samples: 3, ArrivalsPerSec: 0, Floor: 5}},
		{"not closed yet", hist, 20, 30, false, fleet.BakeLoad{Floor: 5}},
		{"history starts after the bake began", hist[3:], 5, 15, true, fleet.BakeLoad{Samples: 2, ArrivalsPerSec: 0, Floor: 5}},
		{"one sample covers nothing", hist[6:], 10, 20, true, fleet.BakeLoad{Samples: 1, Floor: 5}},
		{"no history", nil, 0, 10, false, fleet.BakeLoad{Floor: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ready := bakeWindow(tc.opens, t0.Add(time.Duration(tc.from)*time.Second), t0.Add(time.Duration(tc.to)*time.Second), 5)
			if ready != tc.wantReady || got != tc.want {
				t.Errorf("bakeWindow = %+v, %v; want %+v, %v", got, ready, tc.want, tc.wantReady)
			}
		})
	}
}

// The opens history keeps an hour (at least two samples) and only the
// two counters bakes are measured by.
func TestNoteOpens(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	st := &nsState{}
	for i := range 130 {
		st.noteOpens(&sample.Sample{Time: t0.Add(time.Duration(i) * time.Minute), Counters: map[string]uint64{"TcpPassiveOpens": uint64(i), "TcpExtListenDrops": 7}})
	}
	if n := len(st.opens); n != 61 || st.opens[0].Time != t0.Add(69*time.Minute) {
		t.Fatalf("history of %d from %s, want 61 from 01:09", n, st.opens[0].Time)
	}
	if _, ok := st.opens[0].Counters["TcpExtListenDrops"]; ok || len(st.opens[0].Counters) != 1 {
		t.Errorf("kept counters %v, want TcpPassiveOpens only", st.opens[0].Counters)
	}
}

// An apply under a rollout claim refused because the fresh samples no
// longer show the finding (remediate.ErrNotNow: a load that comes and
// goes) gives the host's place back, against a real etcd: no progress
// record stays, so the host may claim again once its census confirms the
// finding, after a back-off. Any other refusal is a skip for good.
func TestFleetNotNowGivesPlaceBack(t *testing.T) {
	srv := etcdtest.Start(t)
	a, logs := fleetAgent(t, srv, func(c *config.Config) { c.Fleet.Etcd.Prefix = "/notnow/" })
	ctx := context.Background()
	r := a.rollouts
	now := time.Now().UTC()
	ro := fleet.Rollout{ID: "r-1", GroupID: "g-1", Canary: 1, WaveFactor: 2, MaxConcurrent: 2, HaltAfter: 1,
		Created: now, Expires: now.Add(time.Hour), Events: []fleet.Event{}}
	if err := r.f.CreateRollout(ctx, ro); err != nil {
		t.Fatal(err)
	}
	me := fleet.HostInfo{Host: r.f.Host(), Labels: map[string]string{}}
	claim := func(proposal string) {
		t.Helper()
		pr, why, err := r.f.Claim(ctx, ro.ID, me, fleet.Progress{Proposal: proposal}, 0, time.Now())
		if err != nil || why != "" {
			t.Fatalf("claim: %q, %v", why, err)
		}
		r.claims.Hold(&fleet.Claim{Rollout: ro, Progress: pr})
	}
	mine := func() (fleet.Progress, bool) {
		t.Helper()
		s, err := r.f.Snapshot(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := r.mine(s)[ro.ID]
		return p, ok
	}

	claim("p-1")
	notNow := &remediate.Refusal{Guard: remediate.GuardSamples, Reason: "accept-queue-overflow on 127.0.0.1:8082 is not confirmed by the fresh samples",
		Err: remediate.ErrNotNow}
	a.rolloutFinished("p-1", applyResult{out: remediate.Outcome{Proposal: "p-1", State: remediate.StateRefused, Guard: remediate.GuardSamples,
		Reason: notNow.Reason}, err: notNow})
	if p, ok := mine(); ok {
		t.Fatalf("after a refusal of the moment the host still holds a place: %s", p.Describe())
	}
	if why := r.backingOff(ro.ID, time.Now()); !strings.Contains(why, "not seen") {
		t.Fatalf("backing off right after: %q, want a reason", why)
	}
	if why := r.backingOff(ro.ID, time.Now().Add(notNowFirst+time.Second)); why != "" {
		t.Fatalf("backing off after %s: %q, want none", notNowFirst, why)
	}
	if logs.FilterMessageSnippet("place given back: the finding is not seen now").Len() != 1 {
		t.Fatal("the give-back is not logged")
	}
	if b := r.notNow[ro.ID].next(time.Now()); b.tries != 2 || time.Until(b.at) < notNowFirst {
		t.Fatalf("second back-off %+v: want 2 tries and a longer wait", b)
	}

	// The place was given back: the same host claims again, and a
	// refusal that is not of the moment skips it for good.
	claim("p-1")
	other := &remediate.Refusal{Guard: remediate.GuardLiveValue, Reason: "net.core.somaxconn is 128, not 64 as recorded"}
	a.rolloutFinished("p-1", applyResult{out: remediate.Outcome{Proposal: "p-1", State: remediate.StateRefused, Guard: remediate.GuardLiveValue,
		Reason: other.Reason}, err: other})
	if p, ok := mine(); !ok || p.State != fleet.Skipped {
		t.Fatalf("after a lasting refusal: %+v (found %v), want skipped", p, ok)
	}
}

// A verification cut short (the agent stopping) is reported as rolled
// back, not as inconclusive: an inconclusive host pauses the rollout for
// want of load, which an interruption says nothing about. Against a real
// etcd, one rollout for each outcome.
func TestFleetInterruptedVerifyIsRolledBack(t *testing.T) {
	srv := etcdtest.Start(t)
	a, _ := fleetAgent(t, srv, func(c *config.Config) { c.Fleet.Etcd.Prefix = "/interrupted/" })
	ctx := context.Background()
	r := a.rollouts
	me := fleet.HostInfo{Host: r.f.Host(), Labels: map[string]string{}}
	for _, tc := range []struct {
		rollout     string
		interrupted bool
		want        string
	}{
		{"r-interrupted", true, fleet.RolledBack},
		{"r-quiet", false, fleet.Inconclusive},
	} {
		now := time.Now().UTC()
		ro := fleet.Rollout{ID: tc.rollout, GroupID: "g-" + tc.rollout, Canary: 1, WaveFactor: 2, MaxConcurrent: 2, HaltAfter: 1,
			Created: now, Expires: now.Add(time.Hour), Events: []fleet.Event{}}
		if err := r.f.CreateRollout(ctx, ro); err != nil {
			t.Fatal(err)
		}
		pr, why, err := r.f.Claim(ctx, ro.ID, me, fleet.Progress{Proposal: "p-1"}, 0, time.Now())
		if err != nil || why != "" {
			t.Fatalf("%s: claim: %q, %v", tc.rollout, why, err)
		}
		r.claims.Hold(&fleet.Claim{Rollout: ro, Progress: pr})
		a.rolloutFinished("p-1", applyResult{out: remediate.Outcome{Proposal: "p-1", Change: "c-1", State: remediate.StateRolledBack,
			Reason:      "rolled back (inconclusive: ...)",
			Verdict:     &verify.Verdict{Outcome: verify.Inconclusive, Reason: "no load"},
			Interrupted: tc.interrupted}})
		s, err := r.f.Snapshot(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := r.mine(s)[ro.ID]; !ok || p.State != tc.want {
			t.Errorf("%s: progress %+v (found %v), want %s", tc.rollout, p, ok, tc.want)
		}
	}
}
