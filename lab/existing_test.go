package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/internal/netns"
)

// These tests build scenarios in a namespace that exists before the lab
// runs (Options.Netns), as `lab run --in-netns` does inside a container.
// The "existing" namespace is a throwaway one the test creates itself, so
// that nothing outside it is written.

// readSysctl reads a sysctl inside the namespace at path ("" for the
// caller's own).
func readSysctl(t *testing.T, path, key string) string {
	t.Helper()
	var v string
	err := netns.Do(path, func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")))
		v = strings.Join(strings.Fields(string(b)), " ")
		return err
	})
	if err != nil {
		t.Fatalf("read %s in %q: %v", key, path, err)
	}
	return v
}

// existingNetns makes a namespace the test owns, removed at its end.
func existingNetns(t *testing.T) (name, path string) {
	t.Helper()
	name = fmt.Sprintf("sw-test-existing-%d-%d", os.Getpid(), seq.Add(1))
	path, release, err := netns.New(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Error(err)
		}
	})
	return name, path
}

func TestNetnsExistingSomaxconnRestored(t *testing.T) {
	needRoot(t)
	t.Parallel()
	name, path := existingNetns(t)
	// A value of the test's own, so that "restored" cannot be confused
	// with the kernel's default.
	if err := setSysctls(path, []Sysctl{{"net.core.somaxconn", "1000"}}, nil); err != nil {
		t.Fatal(err)
	}
	hostBefore := readSysctl(t, "", "net.core.somaxconn")

	env, err := Start(context.Background(), SomaxconnCapped, Options{Duration: time.Minute, Netns: path})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			env.Stop()
		}
	})
	if env.Netns != path || env.Name != name {
		t.Errorf("Env.Netns %q, Env.Name %q; want %q, %q", env.Netns, env.Name, path, name)
	}
	if got := readSysctl(t, path, "net.core.somaxconn"); got != fmt.Sprint(SomaxconnCap) {
		t.Errorf("somaxconn in the namespace during the scenario: %s, want %d", got, SomaxconnCap)
	}
	// The kernel's oracle: the application's listener, in that namespace,
	// is capped at the scenario's somaxconn.
	l := listener(t, env)
	if l.SendQ != SomaxconnCap {
		t.Errorf("Send-Q %d, want the scenario's somaxconn %d (%+v)", l.SendQ, SomaxconnCap, l)
	}

	if err := env.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	stopped = true
	if got := readSysctl(t, path, "net.core.somaxconn"); got != "1000" {
		t.Errorf("somaxconn after Stop: %s, want the old value 1000 restored", got)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the existing namespace %s is gone after Stop: %v", path, err)
	}
	if id, err := netns.ID(path); err != nil || id == 0 {
		t.Errorf("%s is no longer a namespace after Stop: %d, %v", path, id, err)
	}
	if got := readSysctl(t, "", "net.core.somaxconn"); got != hostBefore {
		t.Errorf("the test's own namespace's somaxconn changed: %s -> %s", hostBefore, got)
	}
}

// TestNetnsExistingRefusesInitial: this machine's initial namespace is
// refused before anything is written, whether named as PID 1's or as the
// test's own (the test runs in it).
func TestNetnsExistingRefusesInitial(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(containerMarker); err == nil {
		t.Skipf("%s exists: PID 1 here is a container's init, whose namespace the lab may use", containerMarker)
	}
	self, err := netns.ID("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	kthread, kok := kthreaddNetns()
	pid1, perr := netns.ID("/proc/1/ns/net")
	if !(kok && self == kthread) && !(perr == nil && self == pid1) {
		t.Skip("the test does not run in the machine's initial namespace")
	}
	before := readSysctl(t, "", "net.core.somaxconn")
	for _, path := range []string{"/proc/1/ns/net", "/proc/self/ns/net"} {
		env, err := Start(context.Background(), SomaxconnCapped, Options{Duration: time.Minute, Netns: path})
		if err == nil {
			env.Stop()
			t.Fatalf("Start in %s (the initial namespace) succeeded", path)
		}
		t.Logf("%s: %v", path, err)
		// PID 1's namespace file may be unreadable (here PID 1 refuses
		// ptrace access): then the lab cannot tell and refuses too.
		if path == "/proc/1/ns/net" && perr != nil {
			if !errors.Is(err, ErrLab) || !strings.Contains(err.Error(), "/proc/1/ns/net") {
				t.Errorf("Start in %s: %v; want an ErrLab naming it", path, err)
			}
			continue
		}
		if !errors.Is(err, ErrHostNetns) {
			t.Errorf("Start in %s: %v; want ErrHostNetns", path, err)
		}
	}
	if after := readSysctl(t, "", "net.core.somaxconn"); after != before {
		t.Fatalf("the host's somaxconn changed: %s -> %s", before, after)
	}
}

// TestNetnsExistingContainerMarker: /run/systemd/container (here a
// stand-in file) makes PID 1's namespace acceptable, as it is a
// container's own; it never makes the kernel threads' namespace so. Only
// CheckNetns is called: nothing is written.
func TestNetnsExistingContainerMarker(t *testing.T) {
	needRoot(t)
	old := containerMarker
	containerMarker = filepath.Join(t.TempDir(), "container")
	t.Cleanup(func() { containerMarker = old })
	if err := os.WriteFile(containerMarker, []byte("systemd-nspawn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	checked := false
	kthread, kok := kthreaddNetns()
	if self, _ := netns.ID("/proc/self/ns/net"); kok && self == kthread {
		checked = true
		if err := CheckNetns("/proc/self/ns/net"); !errors.Is(err, ErrHostNetns) {
			t.Errorf("kthreadd's namespace with the container marker: %v, want ErrHostNetns", err)
		}
	}
	if pid1, err := netns.ID("/proc/1/ns/net"); err == nil && (!kok || pid1 != kthread) {
		checked = true
		if err := CheckNetns("/proc/1/ns/net"); err != nil {
			t.Errorf("PID 1's namespace with the container marker: %v", err)
		}
	}
	if !checked {
		t.Skip("neither kthreadd's namespace is ours nor PID 1's readable and distinct")
	}
}

func TestNetnsExistingRefusals(t *testing.T) {
	needRoot(t)
	t.Parallel()
	_, path := existingNetns(t)
	before := readSysctl(t, path, "net.ipv4.tcp_syncookies")
	tests := []struct {
		name, scenario, netns, want string
	}{
		{"firewall rules", SynRecvNoCookies, path, "adds iptables rules"},
		{"not a namespace", SomaxconnCapped, "/etc/hostname", "not a namespace file"},
		{"missing", SomaxconnCapped, "/run/netns/sw-test-no-such", "no such file"},
	}
	for _, tc := range tests {
		env, err := Start(context.Background(), tc.scenario, Options{Duration: time.Minute, Netns: tc.netns})
		if err == nil {
			env.Stop()
			t.Errorf("%s: Start succeeded", tc.name)
			continue
		}
		if !errors.Is(err, ErrLab) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an ErrLab saying %q", tc.name, err, tc.want)
		}
	}
	if after := readSysctl(t, path, "net.ipv4.tcp_syncookies"); after != before {
		t.Errorf("a refused scenario changed tcp_syncookies: %s -> %s", before, after)
	}
}
