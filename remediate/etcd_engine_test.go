package remediate

// The engine against a real etcd (internal/etcdtest: a single-member
// server on loopback, killed when the test ends; skipped without the
// binary unless CI is set), with the fleet's store (fleet.EtcdStore,
// through OpenFleetStore: export_test.go). The store's own tests are
// fleet's.

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/internal/etcdtest"
)

// openEtcd opens the fleet store of host, a client of its own, closed at
// the end of the test.
func openEtcd(t *testing.T, f config.Fleet, host string) FleetStore {
	t.Helper()
	if OpenFleetStore == nil {
		t.Fatal("OpenFleetStore not set: fleet_hook_test.go missing from the test binary")
	}
	return etcdtest.Open(t, OpenFleetStore, f, host)
}

// fleetWorld is a fake host (engine_test.go's world) whose engine keeps
// its approvals in etcd and takes a fleet rollout slot.
func fleetWorld(t *testing.T, f config.Fleet, host string) (*world, *Engine) {
	t.Helper()
	w := newWorld(t)
	w.host = host
	w.relisten = true
	s := openEtcd(t, f, host)
	w.store, w.rollout = s, s
	e := w.engine(func(c *config.Config) {
		c.Fleet = f
		c.Verify.Window = 1500 * time.Millisecond
		c.Verify.Interval = 100 * time.Millisecond
	})
	return w, e
}

func approveAs(t *testing.T, e *Engine, id string) {
	t.Helper()
	if _, err := e.Approve(id, ApproveOptions{Approver: &Approver{UID: 0, User: "root"}}); err != nil {
		t.Fatal(err)
	}
}

func lastRecord(t *testing.T, e *Engine) Record {
	t.Helper()
	recs, _, err := e.Journal().Records()
	if err != nil || len(recs) == 0 {
		t.Fatalf("journal: %d records, %v", len(recs), err)
	}
	return recs[len(recs)-1]
}

// With fleet.max_concurrent 1, a second host's apply is refused by guard 6
// (journaled, nothing written, its approval left unused) while the first
// host verifies its change, and succeeds once the first has settled.
func TestEtcdEngineRolloutLimit(t *testing.T) {
	srv := etcdtest.Start(t)
	f := srv.FleetConfig()
	w1, e1 := fleetWorld(t, f, "h1")
	w2, e2 := fleetWorld(t, f, "h2")
	id1, id2 := w1.propose(e1), w2.propose(e2)
	// Both approved from one place: h1's operator approves h2's too.
	approveAs(t, e1, id1)
	approveAs(t, e1, id2)

	verifying := make(chan struct{})
	var once sync.Once
	// h1 stays in verification (its first sample waits) until h2 has
	// tried: the engines' fake clock would end its window at once.
	h2Tried := make(chan struct{})
	release := sync.OnceFunc(func() { close(h2Tried) })
	t.Cleanup(release)
	w1.onVerifySample = func(int) { once.Do(func() { close(verifying); <-h2Tried }) }
	done := make(chan Outcome, 1)
	go func() {
		out, err := e1.Apply(context.Background(), id1, ApplyOptions{})
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	<-verifying

	out, err := e2.Apply(context.Background(), id2, ApplyOptions{})
	r := refusedBy(t, err, GuardFleetSlot)
	if !errors.Is(err, ErrNoSlot) || !errors.Is(err, ErrRefused) {
		t.Fatalf("%v: want ErrNoSlot and ErrRefused", err)
	}
	if !strings.Contains(r.Reason, "h1 change c-") || out.Change != "" || w2.somaxconn() != "128" {
		t.Fatalf("refusal %q, change %q, h2 somaxconn %s: want h1's change named, no change, 128", r.Reason, out.Change, w2.somaxconn())
	}
	if rec := lastRecord(t, e2); rec.State != StateRefused || rec.Guard != GuardFleetSlot {
		t.Fatalf("h2's last journal record %+v, want refused by %s", rec, GuardFleetSlot)
	}
	if a, err := e2.Store().Approval(id2); err != nil || a.UsedBy != "" {
		t.Fatalf("h2's approval after the refusal: %+v, %v: want it unused", a, err)
	}
	if o, _ := e2.Apply(context.Background(), id2, ApplyOptions{DryRun: true}); o.Guard != GuardFleetSlot {
		t.Fatalf("dry run while the slot is held: %+v, want refused by %s", o, GuardFleetSlot)
	}
	release()

	if o1 := <-done; o1.State != StateVerified || w1.somaxconn() != "1024" {
		t.Fatalf("h1: %s (%s), somaxconn %s", o1.State, o1.Reason, w1.somaxconn())
	}
	out, err = e2.Apply(context.Background(), id2, ApplyOptions{})
	if err != nil || out.State != StateVerified || w2.somaxconn() != "1024" {
		t.Fatalf("h2 after h1 settled: %s (%s), %v, somaxconn %s", out.State, out.Reason, err, w2.somaxconn())
	}
	if hs, _, _ := e2.opts.Rollout.Holders(context.Background()); len(hs) != 0 {
		t.Fatalf("slots still held after both settled: %+v", hs)
	}
}

// etcd dies during guard 3's fresh samples: guard 4 cannot read the
// approval, the apply is refused and journaled, nothing is written. With
// etcd already down, the refusal comes before any sample.
func TestEtcdEngineFailsClosed(t *testing.T) {
	srv := etcdtest.Start(t)
	f := srv.FleetConfig()
	f.Etcd.RequestTimeout = time.Second
	w, e := fleetWorld(t, f, "h1")
	id := w.propose(e)
	approveAs(t, e, id)
	e.opts.OnEvent = func(ev Event) {
		if ev.Step == "sample" {
			srv.Kill()
		}
	}
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	r := refusedBy(t, err, GuardApproval)
	if !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("%v: want ErrStoreUnavailable", err)
	}
	if !strings.Contains(r.Reason, srv.Endpoint) || out.Change != "" || w.somaxconn() != "128" {
		t.Fatalf("refusal %q, change %q, somaxconn %s: want the endpoint named, nothing written", r.Reason, out.Change, w.somaxconn())
	}
	if rec := lastRecord(t, e); rec.State != StateRefused || rec.Guard != GuardApproval {
		t.Fatalf("last journal record %+v, want refused by %s", rec, GuardApproval)
	}

	e.opts.OnEvent = nil
	out, err = e.Apply(context.Background(), id, ApplyOptions{})
	r = refusedBy(t, err, GuardApproval)
	if !errors.Is(err, ErrRefused) || !strings.Contains(r.Reason, "fleet store unavailable") || w.somaxconn() != "128" {
		t.Fatalf("apply with etcd down: %+v, %v, somaxconn %s", out, err, w.somaxconn())
	}
	if rec := lastRecord(t, e); rec.State != StateRefused || rec.Proposal != id {
		t.Fatalf("last journal record %+v, want refused for %s", rec, id)
	}
}

// interrupted leaves in h1's journal a change c-3 (somaxconn 128 -> 1024,
// written) whose process died while verifying it, as TestResolveResume
// does, and returns h1's engine with remediate.on_restart "resume" and a
// verification window of window.
func interrupted(t *testing.T, f config.Fleet, window time.Duration) (*world, *Engine) {
	t.Helper()
	w := newWorld(t)
	w.host, w.relisten = "h1", true
	s := openEtcd(t, f, "h1")
	w.store, w.rollout = s, s
	e := w.engine(func(c *config.Config) {
		c.Fleet = f
		c.Remediate.OnRestart = "resume"
		c.Verify.Window, c.Verify.Interval = window, 100*time.Millisecond
	})
	p := w.proposal("128")
	vals := []Value{{Key: "net.core.somaxconn", Old: "128", New: "1024"}}
	for _, r := range []Record{{Change: "c-3", Proposal: p.ID, State: StateApplying, Values: vals, Verify: &p.Verify, PID: 999999},
		{Change: "c-3", Proposal: p.ID, State: StateVerifying, Values: vals, PID: 999999}} {
		ownTarget(t, e).stamp(&r) // as commit stamps every record
		e.Journal().Append(r)
	}
	w.set("net.core.somaxconn", "1024")
	return w, e
}

// A resumed verification holds the change's rollout slot: it takes over
// the slot the dead process left (its lease still alive), keeps it past
// that lease's expiry, and frees it once the change is settled.
func TestEtcdResumeHoldsSlot(t *testing.T) {
	srv := etcdtest.Start(t)
	f := srv.FleetConfig() // max_concurrent 1, slot_ttl 2s
	// The window outlasts the wait for the dead process's lease below.
	w, e := interrupted(t, f, f.SlotTTL+3*time.Second)
	dead, err := OpenFleetStore(f, "h1", zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.Acquire(context.Background(), SlotHolder{Change: "c-3", PID: 999999}); err != nil {
		t.Fatal(err)
	}
	dead.Close() // killed: no release, the lease lives out its TTL

	var during []SlotHolder
	w.onVerifySample = func(n int) {
		if n == 1 {
			time.Sleep(f.SlotTTL + 500*time.Millisecond) // the dead process's lease expires
			during, _, _ = e.opts.Rollout.Holders(context.Background())
		}
	}
	outs, err := e.Resolve(context.Background())
	if err != nil || len(outs) != 1 || outs[0].State != StateVerified || w.somaxconn() != "1024" {
		t.Fatalf("resume: %+v %v, somaxconn %s; want verified, 1024 kept", outs, err, w.somaxconn())
	}
	if len(during) != 1 || during[0].Host != "h1" || during[0].Change != "c-3" || during[0].PID != os.Getpid() {
		t.Fatalf("slots while resuming, after the dead process's lease expired: %+v; want h1's c-3 held by pid %d", during, os.Getpid())
	}
	if hs, _, _ := e.opts.Rollout.Holders(context.Background()); len(hs) != 0 {
		t.Fatalf("slots held after the change settled: %+v", hs)
	}
}

// With the fleet's only slot held by another host, an interrupted change
// is not resumed (its verification would make two in flight) but rolled
// back, saying why.
func TestEtcdResumeWithoutSlotRollsBack(t *testing.T) {
	srv := etcdtest.Start(t)
	f := srv.FleetConfig()
	w, e := interrupted(t, f, 1500*time.Millisecond)
	other := openEtcd(t, f, "h2")
	slot, err := other.Acquire(context.Background(), SlotHolder{Change: "c-9", PID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	defer slot.Release()
	outs, err := e.Resolve(context.Background())
	if err != nil || len(outs) != 1 || outs[0].State != StateRolledBack || w.somaxconn() != "128" {
		t.Fatalf("resolve: %+v %v, somaxconn %s; want rolled back to 128", outs, err, w.somaxconn())
	}
	if !strings.Contains(outs[0].Reason, "not resumed: no fleet rollout slot") || !strings.Contains(outs[0].Reason, "h2 change c-9") {
		t.Fatalf("reason %q: want the missing slot and its holder named", outs[0].Reason)
	}
}
