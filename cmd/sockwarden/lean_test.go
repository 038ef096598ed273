//go:build !sockwarden_lean

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/internal/gobuild"
)

// buildPair builds the lean binary as dir/sockwarden and the full one as
// dir/sockwarden-full, as packaging/build.sh does (the lean one finds the
// full one beside it).
func buildPair(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := gobuild.Sockwarden(filepath.Join(dir, "sockwarden"), "sockwarden_lean"); err != nil {
		t.Fatal(err)
	}
	if err := gobuild.Sockwarden(filepath.Join(dir, fullName)); err != nil {
		t.Fatal(err)
	}
	return dir
}

type ran struct {
	out, err string
	code     int
}

// runBin runs bin with args in the test's environment (t.Setenv's
// variables included) and returns what it printed and its exit code.
func runBin(t *testing.T, bin string, args ...string) ran {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return ran{out.String(), errb.String(), code}
}

// commandPaths lists every command of the full tree ("" is the root), as
// typed after "sockwarden".
func commandPaths(c *cobra.Command, prefix []string, into *[][]string) {
	*into = append(*into, prefix)
	for _, sub := range c.Commands() {
		if sub.Hidden && sub.Name() != "gen-man" {
			continue
		}
		commandPaths(sub, append(append([]string{}, prefix...), sub.Name()), into)
	}
}

// The lean binary is the full one to whoever runs it: for every command of
// the full tree, --help prints the same bytes through either binary (the
// lean one runs its own commands and execs the full one for the rest), and
// so do version and a census read from a bundle. The fleet's commands,
// when a fleet is configured, reach etcd through the exec: the lean
// binary has no etcd client, so the same answer from both proves it.
// Without the full binary, the lean one still runs its own commands, and
// says which file is missing for the others.
func TestLeanBinary(t *testing.T) {
	dir := buildPair(t)
	lean, full := filepath.Join(dir, "sockwarden"), filepath.Join(dir, fullName)
	if fi, err := os.Stat(lean); err != nil || fi.Size() >= mustSize(t, full)*2/3 {
		t.Fatalf("lean binary not smaller than two thirds of the full one: %v", err)
	}

	var paths [][]string
	commandPaths(newRootCmd(), nil, &paths)
	if len(paths) < 20 {
		t.Fatalf("only %d commands in the tree", len(paths))
	}
	for _, p := range paths {
		args := append(append([]string{}, p...), "--help")
		l, f := runBin(t, lean, args...), runBin(t, full, args...)
		if diff := cmp.Diff(f, l, cmp.AllowUnexported(ran{})); diff != "" {
			t.Errorf("sockwarden %s: lean and full differ (-full +lean):\n%s", strings.Join(args, " "), diff)
		}
	}
	for _, args := range [][]string{
		{"version", "-o", "json"},
		{"-V"},
		{"completion", "bash"},
		{"__complete", "fl"},
		{"diagnos"}, // unknown: cobra's "did you mean" from the full tree
		{"sample", "--from", "../../testdata/bundles/" + firstBundle(t), "-o", "json"},
	} {
		l, f := runBin(t, lean, args...), runBin(t, full, args...)
		if args[0] == "sample" {
			if f.code != exitOK || !strings.Contains(f.out, `"listeners"`) {
				t.Fatalf("full %v: %+v", args, f)
			}
			l.out, f.out = dropTimes(l.out), dropTimes(f.out)
		}
		if diff := cmp.Diff(f, l, cmp.AllowUnexported(ran{})); diff != "" {
			t.Errorf("sockwarden %s: lean and full differ (-full +lean):\n%s", strings.Join(args, " "), diff)
		}
	}

	t.Run("fleet through the full binary", func(t *testing.T) {
		seedFleet(t, 2) // sets SOCKWARDEN_FLEET_ETCD_ENDPOINTS
		for _, args := range [][]string{{"proposals", "--fleet", "-o", "json"}, {"fleet", "hosts", "-o", "json"}} {
			l, f := runBin(t, lean, args...), runBin(t, full, args...)
			if f.code != exitOK || !strings.Contains(f.out, "web-2") {
				t.Fatalf("full %v: %+v", args, f)
			}
			if diff := cmp.Diff(f, l, cmp.AllowUnexported(ran{})); diff != "" {
				t.Errorf("sockwarden %s: lean and full differ (-full +lean):\n%s", strings.Join(args, " "), diff)
			}
		}
	})

	t.Run("without the full binary", func(t *testing.T) {
		alone := filepath.Join(t.TempDir(), "sockwarden")
		if err := os.Link(lean, alone); err != nil {
			t.Fatal(err)
		}
		if r := runBin(t, alone, "sample", "--from", "../../testdata/bundles/"+firstBundle(t), "-o", "json"); r.code != exitOK {
			t.Errorf("sample without the full binary: %+v", r)
		}
		if r := runBin(t, alone, "--help"); r.code != exitOK || !strings.Contains(r.out, "diagnose") {
			t.Errorf("--help without the full binary: %+v", r)
		}
		for _, args := range [][]string{{"fleet", "status"}, {"--log-level", "debug", "agent"}, {"status"}} {
			r := runBin(t, alone, args...)
			if r.code != exitFailed || !strings.Contains(r.err, fullName) || !strings.Contains(r.err, "reinstall") {
				t.Errorf("%v without the full binary: %+v, want exit %d naming %s", args, r, exitFailed, fullName)
			}
		}
		t.Setenv("SOCKWARDEN_FLEET_ETCD_ENDPOINTS", "http://127.0.0.1:1")
		if r := runBin(t, alone, "proposals", "--fleet"); r.code != exitFailed || !strings.Contains(r.err, "fleet.etcd.endpoints is set") {
			t.Errorf("proposals --fleet without the full binary: %+v", r)
		}
	})

	// Run through a symlink elsewhere (/bin -> /usr/bin, an alternatives
	// link), the lean binary still finds the full one beside its real
	// file.
	t.Run("through a symlink", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "sockwarden")
		if err := os.Symlink(lean, link); err != nil {
			t.Fatal(err)
		}
		args := []string{"status", "--help"}
		if l, f := runBin(t, link, args...), runBin(t, full, args...); l.code != exitOK || l != f {
			t.Errorf("sockwarden %s through a symlink: %+v, want the full binary's %+v", strings.Join(args, " "), l, f)
		}
	})

	t.Run("a full binary others may write is refused", func(t *testing.T) {
		if err := os.Chmod(full, 0o775); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(full, 0o755)
		r := runBin(t, lean, "fleet", "status")
		if r.code != exitFailed || !strings.Contains(r.err, "group or others may write it") {
			t.Errorf("group-writable full binary: %+v", r)
		}
	})

	t.Run("a full binary in a directory others may write is refused", func(t *testing.T) {
		// Whoever can write the directory can swap the binary between
		// the check and the exec.
		open := t.TempDir()
		if err := os.Chmod(open, 0o777); err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{lean, full} {
			if err := os.Link(b, filepath.Join(open, filepath.Base(b))); err != nil {
				t.Fatal(err)
			}
		}
		r := runBin(t, filepath.Join(open, "sockwarden"), "fleet", "status")
		if r.code != exitFailed || !strings.Contains(r.err, open) || !strings.Contains(r.err, "group or others") {
			t.Errorf("full binary in a world-writable directory: %+v", r)
		}
	})
}

func mustSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// firstBundle names a bundle of the repository's testdata.
func firstBundle(t *testing.T) string {
	m, err := filepath.Glob("../../testdata/bundles/*.tar.gz")
	if err != nil || len(m) == 0 {
		t.Fatalf("no bundle in testdata/bundles: %v", err)
	}
	return filepath.Base(m[0])
}

// dropTimes removes the lines of a JSON sample that carry the time it was
// read and how long that took.
func dropTimes(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, `"duration`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
