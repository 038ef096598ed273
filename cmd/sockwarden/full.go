//go:build !sockwarden_lean

// The full build: every command, the etcd client (fleet) and Prometheus
// (agent) in. Packaged as /usr/libexec/sockwarden/sockwarden-full, which
// the lean /usr/bin/sockwarden (lean.go) execs for the commands it leaves
// out; a plain `go build ./cmd/sockwarden` builds this one.

package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/fleet"
)

// Started by the lean binary (argv[0] "sockwarden" or a path to it), the
// process keeps the name operators look for: /proc/PID/comm, and with it
// ps, pgrep -x sockwarden and journald's _COMM, say "sockwarden", not
// "sockwarden-full". /proc/self/comm is the main thread's, which is the
// process's name, whichever thread writes it.
func init() {
	if filepath.Base(os.Args[0]) == "sockwarden" {
		_ = os.WriteFile("/proc/self/comm", []byte("sockwarden"), 0)
	}
}

// handOff is the lean build's; the full build runs every command itself.
func handOff(*cobra.Command, []string) error { return nil }

// fleetStore opens the fleet store (fleet.etcd.endpoints), nil when none is
// configured. Opening does not wait for etcd; a bad TLS or password file is
// a usage error naming the key.
func (a *app) fleetStore() (fleet.Store, error) {
	if !a.cfg.Fleet.Enabled() {
		return nil, nil
	}
	if s, ok := a.fleet.(fleet.Store); ok {
		return s, nil
	}
	s, err := fleet.OpenEtcdStore(a.cfg.Fleet, "", a.log)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	a.fleet = s
	return s, nil
}

// storeConn is fleetStore for the commands the lean build carries too.
func (a *app) storeConn() (fleetConn, error) {
	s, err := a.fleetStore()
	if s == nil {
		return nil, err
	}
	return s, err
}
