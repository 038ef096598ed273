package remediate

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/internal/etcdtest"
	"github.com/sockwarden/sockwarden/lab"
)

// TestNetnsFleetEtcd applies a real proposal in a lab namespace with the
// approval in a real etcd: refused by guard 6 while another host holds the
// fleet's only rollout slot, refused by guard 4 when etcd dies during the
// fresh samples (nothing written either time, the approval left unused),
// then, with etcd back and the slot free, applied and verified.
func TestNetnsFleetEtcd(t *testing.T) {
	needRoot(t)
	hostGuard(t)
	srv := etcdtest.Start(t)
	env := startLab(t, lab.SomaxconnCapped, true)
	cfg := testConfig(t)
	cfg.Fleet = srv.FleetConfig()
	store := openEtcd(t, cfg.Fleet, "")
	var killOnSample atomic.Bool
	e := liveEngineWith(t, cfg, func(ev Event) {
		if ev.Step == "sample" && killOnSample.Load() {
			srv.Kill()
		}
	}, func(o *Options) { o.Store, o.Rollout = store, store })
	ps, _ := proposeLive(t, e, cfg, env.Netns)
	p := somaxconnProposal(t, ps)
	id, old, want := p.Proposal.ID, p.Proposal.Changes[0].Current, p.Proposal.Changes[0].Proposed
	if _, err := e.Approve(id, ApproveOptions{TTL: 5 * time.Minute, Comment: "fleet test"}); err != nil {
		t.Fatal(err)
	}
	unchanged := func(when string) {
		t.Helper()
		if got := read(t, env.Netns, "net.core.somaxconn"); got != old {
			t.Fatalf("%s: somaxconn %s, want %s untouched", when, got, old)
		}
	}

	other := openEtcd(t, cfg.Fleet, "web-2")
	slot, err := other.Acquire(context.Background(), SlotHolder{Host: "web-2", Change: "c-web-2", Proposal: "p-web-2"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = applyLive(t, e, id)
	refusedBy(t, err, GuardFleetSlot)
	unchanged("slot held by web-2")
	if err := slot.Release(); err != nil {
		t.Fatal(err)
	}

	killOnSample.Store(true)
	_, err = applyLive(t, e, id)
	refusedBy(t, err, GuardApproval)
	if !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("%v: want ErrStoreUnavailable", err)
	}
	unchanged("etcd killed during the fresh samples")

	killOnSample.Store(false)
	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for store.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("etcd not reachable again")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if a, err := store.Approval(id); err != nil || a.UsedBy != "" {
		t.Fatalf("approval after two refusals: %+v, %v: want it unused", a, err)
	}
	out, err := applyLive(t, e, id)
	if err != nil || out.State != StateVerified {
		t.Fatalf("apply with etcd back: %s (%s), %v", out.State, out.Reason, err)
	}
	if got := read(t, env.Netns, "net.core.somaxconn"); got != want {
		t.Fatalf("somaxconn %s, want %s", got, want)
	}
	if a, _ := store.Approval(id); a.UsedBy != out.Change {
		t.Fatalf("approval used by %q, want %q", a.UsedBy, out.Change)
	}
	if hs, _, err := store.Holders(context.Background()); err != nil || len(hs) != 0 {
		t.Fatalf("slots held after the change settled: %+v, %v", hs, err)
	}
}
