package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/remediate"
)

// Backend is the connection the fleet shares with the proposal store
// (EtcdStore implements it).
type Backend interface {
	Client() (*clientv3.Client, error)
	Prefix() string
	Timeout() time.Duration
	Endpoints() string
	Fail(op, key string, err error) error
}

// Errors.
var (
	// ErrNotFound: no such rollout.
	ErrNotFound = errors.New("no such rollout")
	// ErrStorm: the storm guard refused a rollout.
	ErrStorm = errors.New("storm guard")
	// ErrLostRace: another host claimed first, or the rollout changed
	// between the decision and the claim; decide again.
	ErrLostRace = errors.New("claim lost to a concurrent change")
)

// Fleet reads and writes the fleet's rollout keys.
type Fleet struct {
	b    Backend
	host string
	log  *zap.Logger
}

// New is the fleet of b, as host (the operator's commands may give "").
func New(b Backend, host string, log *zap.Logger) *Fleet {
	if log == nil {
		log = zap.NewNop()
	}
	return &Fleet{b: b, host: host, log: log.Named("fleet")}
}

// Host is this host's name.
func (f *Fleet) Host() string { return f.host }

// Endpoints names etcd, for messages.
func (f *Fleet) Endpoints() string { return f.b.Endpoints() }

// seg is a host name as one segment of a key: every key a host writes
// (here, EtcdStore's and the roles of SetupRoles) names it so, or the
// agent's role would not cover its own keys.
func seg(s string) string {
	if s == "" {
		return "_"
	}
	return url.PathEscape(s)
}

func (f *Fleet) p(parts ...string) string { return f.b.Prefix() + strings.Join(parts, "") }

// Key names, under the prefix.
func (f *Fleet) hostKey(h string) string         { return f.p("hosts/", seg(h), "/info") }
func (f *Fleet) progressKey(h, id string) string { return f.p("progress/", seg(h), "/", id) }
func (f *Fleet) rolloutKey(id string) string     { return f.p("rollouts/", id) }
func (f *Fleet) haltKey() string                 { return f.p("halt") }

func (f *Fleet) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.b.Timeout())
}

func decode(key string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: etcd key %s: %w", remediate.ErrUnsafeState, key, err)
	}
	return nil
}

// Snapshot is every rollout key at one etcd revision.
type Snapshot struct {
	Rev      int64
	Rollouts map[string]Rollout
	// Progress by key (host and rollout).
	Progress map[string]Progress
	Halt     *Halt
	// Hosts, when read (nil otherwise).
	Hosts []HostInfo
}

// View is the snapshot's view of rollout id at now.
func (s Snapshot) View(id string, now time.Time, maxPerHour int) View {
	v := View{Rollout: s.Rollouts[id], Halt: s.Halt, Hosts: s.Hosts, Now: now, MaxPerHour: maxPerHour}
	for _, p := range s.Progress {
		if p.Rollout == id {
			v.Progress = append(v.Progress, p)
		}
		if p.State != Skipped && now.Sub(p.Started) < time.Hour {
			v.StartedLastHour++
		}
	}
	sort.Slice(v.Progress, func(i, j int) bool { return v.Progress[i].Started.Before(v.Progress[j].Started) })
	return v
}

// Snapshot reads rollouts, progress and the halt at one revision, and the
// registered hosts too when withHosts.
func (f *Fleet) Snapshot(ctx context.Context, withHosts bool) (Snapshot, error) {
	cli, err := f.b.Client()
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Rollouts: map[string]Rollout{}, Progress: map[string]Progress{}}
	ops := []clientv3.Op{
		clientv3.OpGet(f.p("rollouts/"), clientv3.WithPrefix()),
		clientv3.OpGet(f.p("progress/"), clientv3.WithPrefix()),
		clientv3.OpGet(f.haltKey()),
	}
	if withHosts {
		ops = append(ops, clientv3.OpGet(f.p("hosts/"), clientv3.WithPrefix()))
		s.Hosts = []HostInfo{}
	}
	c, cancel := f.ctx(ctx)
	defer cancel()
	// One Txn without conditions: every read at the same revision.
	resp, err := cli.Txn(c).Then(ops...).Commit()
	if err != nil {
		return Snapshot{}, f.b.Fail("read", f.p(""), err)
	}
	s.Rev = resp.Header.Revision
	for i, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			if err := s.apply(f, i, string(kv.Key), kv.Value); err != nil {
				return Snapshot{}, err
			}
		}
	}
	return s, nil
}

// apply sets one key of kind (0 rollouts, 1 progress, 2 halt, 3 hosts);
// a nil value deletes it.
func (s *Snapshot) apply(f *Fleet, kind int, key string, val []byte) error {
	switch kind {
	case 0:
		return putDecoded(s.Rollouts, strings.TrimPrefix(key, f.p("rollouts/")), key, val)
	case 1:
		return putDecoded(s.Progress, key, key, val)
	case 2:
		if val == nil {
			s.Halt = nil
			return nil
		}
		var h Halt
		if err := decode(key, val, &h); err != nil {
			return err
		}
		s.Halt = &h
	case 3:
		var h HostInfo
		if err := decode(key, val, &h); err != nil {
			return err
		}
		s.Hosts = append(s.Hosts, h)
	}
	return nil
}

// putDecoded sets m[id] to etcd key's value decoded, or deletes m[id]
// when val is nil (a delete seen by the watch); an undecodable value
// leaves m as it was.
func putDecoded[T any](m map[string]T, id, key string, val []byte) error {
	if val == nil {
		delete(m, id)
		return nil
	}
	var v T
	if err := decode(key, val, &v); err != nil {
		return err
	}
	m[id] = v
	return nil
}

// Clone copies the maps, for a reader that keeps it.
func (s Snapshot) Clone() Snapshot {
	c := s
	c.Rollouts = make(map[string]Rollout, len(s.Rollouts))
	for k, v := range s.Rollouts {
		c.Rollouts[k] = v
	}
	c.Progress = make(map[string]Progress, len(s.Progress))
	for k, v := range s.Progress {
		c.Progress[k] = v
	}
	return c
}

// hostsAt reads the registered hosts as they were at etcd revision rev.
func (f *Fleet) hostsAt(ctx context.Context, rev int64) ([]HostInfo, error) {
	cli, err := f.b.Client()
	if err != nil {
		return nil, err
	}
	c, cancel := f.ctx(ctx)
	defer cancel()
	resp, err := cli.Get(c, f.p("hosts/"), clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return nil, f.b.Fail("read", f.p("hosts/"), err)
	}
	s := Snapshot{Hosts: []HostInfo{}}
	for _, kv := range resp.Kvs {
		if err := s.apply(f, 3, string(kv.Key), kv.Value); err != nil {
			return nil, err
		}
	}
	return s.Hosts, nil
}

// Hosts lists the registered hosts, by name.
func (f *Fleet) Hosts(ctx context.Context) ([]HostInfo, error) {
	s, err := f.Snapshot(ctx, true)
	if err != nil {
		return nil, err
	}
	sort.Slice(s.Hosts, func(i, j int) bool { return s.Hosts[i].Host < s.Hosts[j].Host })
	return s.Hosts, nil
}

// CreateRollout records r; its id must be new.
func (f *Fleet) CreateRollout(ctx context.Context, r Rollout) error {
	if err := remediate.ValidID(r.ID); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	cli, err := f.b.Client()
	if err != nil {
		return err
	}
	key := f.rolloutKey(r.ID)
	c, cancel := f.ctx(ctx)
	defer cancel()
	resp, err := cli.Txn(c).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return f.b.Fail("create", key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("rollout %s exists already", r.ID)
	}
	return nil
}

// UpdateRollout changes rollout id with mod, atomically (retried when
// another writer got in between).
func (f *Fleet) UpdateRollout(ctx context.Context, id string, mod func(*Rollout) error) (Rollout, error) {
	cli, err := f.b.Client()
	if err != nil {
		return Rollout{}, err
	}
	key := f.rolloutKey(id)
	for range 16 {
		c, cancel := f.ctx(ctx)
		resp, err := cli.Get(c, key)
		cancel()
		if err != nil {
			return Rollout{}, f.b.Fail("get", key, err)
		}
		if len(resp.Kvs) == 0 {
			return Rollout{}, fmt.Errorf("%w: %s (sockwarden fleet status lists them)", ErrNotFound, id)
		}
		var r Rollout
		if err := decode(key, resp.Kvs[0].Value, &r); err != nil {
			return Rollout{}, err
		}
		if err := mod(&r); err != nil {
			return r, err
		}
		b, _ := json.Marshal(r)
		c, cancel = f.ctx(ctx)
		t, err := cli.Txn(c).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).Then(clientv3.OpPut(key, string(b))).Commit()
		cancel()
		if err != nil {
			return Rollout{}, f.b.Fail("txn", key, err)
		}
		if t.Succeeded {
			return r, nil
		}
	}
	return Rollout{}, fmt.Errorf("%w: etcd %s: update %s: too much contention", remediate.ErrStoreUnavailable, f.b.Endpoints(), key)
}

// SetHalt halts every rollout (h) or lifts the halt (nil).
func (f *Fleet) SetHalt(ctx context.Context, h *Halt) error {
	cli, err := f.b.Client()
	if err != nil {
		return err
	}
	c, cancel := f.ctx(ctx)
	defer cancel()
	if h == nil {
		_, err = cli.Delete(c, f.haltKey())
	} else {
		b, _ := json.Marshal(h)
		_, err = cli.Put(c, f.haltKey(), string(b))
	}
	if err != nil {
		return f.b.Fail("write", f.haltKey(), err)
	}
	return nil
}

// Claim takes this host's place in rollout id for proposal p, if the
// rollout's rules allow it now (View.Decide). The decision is made on one
// snapshot and the claim written by a Txn that fails when any rollout
// progress, the rollout itself or the halt changed after that snapshot:
// two hosts deciding on the same free place cannot both take it, and a
// halt or pause written before the claim always wins. ErrLostRace: decide
// again (the watch brings the change).
func (f *Fleet) Claim(ctx context.Context, id string, me HostInfo, p Progress, maxPerHour int, now time.Time) (Progress, string, error) {
	s, err := f.Snapshot(ctx, false)
	if err != nil {
		return Progress{}, "", err
	}
	r, ok := s.Rollouts[id]
	if !ok {
		return Progress{}, "rollout gone", nil
	}
	v := s.View(id, now, maxPerHour)
	// The canary's kernel preference needs the registered hosts, but only
	// once a canary took a place: the first one may be anyone. Reading
	// every host's registration on each claim is what a thousand hosts
	// racing for the first place cannot afford. They are read as they were
	// at the snapshot's revision, so the decision stays on one revision
	// (unread, the canary goes without the preference).
	if k, why := v.NextWave(); why == "" && k == 0 && len(v.Waves()) > 0 && len(v.Waves()[0]) > 0 {
		if hs, err := f.hostsAt(ctx, s.Rev); err == nil {
			v.Hosts = hs
		}
	}
	k, why := v.Decide(me)
	if why != "" {
		return Progress{}, why, nil
	}
	p.Rollout, p.Host, p.Kernel, p.Wave, p.State, p.Started = r.ID, me.Host, me.Kernel, k, InFlight, now.UTC()
	p.Events = []Event{{Time: now.UTC(), What: "claimed", Detail: fmt.Sprintf("wave %d, proposal %s", k, p.Proposal)}}
	b, _ := json.Marshal(p)
	cli, err := f.b.Client()
	if err != nil {
		return Progress{}, "", err
	}
	key := f.progressKey(me.Host, id)
	c, cancel := f.ctx(ctx)
	defer cancel()
	resp, err := cli.Txn(c).If(
		clientv3.Compare(clientv3.ModRevision(f.p("progress/")), "<", s.Rev+1).WithPrefix(),
		clientv3.Compare(clientv3.ModRevision(f.rolloutKey(id)), "<", s.Rev+1),
		clientv3.Compare(clientv3.ModRevision(f.haltKey()), "<", s.Rev+1),
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
	).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return Progress{}, "", f.b.Fail("claim", key, err)
	}
	if !resp.Succeeded {
		return Progress{}, "", ErrLostRace
	}
	return p, "", nil
}

// Report writes this host's progress (its own key).
func (f *Fleet) Report(ctx context.Context, p Progress) error {
	cli, err := f.b.Client()
	if err != nil {
		return err
	}
	key := f.progressKey(p.Host, p.Rollout)
	b, _ := json.Marshal(p)
	c, cancel := f.ctx(ctx)
	defer cancel()
	if _, err := cli.Put(c, key, string(b)); err != nil {
		return f.b.Fail("put", key, err)
	}
	return nil
}

// Unclaim gives this host's place back: the apply was deferred (no fleet
// slot, etcd unreachable) before anything was written.
func (f *Fleet) Unclaim(ctx context.Context, host, id string) error {
	cli, err := f.b.Client()
	if err != nil {
		return err
	}
	key := f.progressKey(host, id)
	c, cancel := f.ctx(ctx)
	defer cancel()
	if _, err := cli.Delete(c, key); err != nil {
		return f.b.Fail("delete", key, err)
	}
	return nil
}

// ClaimDelay is how long host waits before claiming a place in rollout id
// that its cached view says is free: a rank from a hash of both, spread
// over max. Every host of a large fleet sees a new rollout at once; with
// the delay, the first claim lands and reaches the others through their
// watch before most of them ask etcd, so they find the place taken in
// their own copy instead of racing for it.
func ClaimDelay(host, id string, max time.Duration) time.Duration {
	h := sha256.Sum256([]byte(id + "\x00" + host))
	rank := binary.BigEndian.Uint64(h[:8])
	return time.Duration(rank % uint64(max+1))
}
