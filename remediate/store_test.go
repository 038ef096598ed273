package remediate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/diagnose"
)

func TestOpenStateDir(t *testing.T) {
	base := t.TempDir()
	tests := []struct {
		name  string
		setup func(p string)
		ok    bool
	}{
		{"created 0700", func(string) {}, true},
		{"existing 0700", func(p string) { os.Mkdir(p, 0o700) }, true},
		{"existing 0755", func(p string) { os.Mkdir(p, 0o755) }, true},
		{"group writable", func(p string) { os.Mkdir(p, 0o770); os.Chmod(p, 0o770) }, false},
		{"world writable", func(p string) { os.Mkdir(p, 0o777); os.Chmod(p, 0o777) }, false},
		{"symlink", func(p string) { d := p + "-real"; os.Mkdir(d, 0o700); os.Symlink(d, p) }, false},
		{"a file", func(p string) { os.WriteFile(p, nil, 0o600) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(base, tc.name)
			tc.setup(p)
			err := OpenStateDir(p)
			if (err == nil) != tc.ok {
				t.Fatalf("OpenStateDir = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrUnsafeState) {
				t.Fatalf("%v is not ErrUnsafeState", err)
			}
			if tc.name == "created 0700" {
				st, _ := os.Stat(p)
				if st.Mode().Perm() != 0o700 {
					t.Fatalf("mode %v, want 0700", st.Mode().Perm())
				}
			}
		})
	}
	if err := OpenStateDir("relative/dir"); err == nil {
		t.Fatal("relative state dir accepted")
	}
}

func TestJournalAppendAndFold(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	vals := []Value{{Key: "net.core.somaxconn", Old: "128", New: "1024"}}
	recs := []Record{
		{Time: t0, Proposal: "p1", State: StateProposed},
		{Time: t0.Add(time.Second), Proposal: "p1", State: StateApproved, Approver: "root (uid 0)"},
		{Time: t0.Add(2 * time.Second), Change: "c1", Proposal: "p1", State: StateApplying, Netns: "/run/netns/x", Values: vals, Approver: "root (uid 0)", Reason: "why"},
		{Time: t0.Add(3 * time.Second), Change: "c1", Proposal: "p1", State: StateApplied},
		{Time: t0.Add(4 * time.Second), Change: "c1", Proposal: "p1", State: StateVerifying},
	}
	for _, r := range recs {
		if err := j.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	// A crash mid-append leaves a torn line; the next append must still
	// be readable and the torn line skipped.
	f, _ := os.OpenFile(j.Path(), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time":"2026-11-24T00:00:05Z","change":"c1","sta`)
	f.Close()
	if err := j.Append(Record{Time: t0.Add(6 * time.Second), Change: "c1", Proposal: "p1", State: StateVerified, Reason: "drops stopped"}); err != nil {
		t.Fatal(err)
	}
	got, bad, err := j.Records()
	if err != nil {
		t.Fatal(err)
	}
	if bad != 1 || len(got) != 6 {
		t.Fatalf("records = %d, bad = %d; want 6 and 1", len(got), bad)
	}
	ch := Changes(got)
	want := []Change{{
		ID: "c1", Proposal: "p1", State: StateVerified, Netns: "/run/netns/x", Values: vals,
		Approver: "root (uid 0)", Reason: "drops stopped", Started: t0.Add(2 * time.Second), Updated: t0.Add(6 * time.Second),
		PID: os.Getpid(), History: []State{StateApplying, StateApplied, StateVerifying, StateVerified},
	}}
	if diff := cmp.Diff(want, ch); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	st, _ := os.Stat(j.Path())
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("journal mode %v, want 0600", st.Mode().Perm())
	}
}

// storeContract is the Store contract: every implementation (FileStore,
// EtcdStore) runs the same cases. open returns a fresh, empty store; all
// of its proposals are for host "h1".
func storeContract(t *testing.T, open func(t *testing.T) Store) {
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pending := func(id string, at time.Time) Pending {
		return Pending{Proposal: diagnose.Proposal{ID: id, Host: "h1", Netns: "/run/netns/x", Finding: diagnose.KindAcceptQueueOverflow,
			Subject: "127.0.0.1:8080", Ready: true, Reason: "why",
			Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "128", Proposed: "1024"}}},
			Side: diagnose.SideKernel, Recorded: at, LastSeen: at, Source: "test"}
	}
	approval := func(id string) Approval {
		p := pending(id, t1).Proposal
		return Approval{Proposal: id, Host: p.Host, Netns: p.Netns, Changes: p.Changes, Approver: Approver{UID: 0, User: "root", SudoUser: "alice"},
			Comment: "ok", Created: t1, Expires: t1.Add(time.Hour)}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s Store)
	}{
		{"record keeps the first time and updates last seen", func(t *testing.T, s Store) {
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
		{"record fills in missing times", func(t *testing.T, s Store) {
			p := pending("abc124", time.Time{})
			if err := s.RecordProposal(p); err != nil {
				t.Fatal(err)
			}
			got, err := s.Proposal("abc124")
			if err != nil || got.Recorded.IsZero() || !got.LastSeen.Equal(got.Recorded) {
				t.Fatalf("got %+v, %v: want Recorded set and LastSeen = Recorded", got, err)
			}
		}},
		{"missing is ErrNotFound", func(t *testing.T, s Store) {
			if _, err := s.Proposal("feedface"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Proposal: %v, want ErrNotFound", err)
			}
			if _, err := s.Approval("feedface"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Approval: %v, want ErrNotFound", err)
			}
			if _, err := s.UseApproval("feedface", "c-1", t1); !errors.Is(err, ErrNotFound) {
				t.Errorf("UseApproval: %v, want ErrNotFound", err)
			}
		}},
		{"bad ids are refused", func(t *testing.T, s Store) {
			for _, id := range []string{"../x", "a/b", "", ".hidden", "a..b"} {
				if _, err := s.Proposal(id); !errors.Is(err, ErrBadID) {
					t.Errorf("Proposal(%q) = %v, want ErrBadID", id, err)
				}
				if _, err := s.Approval(id); !errors.Is(err, ErrBadID) {
					t.Errorf("Approval(%q) = %v, want ErrBadID", id, err)
				}
				if err := s.RecordProposal(pending(id, t1)); !errors.Is(err, ErrBadID) {
					t.Errorf("RecordProposal(%q) = %v, want ErrBadID", id, err)
				}
				if err := s.PutApproval(Approval{Proposal: id}); !errors.Is(err, ErrBadID) {
					t.Errorf("PutApproval(%q) = %v, want ErrBadID", id, err)
				}
			}
		}},
		{"proposals newest first", func(t *testing.T, s Store) {
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
		{"approval round trip and deny replaces it", func(t *testing.T, s Store) {
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
			if _, err := s.UseApproval("abc125", "c-1", t1); !errors.Is(err, ErrApprovalDenied) {
				t.Fatalf("UseApproval of a denial: %v, want ErrApprovalDenied", err)
			}
		}},
		{"expired approval is not used", func(t *testing.T, s Store) {
			if err := s.PutApproval(approval("abc126")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.UseApproval("abc126", "c-1", t1.Add(time.Hour)); !errors.Is(err, ErrApprovalExpired) {
				t.Fatalf("UseApproval at expiry: %v, want ErrApprovalExpired", err)
			}
			if got, _ := s.Approval("abc126"); got.UsedBy != "" {
				t.Fatalf("an expired approval was marked used: %+v", got)
			}
		}},
		{"used once, even with concurrent users", func(t *testing.T, s Store) {
			if err := s.PutApproval(approval("abc127")); err != nil {
				t.Fatal(err)
			}
			wins, used := useConcurrently(t, []Store{s}, "abc127", 8, t1)
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
			if _, err := s.UseApproval("abc127", "c-late", t1); !errors.Is(err, ErrApprovalUsed) {
				t.Fatalf("a later use: %v, want ErrApprovalUsed", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

// useConcurrently has n goroutines per store use approval id at once, each
// with its own change id. It returns the changes that won and the count of
// ErrApprovalUsed; any other error fails the test.
func useConcurrently(t *testing.T, stores []Store, id string, n int, now time.Time) (wins []string, used int) {
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
				case errors.Is(err, ErrApprovalUsed):
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

func TestFileStoreContract(t *testing.T) {
	storeContract(t, func(t *testing.T) Store {
		s, err := OpenFileStore(filepath.Join(t.TempDir(), "state"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestFileStoreRefusesOpenFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutApproval(Approval{Proposal: "abc123", Approver: Approver{UID: 0, User: "root"}}); err != nil {
		t.Fatal(err)
	}
	// A file others may read or write is refused.
	ap := filepath.Join(dir, "approvals", "abc123.json")
	os.Chmod(ap, 0o644)
	if _, err := s.Approval("abc123"); !errors.Is(err, ErrUnsafeState) {
		t.Fatalf("0644 approval file: %v, want ErrUnsafeState", err)
	}
}

func TestOpenProposals(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	recs := []Record{
		{Time: t0, Proposal: "a", State: StateProposed},
		{Time: t0.Add(1), Proposal: "a", State: StateApproved, Approver: "root (uid 0)"},
		{Time: t0.Add(2), Proposal: "b", State: StateProposed},
		{Time: t0.Add(3), Proposal: "b", State: StateApproved},
		{Time: t0.Add(4), Proposal: "b", Change: "c1", State: StateApplying},
		{Time: t0.Add(5), Proposal: "c", State: StateRefused, Guard: GuardApproval, Reason: "no approval"},
	}
	want := []ProposalState{
		{Proposal: "a", State: StateApproved, Time: t0.Add(1), Approver: "root (uid 0)"},
		{Proposal: "c", State: StateRefused, Time: t0.Add(5), Guard: GuardApproval, Reason: "no approval"},
	}
	if diff := cmp.Diff(want, OpenProposals(recs)); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
}
