package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Watch keeps a Snapshot of rollouts, progress and the halt current
// through etcd watches, calling onChange (from Watch's goroutine) with a
// copy after the first read and after every change. When the watch breaks
// (etcd lost its leader or the connection, or compacted past us) it reads
// everything again and watches from that revision: a halt written during
// an outage is seen when etcd is back. It returns when ctx is done.
func (f *Fleet) Watch(ctx context.Context, onChange func(Snapshot)) {
	for ctx.Err() == nil {
		s, err := f.Snapshot(ctx, false)
		if err != nil {
			f.log.Debug("fleet watch: resync failed; retrying", zap.Error(err))
			sleep(ctx, time.Second)
			continue
		}
		onChange(s.Clone())
		f.follow(ctx, &s, onChange)
	}
}

func (f *Fleet) follow(ctx context.Context, s *Snapshot, onChange func(Snapshot)) {
	cli, err := f.b.Client()
	if err != nil {
		sleep(ctx, time.Second)
		return
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	type ev struct {
		kind int
		resp clientv3.WatchResponse
		ok   bool
	}
	ch := make(chan ev)
	keys := []struct {
		key  string
		opts []clientv3.OpOption
	}{
		{f.p("rollouts/"), []clientv3.OpOption{clientv3.WithPrefix()}},
		{f.p("progress/"), []clientv3.OpOption{clientv3.WithPrefix()}},
		{f.haltKey(), nil},
	}
	var wg sync.WaitGroup
	for i, k := range keys {
		wc := cli.Watch(wctx, k.key, append(k.opts, clientv3.WithRev(s.Rev+1))...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r, ok := <-wc
				select {
				case ch <- ev{i, r, ok}:
				case <-wctx.Done():
					return
				}
				if !ok {
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-ch:
			if !e.ok || e.resp.Err() != nil || e.resp.Canceled {
				f.log.Debug("fleet watch broken; reading again", zap.Error(e.resp.Err()))
				sleep(ctx, 200*time.Millisecond)
				return
			}
			for _, x := range e.resp.Events {
				var val []byte
				if x.Type == clientv3.EventTypePut {
					val = x.Kv.Value
				}
				if err := s.apply(f, e.kind, string(x.Kv.Key), val); err != nil {
					f.log.Warn("fleet watch: unreadable key ignored", zap.Error(err))
				}
				s.Rev = max(s.Rev, x.Kv.ModRevision)
			}
			onChange(s.Clone())
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Registration keeps this host's HostInfo under a lease: a host that
// dies disappears from the fleet within the lease's TTL.
type Registration struct {
	f     *Fleet
	ttl   time.Duration
	mu    sync.Mutex
	info  HostInfo
	lease clientv3.LeaseID
	put   time.Time
	sent  string
}

// Register starts keeping me registered (Update sends changes).
func (f *Fleet) Register(me HostInfo, ttl time.Duration) *Registration {
	return &Registration{f: f, ttl: max(ttl, 2*time.Second), info: me}
}

// Update records info if it changed, or if the last write is older than
// a third of the TTL (the lease is renewed then too); it (re)grants the
// lease when etcd lost it. Cheap to call at every tick.
func (r *Registration) Update(ctx context.Context, info HostInfo) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.info = info
	cmp := info
	cmp.LastTick = time.Time{}
	b, _ := json.Marshal(cmp)
	if string(b) == r.sent && time.Since(r.put) < r.ttl/3 && r.lease != 0 {
		return nil
	}
	cli, err := r.f.b.Client()
	if err != nil {
		return err
	}
	key := r.f.hostKey(info.Host)
	c, cancel := r.f.ctx(ctx)
	defer cancel()
	if r.lease != 0 {
		if _, err := cli.KeepAliveOnce(c, r.lease); err != nil {
			r.lease = 0 // expired during an outage: grant a new one
		}
	}
	if r.lease == 0 {
		g, err := cli.Grant(c, int64((r.ttl+time.Second-1)/time.Second))
		if err != nil {
			return r.f.b.Fail("grant lease for", key, err)
		}
		r.lease = g.ID
	}
	v, _ := json.Marshal(info)
	if _, err := cli.Put(c, key, string(v), clientv3.WithLease(r.lease)); err != nil {
		return r.f.b.Fail("put", key, err)
	}
	r.put, r.sent = time.Now(), string(b)
	return nil
}

// Close revokes the lease: the host leaves the fleet now.
func (r *Registration) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == 0 {
		return
	}
	if cli, err := r.f.b.Client(); err == nil {
		c, cancel := r.f.ctx(context.Background())
		cli.Revoke(c, r.lease)
		cancel()
	}
	r.lease = 0
}

// KernelRelease is uname -r, as /proc says it.
func KernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// Describe is one line about a progress record, for logs and status.
func (p Progress) Describe() string {
	s := fmt.Sprintf("%s wave %d %s", p.Host, p.Wave, p.State)
	if p.Reason != "" {
		s += " (" + p.Reason + ")"
	}
	return s
}
