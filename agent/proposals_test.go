package agent

import (
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/internal/fakeclock"
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
