package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/internal/netns"
)

func TestScenarioPID(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		ok   bool
	}{
		{"sw-lab-1234-1", 1234, true},
		{"sw-lab-1234-x", 0, false},
		{"sw-lab-1234", 0, false},
		{"sw-lab--1", 0, false},
		{"sw-capA", 0, false},
		{"web", 0, false},
	}
	for _, tc := range tests {
		pid, ok := scenarioPID(tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("scenarioPID(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

// Not parallel: every Start in this process cleans stale namespaces too and
// would take the fixture away.
func TestNetnsCleanStale(t *testing.T) {
	needRoot(t)
	// A pid that existed and is gone.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	if processAlive(dead) {
		t.Skipf("pid %d reused already", dead)
	}
	stale := fmt.Sprintf("sw-lab-%d-1", dead)
	live := fmt.Sprintf("sw-lab-%d-999999", os.Getpid())
	var releases []func() error
	for _, name := range []string{stale, live} {
		_, release, err := netns.New(name)
		if name == stale && errors.Is(err, os.ErrNotExist) {
			t.Skip("a lab run in another test binary cleaned the stale fixture first")
		}
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	t.Cleanup(func() { _ = releases[1]() })
	removed, err := CleanStale()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, stale) || slices.Contains(removed, live) {
		t.Errorf("removed %v: want %s and not %s", removed, stale, live)
	}
	if _, err := os.Stat(netnsDir + "/" + stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there: %v", stale, err)
	}
	if _, err := os.Stat(netnsDir + "/" + live); err != nil {
		t.Errorf("%s (ours, alive) removed: %v", live, err)
	}
}

func TestProcessAliveZombie(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if !processAlive(os.Getpid()) {
		t.Fatal("own process not alive")
	}
	// Unreaped, the child is a zombie once it exits.
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if processAlive(pid) {
		t.Errorf("zombie %d counted alive", pid)
	}
	_ = cmd.Wait()
	if processAlive(pid) {
		t.Errorf("reaped %d counted alive", pid)
	}
}
