package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childEnv carries the application's spec (JSON) to a re-executed child.
// Any binary that links package lab (sockwarden, a test binary) becomes the
// lab application when it starts with this variable set: see init.
const childEnv = "SOCKWARDEN_LAB_CHILD"

// Application roles.
const (
	roleListen = "listen" // a listener with a chosen backlog, an acceptor, a client
	roleHold   = "hold"   // accepts and never closes (CLOSE-WAIT / FIN-WAIT-2)
	roleShort  = "short"  // short connections closed by the client (TIME-WAIT, ports)
	roleSyn    = "syn"    // a listener that only ever sees SYNs
	roleFDHog  = "fdhog"  // holds all but a few of its descriptors
)

// appSpec describes the lab application a scenario runs. Zero fields are
// unused by the role.
type appSpec struct {
	Role     string    `json:"role"`
	Comm     string    `json:"comm"`
	Addr     string    `json:"addr"`
	Deadline time.Time `json:"deadline"`
	// Backlog is the listen() backlog (roleListen, roleSyn).
	Backlog  int  `json:"backlog,omitempty"`
	Relisten bool `json:"relisten,omitempty"`
	// DrainEvery: accept everything queued this often (a batch
	// acceptor); AcceptEvery: accept one connection this often (a slow
	// acceptor).
	DrainEvery  time.Duration `json:"drain_every,omitempty"`
	AcceptEvery time.Duration `json:"accept_every,omitempty"`
	// Burst connects every BurstEvery; one connect every ConnectEvery.
	Burst        int           `json:"burst,omitempty"`
	BurstEvery   time.Duration `json:"burst_every,omitempty"`
	ConnectEvery time.Duration `json:"connect_every,omitempty"`
	DialTimeout  time.Duration `json:"dial_timeout,omitempty"`
	// Hold: how long a client keeps a connection before resetting it.
	Hold time.Duration `json:"hold,omitempty"`
	// Count connections are made before the application reports ready.
	Count int `json:"count,omitempty"`
	// Cap bounds the connections held (oldest closed first); MaxAge
	// closes held connections older than it.
	Cap    int           `json:"cap,omitempty"`
	MaxAge time.Duration `json:"max_age,omitempty"`
	// FDLimit is the RLIMIT_NOFILE the application sets on itself; it
	// holds all but Slack of it.
	FDLimit uint64 `json:"fd_limit,omitempty"`
	Slack   int    `json:"slack,omitempty"`
}

func init() {
	s, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	// Package init runs on the main thread (the runtime locks it there),
	// so the name set here is the process's comm in /proc and `ss -p`.
	os.Unsetenv(childEnv)
	os.Exit(childMain(s))
}

func childMain(s string) int {
	var sp appSpec
	if err := json.Unmarshal([]byte(s), &sp); err != nil {
		fmt.Fprintf(os.Stderr, "lab application: bad %s: %v\n", childEnv, err)
		return 2
	}
	setComm(sp.Comm)
	ctx, cancel := context.WithDeadline(context.Background(), sp.Deadline)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGUSR1 pauses the load, SIGUSR2 resumes it (Env.PauseLoad).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for sig := range sigs {
			loadPaused.Store(sig == syscall.SIGUSR1)
			logf("load paused: %v", loadPaused.Load())
		}
	}()
	// Exit when the parent dies (we are then reparented), even by
	// SIGKILL: a killed test or `lab run` leaves nothing running.
	ppid := os.Getppid()
	go every(ctx, 500*time.Millisecond, func() {
		if os.Getppid() != ppid {
			logf("parent %d gone: exiting", ppid)
			os.Exit(0)
		}
	})
	var once sync.Once
	ready := func() { once.Do(func() { fmt.Fprintln(os.Stdout, "ready") }) }
	var err error
	switch sp.Role {
	case roleListen:
		err = runListen(ctx, sp, ready)
	case roleHold:
		err = runHold(ctx, sp, ready)
	case roleShort:
		err = runShort(ctx, sp, ready)
	case roleSyn:
		err = runSyn(ctx, sp, ready)
	case roleFDHog:
		err = runFDHog(ctx, sp, ready)
	default:
		err = fmt.Errorf("unknown role %q", sp.Role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", sp.Comm, err)
		return 1
	}
	return 0
}

// loadPaused stops the application's own clients; its server side goes on.
var loadPaused atomic.Bool

// load runs fn unless the load is paused.
func load(fn func()) func() {
	return func() {
		if !loadPaused.Load() {
			fn()
		}
	}
}

func setComm(name string) {
	b := append([]byte(name), 0)
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }

// every runs fn every d until ctx is done.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// rawListen makes a non-blocking IPv4 listener with exactly the backlog
// given: Go's net.Listen always passes somaxconn, which would hide the cap.
func rawListen(addr string, backlog int) (int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen %s: %w", addr, err)
	}
	return fd, nil
}

// acceptOne accepts and closes one queued connection; false when none.
func acceptOne(fd int) bool {
	nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
	if err != nil {
		return false
	}
	unix.Close(nfd)
	return true
}

func readSomaxconn() string {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// relisten calls listen() again on fd when somaxconn changes, as a reload
// would: a second listen() on a listening socket updates its limit.
func relisten(ctx context.Context, fd, backlog int) {
	last := readSomaxconn()
	every(ctx, 100*time.Millisecond, func() {
		v := readSomaxconn()
		if v == "" || v == last {
			return
		}
		if err := unix.Listen(fd, backlog); err != nil {
			logf("somaxconn %s -> %s: listen again: %v", last, v, err)
			return
		}
		logf("somaxconn %s -> %s: listened again with backlog %d", last, v, backlog)
		last = v
	})
}

// touch connects, keeps the connection for sp.Hold and resets it (linger
// 0), so the load leaves no TIME-WAIT behind.
func touch(ctx context.Context, sp appSpec) {
	d := net.Dialer{Timeout: sp.DialTimeout}
	c, err := d.DialContext(ctx, "tcp4", sp.Addr)
	if err != nil {
		return
	}
	_ = c.(*net.TCPConn).SetLinger(0)
	t := time.NewTimer(sp.Hold)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	c.Close()
}

// dialClose connects and closes at once (a FIN: the client closes first).
func dialClose(ctx context.Context, sp appSpec) error {
	d := net.Dialer{Timeout: sp.DialTimeout, KeepAlive: -1}
	c, err := d.DialContext(ctx, "tcp4", sp.Addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func runListen(ctx context.Context, sp appSpec, ready func()) error {
	fd, err := rawListen(sp.Addr, sp.Backlog)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ready()
	if sp.Relisten {
		go relisten(ctx, fd, sp.Backlog)
	}
	if sp.Burst > 0 {
		go every(ctx, sp.BurstEvery, load(func() {
			for range sp.Burst {
				go touch(ctx, sp)
			}
		}))
	}
	if sp.ConnectEvery > 0 {
		go every(ctx, sp.ConnectEvery, load(func() { go touch(ctx, sp) }))
	}
	if sp.AcceptEvery > 0 {
		every(ctx, sp.AcceptEvery, func() { acceptOne(fd) })
	} else {
		every(ctx, sp.DrainEvery, func() {
			for acceptOne(fd) {
			}
		})
	}
	return nil
}

type held struct {
	c  net.Conn
	at time.Time
}

// listenNoKeepAlive listens without Go's default TCP keep-alive on accepted
// connections: keep-alive probes would reset held connections whose peer
// is gone and empty the piles the scenarios build.
func listenNoKeepAlive(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, "tcp4", addr)
}

func runHold(ctx context.Context, sp appSpec, ready func()) error {
	ln, err := listenNoKeepAlive(ctx, sp.Addr)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	var (
		mu       sync.Mutex
		conns    []held
		accepted atomic.Int64
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Never read, never close: the peer's FIN leaves the
			// socket in CLOSE-WAIT.
			mu.Lock()
			conns = append(conns, held{c, time.Now()})
			if sp.Cap > 0 && len(conns) > sp.Cap {
				conns[0].c.Close()
				conns = conns[1:]
			}
			mu.Unlock()
			accepted.Add(1)
		}
	}()
	if sp.MaxAge > 0 {
		go every(ctx, time.Second, func() {
			mu.Lock()
			defer mu.Unlock()
			for len(conns) > 0 && time.Since(conns[0].at) > sp.MaxAge {
				conns[0].c.Close()
				conns = conns[1:]
			}
		})
	}
	for range sp.Count {
		if err := dialClose(ctx, sp); err != nil {
			return err
		}
	}
	for accepted.Load() < int64(sp.Count) {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
	ready()
	every(ctx, sp.ConnectEvery, load(func() { go dialClose(ctx, sp) }))
	return nil
}

// errCounter counts connect errors by errno, for the application's log.
type errCounter struct {
	mu sync.Mutex
	m  map[string]int
	ok int
}

func (e *errCounter) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		e.ok++
		return
	}
	var errno syscall.Errno
	k := "other"
	if errors.As(err, &errno) {
		k = unix.ErrnoName(errno)
	}
	e.m[k]++
}

func (e *errCounter) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return fmt.Sprintf("connects ok=%d errors=%v", e.ok, e.m)
}

func runShort(ctx context.Context, sp appSpec, ready func()) error {
	ln, err := listenNoKeepAlive(ctx, sp.Addr)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Close once the client has closed: the client, which
			// closed first, holds the TIME-WAIT.
			go func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	ec := &errCounter{m: map[string]int{}}
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range jobs {
				ec.add(dialClose(ctx, sp))
			}
		})
	}
	for range sp.Count {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	logf("initial: %s", ec)
	ready()
	go every(ctx, 5*time.Second, func() { logf("%s", ec) })
	every(ctx, sp.ConnectEvery, load(func() { go func() { ec.add(dialClose(ctx, sp)) }() }))
	return nil
}

func runSyn(ctx context.Context, sp appSpec, ready func()) error {
	fd, err := rawListen(sp.Addr, sp.Backlog)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ready()
	// No handshake completes (the SYN-ACKs are dropped), so there is
	// never anything to accept; the clients give up after DialTimeout.
	every(ctx, sp.ConnectEvery, load(func() { go touch(ctx, sp) }))
	return nil
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1 // the directory read itself
}

func runFDHog(ctx context.Context, sp appSpec, ready func()) error {
	lim := unix.Rlimit{Cur: sp.FDLimit, Max: sp.FDLimit}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit NOFILE %d: %w", sp.FDLimit, err)
	}
	ln, err := listenNoKeepAlive(ctx, sp.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	type pair struct{ c, s net.Conn }
	var pairs []pair
	open := func() error {
		d := net.Dialer{Timeout: sp.DialTimeout, KeepAlive: -1}
		c, err := d.DialContext(ctx, "tcp4", sp.Addr)
		if err != nil {
			return err
		}
		s, err := ln.Accept()
		if err != nil {
			c.Close()
			return err
		}
		pairs = append(pairs, pair{c, s})
		return nil
	}
	fill := func() error {
		for countFDs()+2 <= int(sp.FDLimit)-sp.Slack {
			if err := open(); err != nil {
				return err
			}
		}
		return nil
	}
	if err := fill(); err != nil {
		return fmt.Errorf("fill to %d-%d descriptors: %w", sp.FDLimit, sp.Slack, err)
	}
	logf("holding %d descriptors of %d", countFDs(), sp.FDLimit)
	ready()
	every(ctx, sp.ConnectEvery, load(func() {
		if len(pairs) > 0 {
			pairs[0].c.Close()
			pairs[0].s.Close()
			pairs = pairs[1:]
		}
		if err := fill(); err != nil {
			logf("refill: %v", err)
		}
	}))
	return nil
}
