package lab

import (
	"errors"
	"os"
	"testing"
)

// TestSetSysctlsRefuses checks that the lab's writer refuses, before any
// write, a key that is not a namespace's (or leaves /proc/sys/net), a
// value of several lines and a missing namespace path; the host's
// somaxconn is the same after.
func TestSetSysctlsRefuses(t *testing.T) {
	before, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Skip(err)
	}
	for name, tc := range map[string]struct {
		path string
		kv   []Sysctl
	}{
		"global key":      {"/nonexistent/ns", []Sysctl{{"fs.file-max", "100"}}},
		"path escape":     {"/nonexistent/ns", []Sysctl{{"net.core/../../kernel/x", "1"}}},
		"dot dot":         {"/nonexistent/ns", []Sysctl{{"net..core", "1"}}},
		"second is bad":   {"/nonexistent/ns", []Sysctl{{"net.core.somaxconn", "64"}, {"kernel.panic", "1"}}},
		"two lines":       {"/nonexistent/ns", []Sysctl{{"net.core.somaxconn", "64\n128"}}},
		"no namespace":    {"", []Sysctl{{"net.core.somaxconn", "64"}}},
		"bare net prefix": {"/nonexistent/ns", []Sysctl{{"net", "1"}}},
	} {
		if err := setSysctls(tc.path, tc.kv, nil); !errors.Is(err, ErrLabSysctl) {
			t.Errorf("%s: got %v, want ErrLabSysctl", name, err)
		}
	}
	after, _ := os.ReadFile("/proc/sys/net/core/somaxconn")
	if string(after) != string(before) {
		t.Fatalf("host somaxconn changed: %q -> %q", before, after)
	}
}
