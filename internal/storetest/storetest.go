// Package storetest is the contract every remediate.Store keeps, run by
// the tests of each implementation: remediate's FileStore and fleet's
// EtcdStore. It lives apart from both so that fleet's tests can run it
// without remediate's tests importing fleet (which imports remediate).
package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
)

// Contract is the remediate.Store contract: every implementation
// (remediate.FileStore, fleet.EtcdStore) runs the same cases. open returns a fresh, empty store; all
// of its proposals are for host "h1".
func Contract(t *testing.T, open func(t *testing.T) remediate.Store) {
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pending := func(id string, at time.Time) remediate.Pending {
		return remediate.Pending{Proposal: diagnose.Proposal{ID: id, Host: "h1", Netns: "/run/netns/x", Finding: diagnose.KindAcceptQueueOverflow,
			Subject: "127.0.0.1:8080", Ready: true, Reason: "why",
			Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "128", Proposed: "1024"}}},
			Side: diagnose.SideKernel, Recorded: at, LastSeen: at, Source: "test"}
	}
	approval := func(id string) remediate.Approval {
		p := pending(id, t1).Proposal
		return remediate.Approval{Proposal: id, Host: p.Host, Netns: p.Netns, Changes: p.Changes, Approver: remediate.Approver{UID: 0, User: "root", SudoUser: "alice"},
			Comment: "ok", Created: t1, Expires: t1.Add(time.Hour)}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s remediate.Store)
	}{
		{"record keeps the first time and updates last seen", func(t *testing.T, s remediate.Store) {
			if err := s.RecordProposal(pending("abc123", t1)); err != nil {
				t.Fatal(err)
			}
			again := pending("abc123", t1.Add(time.Hour))
			if err := s.RecordProposal(again); err != nil {
				t.Fatal(err)
			}
			got, err := s.Proposal("abc123")
			if err != nil {
				t.Fatal(err)
			}
			want := pending("abc123", t1)
			want.LastSeen = t1.Add(time.Hour)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
		}},
		{"record fills in missing times", func(t *testing.T, s remediate.Store) {
			p := pending("abc124", time.Time{})
			if err := s.RecordProposal(p); err != nil {
				t.Fatal(err)
			}
			got, err := s.Proposal("abc124")
			if err != nil || got.Recorded.IsZero() || !got.LastSeen.Equal(got.Recorded) {
				t.Fatalf("got %+v, %v: want Recorded set and LastSeen = Recorded", got, err)
			}
		}},
		{"missing is ErrNotFound", func(t *testing.T, s remediate.Store) {
			if _, err := s.Proposal("feedface"); !errors.Is(err, remediate.ErrNotFound) {
				t.Errorf("Proposal: %v, want ErrNotFound", err)
			}
			if _, err := s.Approval("feedface"); !errors.Is(err, remediate.ErrNotFound) {
				t.Errorf("Approval: %v, want ErrNotFound", err)
			}
			if _, err := s.UseApproval("feedface", "c-1", t1); !errors.Is(err, remediate.ErrNotFound) {
				t.Errorf("UseApproval: %v, want ErrNotFound", err)
			}
		}},
		{"bad ids are refused", func(t *testing.T, s remediate.Store) {
			for _, id := range []string{"../x", "a/b", "", ".hidden", "a..b"} {
				if _, err := s.Proposal(id); !errors.Is(err, remediate.ErrBadID) {
					t.Errorf("Proposal(%q) = %v, want ErrBadID", id, err)
				}
				if _, err := s.Approval(id); !errors.Is(err, remediate.ErrBadID) {
					t.Errorf("Approval(%q) = %v, want ErrBadID", id, err)
				}
				if err := s.RecordProposal(pending(id, t1)); !errors.Is(err, remediate.ErrBadID) {
					t.Errorf("RecordProposal(%q) = %v, want ErrBadID", id, err)
				}
				if err := s.PutApproval(remediate.Approval{Proposal: id}); !errors.Is(err, remediate.ErrBadID) {
					t.Errorf("PutApproval(%q) = %v, want ErrBadID", id, err)
				}
			}
		}},
		{"proposals newest first", func(t *testing.T, s remediate.Store) {
			for i, id := range []string{"p1", "p3", "p2"} {
				at := t1.Add(time.Duration([]int{1, 3, 2}[i]) * time.Minute)
				if err := s.RecordProposal(pending(id, at)); err != nil {
					t.Fatal(err)
				}
			}
			ps, err := s.Proposals()
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range ps {
				ids = append(ids, p.Proposal.ID)
			}
			if diff := cmp.Diff([]string{"p3", "p2", "p1"}, ids); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
		}},
		{"approval round trip and deny replaces it", func(t *testing.T, s remediate.Store) {
			a := approval("abc125")
			a.AllowRestart = true
			if err := s.PutApproval(a); err != nil {
				t.Fatal(err)
			}
			got, err := s.Approval("abc125")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(a, got); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
			d := approval("abc125")
			d.Denied, d.Expires = true, d.Created
			if err := s.PutApproval(d); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Approval("abc125"); !got.Denied || got.AllowRestart {
				t.Fatalf("after deny: %+v", got)
			}
			if _, err := s.UseApproval("abc125", "c-1", t1); !errors.Is(err, remediate.ErrApprovalDenied) {
				t.Fatalf("UseApproval of a denial: %v, want ErrApprovalDenied", err)
			}
		}},
		{"expired approval is not used", func(t *testing.T, s remediate.Store) {
			if err := s.PutApproval(approval("abc126")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.UseApproval("abc126", "c-1", t1.Add(time.Hour)); !errors.Is(err, remediate.ErrApprovalExpired) {
				t.Fatalf("UseApproval at expiry: %v, want ErrApprovalExpired", err)
			}
			if got, _ := s.Approval("abc126"); got.UsedBy != "" {
				t.Fatalf("an expired approval was marked used: %+v", got)
			}
		}},
		{"used once, even with concurrent users", func(t *testing.T, s remediate.Store) {
			if err := s.PutApproval(approval("abc127")); err != nil {
				t.Fatal(err)
			}
			wins, used := UseConcurrently(t, []remediate.Store{s}, "abc127", 8, t1)
			if len(wins) != 1 || used != 7 {
				t.Fatalf("UseApproval: %d succeeded, %d refused as used; want 1 and 7", len(wins), used)
			}
			got, err := s.Approval("abc127")
			if err != nil {
				t.Fatal(err)
			}
			if got.UsedBy != wins[0] || !got.UsedAt.Equal(t1) {
				t.Fatalf("used by %q at %v, want %q at %v", got.UsedBy, got.UsedAt, wins[0], t1)
			}
			if _, err := s.UseApproval("abc127", "c-late", t1); !errors.Is(err, remediate.ErrApprovalUsed) {
				t.Fatalf("a later use: %v, want ErrApprovalUsed", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

// UseConcurrently has n goroutines per store use approval id at once, each
// with its own change id. It returns the changes that won and the count of
// ErrApprovalUsed; any other error fails the test.
func UseConcurrently(t *testing.T, stores []remediate.Store, id string, n int, now time.Time) (wins []string, used int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	for si, s := range stores {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				change := fmt.Sprintf("c-%d-%d", si, i)
				<-start
				_, err := s.UseApproval(id, change, now)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins = append(wins, change)
				case errors.Is(err, remediate.ErrApprovalUsed):
					used++
				default:
					t.Error(err)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	return wins, used
}
