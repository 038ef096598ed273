package remediate

import (
	"sync"
	"time"
)

// fakeClock is the tests' Clock: it starts at the wall clock's time (so
// approvals written with time.Now() in a test are still valid) and moves
// only when a test advances it or the engine waits on it, which returns at
// once having moved the time on. A verification window then passes in as
// many steps as it has samples, without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the time on by d.
func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.Advance(d)
	return ch
}
