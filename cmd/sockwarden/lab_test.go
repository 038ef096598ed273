package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/sockwarden/sockwarden/internal/netns"
	"github.com/sockwarden/sockwarden/lab"
)

func TestLabList(t *testing.T) {
	out, errOut, code := runCLI(t, "lab", "list")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, name := range lab.Names() {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+\S`).MatchString(out) {
			t.Errorf("lab list lacks a line for %s:\n%s", name, out)
		}
	}
	out, _, _ = runCLI(t, "lab", "list", "-v")
	if !strings.Contains(out, "sysctl (namespace only): net.core.somaxconn = 64") {
		t.Errorf("lab list -v lacks somaxconn-capped's namespace sysctl:\n%s", out)
	}
}

func TestLabRunUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no scenario", []string{"lab", "run"}, "accepts 1 arg"},
		{"unknown", []string{"lab", "run", "no-such"}, `unknown lab scenario: "no-such"`},
		{"zero duration", []string{"lab", "run", lab.BacklogCapped, "--duration", "0s"}, "--duration: must be positive"},
		{"empty in-netns", []string{"lab", "run", lab.BacklogCapped, "--in-netns", ""}, "--in-netns: empty path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, tc.args...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, exitUsage, tc.want)
			}
		})
	}
}

// TestNetnsLabRun runs a scenario through the CLI for its whole (short)
// duration: it prints where to look and removes its namespace at the end.
func TestNetnsLabRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	t.Parallel()
	out, errOut, code := runCLI(t, "lab", "run", lab.SomaxconnCapped, "--duration", "2s", "--relisten", "--log-level", "error")
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	m := regexp.MustCompile(`running in network namespace (/run/netns/(sw-lab-\S+))`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no namespace in the output:\n%s", out)
	}
	for _, want := range []string{
		"ss -N " + m[2] + " -tln",
		"sockwarden diagnose --netns " + m[1],
		"application: somaxconn-app (pid ",
		"scenario somaxconn-capped stopped, namespace " + m[2] + " removed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after the run: %v", m[1], err)
	}
}

// TestNetnsLabRunInNetns runs a scenario through the CLI in a namespace that
// exists before it (--in-netns): the namespace is kept and its somaxconn
// restored at the end.
func TestNetnsLabRunInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	t.Parallel()
	name := fmt.Sprintf("sw-test-cli-in-netns-%d", os.Getpid())
	path, release, err := netns.New(name)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	somaxconn := func() string {
		var b []byte
		if err := netns.Do(path, func() error {
			var err error
			b, err = os.ReadFile("/proc/sys/net/core/somaxconn")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	before := somaxconn()
	out, errOut, code := runCLI(t, "lab", "run", lab.SomaxconnCapped, "--duration", "2s", "--relisten", "--in-netns", path, "--log-level", "error")
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"running in network namespace " + path,
		"its sysctls are restored on stop",
		"ss -N " + name + " -tln",
		"scenario somaxconn-capped stopped, sysctls restored in " + path + " (namespace kept)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("%s gone after the run: %v", path, err)
	}
	if after := somaxconn(); after != before {
		t.Errorf("somaxconn in %s: %s before the run, %s after", path, before, after)
	}
}

// TestNetnsLabRunInNetnsRefused: --in-netns naming the machine's initial
// namespace (the test's own here) fails before anything is written.
func TestNetnsLabRunInNetnsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat("/run/systemd/container"); err == nil {
		t.Skip("inside a container: its PID 1's namespace is its own")
	}
	self, _ := netns.ID("/proc/self/ns/net")
	kthreadd, err := netns.ID("/proc/2/ns/net")
	if err != nil || self != kthreadd {
		t.Skip("the test does not run in the kernel threads' (initial) namespace")
	}
	before, _ := os.ReadFile("/proc/sys/net/core/somaxconn")
	out, errOut, code := runCLI(t, "lab", "run", lab.SomaxconnCapped, "--duration", "2s", "--in-netns", "/proc/self/ns/net")
	if code != exitFailed || !strings.Contains(errOut, "refusing the machine's initial network namespace") {
		t.Errorf("exit %d, stderr %q, stdout %q; want %d and a refusal", code, errOut, out, exitFailed)
	}
	if after, _ := os.ReadFile("/proc/sys/net/core/somaxconn"); string(after) != string(before) {
		t.Errorf("the host's somaxconn changed: %s -> %s", before, after)
	}
}
