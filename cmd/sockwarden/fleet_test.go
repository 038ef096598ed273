//go:build !sockwarden_lean

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/agent"
	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/fleet"
	"github.com/sockwarden/sockwarden/internal/etcdtest"
	"github.com/sockwarden/sockwarden/remediate"
)

// The commands against a real etcd: another host's proposal is listed by
// proposals --fleet, approved from here, refused by apply here (it is for
// that host); with etcd killed, approve and apply fail closed (exit 3,
// naming the endpoint) and nothing is written.
func TestFleetCLI(t *testing.T) {
	srv := etcdtest.Start(t)
	t.Setenv("SOCKWARDEN_FLEET_ETCD_ENDPOINTS", srv.Endpoint)
	t.Setenv("SOCKWARDEN_FLEET_ETCD_REQUEST_TIMEOUT", "1s")
	f := config.Defaults().Fleet
	f.Etcd.Endpoints = []string{srv.Endpoint}
	other, err := fleet.OpenEtcdStore(f, "web-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	now := time.Now().UTC()
	id := "b265cfbe0f28"
	if err := other.RecordProposal(remediate.Pending{Proposal: diagnose.Proposal{ID: id, Host: "web-2", Finding: diagnose.KindAcceptQueueOverflow,
		Subject: "127.0.0.1:8082", Ready: true, Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "64", Proposed: "128"}}},
		Side: diagnose.SideKernel, Recorded: now, LastSeen: now, Source: "agent"}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	common := []string{"--state-dir", dir, "--log-level", "warn"}
	cli := func(args ...string) (string, string, int) { return runCLI(t, append(args, common...)...) }

	out, errOut, code := cli("proposals", "--fleet", "-o", "json")
	var doc struct {
		Proposals []struct {
			remediate.Pending
			State string `json:"state"`
		} `json:"proposals"`
	}
	rows := &doc.Proposals
	if code != exitOK || json.Unmarshal([]byte(out), &doc) != nil || len(*rows) != 1 || (*rows)[0].Proposal.Host != "web-2" || (*rows)[0].State != "pending" {
		t.Fatalf("proposals --fleet -o json: exit %d, %q %s", code, out, errOut)
	}
	if out, _, code := cli("proposals", "--fleet"); code != exitOK || !strings.Contains(out, "HOST") || !strings.Contains(out, "web-2") {
		t.Fatalf("proposals --fleet: exit %d, %q", code, out)
	}
	if out, _, code := cli("proposals"); code != exitOK || strings.Contains(out, id) {
		t.Fatalf("proposals (this host only): exit %d, %q: want web-2's proposal left out", code, out)
	}

	out, errOut, code = cli("approve", id, "--comment", "from anywhere")
	if code != exitOK || !strings.Contains(out, "stored in etcd "+srv.Endpoint) || !strings.Contains(out, "host web-2 applies it") {
		t.Fatalf("approve: exit %d, %q %s", code, out, errOut)
	}
	if a, err := other.Approval(id); err != nil || a.Comment != "from anywhere" || a.Host != "web-2" {
		t.Fatalf("web-2 reads the approval: %+v, %v", a, err)
	}
	out, _, code = cli("apply", id, "--interval", "1s")
	if code != exitFailed || !strings.Contains(out, "2-allowlist-bounds") || !strings.Contains(out, `for host "web-2"`) {
		t.Fatalf("apply here of web-2's proposal: exit %d, %q; want refused by guard 2", code, out)
	}
	if a, _ := other.Approval(id); a.UsedBy != "" {
		t.Fatalf("the refused apply used the approval: %+v", a)
	}

	srv.Kill()
	_, errOut, code = cli("approve", id)
	if code != exitFailed || !strings.Contains(errOut, srv.Endpoint) || !strings.Contains(errOut, "fleet store unavailable") {
		t.Fatalf("approve with etcd down: exit %d, %q", code, errOut)
	}
	out, errOut, code = cli("apply", id, "--interval", "1s")
	if code != exitFailed || !strings.Contains(out, "4-approval") || !strings.Contains(out, srv.Endpoint) {
		t.Fatalf("apply with etcd down: exit %d, %q %s; want refused by guard 4 naming the endpoint", code, out, errOut)
	}
	if _, errOut, code := cli("proposals", "--fleet"); code != exitFailed || !strings.Contains(errOut, srv.Endpoint) {
		t.Fatalf("proposals --fleet with etcd down: exit %d, %q", code, errOut)
	}
	out, _, _ = cli("history", "--records")
	if !strings.Contains(out, "refused") || !strings.Contains(out, "4-approval") {
		t.Fatalf("history --records: the refusal is not journaled: %q", out)
	}
}

func TestFleetCLIUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	pw := filepath.Join(t.TempDir(), "etcd-password")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "proposals", "--fleet", "--state-dir", dir); code != exitUsage || !strings.Contains(errOut, "fleet.etcd.endpoints") {
		t.Fatalf("proposals --fleet without a fleet: exit %d, %q", code, errOut)
	}
	t.Setenv("SOCKWARDEN_FLEET_ETCD_ENDPOINTS", "http://127.0.0.1:1")
	t.Setenv("SOCKWARDEN_FLEET_ETCD_USERNAME", "sockwarden")
	t.Setenv("SOCKWARDEN_FLEET_ETCD_PASSWORD_FILE", pw)
	if _, errOut, code := runCLI(t, "proposals", "--state-dir", dir); code != exitUsage || !strings.Contains(errOut, "fleet.etcd.password_file") || !strings.Contains(errOut, "0644") {
		t.Fatalf("a password file others may read: exit %d, %q", code, errOut)
	}
}

func TestWriteStatusFleet(t *testing.T) {
	now := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	st := agent.Status{Fleet: &agent.FleetInfo{Endpoints: "https://etcd1:2379", Since: now.Add(-time.Minute),
		Error: "fleet store unavailable: etcd https://etcd1:2379: get /sockwarden/: context deadline exceeded"}}
	writeStatus(&b, st, now)
	writeSlots(&b, fleetSlots{Max: 1, Holders: []remediate.SlotHolder{{Host: "web-1", Change: "c-20261124T005900-a1b2c3", Proposal: "c2a2b29f981a",
		Values: []remediate.Value{{Key: "net.core.somaxconn", Old: "64", New: "128"}}, Since: now.Add(-30 * time.Second)}}}, now)
	for _, want := range []string{
		"fleet: etcd https://etcd1:2379 UNREACHABLE since 1m0s ago: nothing is applied until it answers",
		"error: fleet store unavailable: etcd https://etcd1:2379",
		"fleet rollout slots: 1 of 1 in use\n  web-1  change c-20261124T005900-a1b2c3 (proposal c2a2b29f981a) net.core.somaxconn 64->128 since 30s ago\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	st.Fleet = &agent.FleetInfo{Endpoints: "https://etcd1:2379", Reachable: true, Since: now.Add(-time.Hour), Waiting: "approved proposal x waits for a fleet rollout slot"}
	writeStatus(&b, st, now)
	if !strings.Contains(b.String(), "fleet: etcd https://etcd1:2379, reachable (since 1h0m0s ago)\n  approved proposal x waits") {
		t.Errorf("status text:\n%s", b.String())
	}
}

// The agent in a fleet, end to end with a real etcd: its proposal is
// recorded in etcd; with etcd killed, `sockwarden status` shows the outage
// (exit 1) and nothing is applied; with etcd back, an approval given with
// `sockwarden approve` is read from etcd, the change applied and verified,
// the approval used and the rollout slot released.
func TestNetnsAgentFleet(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx, env, cfg, _, logs := startAgentOnLab(t, "propose", nil, func(c *config.Config) {
		c.Fleet.Etcd.Endpoints = []string{srv.Endpoint}
		c.Fleet.Etcd.RequestTimeout = time.Second
		c.Fleet.SlotTTL = 5 * time.Second
	})
	// The CLI finds the same agent and etcd through the environment.
	t.Setenv("SOCKWARDEN_AGENT_CONTROL_SOCKET", cfg.Agent.ControlSocket)
	t.Setenv("SOCKWARDEN_FLEET_ETCD_ENDPOINTS", srv.Endpoint)
	t.Setenv("SOCKWARDEN_FLEET_ETCD_REQUEST_TIMEOUT", "1s")
	store, err := fleet.OpenEtcdStore(cfg.Fleet, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	var id string
	waitFor(t, ctx, 60*time.Second, "a somaxconn proposal for the lab namespace, recorded in etcd", func() bool {
		ps, err := store.Proposals()
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.Proposal.Netns == env.Netns && len(p.Proposal.Changes) == 1 && p.Proposal.Changes[0].Key == "net.core.somaxconn" {
				id = p.Proposal.ID
				return true
			}
		}
		return false
	})

	srv.Kill()
	var st struct {
		agent.Status
		Slots *fleetSlots `json:"fleet_slots"`
	}
	waitFor(t, ctx, 30*time.Second, "status to show the fleet store unreachable", func() bool {
		out, _, code := runCLI(t, "status", "-o", "json")
		return code == exitFindings && json.Unmarshal([]byte(out), &st) == nil && st.Fleet != nil && !st.Fleet.Reachable && st.Fleet.Since.After(time.Time{})
	})
	if !strings.Contains(st.Fleet.Error, srv.Endpoint) || st.Slots == nil || !strings.Contains(st.Slots.Error, srv.Endpoint) {
		t.Fatalf("status during the outage: fleet %+v, slots %+v", st.Fleet, st.Slots)
	}
	if out, _, _ := runCLI(t, "status"); !strings.Contains(out, "UNREACHABLE") || !strings.Contains(out, "fleet store unreachable, nothing applied") {
		t.Fatalf("status text during the outage:\n%s", out)
	}
	if n := logs.FilterMessageSnippet("fleet store unreachable").Len(); n != 1 {
		t.Fatalf("%d 'fleet store unreachable' warnings for one outage, want 1", n)
	}

	srv.Restart()
	waitFor(t, ctx, 30*time.Second, "the agent to reach etcd again", func() bool {
		return logs.FilterMessage("fleet store reachable again").Len() == 1
	})
	if _, errOut, code := runCLI(t, "approve", id, "--state-dir", cfg.StateDir, "--comment", "fleet e2e"); code != exitOK {
		t.Fatalf("approve %s: exit %d: %s", id, code, errOut)
	}
	if e := settledAs(t, ctx, logs, id); e.Message != "kernel change verified" {
		t.Fatalf("change settled as %q: %v", e.Message, e.ContextMap()["reason"])
	}
	a, err := store.Approval(id)
	if err != nil || a.UsedBy == "" || a.Comment != "fleet e2e" {
		t.Fatalf("approval in etcd after the change: %+v, %v: want it used", a, err)
	}
	waitFor(t, ctx, 10*time.Second, "the rollout slot to be released", func() bool {
		hs, _, err := store.Holders(ctx)
		return err == nil && len(hs) == 0
	})
}
