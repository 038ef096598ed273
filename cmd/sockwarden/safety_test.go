package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
)

// recordProposal puts one proposal in a fresh state directory, as propose
// would.
func recordInjectProposal(t *testing.T) (dir, id string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "state")
	s, err := remediate.OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := diagnose.Proposal{ID: "p-inject", Finding: diagnose.KindAcceptQueueOverflow, Subject: "127.0.0.1:8080",
		Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "128", Proposed: "1024"}}}
	if err := s.RecordProposal(remediate.Pending{Proposal: p, Side: diagnose.SideKernel}); err != nil {
		t.Fatal(err)
	}
	return dir, p.ID
}

// A comment cannot add lines to history: newlines and other control
// characters are shown escaped. Before the fix the comment below printed a
// forged "verified" record line of its own.
func TestHistoryEscapesComments(t *testing.T) {
	dir, id := recordInjectProposal(t)
	forged := "1999-01-01T00:00:00Z  verified    p-inject c-forged"
	comment := "ok\n" + forged + "\r\x1b[2K\tdone"
	if _, errOut, code := runCLI(t, "approve", id, "--comment", comment, "--state-dir", dir); code != exitOK {
		t.Fatalf("approve: exit %d: %s", code, errOut)
	}
	for _, args := range [][]string{{"history", "--records"}, {"history"}} {
		out, errOut, code := runCLI(t, append(args, "--state-dir", dir)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "1999-01-01") || strings.ContainsAny(line, "\r\x1b") {
				t.Fatalf("%v: the comment injected a line or a control character:\n%s", args, out)
			}
		}
		if !strings.Contains(out, `ok\n1999-01-01T00:00:00Z`) || !strings.Contains(out, `\u001b[2K\tdone`) {
			t.Fatalf("%v: the comment is not shown escaped:\n%s", args, out)
		}
	}
}

// --ttl 0 or negative, or over remediate.max_approval_ttl, is a usage error
// and stores no approval. Before the fix each was taken as the default (or
// as given) and approve exited 0.
func TestApproveTTLUsage(t *testing.T) {
	for _, ttl := range []string{"0s", "-1h", "200h"} {
		t.Run(ttl, func(t *testing.T) {
			dir, id := recordInjectProposal(t)
			out, errOut, code := runCLI(t, "approve", id, "--ttl="+ttl, "--state-dir", dir)
			if code != exitUsage || !strings.Contains(errOut, "--ttl") {
				t.Fatalf("exit %d, want %d; %q %q", code, exitUsage, out, errOut)
			}
			s, _ := remediate.OpenFileStore(dir)
			if _, err := s.Approval(id); err == nil {
				t.Fatalf("--ttl %s stored an approval", ttl)
			}
		})
	}
}

// resolve of a change whose journal cannot prove its namespace: exit 3,
// the message the operator needs, nothing written.
func TestResolveUnprovenExit3(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j, err := remediate.OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Records without the namespace's identity: the kind a damaged
	// journal leaves (somaxconn is far above any value here, so even a
	// wrong rollback could not write it: the live value is not "ours").
	vals := []remediate.Value{{Key: "net.core.somaxconn", Old: "64", New: "999999"}}
	j.Append(remediate.Record{Change: "c-lost", Proposal: "p", State: remediate.StateVerifying, Values: vals, PID: 999999})
	out, errOut, code := runCLI(t, "resolve", "--state-dir", dir)
	want := "cannot prove which namespace change c-lost touched: restore by hand: "
	if code != exitFailed || !strings.Contains(out+errOut, want) || !strings.Contains(out+errOut, `net.core.somaxconn="64"`) {
		t.Fatalf("exit %d, want %d and %q; output:\n%s%s", code, exitFailed, want, out, errOut)
	}
}
