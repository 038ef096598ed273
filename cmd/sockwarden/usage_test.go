package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsageErrorsCreateNoStateDir: a command refused for its arguments
// (exit 2) leaves the host as it was: the state directory it names is not
// created. Before, every one of these made it (0700, journal, store).
func TestUsageErrorsCreateNoStateDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"approve bad id", []string{"approve", "../x"}, "invalid id"},
		{"approve unknown id", []string{"approve", "feedfacecafe"}, "not found"},
		{"approve bad ttl flag", []string{"approve", "--ttl", "soon", "feedfacecafe"}, "invalid argument"},
		{"deny unknown id", []string{"deny", "feedfacecafe"}, "not found"},
		{"apply bad id", []string{"apply", "a/b"}, "invalid id"},
		{"apply unknown id", []string{"apply", "feedfacecafe"}, "not found"},
		{"apply interval above window", []string{"apply", "feedfacecafe", "--interval", "10s", "--verify-window", "5s"}, "no longer than the window"},
		{"rollback unknown change", []string{"rollback", "c-nope"}, "not found"},
		{"propose with a bad --netns", []string{"propose", "--netns", "/nonexistent/ns"}, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "var", "lib", "sockwarden")
			out, errOut, code := runCLI(t, append(tc.args, "--state-dir", dir)...)
			if code != exitUsage || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d, want %d; output %q does not contain %q", code, exitUsage, out+errOut, tc.want)
			}
			if _, err := os.Lstat(filepath.Dir(dir)); err == nil {
				t.Errorf("%s was created", filepath.Dir(dir))
			}
		})
	}
}

// TestBadNetnsPath: --netns naming something that is not a network
// namespace is a usage error (exit 2) that says what the path is. Before,
// sampling failed with exit 3 and "setns: invalid argument".
func TestBadNetnsPath(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "web")
	os.WriteFile(text, []byte("not a namespace\n"), 0o644)
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "absent"), "does not exist"},
		{dir, "is a directory"},
		{text, "is an ordinary file"},
		{"/proc/self/ns/uts", "is a uts namespace, not a network namespace"},
		{"netns/web", "is not an absolute path"},
	} {
		for _, cmd := range [][]string{{"sample"}, {"diagnose", "--samples", "1"}, {"collect", filepath.Join(dir, "b.tar.gz")}} {
			_, errOut, code := runCLI(t, append(cmd, "--netns", tc.path)...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, tc.path) {
				t.Errorf("%s --netns %s: exit %d, %q; want exit 2 naming the path and %q", cmd[0], tc.path, code, errOut, tc.want)
			}
		}
	}
}
