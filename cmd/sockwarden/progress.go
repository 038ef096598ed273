package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// countdown shows on w, when w is a terminal, the time left of a sampling
// window that takes total, updated every second on one line; stop clears
// the line. Piped or redirected, it writes nothing: logs and CI output get
// no carriage returns.
func countdown(w io.Writer, what string, total time.Duration) (stop func()) {
	if total <= 0 || !isTerminal(w) {
		return func() {}
	}
	return startCountdown(w, what, total, time.Second)
}

func startCountdown(w io.Writer, what string, total, every time.Duration) (stop func()) {
	end := time.Now().Add(total)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			left := time.Until(end).Round(time.Second)
			if left < 0 {
				left = 0
			}
			fmt.Fprintf(w, "\r\033[K%s: %s left", what, left)
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
