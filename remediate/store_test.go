package remediate

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
