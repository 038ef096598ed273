package remediate_test

import (
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/fleet"
	"github.com/sockwarden/sockwarden/remediate"
)

// The engine's tests against a real etcd (etcd_engine_test.go,
// netns_fleet_test.go) run with the fleet's own store, not a copy.
func init() {
	remediate.OpenFleetStore = func(f config.Fleet, host string, log *zap.Logger) (remediate.FleetStore, error) {
		s, err := fleet.OpenEtcdStore(f, host, log)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}
