package main

import (
	"runtime/debug"
	"testing"
)

// gcPercentAfter runs oneShotGC for the command at path (from the root)
// and returns the GC percent it left, restoring Go's default.
func gcPercentAfter(t *testing.T, path ...string) int {
	t.Helper()
	cmd, _, err := newRootCmd().Find(path)
	if err != nil || cmd.Name() != path[len(path)-1] {
		t.Fatalf("no command %v: %v", path, err)
	}
	debug.SetGCPercent(100)
	oneShotGC(cmd)
	return debug.SetGCPercent(100)
}

func TestOneShotGC(t *testing.T) {
	t.Setenv("GOGC", "")
	for _, path := range [][]string{{"sample"}, {"diagnose"}, {"collect"}} {
		if got := gcPercentAfter(t, path...); got != 400 {
			t.Errorf("%v: GC percent %d, want 400 for a short-lived command", path, got)
		}
	}
	for _, path := range [][]string{{"agent"}, {"lab", "run"}} {
		if got := gcPercentAfter(t, path...); got != 100 {
			t.Errorf("%v: GC percent %d, want Go's default for a long-running command", path, got)
		}
	}
	t.Setenv("GOGC", "50")
	if got := gcPercentAfter(t, "sample"); got != 100 {
		t.Errorf("sample with GOGC set: GC percent %d, want it left to GOGC", got)
	}
}
