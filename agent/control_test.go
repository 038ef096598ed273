package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
)

func serveControl(t *testing.T, allow func(Peer) bool, st Status) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "control.sock")
	s, err := ListenControl(path, zap.NewNop(), func() Status { return st }, allow)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func TestControlStatus(t *testing.T) {
	want := Status{Schema: StatusSchema, Mode: "propose", Line: "1 proposal pending",
		Pending: []ProposalBrief{{ID: "p-1", Finding: "accept-queue-overflow", Changes: []string{"net.core.somaxconn 128->1024"}}}}
	path := serveControl(t, func(p Peer) bool { return p.UID == os.Getuid() }, want)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode = %o, want 600", perm)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := QueryStatus(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

// The policy sees the kernel's SO_PEERCRED for the real client: a policy
// that admits only another uid refuses this process.
func TestControlRefusesByPeerCredentials(t *testing.T) {
	var seen Peer
	path := serveControl(t, func(p Peer) bool { seen = p; return p.UID == os.Getuid()+1 }, Status{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := QueryStatus(ctx, path)
	if !errors.Is(err, ErrNotRoot) {
		t.Fatalf("QueryStatus error = %v, want ErrNotRoot", err)
	}
	if seen.PID != os.Getpid() || seen.UID != os.Getuid() {
		t.Errorf("peer = %+v, want pid %d uid %d", seen, os.Getpid(), os.Getuid())
	}
}

func TestRootOnly(t *testing.T) {
	for _, tc := range []struct {
		p    Peer
		want bool
	}{{Peer{UID: 0}, true}, {Peer{UID: 1000}, false}, {Peer{UID: 65534, GID: 0}, false}} {
		if got := RootOnly(tc.p); got != tc.want {
			t.Errorf("RootOnly(%+v) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestControlReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	s1, err := ListenControl(path, zap.NewNop(), func() Status { return Status{} }, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a crash: the listener goes, the file stays.
	s1.ln.SetUnlinkOnClose(false)
	s1.ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket file missing: %v", err)
	}
	s2, err := ListenControl(path, zap.NewNop(), func() Status { return Status{} }, nil)
	if err != nil {
		t.Fatalf("second listen over a stale socket: %v", err)
	}
	defer s2.ln.Close()
	// But a live agent is not displaced.
	if _, err := ListenControl(path, zap.NewNop(), func() Status { return Status{} }, nil); err == nil {
		t.Error("listen over a live socket succeeded, want an error")
	}
}

func TestQueryStatusNoAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := QueryStatus(ctx, filepath.Join(t.TempDir(), "none.sock"))
	if !errors.Is(err, ErrControl) {
		t.Fatalf("error = %v, want ErrControl", err)
	}
}
