package main

import (
	"context"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// caught is the signal that interrupted the command, 0 when none.
var caught atomic.Int32

// interrupted returns the signal that interrupted the command, 0 if none.
func interrupted() syscall.Signal { return syscall.Signal(caught.Load()) }

// signalContext is the context of a command that samples, waits or
// writes: cancelled on SIGINT or SIGTERM, which it records so that the
// command exits 130 (143) without printing the context's error. Commands
// that never call it keep the default action: Ctrl-C kills them at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-ch:
			caught.Store(int32(sig.(syscall.Signal)))
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel()
	}
}
