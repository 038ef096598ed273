// Command census-load fills the current network namespace with TCP sockets
// for scripts/bench-census.sh. Run it inside a throwaway namespace
// (`ip netns exec NAME census-load ...`), never on a host.
//
//	census-load -pairs N      hold N established loopback pairs (2N fds)
//	                          and print "ready"; exit when stdin closes
//	census-load -timewait N   make N TIME-WAIT sockets (no fds) and exit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
)

func main() {
	pairs := flag.Int("pairs", 0, "established pairs to hold")
	timewait := flag.Int("timewait", 0, "TIME-WAIT sockets to leave behind")
	ports := flag.Int("ports", 4, "listeners to spread TIME-WAIT over (4-tuples must differ)")
	flag.Parse()
	var err error
	switch {
	case *pairs > 0:
		err = holdPairs(*pairs)
	case *timewait > 0:
		err = makeTimeWait(*timewait, *ports)
	default:
		err = errors.New("give -pairs N or -timewait N")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "census-load:", err)
		os.Exit(1)
	}
}

func holdPairs(n int) error {
	// No keepalive: Go turns it on (15 s) for every connection, and the
	// probes of thousands of connections made in the same second arrive
	// together, overflow loopback's backlog and abort most pairs
	// (TCPAbortOnTimeout) about two and a half minutes in.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	conns := make([]net.Conn, 0, 2*n)
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		for range n {
			c, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		done <- nil
	}()
	d := net.Dialer{KeepAlive: -1}
	for range n {
		c, err := d.Dial("tcp4", ln.Addr().String())
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	if err := <-done; err != nil {
		return err
	}
	fmt.Println("ready", len(conns))
	io.Copy(io.Discard, os.Stdin) // hold until the script closes stdin
	// Keep the connections reachable while holding: otherwise the first
	// GC after "ready" (the runtime forces one every two minutes) runs
	// their cleanups, which close the descriptors and the pairs.
	runtime.KeepAlive(conns)
	runtime.KeepAlive(ln)
	return nil
}

func makeTimeWait(n, ports int) error {
	lns := make([]net.Listener, ports)
	for i := range lns {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns[i] = ln
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					// Wait for the client's FIN, then close: the
					// client, which closed first, holds TIME-WAIT.
					io.Copy(io.Discard, c)
					c.Close()
				}()
			}
		}()
	}
	const workers = 8
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				c, err := net.Dial("tcp4", lns[i%ports].Addr().String())
				if err != nil {
					errc <- fmt.Errorf("dial %d: %w", i, err)
					return
				}
				c.(*net.TCPConn).SetLinger(-1)
				c.Close()
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	fmt.Println("timewait", n)
	return nil
}
