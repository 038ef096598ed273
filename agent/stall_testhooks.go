//go:build sockwarden_testhooks

package agent

import (
	"context"
	"os"
	"time"

	"go.uber.org/zap"
)

// TEST-ONLY. This file is compiled only with -tags sockwarden_testhooks,
// which the nspawn test (packaging/test/nspawn-test.sh) passes to
// packaging/build.sh through SW_BUILD_TAGS; release builds never carry it,
// so SWTEST_STALL_FILE does nothing there.
//
// SWTEST_STALL_FILE=PATH: while PATH exists, the loop stalls at its next
// tick and stops feeding the watchdog, until PATH is removed. The test
// checks with it that the unit stays activating until the first good
// sample and that the watchdog kills a stalled loop.
func (a *Agent) stallIfAsked(ctx context.Context) {
	file := os.Getenv("SWTEST_STALL_FILE")
	if file == "" {
		return
	}
	if _, err := os.Stat(file); err != nil {
		return
	}
	a.log.Warn("test stall file present: loop stalled, watchdog not fed", zap.String("file", file))
	for ctx.Err() == nil {
		if _, err := os.Stat(file); err != nil {
			a.log.Info("test stall file removed: loop resumes")
			return
		}
		// Real time on purpose: the stall stands for a hung loop.
		time.Sleep(200 * time.Millisecond)
	}
}
