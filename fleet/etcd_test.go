package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/internal/etcdtest"
)

func openFleet(t *testing.T, srv *etcdtest.Server, host string) *Fleet {
	t.Helper()
	f := config.Defaults().Fleet
	f.Etcd.Endpoints = []string{srv.Endpoint}
	f.Etcd.RequestTimeout = 2 * time.Second
	s, err := OpenEtcdStore(f, host, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return New(s, host, nil)
}

// Against a real etcd: eight hosts claim the canary's one place at once;
// exactly one Txn wins, the others lose the race or find the wave full.
// A halt written before a claim wins over it.
func TestClaimRace(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	op := openFleet(t, srv, "")
	now := time.Now().UTC()
	r := Rollout{ID: "r-1", GroupID: "g-1", Canary: 1, WaveFactor: 2, MaxConcurrent: 4, HaltAfter: 1, Created: now, Expires: now.Add(time.Hour), Events: []Event{}}
	if err := op.CreateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := op.CreateRollout(ctx, r); err == nil {
		t.Fatal("a second rollout with the same id was recorded")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		h := fmt.Sprintf("h%d", i)
		f := openFleet(t, srv, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, why, err := f.Claim(ctx, "r-1", HostInfo{Host: h}, Progress{Proposal: "p-" + h}, 0, time.Now())
			switch {
			case err == nil && why == "":
				mu.Lock()
				won++
				mu.Unlock()
			case errors.Is(err, ErrLostRace), err == nil:
			default:
				t.Errorf("%s: %v", h, err)
			}
		}()
	}
	wg.Wait()
	s, err := op.Snapshot(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if won != 1 || len(s.Progress) != 1 {
		t.Fatalf("%d claims won, %d progress keys; want exactly one canary", won, len(s.Progress))
	}

	// The canary verified (no bake): wave 1 is open, until a halt.
	for _, p := range s.Progress {
		p.State, p.Settled = Verified, time.Now().UTC().Add(-time.Second)
		if err := openFleet(t, srv, p.Host).Report(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := op.SetHalt(ctx, &Halt{Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	late := openFleet(t, srv, "late")
	if _, why, err := late.Claim(ctx, "r-1", HostInfo{Host: "late"}, Progress{Proposal: "p-late"}, 0, time.Now()); err != nil || why == "" {
		t.Fatalf("claim during a halt: %q, %v; want refused", why, err)
	}
	if err := op.SetHalt(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if p, why, err := late.Claim(ctx, "r-1", HostInfo{Host: "late"}, Progress{Proposal: "p-late"}, 0, time.Now()); err != nil || why != "" || p.Wave != 1 {
		t.Fatalf("claim after the halt is lifted: %+v %q %v; want wave 1", p, why, err)
	}
}

// A registered host disappears when it stops renewing its lease.
func TestRegistrationLease(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	f := openFleet(t, srv, "web-1")
	reg := f.Register(HostInfo{}, 2*time.Second)
	if err := reg.Update(ctx, HostInfo{Host: "web-1", Labels: map[string]string{"role": "web"}, Kernel: "6.1"}); err != nil {
		t.Fatal(err)
	}
	hs, err := f.Hosts(ctx)
	if err != nil || len(hs) != 1 || hs[0].Labels["role"] != "web" {
		t.Fatalf("hosts: %+v %v", hs, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		hs, err := f.Hosts(ctx)
		if err == nil && len(hs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host still registered 10 s after its 2 s lease was last renewed: %+v", hs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Against a real etcd: once a canary took a place, Claim reads the
// registered hosts (at its snapshot's revision) and keeps the next canary
// place for a kernel that has none yet.
func TestClaimCanaryKernel(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	op := openFleet(t, srv, "")
	now := time.Now().UTC()
	r := Rollout{ID: "r-1", GroupID: "g-1", Canary: 2, WaveFactor: 2, MaxConcurrent: 4, HaltAfter: 1, Created: now, Expires: now.Add(time.Hour), Events: []Event{}}
	if err := op.CreateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	hosts := map[string]HostInfo{}
	for _, h := range []HostInfo{{Host: "a", Kernel: "k1"}, {Host: "b", Kernel: "k1"}, {Host: "c", Kernel: "k2"}} {
		h.Groups = []string{"g-1"}
		if err := openFleet(t, srv, h.Host).Register(h, time.Minute).Update(ctx, h); err != nil {
			t.Fatal(err)
		}
		hosts[h.Host] = h
	}
	claim := func(h string) (string, error) {
		_, why, err := openFleet(t, srv, h).Claim(ctx, "r-1", hosts[h], Progress{Proposal: "p-" + h}, 0, time.Now())
		return why, err
	}
	if why, err := claim("a"); err != nil || why != "" {
		t.Fatalf("first canary: %q %v; want it to start", why, err)
	}
	if why, err := claim("b"); err != nil || why != "canary: kernel k1 has one; c (kernel k2) goes first" {
		t.Fatalf("second canary on k1: %q %v; want c (k2) to go first", why, err)
	}
	if why, err := claim("c"); err != nil || why != "" {
		t.Fatalf("second canary on k2: %q %v; want it to start", why, err)
	}
}
