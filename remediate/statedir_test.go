package remediate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenStateDirParents: a state directory under a directory that group
// or others may write is refused (they could rename it away and put theirs,
// with their approvals, in its place), and so is one whose parent chain
// goes through such a directory; a state directory under a plain temporary
// directory (/tmp is sticky and root's) is accepted. Before the parent
// check the writable cases were accepted.
func TestOpenStateDirParents(t *testing.T) {
	t.Run("temp dir", func(t *testing.T) {
		if err := OpenStateDir(filepath.Join(t.TempDir(), "a", "state")); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct {
		name string
		mode os.FileMode
		up   int // how far above the state directory the open directory is
		want string
	}{
		{"world-writable parent", 0o777, 1, "has mode 0777"},
		{"group-writable grandparent", 0o775, 2, "has mode 0775"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "x", "y", "state")
			open := dir
			for range tc.up {
				open = filepath.Dir(open)
			}
			if err := os.MkdirAll(open, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(open, tc.mode); err != nil {
				t.Fatal(err)
			}
			err := OpenStateDir(dir)
			if !errors.Is(err, ErrUnsafeState) || !strings.Contains(err.Error(), open+" "+tc.want) {
				t.Fatalf("err = %v, want ErrUnsafeState naming %s and %q", err, open, tc.want)
			}
			if entries, _ := os.ReadDir(open); len(entries) > 0 {
				t.Errorf("%s was made under %s", entries[0].Name(), open)
			}
		})
	}
}
