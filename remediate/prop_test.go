package remediate

import (
	"math/rand/v2"
	"testing"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/diagnose/diagnosetest"
)

// TestPropProposalsPassGuard: any series diagnose accepts, under any valid
// diagnose configuration, yields only proposals that guard 2's static part
// accepts (allowlisted key, a real change, within internal/policy's
// bounds). A proposal the guard would refuse can never be applied; before
// internal/policy, a namespace at somaxconn 16 got 64, outside [128, cap].
func TestPropProposalsPassGuard(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	proposals := 0
	keys := map[string]int{}
	for n := 0; n < 3000; n++ {
		cfg := config.Defaults()
		cfg.Diagnose = diagnosetest.Config(rng)
		series := diagnosetest.Series(rng)
		r := diagnose.Run(series, cfg.Diagnose)
		for _, p := range r.Proposals {
			proposals++
			for _, c := range p.Changes {
				keys[c.Key]++
			}
			if ref := checkStatic(p, cfg); ref != nil {
				t.Fatalf("series %d: proposal %s for %s on %s %+v refused by guard 2: %v\n(config: somaxconn_cap %d, syn_backlog_cap %d, keep_syncookies_off %v)",
					n, p.ID, p.Finding, p.Subject, p.Changes, ref, cfg.Diagnose.SomaxconnCap, cfg.Diagnose.SynBacklogCap, cfg.Diagnose.KeepSyncookiesOff)
			}
		}
	}
	// The property says nothing if no proposal of each key was made.
	for _, k := range []string{"net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies",
		"net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_tw_reuse"} {
		if keys[k] == 0 {
			t.Errorf("no random series gave a %s proposal: the generator does not reach it", k)
		}
	}
	t.Logf("%d proposals checked: %v", proposals, keys)
}
