// Package gobuild builds the real sockwarden binary for the tests that run
// it: remediate's namespace and container tests, and cmd/sockwarden's
// TestLeanBinary (both builds of the tree). One way to build it, static
// (CGO_ENABLED=0) as packaging/build.sh does, so that it also runs inside
// a container with its own libc.
package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Sockwarden builds cmd/sockwarden to out with the build tags given.
func Sockwarden(out string, tags ...string) error {
	args := []string{"build"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, "-o", out, "github.com/sockwarden/sockwarden/cmd/sockwarden")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(tags, ","), err, b)
	}
	return nil
}
