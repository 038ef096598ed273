package remediate_test

import (
	"path/filepath"
	"testing"

	"github.com/sockwarden/sockwarden/internal/storetest"
	"github.com/sockwarden/sockwarden/remediate"
)

// An external test: internal/storetest imports remediate.
func TestFileStoreContract(t *testing.T) {
	storetest.Contract(t, func(t *testing.T) remediate.Store {
		s, err := remediate.OpenFileStore(filepath.Join(t.TempDir(), "state"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
