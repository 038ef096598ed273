//go:build !sockwarden_lean

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/fleet"
	"github.com/sockwarden/sockwarden/internal/etcdtest"
	"github.com/sockwarden/sockwarden/remediate"
)

// seedFleet starts etcd with n registered hosts web-1..n, each with a
// pending somaxconn proposal 64 -> 256 (one group), and points the
// commands at it.
func seedFleet(t *testing.T, n int) (*etcdtest.Server, *fleet.Fleet, string) {
	t.Helper()
	srv := etcdtest.Start(t)
	t.Setenv("SOCKWARDEN_FLEET_ETCD_ENDPOINTS", srv.Endpoint)
	f := config.Defaults().Fleet
	f.Etcd.Endpoints = []string{srv.Endpoint}
	var fl *fleet.Fleet
	var group string
	for i := 1; i <= n; i++ {
		h := fmt.Sprintf("web-%d", i)
		s, err := fleet.OpenEtcdStore(f, h, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		p := diagnose.Proposal{ID: fmt.Sprintf("p%011d", i), Host: h, Netns: "/run/netns/x", Finding: diagnose.KindAcceptQueueOverflow,
			Subject: "127.0.0.1:8082", Ready: true, Reason: "Send-Q 64 is net.core.somaxconn",
			Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "64", Proposed: "256"}}}
		now := time.Now().UTC()
		if err := s.RecordProposal(remediate.Pending{Proposal: p, Side: diagnose.SideKernel, Recorded: now, LastSeen: now, Source: "agent"}); err != nil {
			t.Fatal(err)
		}
		fl = fleet.New(s, h, nil)
		group = fleet.GroupOf(p).ID()
		reg := fl.Register(fleet.HostInfo{}, 30*time.Second)
		if err := reg.Update(context.Background(), fleet.HostInfo{Host: h, Labels: map[string]string{"role": "web"}, Kernel: "6.1.0", Version: "test",
			LastTick: now, Groups: []string{group}, Findings: []string{p.Finding}}); err != nil {
			t.Fatal(err)
		}
	}
	return srv, fl, group
}

// fleetOutputs runs the fleet commands that print JSON for
// TestOutputSchemas.
func fleetOutputs(t *testing.T, run func(string, int, ...string)) {
	_, _, group := seedFleet(t, 3)
	t.Setenv("SOCKWARDEN_FLEET_STORM_PERCENT", "100")
	run("fleet proposals", exitOK, "fleet", "proposals", "-o", "json")
	run("fleet hosts", exitOK, "fleet", "hosts", "-o", "json")
	run("fleet status, none", exitOK, "fleet", "status", "-o", "json")
	if _, errOut, code := runCLI(t, "fleet", "approve", group, "--selector", "role=web"); code != exitOK {
		t.Fatalf("fleet approve: %s", errOut)
	}
	if _, errOut, code := runCLI(t, "fleet", "halt", "--comment", "schema test"); code != exitOK {
		t.Fatalf("fleet halt: %s", errOut)
	}
	run("fleet status, one halted", exitOK, "fleet", "status", "-o", "json")
}

// The operator's commands against a real etcd: groups, the storm guard,
// approve, pause and resume, halt and its lift, rollback, and the
// status in text and markdown; bad input exits 2 and records nothing.
func TestFleetRolloutCLI(t *testing.T) {
	_, f, group := seedFleet(t, 3)
	out, errOut, code := runCLI(t, "fleet", "proposals")
	if code != exitOK || !strings.Contains(out, group) || !strings.Contains(out, "net.core.somaxconn 64 -> 256") || !strings.Contains(out, "web-1, web-2, web-3") {
		t.Fatalf("fleet proposals: exit %d %q %s", code, out, errOut)
	}
	var doc fleetProposalsDoc
	out, _, _ = runCLI(t, "fleet", "proposals", "-o", "json")
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Groups) != 1 || doc.Groups[0].Count != 3 || doc.Hosts != 3 {
		t.Fatalf("fleet proposals -o json: %v %s", err, out)
	}

	// Storm guard: 3 of 3 hosts show it, above the default 50%.
	out, errOut, code = runCLI(t, "fleet", "approve", group, "--selector", "role=web")
	if code != exitFailed || !strings.Contains(errOut, "storm guard") || !strings.Contains(errOut, "3 of 3") {
		t.Fatalf("approve in a storm: exit %d %q %s", code, out, errOut)
	}
	ctx := context.Background()
	if s, err := f.Snapshot(ctx, false); err != nil || len(s.Rollouts) != 0 {
		t.Fatalf("a refused approve recorded a rollout: %+v %v", s.Rollouts, err)
	}
	for _, bad := range [][]string{
		{"fleet", "approve", "g-0000000000"},
		{"fleet", "approve", group, "--selector", "role"},
		{"fleet", "approve", group, "--canary", "0"},
		{"fleet", "approve", group, "--wave-factor", "0.5"},
		{"fleet", "pause", "r-nope"},
	} {
		if _, errOut, code := runCLI(t, bad...); code != exitUsage {
			t.Errorf("%v: exit %d (%s), want %d", bad, code, errOut, exitUsage)
		}
	}
	out, errOut, code = runCLI(t, "fleet", "approve", group, "--selector", "role=web", "--force", "--canary", "1", "--bake", "1m", "--comment", "ticket 42")
	if code != exitOK || !strings.HasPrefix(out, "rollout r-") {
		t.Fatalf("approve --force: exit %d %q %s", code, out, errOut)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(out, "rollout "), " ")
	s, err := f.Snapshot(ctx, true)
	if err != nil || !s.Rollouts[id].Forced || s.Rollouts[id].Comment != "ticket 42" || s.Rollouts[id].GroupID != group {
		t.Fatalf("rollout in etcd: %+v %v", s.Rollouts[id], err)
	}
	st := statusOf(s, id, 0, time.Now())
	if st.State != fleet.Running || st.Counts["waiting"] != 3 {
		t.Fatalf("status: %s %v", st.State, st.Counts)
	}

	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"fleet", "pause", id}, fleet.Paused},
		{[]string{"fleet", "resume", id}, fleet.Running},
		{[]string{"fleet", "halt"}, fleet.Halted},
		{[]string{"fleet", "halt", "--clear"}, fleet.Running},
		{[]string{"fleet", "rollback", id}, fleet.RollingBack},
	} {
		if _, errOut, code := runCLI(t, step.args...); code != exitOK {
			t.Fatalf("%v: exit %d %s", step.args, code, errOut)
		}
		s, _ := f.Snapshot(ctx, true)
		if got := statusOf(s, id, 0, time.Now()); got.State != step.want {
			t.Fatalf("after %v: %s (%s), want %s", step.args, got.State, got.Why, step.want)
		}
	}
	out, _, code = runCLI(t, "fleet", "status", id)
	if code != exitOK || !strings.Contains(out, "ROLLBACK") || !strings.Contains(out, "timeline:") || !strings.Contains(out, "approved") {
		t.Fatalf("fleet status: %q", out)
	}
	out, _, code = runCLI(t, "fleet", "status", id, "-o", "markdown")
	if code != exitOK || !strings.Contains(out, "| host | wave | state |") || !strings.Contains(out, "ticket 42") {
		t.Fatalf("fleet status -o markdown: %q", out)
	}
}
