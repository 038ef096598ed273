package main

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

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
