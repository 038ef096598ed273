// Package gobuild builds the real sockwarden binary for the tests that run
// it: remediate's namespace and container tests, and cmd/sockwarden's
// TestLeanBinary (both builds of the tree). One way to build it, static
// (CGO_ENABLED=0) as packaging/build.sh does, so that it also runs inside
// a container with its own libc.
package gobuild

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Sockwarden builds cmd/sockwarden to out with the build tags given.
func Sockwarden(out string, tags ...string) error {
	if err := statSources(); err != nil {
		return err
	}
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

// statSources stats every Go file of the module, go.mod and go.sum from
// the test process. go test caches a passing result keyed on the test's
// own package and the files the test process opened or stat'ed; the go
// build child's reads are not among them. Without this, a change to a
// file the test binary does not link (lean.go, behind the sockwarden_lean
// tag, or cmd/sockwarden for remediate's tests) left the old result
// "(cached)": a pass for a tree that was never built.
func statSources() error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != root && d != nil && d.IsDir() {
				return filepath.SkipDir // an unreadable directory left in the tree
			}
			return err
		}
		if d.IsDir() {
			if p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") || d.Name() == "go.mod" || d.Name() == "go.sum" {
			_, err = os.Stat(p)
		}
		return err
	})
}

// moduleRoot is the directory holding go.mod, at or above the working
// directory (a package's directory, under go test).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("gobuild: no go.mod at or above the working directory")
		}
		dir = up
	}
}
