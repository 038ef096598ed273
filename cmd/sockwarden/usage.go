package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/sockwarden/sockwarden/remediate"
)

// checkID checks what a command acting on a recorded id (a proposal, a
// change) can check before it opens the state directory, which opening
// creates: the id's form and, when the directory does not exist yet and no
// fleet store holds the records, that nothing can be recorded under it. A
// command refused for its arguments (exit 2) then leaves the host as it
// was. hint says where ids are listed.
func (a *app) checkID(kind, id, hint string) error {
	if err := remediate.ValidID(id); err != nil {
		return usageErr("%v", err)
	}
	if a.cfg.Fleet.Enabled() {
		return nil
	}
	if _, err := os.Lstat(a.cfg.StateDir); errors.Is(err, fs.ErrNotExist) {
		return withCode(exitUsage, fmt.Errorf("%w: %s %s: the state directory %s does not exist yet (%s)", remediate.ErrNotFound, kind, id, a.cfg.StateDir, hint))
	}
	return nil
}
