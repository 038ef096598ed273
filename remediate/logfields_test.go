package remediate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sockwarden/sockwarden/config"
)

// TestLogFieldsWriteAndRestore: the write and the restore of one change
// carry the same fields (KEY, OLD, NEW, CHANGE, PROPOSAL, NETNS), the
// namespace spelled as the agent spells it, so that one journalctl query
// finds both. Before, the restore said from/to, without change or
// proposal, and the namespace was "" here and "host" in the agent.
func TestLogFieldsWriteAndRestore(t *testing.T) {
	w := newWorld(t)
	cfg := config.Defaults()
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Verify.Window, cfg.Verify.Interval, cfg.Verify.MinCleanIntervals = 250*time.Millisecond, 10*time.Millisecond, 2
	core, logs := observer.New(zap.InfoLevel)
	e, err := New(Options{Config: cfg, Host: w.host, ProcSys: w.root, Sampler: w, Diagnose: w.diagnose, Log: zap.New(core), Clock: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	id := w.propose(e)
	if _, err := e.Approve(id, ApproveOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	if err != nil || out.State != StateRolledBack {
		t.Fatalf("apply: %s (%s) %v; want rolled-back (the app never listens again)", out.State, out.Reason, err)
	}
	fields := func(msg string) map[string]any {
		t.Helper()
		es := logs.FilterMessage(msg).All()
		if len(es) != 1 {
			t.Fatalf("%d entries %q, want 1", len(es), msg)
		}
		got := es[0].ContextMap()
		for _, k := range []string{"reason", "approver"} {
			delete(got, k)
		}
		return got
	}
	want := map[string]any{"key": "net.core.somaxconn", "old": "128", "new": "1024", "netns": HostNetns, "change": out.Change, "proposal": id}
	if diff := cmp.Diff(want, fields("writing sysctl")); diff != "" {
		t.Errorf("writing sysctl (-want +got):\n%s", diff)
	}
	want = map[string]any{"key": "net.core.somaxconn", "old": "1024", "new": "128", "netns": HostNetns, "change": out.Change, "proposal": id, "state": "rolled-back"}
	if diff := cmp.Diff(want, fields("sysctl restored")); diff != "" {
		t.Errorf("sysctl restored (-want +got):\n%s", diff)
	}
}

// TestStateLegacySpelling: a journal line with the other spelling of
// rolled-back reads as rolled-back (one form written, both read).
func TestStateLegacySpelling(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := `{"time":"2026-11-24T00:32:37Z","change":"c-1","proposal":"p1","state":"applying","values":[{"key":"net.core.somaxconn","old":"128","new":"1024"}]}
{"time":"2026-11-24T00:33:37Z","change":"c-1","proposal":"p1","state":"rolled_back"}
`
	if err := os.WriteFile(j.Path(), []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := j.ChangeByID("c-1")
	if err != nil {
		t.Fatal(err)
	}
	if c.State != StateRolledBack {
		t.Errorf("state %q, want %q", c.State, StateRolledBack)
	}
	b, _ := json.Marshal(c.State)
	if string(b) != `"rolled-back"` {
		t.Errorf("written as %s, want \"rolled-back\"", b)
	}
}
