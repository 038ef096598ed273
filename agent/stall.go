//go:build !sockwarden_testhooks

package agent

import "context"

// stallIfAsked does nothing: only a binary built with the
// sockwarden_testhooks tag (stall_testhooks.go) can be made to stall.
func (a *Agent) stallIfAsked(context.Context) {}
