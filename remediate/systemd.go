package remediate

import (
	"context"
	"fmt"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// SystemdRestarter restarts units through systemd's D-Bus API, so that a
// listener picks up a new somaxconn by calling listen() again. It is used
// only when config remediate.restart_unit is on and the approval allows it.
type SystemdRestarter struct{}

var _ UnitRestarter = SystemdRestarter{}

// RestartUnit restarts unit ("replace" mode) and waits for systemd's job
// result.
func (SystemdRestarter) RestartUnit(ctx context.Context, unit string) error {
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("systemd D-Bus: %w", err)
	}
	defer conn.Close()
	done := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, unit, "replace", done); err != nil {
		return fmt.Errorf("restart %s: %w", unit, err)
	}
	select {
	case res := <-done:
		if res != "done" {
			return fmt.Errorf("restart %s: job %s", unit, res)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
