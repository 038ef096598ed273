package agent

import (
	"slices"
	"testing"

	"github.com/sockwarden/sockwarden/sample"
)

// TestDropCountersExported checks that every counter the cheap tier
// watches (sample.DropCounters, the one list) is exported as a metric.
func TestDropCountersExported(t *testing.T) {
	for _, c := range sample.DropCounters {
		if !slices.ContainsFunc(dropCounters, func(d struct{ nstat, metric, help string }) bool { return d.nstat == c }) {
			t.Errorf("%s is in sample.DropCounters but not exported (agent/metrics.go dropCounters)", c)
		}
	}
}
