// Package fakeclock is the tests' clock for remediate's engine and the
// agent (both take a remediate.Clock: Now and After). It lives in internal
// so that both packages' tests share one, and no production code imports
// it.
package fakeclock

import (
	"sync"
	"time"
)

// Clock starts at the wall clock's time (so approvals written with
// time.Now() in a test are still valid) and moves only when a test
// advances it or code waits on it, which returns at once having moved the
// time on. A verification window then passes in as many steps as it has
// samples, without sleeping.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock at the wall clock's time.
func New() *Clock { return &Clock{now: time.Now()} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the time on by d.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// After moves the time on by d and returns a channel that already holds
// the new time.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.Advance(d)
	return ch
}
