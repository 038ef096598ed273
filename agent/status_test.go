package agent

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/config"
)

// TestStatusSamplingUntilDiagnosed: a new agent says "sampling" (not
// "healthy") until its own namespace was sampled and judged; one tick (a
// read-only census of this namespace) later it says what it found.
// Before, a fresh agent reported "healthy" with nothing read.
func TestStatusSamplingUntilDiagnosed(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Agent.ControlSocket = filepath.Join(dir, "control.sock")
	cfg.Agent.Mode = "observe"
	cfg.Diagnose.Samples, cfg.Diagnose.Interval = 1, time.Second
	cfg.Sample.WatchInterval = 0
	a, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	st := a.Status()
	if st.Ready || st.Diagnosed || st.Line != "sampling (no sample yet) (observe mode)" {
		t.Fatalf("before the first tick: ready %v diagnosed %v line %q", st.Ready, st.Diagnosed, st.Line)
	}
	if err := a.tickNS(context.Background(), a.ns[0]); err != nil {
		t.Skipf("cannot sample this namespace here: %v", err)
	}
	st = a.Status()
	if !st.Ready || !st.Diagnosed || strings.HasPrefix(st.Line, "sampling") {
		t.Fatalf("after a tick: ready %v diagnosed %v line %q", st.Ready, st.Diagnosed, st.Line)
	}
}
