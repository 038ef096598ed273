package remediate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The fleet's store (fleet.EtcdStore) lives in package fleet; the engine
// consumes it only through these, and Store (store.go).

// ErrStoreUnavailable wraps every error of the fleet store's server: it is
// unreachable, timed out, or refused the request. Nothing is applied then
// (fail closed): an approval that cannot be checked is no approval.
var ErrStoreUnavailable = errors.New("fleet store unavailable")

// SlotHolder is a change holding one of the fleet's rollout slots.
type SlotHolder struct {
	Host     string    `json:"host"`
	Change   string    `json:"change"`
	Proposal string    `json:"proposal"`
	Netns    string    `json:"netns,omitempty"`
	Values   []Value   `json:"values,omitempty"`
	PID      int       `json:"pid"`
	Since    time.Time `json:"since"`
}

func (h SlotHolder) String() string {
	return fmt.Sprintf("%s change %s (%s) since %s", h.Host, h.Change, h.ValuesString(), h.Since.Format(time.RFC3339))
}

// ValuesString is the change's values, "key old->new, ...".
func (h SlotHolder) ValuesString() string {
	var v []string
	for _, x := range h.Values {
		v = append(v, fmt.Sprintf("%s %s->%s", x.Key, x.Old, x.New))
	}
	return strings.Join(v, ", ")
}

// ErrNoSlot: the fleet already has fleet.max_concurrent changes in flight.
var ErrNoSlot = errors.New("no fleet rollout slot free")

// Rollout limits how many hosts of a fleet have a change in flight.
type Rollout interface {
	// Acquire takes a slot for the change h describes; ErrNoSlot when
	// the fleet is full. The slot is held until Release, or until the
	// holder dies (its lease expires).
	Acquire(ctx context.Context, h SlotHolder) (Slot, error)
	// Holders lists the changes holding slots, and the fleet's limit.
	Holders(ctx context.Context) ([]SlotHolder, int, error)
}

// Slot is a held rollout slot.
type Slot interface {
	Release() error
}

// InFlight says how full the fleet's rollout slots are, naming the
// holders: "2 of 2 (fleet.max_concurrent) in flight: h1 change c-1 ...".
func InFlight(hs []SlotHolder, max int) string {
	var d []string
	for _, h := range hs {
		d = append(d, h.String())
	}
	return fmt.Sprintf("%d of %d (fleet.max_concurrent) in flight: %s", len(hs), max, strings.Join(d, "; "))
}
