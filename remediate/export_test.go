package remediate

import (
	"context"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
)

// FleetStore is what the engine's tests against a real etcd use of the
// fleet's store (fleet.EtcdStore).
type FleetStore interface {
	Store
	Rollout
	Ping(ctx context.Context) error
	Close() error
}

// OpenFleetStore opens the fleet's store: fleet.OpenEtcdStore, set by
// fleet_hook_test.go (package remediate_test). This package's own tests
// cannot import fleet, which imports remediate; the external test package
// can, and it is built into the same test binary.
var OpenFleetStore func(f config.Fleet, host string, log *zap.Logger) (FleetStore, error)
