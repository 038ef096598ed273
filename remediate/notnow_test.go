package remediate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/sample"
)

// Guard 3's refusals that say the finding is not there now carry
// ErrNotNow, so that a fleet host gives its place back and tries again;
// a refusal about the change itself does not.
func TestCheckFreshNotNow(t *testing.T) {
	p := diagnose.Proposal{ID: "p1", Finding: diagnose.KindAcceptQueueOverflow, Subject: "127.0.0.1:8082",
		Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "64", Proposed: "256"}},
		Verify:  diagnose.Verification{Counters: []string{"TcpExtListenOverflows"}}}
	t0 := time.Unix(1_700_000_000, 0)
	series := func(drops ...uint64) []*sample.Sample {
		var out []*sample.Sample
		for i, d := range drops {
			out = append(out, &sample.Sample{Time: t0.Add(time.Duration(i) * time.Second), Counters: map[string]uint64{"TcpExtListenOverflows": d}})
		}
		return out
	}
	confirmed := &diagnose.Finding{Kind: p.Finding, Subject: p.Subject, Confirmed: true}
	for _, tc := range []struct {
		name    string
		fresh   *diagnose.Finding
		rep     diagnose.Report
		series  []*sample.Sample
		notNow  bool
		refused bool
	}{
		{"finding gone", nil, diagnose.Report{}, series(1, 2, 3), true, true},
		{"not confirmed", &diagnose.Finding{Kind: p.Finding, Subject: p.Subject, NotConfirmedReason: "seen in 1 of 2 intervals"}, diagnose.Report{}, series(1, 2, 3), true, true},
		{"drops stand still", confirmed, diagnose.Report{Proposals: []diagnose.Proposal{p}}, series(5, 5, 6), true, true},
		{"no change proposed now", confirmed, diagnose.Report{}, series(1, 2, 3), false, true},
		{"agrees", confirmed, diagnose.Report{Proposals: []diagnose.Proposal{p}}, series(1, 2, 3), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r := checkFresh(p, tc.fresh, tc.rep, tc.series)
			if (r != nil) != tc.refused {
				t.Fatalf("refusal %v, want refused %v", r, tc.refused)
			}
			if r != nil && errors.Is(r, ErrNotNow) != tc.notNow {
				t.Fatalf("%v: errors.Is(ErrNotNow) = %v, want %v", r, !tc.notNow, tc.notNow)
			}
		})
	}
}

// Guard 1: the fresh diagnosis on another side is a refusal of the
// moment; the recorded proposal on another side is not.
func TestCheckSidesNotNow(t *testing.T) {
	p := diagnose.Proposal{ID: "p1", Finding: diagnose.KindAcceptQueueOverflow, Subject: "127.0.0.1:8082"}
	for _, tc := range []struct {
		name            string
		recorded, fresh diagnose.Side
		notNow, refused bool
	}{
		{"both kernel", diagnose.SideKernel, diagnose.SideKernel, false, false},
		{"fresh reads app", diagnose.SideKernel, diagnose.SideApp, true, true},
		{"recorded app", diagnose.SideApp, diagnose.SideKernel, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := &applyRun{p: p, pp: Pending{Proposal: p, Side: tc.recorded}, fresh: &diagnose.Finding{Kind: p.Finding, Subject: p.Subject, Side: tc.fresh}}
			err := (&Engine{}).checkSides(context.Background(), run)
			if (err != nil) != tc.refused || (err != nil && errors.Is(err, ErrNotNow) != tc.notNow) {
				t.Fatalf("%v: want refused %v, ErrNotNow %v", err, tc.refused, tc.notNow)
			}
		})
	}
}
