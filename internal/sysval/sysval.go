// Package sysval holds the one normal form of a sysctl value, so that every
// package compares and hashes values the same way: sample records them,
// diagnose hashes them into a proposal's id (which remediate must compute
// again from live values to accept an approval), remediate compares them
// before and after a write, and the lab checks what it set.
package sysval

import "strings"

// Fold normalises a sysctl value the way the kernel prints it: runs of
// whitespace (tabs in ip_local_port_range) become one space, no leading or
// trailing space or newline. Two values are the same when their folds are
// equal.
func Fold(v string) string { return strings.Join(strings.Fields(v), " ") }
