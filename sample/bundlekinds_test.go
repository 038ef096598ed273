package sample

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// bundleFiles (which names are bundle files) and bundleReaders (how each
// is read) are two lists of the same kinds: Go's initialisation order
// keeps one from being derived from the other (readCollect calls
// bundleKind), so this test keeps them equal. A kind in one only would be
// a file recognised and never read, or a reader never reached.
func TestBundleKindsHaveReaders(t *testing.T) {
	var files, readers []string
	for k := range bundleFiles {
		files = append(files, k)
	}
	for k := range bundleReaders {
		readers = append(readers, k)
	}
	slices.Sort(files)
	slices.Sort(readers)
	if diff := cmp.Diff(files, readers); diff != "" {
		t.Errorf("bundle file kinds (-bundleFiles +bundleReaders):\n%s", diff)
	}
	for alias, k := range bundleAliases {
		if !bundleFiles[k] {
			t.Errorf("alias %s names %s, which is no bundle file", alias, k)
		}
	}
}
