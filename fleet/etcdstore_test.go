package fleet

// The fleet store against a real etcd (internal/etcdtest: a single-member
// server on loopback, killed when the test ends; skipped without the
// binary unless CI is set). No mocks: the Txn that makes an approval
// single-use and the lease that frees a dead host's slot are etcd's own.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zaptest"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/internal/etcdtest"
	"github.com/sockwarden/sockwarden/internal/storetest"
	"github.com/sockwarden/sockwarden/remediate"
)

// openEtcd opens the store of host, a client of its own, closed at the
// end of the test.
func openEtcd(t *testing.T, f config.Fleet, host string) *EtcdStore {
	t.Helper()
	return etcdtest.Open(t, OpenEtcdStore, f, host)
}

func rawClient(t *testing.T, srv *etcdtest.Server) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEtcdStoreContract(t *testing.T) {
	srv := etcdtest.Start(t)
	storetest.Contract(t, func(t *testing.T) remediate.Store { return openEtcd(t, srv.FleetConfig(), "h1") })
}

// Two hosts, two clients: a proposal recorded by h1 is found and approved
// through h2 (an operator anywhere), h1 sees the approval, and of 16
// concurrent uses on both clients exactly one succeeds.
func TestEtcdApprovalAcrossHosts(t *testing.T) {
	srv := etcdtest.Start(t)
	f := srv.FleetConfig()
	h1, h2 := openEtcd(t, f, "h1"), openEtcd(t, f, "h2")
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := remediate.Pending{Proposal: diagnose.Proposal{ID: "b265cfbe0f28", Host: "h1", Finding: diagnose.KindAcceptQueueOverflow, Subject: "127.0.0.1:8082",
		Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "64", Proposed: "128"}}}, Side: diagnose.SideKernel, Recorded: t1, LastSeen: t1}
	if err := h1.RecordProposal(p); err != nil {
		t.Fatal(err)
	}
	if err := h2.RecordProposal(remediate.Pending{Proposal: diagnose.Proposal{ID: "c0ffee000002", Host: "h2"}, Recorded: t1.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}

	// The key layout the docs show, readable by any etcd client.
	raw := rawClient(t, srv)
	resp, err := raw.Get(context.Background(), f.Etcd.Prefix+"proposals/h1/b265cfbe0f28")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw get of the proposal key: %v, %d keys", err, len(resp.Kvs))
	}
	var onWire remediate.Pending
	if err := json.Unmarshal(resp.Kvs[0].Value, &onWire); err != nil || onWire.Proposal.ID != "b265cfbe0f28" {
		t.Fatalf("proposal value %s: %v", resp.Kvs[0].Value, err)
	}

	// h2 finds h1's proposal by id, but lists only its own; the fleet
	// listing has both.
	got, err := h2.Proposal("b265cfbe0f28")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Fatalf("h2 reads h1's proposal (-want +got)\n%s", diff)
	}
	own, err := h2.Proposals()
	if err != nil || len(own) != 1 || own[0].Proposal.ID != "c0ffee000002" {
		t.Fatalf("h2.Proposals() = %+v, %v: want only h2's", own, err)
	}
	all, err := h1.FleetProposals()
	if err != nil || len(all) != 2 || all[0].Proposal.ID != "c0ffee000002" || all[1].Proposal.ID != "b265cfbe0f28" {
		t.Fatalf("FleetProposals() = %+v, %v: want both, newest first", all, err)
	}

	a := remediate.Approval{Proposal: p.Proposal.ID, Host: "h1", Changes: p.Proposal.Changes, Approver: remediate.Approver{UID: 0, User: "root", SudoUser: "alice"},
		Created: t1, Expires: t1.Add(time.Hour)}
	if err := h2.PutApproval(a); err != nil {
		t.Fatal(err)
	}
	seen, err := h1.Approval(p.Proposal.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, seen); diff != "" {
		t.Fatalf("h1 reads the approval given through h2 (-want +got)\n%s", diff)
	}
	wins, used := storetest.UseConcurrently(t, []remediate.Store{h1, h2}, p.Proposal.ID, 8, t1)
	if len(wins) != 1 || used != 15 {
		t.Fatalf("UseApproval on two hosts: %d succeeded (%v), %d refused as used; want 1 and 15", len(wins), wins, used)
	}
	for _, s := range []*EtcdStore{h1, h2} {
		if a, err := s.Approval(p.Proposal.ID); err != nil || a.UsedBy != wins[0] {
			t.Fatalf("%s reads used_by %q (%v), want %q", s.Host(), a.UsedBy, err, wins[0])
		}
	}
}

func holder(host, change string) remediate.SlotHolder {
	return remediate.SlotHolder{Host: host, Change: change, Proposal: "p1", PID: 1, Since: time.Now().UTC(),
		Values: []remediate.Value{{Key: "net.core.somaxconn", Old: "128", New: "1024"}}}
}

func TestEtcdRolloutLimit(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := context.Background()
	t.Run("max 1", func(t *testing.T) {
		f := srv.FleetConfig()
		h1, h2 := openEtcd(t, f, "h1"), openEtcd(t, f, "h2")
		s1, err := h1.Acquire(ctx, holder("h1", "c-1"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = h2.Acquire(ctx, holder("h2", "c-2"))
		if !errors.Is(err, remediate.ErrNoSlot) || !strings.Contains(err.Error(), "h1 change c-1") {
			t.Fatalf("second host while the first holds the slot: %v, want ErrNoSlot naming h1 change c-1", err)
		}
		hs, max, err := h2.Holders(ctx)
		if err != nil || max != 1 || len(hs) != 1 || hs[0].Change != "c-1" {
			t.Fatalf("Holders = %+v, %d, %v", hs, max, err)
		}
		if err := s1.Release(); err != nil {
			t.Fatal(err)
		}
		s2, err := h2.Acquire(ctx, holder("h2", "c-2"))
		if err != nil {
			t.Fatalf("after release: %v", err)
		}
		s2.Release()
		if hs, _, _ := h1.Holders(ctx); len(hs) != 0 {
			t.Fatalf("holders after both released: %+v", hs)
		}
	})
	t.Run("max 2 under contention", func(t *testing.T) {
		f := srv.FleetConfig()
		f.MaxConcurrent = 2
		stores := []*EtcdStore{openEtcd(t, f, "h1"), openEtcd(t, f, "h2"), openEtcd(t, f, "h3")}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var got []remediate.Slot
		full := 0
		start := make(chan struct{})
		for i := 0; i < 12; i++ {
			s := stores[i%3]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				sl, err := s.Acquire(ctx, holder(s.Host(), fmt.Sprintf("c-%d", i)))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					got = append(got, sl)
				case errors.Is(err, remediate.ErrNoSlot):
					full++
				default:
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(got) != 2 || full != 10 {
			t.Fatalf("12 concurrent acquires with max 2: %d took a slot, %d refused; want 2 and 10", len(got), full)
		}
		for _, sl := range got {
			sl.Release()
		}
	})
}

// A holder that dies (its client closed without releasing, as a killed
// agent) keeps its slot until the lease expires: freed within the TTL.
func TestEtcdSlotFreedWhenHolderDies(t *testing.T) {
	srv := etcdtest.Start(t)
	f := srv.FleetConfig()
	ctx := context.Background()
	dead, err := OpenEtcdStore(f, "h1", zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.Acquire(ctx, holder("h1", "c-dead")); err != nil {
		t.Fatal(err)
	}
	// Held for longer than the TTL while its keepalive runs.
	time.Sleep(f.SlotTTL + time.Second)
	h2 := openEtcd(t, f, "h2")
	if _, err := h2.Acquire(ctx, holder("h2", "c-2")); !errors.Is(err, remediate.ErrNoSlot) {
		t.Fatalf("while the holder lives: %v, want ErrNoSlot", err)
	}
	dead.Close()
	died := time.Now()
	for {
		sl, err := h2.Acquire(ctx, holder("h2", "c-2"))
		if err == nil {
			took := time.Since(died)
			t.Logf("slot freed %s after its holder died (slot_ttl %s)", took, f.SlotTTL)
			sl.Release()
			// The lease's TTL, plus etcd's expiry check (500 ms) and
			// our polling.
			if took > f.SlotTTL+1500*time.Millisecond {
				t.Fatalf("freed after %s, want within the TTL %s (+1.5s)", took, f.SlotTTL)
			}
			return
		}
		if !errors.Is(err, remediate.ErrNoSlot) {
			t.Fatal(err)
		}
		if time.Since(died) > 3*f.SlotTTL {
			t.Fatalf("slot still held %s after its holder died", time.Since(died))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// etcd down: every call fails within the request timeout with an error
// that names the endpoint and the key, and works again once it is back.
func TestEtcdStoreDown(t *testing.T) {
	srv := etcdtest.Start(t)
	f := srv.FleetConfig()
	f.Etcd.RequestTimeout = time.Second
	s := openEtcd(t, f, "h1")
	if err := s.PutApproval(remediate.Approval{Proposal: "abc123", Approver: remediate.Approver{User: "root"}, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	for _, tc := range []struct {
		name string
		call func() error
		key  string
	}{
		{"Approval", func() error { _, err := s.Approval("abc123"); return err }, f.Etcd.Prefix + "approvals/abc123"},
		{"UseApproval", func() error { _, err := s.UseApproval("abc123", "c-1", time.Now()); return err }, f.Etcd.Prefix + "approvals/abc123"},
		{"Proposal", func() error { _, err := s.Proposal("abc123"); return err }, f.Etcd.Prefix + "proposals/h1/abc123"},
		{"Acquire", func() error { _, err := s.Acquire(context.Background(), holder("h1", "c-1")); return err }, f.Etcd.Prefix + "rollout/"},
		{"Ping", func() error { return s.Ping(context.Background()) }, f.Etcd.Prefix},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			err := tc.call()
			if !errors.Is(err, remediate.ErrStoreUnavailable) || !strings.Contains(err.Error(), srv.Endpoint) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("err = %v: want ErrStoreUnavailable naming %s and %s", err, srv.Endpoint, tc.key)
			}
			if took := time.Since(t0); took > 2*f.Etcd.RequestTimeout+500*time.Millisecond {
				t.Fatalf("took %s, want about the request timeout %s", took, f.Etcd.RequestTimeout)
			}
		})
	}
	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for {
		a, err := s.Approval("abc123")
		if err == nil {
			if a.Proposal != "abc123" {
				t.Fatalf("after restart: %+v", a)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store not usable again after etcd restarted: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
