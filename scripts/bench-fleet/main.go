// Command bench-fleet measures fleet rollouts at scale on one machine: it
// starts one etcd, N simulated agents (each its own etcd client, lease,
// registration and watches, the fleet package's real claim logic, and a
// fake apply that "verifies" after -verify), and, for -duration, runs
// rounds: approve a rollout of a new group every host proposes, measure
// approve -> first apply, let two waves start, halt, and measure how long
// the halt takes to reach every agent's watch. It prints etcd requests/s
// (from etcd's own grpc_server_handled_total), the latencies, and etcd's
// memory (VmRSS, VmHWM).
//
//	go run ./scripts/bench-fleet -agents 1000 -duration 5m
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/fleet"
	"github.com/sockwarden/sockwarden/remediate"
)

type backend struct {
	cli *clientv3.Client
}

func (b backend) Client() (*clientv3.Client, error) { return b.cli, nil }
func (b backend) Prefix() string                    { return "/sockwarden/" }
func (b backend) Timeout() time.Duration            { return 10 * time.Second }
func (b backend) Endpoints() string                 { return "bench" }
func (b backend) Fail(op, key string, err error) error {
	return fmt.Errorf("%w: %s %s: %w", remediate.ErrStoreUnavailable, op, key, err)
}

type agent struct {
	host  string
	f     *fleet.Fleet
	reg   *fleet.Registration
	mu    sync.Mutex
	snap  fleet.Snapshot
	wake  chan struct{}
	group atomic.Value // string: the group this host "proposes"
	busy  atomic.Bool
	// haltSeen is when the watch first showed the halt of this round.
	haltSeen atomic.Int64
}

var (
	claims     atomic.Int64
	firstApply sync.Map // rollout id -> time.Time of the first claim
	haltAt     atomic.Int64
)

func freePort() string {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().String()
}

func main() {
	n := flag.Int("agents", 1000, "simulated agents")
	dur := flag.Duration("duration", 5*time.Minute, "how long to run rounds")
	verifyT := flag.Duration("verify", 2*time.Second, "fake verification time of each apply")
	flag.Parse()
	dir, _ := os.MkdirTemp("", "bench-fleet-")
	defer os.RemoveAll(dir)
	cu, pu := freePort(), freePort()
	etcd := exec.Command("etcd", "--name", "b", "--data-dir", filepath.Join(dir, "d"), "--listen-client-urls", "http://"+cu,
		"--advertise-client-urls", "http://"+cu, "--listen-peer-urls", "http://"+pu, "--initial-advertise-peer-urls", "http://"+pu,
		"--initial-cluster", "b=http://"+pu, "--log-level", "error", "--quota-backend-bytes", "8589934592")
	elog, _ := os.Create(filepath.Join(dir, "etcd.log"))
	etcd.Stderr = elog
	if err := etcd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		os.Exit(1)
	}
	defer etcd.Process.Kill()
	ep := "http://" + cu
	for i := 0; ; i++ {
		if r, err := http.Get(ep + "/health"); err == nil && r.StatusCode == 200 {
			r.Body.Close()
			break
		}
		if i > 200 {
			fmt.Fprintln(os.Stderr, "etcd not healthy")
			os.Exit(1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agents := make([]*agent, *n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range agents {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		a := &agent{host: fmt.Sprintf("sim-%04d", i), wake: make(chan struct{}, 1)}
		a.f = fleet.New(backend{cli}, a.host, nil)
		a.reg = a.f.Register(fleet.HostInfo{}, 30*time.Second)
		a.group.Store("")
		agents[i] = a
		wg.Add(1)
		go func() { defer wg.Done(); a.run(ctx, *verifyT) }()
	}
	fmt.Printf("%d agents connected in %s\n", *n, time.Since(start).Round(time.Millisecond))
	time.Sleep(5 * time.Second) // registrations settle
	opCli := mustClient(ep)
	op := fleet.New(backend{opCli}, "", nil)
	var violations int

	base := etcdRequests(ep)
	t0 := time.Now()
	var approveLat, haltLat []time.Duration
	round := 0
	for time.Since(t0) < *dur {
		round++
		g := fmt.Sprintf("g-%010x", round)
		for _, a := range agents {
			a.group.Store(g)
			a.haltSeen.Store(0)
		}
		time.Sleep(time.Second)
		id := fmt.Sprintf("r-bench-%d", round)
		now := time.Now().UTC()
		r := fleet.Rollout{ID: id, GroupID: g, Group: fleet.Group{Finding: "bench", Key: "net.core.somaxconn", Current: "64", Proposed: "256"},
			Selector: map[string]string{}, Canary: 1, WaveFactor: 4, MaxConcurrent: 64, Bake: 0, HaltAfter: 1,
			Created: now, Expires: now.Add(time.Hour), Events: []fleet.Event{}}
		approved := time.Now()
		if err := op.CreateRollout(ctx, r); err != nil {
			fmt.Fprintln(os.Stderr, "approve:", err)
			break
		}
		// Wait for the first apply, then for wave 2 to start.
		var first time.Time
		for time.Since(approved) < time.Minute {
			if v, ok := firstApply.Load(id); ok {
				first = v.(time.Time)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if first.IsZero() {
			fmt.Fprintln(os.Stderr, "round", round, ": no apply within a minute")
			continue
		}
		approveLat = append(approveLat, first.Sub(approved))
		for time.Since(approved) < time.Minute {
			s, err := op.Snapshot(ctx, false)
			if err == nil && len(s.View(id, time.Now(), 0).Waves()) >= 3 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		h := time.Now()
		haltAt.Store(h.UnixNano())
		hb, _ := json.Marshal(fleet.Halt{Time: h.UTC()})
		hr, err := opCli.Put(ctx, "/sockwarden/halt", string(hb))
		if err != nil {
			fmt.Fprintln(os.Stderr, "halt:", err)
			break
		}
		haltRev := hr.Header.Revision
		var worst time.Duration
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			all := true
			worst = 0
			for _, a := range agents {
				s := a.haltSeen.Load()
				if s == 0 {
					all = false
					break
				}
				worst = max(worst, time.Duration(s-h.UnixNano()))
			}
			if all {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		haltLat = append(haltLat, worst)
		time.Sleep(*verifyT + time.Second) // in-flight hosts settle
		// A claim is the creation of a progress key: none may be
		// created after the halt's revision.
		if pr, err := opCli.Get(ctx, "/sockwarden/progress/", clientv3.WithPrefix()); err == nil {
			for _, kv := range pr.Kvs {
				if strings.HasSuffix(string(kv.Key), "/"+id) && kv.CreateRevision > haltRev {
					violations++
				}
			}
		}
		op.SetHalt(ctx, nil)
		haltAt.Store(0)
		fmt.Printf("round %d: approve->first apply %s, halt reached all %d agents in %s\n", round, approveLat[len(approveLat)-1].Round(time.Millisecond), *n, worst.Round(time.Millisecond))
	}
	elapsed := time.Since(t0)
	reqs := etcdRequests(ep) - base
	rss, hwm := etcdMem(etcd.Process.Pid)
	fmt.Printf("\nagents %d, duration %s, rounds %d, claims %d, claims created after a halt's revision %d\n", *n, elapsed.Round(time.Second), round, claims.Load(), violations)
	fmt.Printf("etcd requests: %.0f/s total, %.3f/s per agent (grpc_server_handled_total, all methods)\n", float64(reqs)/elapsed.Seconds(), float64(reqs)/elapsed.Seconds()/float64(*n))
	fmt.Printf("approve -> first apply: p50 %s p99 %s max %s\n", pct(approveLat, 50), pct(approveLat, 99), pct(approveLat, 100))
	fmt.Printf("halt propagation (to the last agent): p50 %s p99 %s max %s\n", pct(haltLat, 50), pct(haltLat, 99), pct(haltLat, 100))
	fmt.Printf("etcd memory: VmRSS %s, VmHWM %s\n", rss, hwm)
	cancel()
}

func mustClient(ep string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		panic(err)
	}
	return c
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)].Round(time.Millisecond)
}

func (a *agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

var spread = flag.Duration("spread", 500*time.Millisecond, "claim spread (fleet.ClaimDelay's max; the agent uses 500ms); 0: claim at once")

func (a *agent) run(ctx context.Context, verifyT time.Duration) {
	go a.f.Watch(ctx, func(s fleet.Snapshot) {
		a.mu.Lock()
		a.snap = s
		a.mu.Unlock()
		if s.Halt != nil && a.haltSeen.Load() == 0 && haltAt.Load() != 0 {
			a.haltSeen.Store(time.Now().UnixNano())
		}
		a.poke()
	})
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	claimAfter := map[string]time.Time{}
	me := func() fleet.HostInfo {
		g := a.group.Load().(string)
		return fleet.HostInfo{Host: a.host, Labels: map[string]string{"role": "sim"}, Kernel: "6.1", Version: "bench", LastTick: time.Now().UTC(),
			Groups: []string{g}, Findings: []string{"bench"}}
	}
	a.reg.Update(ctx, me())
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.reg.Update(ctx, me()) // the agent's tick: heartbeat
		case <-a.wake:
		}
		if a.busy.Load() {
			continue
		}
		a.mu.Lock()
		s := a.snap
		a.mu.Unlock()
		g := a.group.Load().(string)
		for id, r := range s.Rollouts {
			if r.GroupID != g {
				continue
			}
			if _, why := s.View(id, time.Now(), 0).Decide(me()); why != "" {
				delete(claimAfter, id)
				continue
			}
			// As the agent does: wait this host's rank, decide again.
			if *spread > 0 {
				at, ok := claimAfter[id]
				if !ok {
					at = time.Now().Add(fleet.ClaimDelay(a.host, id, *spread))
					claimAfter[id] = at
				}
				if d := time.Until(at); d > 0 {
					time.AfterFunc(d, a.poke)
					continue
				}
				delete(claimAfter, id)
			}
			p, why, err := a.f.Claim(ctx, id, me(), fleet.Progress{Proposal: "p-" + a.host}, 0, time.Now())
			if err != nil || why != "" {
				continue
			}
			now := time.Now()
			claims.Add(1)
			firstApply.LoadOrStore(id, now)
			a.busy.Store(true)
			go func() {
				time.Sleep(verifyT) // the fake apply and verification
				p.State, p.Settled = fleet.Verified, time.Now().UTC()
				p.Events = append(p.Events, fleet.Event{Time: p.Settled, What: fleet.Verified})
				a.f.Report(ctx, p)
				a.busy.Store(false)
			}()
			break
		}
	}
}

// etcdRequests sums etcd's grpc_server_handled_total over every method.
func etcdRequests(ep string) int64 {
	r, err := http.Get(ep + "/metrics")
	if err != nil {
		return 0
	}
	defer r.Body.Close()
	var sum float64
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "grpc_server_handled_total{") || strings.HasPrefix(l, "grpc_server_msg_received_total{") && strings.Contains(l, `grpc_type="bidi_stream"`) {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	io.Copy(io.Discard, r.Body)
	return int64(sum)
}

func etcdMem(pid int) (string, string) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	var rss, hwm string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			hwm = strings.TrimSpace(v)
		}
	}
	return rss, hwm
}
