package agent

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/internal/fakeclock"
	"github.com/sockwarden/sockwarden/remediate"
)

// A pending proposal outlives the censuses that miss it for pendingGrace
// (a lull between bursts), and is dropped at the first census that misses
// it after that; a census that shows it again starts the grace anew.
func TestPendingOutlivesALull(t *testing.T) {
	clk := fakeclock.New()
	a := &Agent{clock: clk}
	a.proposals = newProposals(a)
	pr := &a.proposals
	p := diagnose.Proposal{ID: "p1", Netns: "/run/netns/a", Ready: true}
	other := diagnose.Proposal{ID: "p2", Netns: "/run/netns/b", Ready: true}
	pr.pending[p.ID] = briefOf(p, clk.Now())
	pr.pending[other.ID] = briefOf(other, clk.Now())
	has := func(id string) bool { _, ok := pr.pending[id]; return ok }

	pr.forgetGone(p.Netns, nil) // first miss
	clk.Advance(pendingGrace / 2)
	pr.forgetGone(p.Netns, nil)
	if !has(p.ID) {
		t.Fatalf("dropped after %s of misses, want kept for %s", pendingGrace/2, pendingGrace)
	}
	pr.forgetGone(p.Netns, []diagnose.Proposal{p}) // seen again: grace anew
	clk.Advance(pendingGrace / 2)
	pr.forgetGone(p.Netns, nil)
	clk.Advance(pendingGrace/2 + time.Second)
	pr.forgetGone(p.Netns, nil)
	if !has(p.ID) {
		t.Fatal("dropped although a census showed it again within the grace")
	}
	clk.Advance(pendingGrace / 2)
	pr.forgetGone(p.Netns, nil)
	if has(p.ID) {
		t.Fatalf("kept after %s of censuses without it", pendingGrace+time.Second)
	}
	if !has(other.ID) {
		t.Fatal("another namespace's proposal was dropped")
	}
}

// A proposal is announced once while it stays pending, and again when it
// comes back after it was dropped: the operator who approves from the
// journal must see it the second time too.
func TestProposalAnnouncedAgainAfterDropped(t *testing.T) {
	clk := fakeclock.New()
	core, logs := observer.New(zapcore.InfoLevel)
	a := &Agent{clock: clk, log: zap.New(core)}
	a.proposals = newProposals(a)
	p := diagnose.Proposal{ID: "p1", Netns: "/run/netns/a", Ready: true, Finding: "accept-queue-overflow", Subject: "0.0.0.0:8080"}
	announced := func() int { return logs.FilterMessage("proposal pending approval: sockwarden approve p1").Len() }

	a.announce([]remediate.Pending{{Proposal: p, Recorded: clk.Now()}})
	a.announce([]remediate.Pending{{Proposal: p, Recorded: clk.Now()}})
	if n := announced(); n != 1 {
		t.Fatalf("%d announcements while pending, want 1", n)
	}
	a.forgetGone(p.Netns, nil)
	clk.Advance(pendingGrace + time.Second)
	a.forgetGone(p.Netns, nil) // gone: dropped
	if _, ok := a.pending[p.ID]; ok {
		t.Fatal("still pending after the grace")
	}
	a.announce([]remediate.Pending{{Proposal: p, Recorded: clk.Now()}})
	if n := announced(); n != 2 {
		t.Fatalf("%d announcements after it came back, want 2", n)
	}
}
