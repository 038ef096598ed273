package netns

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "gone")
	os.WriteFile(empty, nil, 0o644)
	text := filepath.Join(dir, "text")
	os.WriteFile(text, []byte("hello\n"), 0o644)
	tests := []struct {
		path, want string // want "" = accepted
	}{
		{"", ""},
		{"/proc/self/ns/net", ""},
		{"/proc/thread-self/ns/net", ""},
		{"run/netns/x", "is not an absolute path"},
		{filepath.Join(dir, "absent"), "does not exist"},
		{dir, "is a directory, not a namespace file"},
		{empty, "is an empty file, not a namespace"},
		{text, "is an ordinary file, not a namespace file"},
		{"/dev/null", "is not a namespace file"},
		{"/proc/self/ns/uts", "is a uts namespace, not a network namespace"},
	}
	for _, tt := range tests {
		err := Check(tt.path)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Check(%q) = %v, want nil", tt.path, err)
		case tt.want != "" && (!errors.Is(err, ErrNetns) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path)):
			t.Errorf("Check(%q) = %v, want ErrNetns naming the path and %q", tt.path, err, tt.want)
		}
	}
}

// TestDoSaysWhatThePathIs: entering something that is not a network
// namespace fails with Check's description, not setns's "invalid
// argument" (what the agent showed for a bad agent.netns entry).
func TestDoSaysWhatThePathIs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setns needs root")
	}
	dir := t.TempDir()
	text := filepath.Join(dir, "web")
	os.WriteFile(text, []byte("x\n"), 0o644)
	for _, tt := range []struct{ path, want string }{
		{text, "is an ordinary file"},
		{dir, "is a directory"},
		{"/proc/self/ns/uts", "is a uts namespace"},
	} {
		err := Do(tt.path, func() error { return nil })
		if !errors.Is(err, ErrNetns) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Do(%s) = %v, want %q", tt.path, err, tt.want)
		}
	}
}
