package agent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/internal/fakeclock"
)

// TestWatchdogStopsAfterApplyOverrun: the loop feeds the watchdog while
// an apply is within its deadline and stops once it overran (systemd then
// restarts the agent and Resolve settles the change), saying so once. The
// agent's clock drives it: the deadline is minutes away in real time.
func TestWatchdogStopsAfterApplyOverrun(t *testing.T) {
	clk := fakeclock.New()
	var sent []string
	n := &Notifier{log: zap.NewNop(), watchdog: 10 * time.Second,
		send: func(_ bool, state string) (bool, error) { sent = append(sent, state); return true, nil }}
	core, logs := observer.New(zap.ErrorLevel)
	a := &Agent{log: zap.New(core), notify: n, clock: clk}
	a.scheduler = newScheduler(a)
	a.work = &work{proposal: diagnose.Proposal{ID: "p1"}, cancel: func() {}, deadline: clk.Now().Add(5 * time.Minute)}

	a.feedWatchdog()
	clk.Advance(4 * time.Minute)
	a.feedWatchdog()
	clk.Advance(2 * time.Minute) // past the deadline
	a.feedWatchdog()
	a.feedWatchdog()
	if diff := cmp.Diff([]string{"WATCHDOG=1", "WATCHDOG=1"}, sent); diff != "" {
		t.Errorf("pings (-want +got):\n%s", diff)
	}
	if got := logs.FilterMessageSnippet("apply overran its deadline").Len(); got != 1 {
		t.Errorf("%d 'overran' errors for two late feeds, want 1", got)
	}
}

// TestRunTicksOnItsClock: the loop's ticks wait on the agent's clock, so
// a test sees three ticks of an hour each without waiting for them.
func TestRunTicksOnItsClock(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Agent.ControlSocket = filepath.Join(dir, "control.sock")
	cfg.Agent.Mode = config.AgentObserve
	cfg.Agent.Tick = time.Hour
	cfg.Diagnose.Samples, cfg.Diagnose.Interval = 1, time.Second
	cfg.Sample.WatchInterval = 0
	cfg.Metrics.Enabled = false
	clk := fakeclock.New()
	a, err := New(Options{Config: cfg, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.tickNS(context.Background(), a.ns[0]); err != nil {
		t.Skipf("cannot sample this namespace here: %v", err)
	}
	start := clk.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	deadline := time.Now().Add(30 * time.Second)
	for a.Status().Ticks < 3 {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("%d ticks after 30 s of real time, want 3 at once", a.Status().Ticks)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if passed := clk.Now().Sub(start); passed < 2*time.Hour {
		t.Errorf("the agent's clock moved %v over three ticks, want at least two ticks of an hour", passed)
	}
}
