//go:build !sockwarden_lean

package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/agent"
)

func TestWriteStatus(t *testing.T) {
	now := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	st := agent.Status{
		Version: "1.0.0", PID: 42, Mode: "propose", Started: now.Add(-2 * time.Hour), Ready: true,
		Line: "verifying net.core.somaxconn 64->128; 1 proposal pending", Ticks: 720, Full: 9,
		Namespaces: []agent.NetnsInfo{
			{Path: "", LastSample: now.Add(-3 * time.Second), Tier: "cheap", Duration: 1100 * time.Microsecond, Listeners: 12, Sockets: 150010, FullReason: "every 180 ticks"},
			{Path: "/run/netns/web", LastSample: now.Add(-time.Minute), Tier: "cheap", Error: "netns: open \"/run/netns/web\": no such file or directory"},
		},
		Unhealthy: 1,
		Findings: []agent.FindingBrief{{Kind: "accept-queue-overflow", Side: "kernel", Severity: "warning", Subject: "127.0.0.1:8082",
			Confirmed: true, Title: "Accept queue overflow on 127.0.0.1:8082: net.core.somaxconn (64) is the cap"}},
		Pending: []agent.ProposalBrief{{ID: "c2a2b29f981a", Finding: "accept-queue-overflow", Subject: "127.0.0.1:9090",
			Changes: []string{"net.ipv4.tcp_max_syn_backlog 128->256"}, Since: now.Add(-63 * time.Second)}},
		Verifying: &agent.ChangeBrief{Proposal: "e6a61ceb60fd", Key: "net.core.somaxconn", Old: "64", New: "128", State: "verifying",
			Detail: "1 clean interval(s) under load so far, 0 with drops"},
		Recent: []agent.ChangeBrief{{Proposal: "0a1b2c3d4e5f", Key: "net.core.somaxconn", Old: "128", New: "256", State: "rolled-back",
			Since: now.Add(-time.Hour), Detail: "inconclusive: no load"}},
	}
	want := `sockwarden agent 1.0.0, pid 42, mode propose, up 2h0m0s, ready
state: verifying net.core.somaxconn 64->128; 1 proposal pending
ticks: 720, full censuses: 9

namespaces:
  host: last sample 3s ago (cheap, 1.1ms), 12 listeners, 150010 sockets at the last census (full census because: every 180 ticks)
  /run/netns/web: last sample 1m0s ago (cheap, 0s), 0 listeners
    error: netns: open "/run/netns/web": no such file or directory

findings:
  warning  kernel accept-queue-overflow on 127.0.0.1:8082 (confirmed): Accept queue overflow on 127.0.0.1:8082: net.core.somaxconn (64) is the cap

pending proposals (approve with: sockwarden approve ID):
  c2a2b29f981a  net.ipv4.tcp_max_syn_backlog 128->256  (accept-queue-overflow on 127.0.0.1:9090) since 1m3s ago

in flight: net.core.somaxconn 64->128 (proposal e6a61ceb60fd): verifying: 1 clean interval(s) under load so far, 0 with drops

recent changes:
  rolled-back  net.core.somaxconn 128->256 (proposal 0a1b2c3d4e5f) 1h0m0s ago: inconclusive: no load
`
	var b bytes.Buffer
	writeStatus(&b, st, now)
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("status text (-want +got):\n%s", diff)
	}
}

// TestWriteStatusBeforeFirstSample: an agent that has not sampled yet says
// so for itself and for each namespace, instead of "healthy" and "last
// sample never (, 0s), 0 listeners" (what it printed before).
func TestWriteStatusBeforeFirstSample(t *testing.T) {
	now := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	st := agent.Status{
		Version: "1.0.0", PID: 42, Mode: "propose", Started: now.Add(-2 * time.Second),
		Namespaces: []agent.NetnsInfo{{Path: ""}, {Path: "/run/netns/web", Error: "netns: open \"/run/netns/web\": no such file or directory"}},
	}
	st.Line = agent.StatusLine(st)
	want := `sockwarden agent 1.0.0, pid 42, mode propose, up 2s, starting (no good sample yet)
state: sampling (no sample yet)
ticks: 0, full censuses: 0

namespaces:
  host: sampling (no sample yet)
  /run/netns/web: no sample yet
    error: netns: open "/run/netns/web": no such file or directory
`
	var b bytes.Buffer
	writeStatus(&b, st, now)
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("status text (-want +got):\n%s", diff)
	}
}
