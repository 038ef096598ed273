//go:build !sockwarden_lean

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sockwarden/sockwarden/agent"
	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/lab"
	"github.com/sockwarden/sockwarden/remediate"
)

// The end-to-end bar: in a throwaway namespace with the lab's
// somaxconn-capped scenario (whose application listens again when somaxconn
// changes), the agent in propose mode raises a proposal; `sockwarden
// approve` is given; the agent applies, verifies and reports `verified` in
// its log, the change journal and the metrics, with no other input.
func TestNetnsAgentProposeApproveVerify(t *testing.T) {
	ctx, env, cfg, ag, logs := startAgentOnLab(t, "propose", nil)

	// Wait for the proposal, as `sockwarden status` shows it.
	var id string
	waitFor(t, ctx, 60*time.Second, "a pending proposal for the lab namespace", func() bool {
		st, err := agent.QueryStatus(ctx, cfg.Agent.ControlSocket)
		if err != nil {
			return false
		}
		for _, p := range st.Pending {
			if p.Netns == env.Netns && strings.HasPrefix(strings.Join(p.Changes, ","), "net.core.somaxconn ") {
				id = p.ID
				return true
			}
		}
		return false
	})
	if n := logs.FilterMessageSnippet("proposal pending approval").FilterField(zap.String("proposal", id)).Len(); n != 1 {
		t.Errorf("proposal announced %d times in the log, want once", n)
	}

	// The operator approves with the CLI, nothing else.
	if code := run([]string{"approve", id, "--state-dir", cfg.StateDir, "--comment", "agent e2e test"}); code != exitOK {
		t.Fatalf("sockwarden approve %s: exit %d", id, code)
	}

	// Wait for the change to settle, whichever way, then require verified.
	if e := settledAs(t, ctx, logs, id); e.Message != "kernel change verified" {
		t.Fatalf("change settled as %q: %v", e.Message, e.ContextMap()["reason"])
	}

	// The log entry carries key, old, new, proposal, approver and reason.
	e := logs.FilterMessage("kernel change verified").FilterField(zap.String("proposal", id)).All()[0]
	f := e.ContextMap()
	if f["key"] != "net.core.somaxconn" || f["old"] != "64" || f["new"] == "" || f["approver"] == "" || f["reason"] == "" {
		t.Errorf("verified entry fields = %v", f)
	}
	if logs.FilterMessage("kernel change applied").FilterField(zap.String("proposal", id)).Len() != 1 {
		t.Errorf("want one 'kernel change applied' entry for %s", id)
	}

	// The finding behind it was logged once when it appeared, with the
	// fields journalctl selects on (SOCKWARDEN_KIND, _SIDE, _NETNS, ...).
	appeared := logs.FilterMessageSnippet("finding appeared").FilterField(zap.String("kind", "accept-queue-overflow")).
		FilterField(zap.String("netns", env.Netns)).All()
	if len(appeared) != 1 {
		t.Errorf("%d 'finding appeared' entries for accept-queue-overflow in %s, want 1", len(appeared), env.Netns)
	} else if f := appeared[0].ContextMap(); f["event"] != "appeared" || f["side"] != "kernel" || f["subject"] == "" || f["severity"] == "" || f["proposal"] == "" {
		t.Errorf("finding entry fields = %v", f)
	}

	// The change journal says verified.
	j, err := remediate.OpenJournal(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := j.Records()
	if err != nil {
		t.Fatal(err)
	}
	var states []remediate.State
	for _, c := range remediate.Changes(recs) {
		if c.Proposal == id {
			states = c.History
		}
	}
	if len(states) == 0 || states[len(states)-1] != remediate.StateVerified {
		t.Errorf("journal history of %s = %v, want it to end verified", id, states)
	}

	// And the metrics.
	// Every allowed key's outcomes start at 0; only this one moved.
	want := []string{`sockwarden_changes_total{key="net.core.somaxconn",netns="` + env.Netns + `",state="verified"} 1`}
	if diff := cmp.Diff(want, nonZeroSeries(t, ag.Metrics().Registry(), "sockwarden_changes_total")); diff != "" {
		t.Errorf("sockwarden_changes_total (-want +got):\n%s", diff)
	}
}

// startAgentOnLab starts the lab's somaxconn-capped scenario (with
// relisten) and an agent in the given mode watching its namespace, with
// short intervals. Everything stops when the test ends.
func startAgentOnLab(t *testing.T, mode string, standing []string, mods ...func(*config.Config)) (context.Context, *lab.Env, config.Config, *agent.Agent, *observer.ObservedLogs) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds a lab scenario in a throwaway network namespace")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	env, err := lab.Start(ctx, lab.SomaxconnCapped, lab.Options{Duration: 5 * time.Minute, Relisten: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })

	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Agent.Mode = config.AgentMode(mode)
	cfg.Remediate.Standing = standing
	cfg.Agent.Netns = []string{env.Netns}
	cfg.Agent.ControlSocket = filepath.Join(dir, "run", "control.sock")
	cfg.Agent.Tick = time.Second
	cfg.Diagnose.Interval = 2 * time.Second
	// Long enough for two clean intervals even when samples are slow on
	// a loaded machine.
	cfg.Verify.Window = 20 * time.Second
	cfg.Verify.Interval = 2 * time.Second
	for _, mod := range mods {
		mod(&cfg)
	}

	core, logs := observer.New(zapcore.InfoLevel)
	ag, err := agent.New(agent.Options{Config: cfg, Version: "test", Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- ag.Run(actx, nil) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return ctx, env, cfg, ag, logs
}

// settledAs waits for the change of proposal id to settle and returns the
// settling entry's message ("kernel change verified", ...).
func settledAs(t *testing.T, ctx context.Context, logs *observer.ObservedLogs, id string) observer.LoggedEntry {
	t.Helper()
	settled := func() *observer.ObservedLogs {
		return logs.Filter(func(e observer.LoggedEntry) bool {
			return strings.HasPrefix(e.Message, "kernel change ") && e.ContextMap()["proposal"] == id &&
				e.ContextMap()["state"] != "applied"
		})
	}
	waitFor(t, ctx, 150*time.Second, "the change to settle", func() bool { return settled().Len() > 0 })
	return settled().All()[0]
}

// auto mode: a standing approval covering the proposal is the only input;
// one that does not cover it would leave the proposal pending.
func TestNetnsAgentAutoWithStandingApproval(t *testing.T) {
	ctx, env, _, ag, logs := startAgentOnLab(t, "auto", []string{"net.core.somaxconn<=4096"})
	var id string
	waitFor(t, ctx, 60*time.Second, "a proposal for the lab namespace", func() bool {
		for _, e := range logs.FilterMessageSnippet("proposal recorded").All() {
			if e.ContextMap()["netns"] == env.Netns && e.ContextMap()["key"] == "net.core.somaxconn" {
				id = e.ContextMap()["proposal"].(string)
				return true
			}
		}
		return false
	})
	e := settledAs(t, ctx, logs, id)
	if e.Message != "kernel change verified" {
		t.Fatalf("change settled as %q: %v", e.Message, e.ContextMap()["reason"])
	}
	if a := e.ContextMap()["approver"]; !strings.Contains(a.(string), "net.core.somaxconn<=4096") {
		t.Errorf("approver = %q, want the standing rule", a)
	}
	// Every allowed key's outcomes start at 0; only this one moved.
	want := []string{`sockwarden_changes_total{key="net.core.somaxconn",netns="` + env.Netns + `",state="verified"} 1`}
	if diff := cmp.Diff(want, nonZeroSeries(t, ag.Metrics().Registry(), "sockwarden_changes_total")); diff != "" {
		t.Errorf("sockwarden_changes_total (-want +got):\n%s", diff)
	}
}

func waitFor(t *testing.T, ctx context.Context, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if ok() {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

// nonZeroSeries lists a metric's series whose value is not 0, in the text
// exposition's form (labels sorted by name).
func nonZeroSeries(t *testing.T, g prometheus.Gatherer, name string) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if v == 0 {
				continue
			}
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			out = append(out, fmt.Sprintf("%s{%s} %g", name, strings.Join(ls, ","), v))
		}
	}
	return out
}
