package remediate

import "github.com/sockwarden/sockwarden/internal/fakeclock"

// fakeClock is the tests' Clock, shared with the agent's tests (see
// internal/fakeclock): it moves only when a test advances it or the engine
// waits on it, so a verification window passes without sleeping.
type fakeClock = fakeclock.Clock

func newFakeClock() *fakeClock { return fakeclock.New() }

var _ Clock = (*fakeClock)(nil)
