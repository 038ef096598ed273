//go:build sockwarden_lean

// The lean build, packaged as /usr/bin/sockwarden: every command except
// those that need the etcd client or Prometheus (agent, fleet, status,
// gen-man), which it hands to the full build by exec. Go runs the package
// init of everything a binary links, whatever the command: the etcd
// client's, gRPC's and protobuf's inits were a third of every census's
// start (docs/PERFORMANCE.md), for commands that never reach etcd.
//
// Built with -tags sockwarden_lean (packaging/build.sh). The exec keeps
// the process (PID, stdio, environment, systemd's notify socket), and the
// arguments are passed as given, so the full binary parses them and the
// configuration exactly as this one would have: no command runs partly in
// one binary and partly in the other.

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/internal/fsperm"
)

// fullPath, set at link time (-ldflags "-X main.fullPath=/path"), is where
// a distribution that puts the full binary elsewhere installs it. Empty:
// beside this binary (a build tree), then ../libexec/sockwarden/ from its
// directory (/usr/bin -> /usr/libexec/sockwarden, /usr/local/bin ->
// /usr/local/libexec/sockwarden).
var fullPath = ""

// fullOnly are the commands this build leaves out; without the full binary
// they fail with a message that says which file is missing, where cobra
// would say "unknown command".
var fullOnly = []string{"agent", "fleet", "status", "gen-man"}

// handOff execs the full binary with the same arguments when this build
// does not carry the command: the fleet's and the agent's commands, and
// the root's help, completion and unknown words, so that the command list,
// the shell completion and cobra's "did you mean" cover every command.
// It returns nil when the command is this build's (or, with the full
// binary absent, when the root's help can still be given here).
func handOff(root *cobra.Command, args []string) error {
	if c, _, err := root.Find(args); err == nil && c != root {
		return nil
	}
	path, err := fullBinary()
	if err != nil {
		if word := firstWord(root, args); slices.Contains(fullOnly, word) {
			return withCode(exitFailed, fmt.Errorf("%s runs in the full binary: %w", word, err))
		}
		return nil
	}
	return execFull(path, args)
}

// storeConn hands the command to the full binary when a fleet is
// configured: this build has no etcd client. Nothing has been written or
// logged when it runs (it is the first thing remediate's commands open).
func (a *app) storeConn() (fleetConn, error) {
	if !a.cfg.Fleet.Enabled() {
		return nil, nil
	}
	path, err := fullBinary()
	if err != nil {
		return nil, withCode(exitFailed, fmt.Errorf("fleet.etcd.endpoints is set and the fleet store is in the full binary: %w", err))
	}
	return nil, execFull(path, os.Args[1:])
}

// execFull replaces this process with the full binary. argv[0] stays what
// the operator ran, so ps, the journal and the full binary's own messages
// name "sockwarden" (full.go keeps /proc/PID/comm so too).
func execFull(path string, args []string) error {
	argv := append([]string{os.Args[0]}, args...)
	err := syscall.Exec(path, argv, os.Environ())
	return withCode(exitFailed, fmt.Errorf("exec %s: %w", path, err))
}

// errNoFull is the full binary not found.
var errNoFull = errors.New("not installed")

// fullBinary finds the full build. A file that someone other than root
// (or the user running this) could have written is refused: this binary
// would run it with its privileges.
func fullBinary() (string, error) {
	var tried []string
	for _, p := range fullCandidates() {
		err := checkFull(p)
		if errors.Is(err, fs.ErrNotExist) {
			tried = append(tried, p)
			continue
		}
		if err != nil {
			return "", err
		}
		return p, nil
	}
	return "", fmt.Errorf("%w: %s (reinstall the sockwarden package, which ships both)", errNoFull, strings.Join(tried, ", "))
}

func fullCandidates() []string {
	if fullPath != "" {
		return []string{fullPath}
	}
	// On Linux os.Executable reads /proc/self/exe, which the kernel
	// gives with every symlink resolved (a /bin -> /usr/bin link, an
	// alternatives link to this binary): no EvalSymlinks, whose lstat
	// of each directory on the way would be start-up work for nothing.
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	dir := filepath.Dir(exe)
	return []string{filepath.Join(dir, fullName), filepath.Join(filepath.Dir(dir), "libexec", "sockwarden", fullName)}
}

// checkFull refuses what is not an executable file, and what
// fsperm.File refuses of the files sockwarden trusts (the config, the
// state): one not owned by root or this user, or that group or others may
// write, itself or through a directory above it or a symlink on the way.
// An absent file is an error wrapping fs.ErrNotExist.
func checkFull(p string) error {
	// O_PATH: the checks need no read permission, only the inode.
	f, err := os.OpenFile(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if m := fi.Mode(); !m.IsRegular() || m&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file (%v)", p, m)
	}
	if err := fsperm.File(f, p); err != nil {
		return fmt.Errorf("refusing to run it: %w", err)
	}
	return nil
}

// firstWord is the first argument that is neither a flag nor a persistent
// flag's value: the command's name as typed.
func firstWord(root *cobra.Command, args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		case strings.HasPrefix(a, "--") && !strings.Contains(a, "="):
			if f := root.PersistentFlags().Lookup(a[2:]); f != nil && f.NoOptDefVal == "" {
				i++
			}
		case strings.HasPrefix(a, "-"):
		default:
			return a
		}
	}
	return ""
}
