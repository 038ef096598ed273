//go:build !sockwarden_testhooks

package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStallHookNotInRelease: a binary built without the
// sockwarden_testhooks tag ignores SWTEST_STALL_FILE, even when the file
// exists; only the nspawn test's build can stall its loop.
func TestStallHookNotInRelease(t *testing.T) {
	stall := filepath.Join(t.TempDir(), "stall")
	if err := os.WriteFile(stall, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SWTEST_STALL_FILE", stall)
	a := &Agent{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.stallIfAsked(ctx)
	if ctx.Err() != nil {
		t.Fatal("the loop stalled on SWTEST_STALL_FILE in a build without sockwarden_testhooks")
	}
}
