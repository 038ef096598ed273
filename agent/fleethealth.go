package agent

import (
	"context"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/fleet"
)

// fleetHealth is the fleet store's health check: the store (nil without a
// fleet) and what status says of it. While the store does not answer,
// nothing is applied and proposals are kept locally until it does.
type fleetHealth struct {
	a     *Agent
	fleet fleet.Store
	// fleetInfo is guarded by a.mu; written by the loop only.
	fleetInfo *FleetInfo
}

// checkFleet asks the fleet store whether it answers, once a tick. A
// warning is logged once per outage, and when it answers again the
// proposals kept locally meanwhile are recorded.
func (h *fleetHealth) checkFleet(ctx context.Context) {
	a := h.a
	if h.fleet == nil {
		return
	}
	err := h.fleet.Ping(ctx)
	if ctx.Err() != nil {
		return
	}
	now := a.clock.Now()
	a.mu.Lock()
	info := h.fleetInfo
	first, was := info.Since.IsZero(), info.Reachable
	prevSince := info.Since
	info.Reachable = err == nil
	if first || was != info.Reachable {
		info.Since = now
	}
	info.Error = ""
	if err != nil {
		info.Error = err.Error()
		info.Waiting = ""
	}
	a.mu.Unlock()
	a.metrics.SetFleetUp(err == nil)
	switch {
	case err != nil && (first || was):
		a.log.Warn("fleet store unreachable: nothing is applied until it answers; still observing and proposing locally",
			zap.String("endpoints", h.fleet.Endpoints()), zap.Error(err))
	case err == nil && !first && !was:
		a.log.Info("fleet store reachable again", zap.String("endpoints", h.fleet.Endpoints()), zap.Duration("outage", now.Sub(prevSince)))
		a.recordKept()
	case err == nil && first:
		a.log.Info("fleet store reachable", zap.String("endpoints", h.fleet.Endpoints()))
	}
}

// fleetDown says whether the fleet store did not answer its last check.
// fleetInfo is written by the agent's loop only, which is the caller.
func (h *fleetHealth) fleetDown() bool { return h.fleet != nil && !h.fleetInfo.Reachable }
