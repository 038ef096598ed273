package netns

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNetnsNewAndDo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	path, release, err := New(fmt.Sprintf("sw-test-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := release(); err != nil {
			t.Error(err)
		}
	}()
	host, err := ID("")
	if err != nil {
		t.Fatal(err)
	}
	var inside uint64
	var somax string
	err = Do(path, func() error {
		var err error
		if inside, err = ID(""); err != nil {
			return err
		}
		// Written inside the throwaway namespace only.
		if err := os.WriteFile("/proc/sys/net/core/somaxconn", []byte("77\n"), 0); err != nil {
			return err
		}
		b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
		somax = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside == host {
		t.Fatalf("Do ran in the host namespace (inode %d)", host)
	}
	if somax != "77" {
		t.Fatalf("somaxconn inside = %q, want 77", somax)
	}
	after, _ := ID("")
	if after != host {
		t.Fatalf("thread not restored: %d != %d", after, host)
	}
	b, _ := os.ReadFile("/proc/sys/net/core/somaxconn")
	if strings.TrimSpace(string(b)) == "77" {
		t.Fatal("host somaxconn changed")
	}
}

func TestDoBadPath(t *testing.T) {
	err := Do("/nonexistent/ns", func() error { return nil })
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/ns") {
		t.Fatalf("want error naming the path, got %v", err)
	}
}

// A namespace file must stay removable after `ip netns add` runs: New binds
// its directory on itself first, as ip does, so ip never stacks a second
// mount over files New bound (they were then neither unmountable nor
// removable: EBUSY, and lab's clean-up failed on every later run).
func TestNetnsSharedRunDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := t.TempDir()
	mounts := func() int {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 6 && f[4] == dir && strings.Contains(l, " shared:") {
				n++
			}
		}
		return n
	}
	t.Cleanup(func() {
		for mounts() > 0 {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := range 2 {
		if err := sharedRunDir(dir); err != nil {
			t.Fatal(err)
		}
		if n := mounts(); n != 1 {
			t.Fatalf("after call %d: %d shared mounts on %s, want 1", i+1, n, dir)
		}
	}
}
