package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/remediate"
)

// EtcdStore is the fleet's remediate.Store: proposals and approvals in etcd, shared
// by every host, and the fleet's rollout slots (remediate.Rollout). Keys, under the
// configured prefix (default /sockwarden/):
//
//	PREFIX/proposals/HOST/ID   a Pending, JSON (as FileStore's files)
//	PREFIX/approvals/ID        an Approval, JSON
//	PREFIX/rollout/HOST/CHANGE a SlotHolder, JSON, bound to a lease
//
// A proposal id hashes host, namespace, finding and values, so an approval
// (keyed by id alone) cannot move to another host. Every call runs under
// fleet.etcd.request_timeout.
type EtcdStore struct {
	// cli is nil until the client has logged in: with etcd's
	// authentication, the client fetches its token when created, so a
	// store opened during an outage creates it at its first call that
	// reaches etcd (client).
	mu     sync.Mutex
	cli    *clientv3.Client
	cc     clientv3.Config
	closed bool

	endpoints string
	user      string // fleet.etcd.username, for messages
	pwFile    string // fleet.etcd.password_file, for messages
	prefix    string
	host      string
	timeout   time.Duration
	max       int
	ttl       time.Duration
	log       *zap.Logger
}

var (
	_ remediate.Store   = (*EtcdStore)(nil)
	_ remediate.Rollout = (*EtcdStore)(nil)
)

// EtcdClientConfig turns the fleet section into an etcd client
// configuration: TLS files loaded, the password read from its file (which
// others must not be able to read). Errors name the key.
func EtcdClientConfig(f config.Fleet) (clientv3.Config, error) {
	e := f.Etcd
	cc := clientv3.Config{Endpoints: e.Endpoints, DialTimeout: e.DialTimeout, Username: e.Username,
		// Keep the connection checked while idle, so that an outage is
		// seen by the next call rather than after a TCP timeout.
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: e.RequestTimeout}
	https := false
	for _, ep := range e.Endpoints {
		https = https || strings.HasPrefix(ep, "https://")
	}
	if https || e.TLS.CA != "" || e.TLS.Cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if e.TLS.CA != "" {
			b, err := os.ReadFile(e.TLS.CA)
			if err != nil {
				return cc, fmt.Errorf("%w: fleet.etcd.tls.ca: %w", config.ErrConfig, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(b) {
				return cc, fmt.Errorf("%w: fleet.etcd.tls.ca: %s holds no PEM certificate", config.ErrConfig, e.TLS.CA)
			}
		}
		if e.TLS.Cert != "" {
			kp, err := tls.LoadX509KeyPair(e.TLS.Cert, e.TLS.Key)
			if err != nil {
				return cc, fmt.Errorf("%w: fleet.etcd.tls.cert/key: %w", config.ErrConfig, err)
			}
			tc.Certificates = []tls.Certificate{kp}
		}
		cc.TLS = tc
	}
	if e.PasswordFile != "" {
		st, err := os.Stat(e.PasswordFile)
		if err != nil {
			return cc, fmt.Errorf("%w: fleet.etcd.password_file: %w", config.ErrConfig, err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return cc, fmt.Errorf("%w: fleet.etcd.password_file: %s is mode %04o: group or others may read the password (chmod 600)",
				config.ErrConfig, e.PasswordFile, st.Mode().Perm())
		}
		b, err := os.ReadFile(e.PasswordFile)
		if err != nil {
			return cc, fmt.Errorf("%w: fleet.etcd.password_file: %w", config.ErrConfig, err)
		}
		cc.Password = strings.TrimRight(string(b), "\r\n")
		if cc.Password == "" {
			return cc, fmt.Errorf("%w: fleet.etcd.password_file: %s is empty", config.ErrConfig, e.PasswordFile)
		}
	}
	return cc, nil
}

// OpenEtcdStore connects to the fleet's etcd as host. Connecting does not
// wait for the server: a store opened during an outage fails its calls
// (ErrStoreUnavailable) until the server is back. With a username, the
// client logs in when created, which waits up to fleet.etcd.dial_timeout:
// a refused password fails here (naming the user and the password's file),
// and a server that does not answer is logged in to at the first call that
// reaches it.
func OpenEtcdStore(f config.Fleet, host string, log *zap.Logger) (*EtcdStore, error) {
	if !f.Enabled() {
		return nil, fmt.Errorf("%w: fleet.etcd.endpoints: empty", config.ErrConfig)
	}
	if log == nil {
		log = zap.NewNop()
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	cc, err := EtcdClientConfig(f)
	if err != nil {
		return nil, err
	}
	// The client's own logs are about connections; ours say what failed.
	cc.Logger = log.Named("etcd").WithOptions(zap.IncreaseLevel(zap.ErrorLevel))
	s := &EtcdStore{cc: cc, endpoints: strings.Join(f.Etcd.Endpoints, ","), user: f.Etcd.Username, pwFile: f.Etcd.PasswordFile,
		prefix: f.Etcd.Prefix, host: host, timeout: f.Etcd.RequestTimeout, max: f.MaxConcurrent, ttl: f.SlotTTL, log: log.Named("fleet")}
	cli, err := clientv3.New(cc)
	switch {
	case err == nil:
		s.cli = cli
	case cc.Username != "" && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader)):
		// Only a client that logs in waits for etcd here (its token).
		// etcd did not answer in time: open anyway, as without
		// authentication; the calls fail closed until it does.
		s.log.Warn("fleet store: etcd did not answer the login; calls fail until it does", zap.String("etcd", s.endpoints), zap.Error(err))
	default:
		return nil, s.fail("log in", "", err)
	}
	return s, nil
}

// client is the etcd client, created (logging in) if opening could not.
func (s *EtcdStore) client() (*clientv3.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cli != nil || s.closed {
		if s.closed {
			return nil, errors.New("store closed")
		}
		return s.cli, nil
	}
	cc := s.cc
	if cc.DialTimeout <= 0 || cc.DialTimeout > s.timeout {
		cc.DialTimeout = s.timeout // the login is this call's request
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, err
	}
	s.cli = cli
	s.log.Info("fleet store: logged in to etcd", zap.String("etcd", s.endpoints), zap.String("user", s.user))
	return cli, nil
}

// Close closes the connection. Slots still held are freed by their lease.
func (s *EtcdStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.cli == nil {
		return nil
	}
	return s.cli.Close()
}

// Client returns the etcd client (logging in first if opening could not),
// for the fleet package's keys beside the store's own.
func (s *EtcdStore) Client() (*clientv3.Client, error) {
	cli, err := s.client()
	if err != nil {
		return nil, s.fail("connect", "", err)
	}
	return cli, nil
}

// Prefix is the key prefix every key lives under (fleet.etcd.prefix).
func (s *EtcdStore) Prefix() string { return s.prefix }

// Timeout is fleet.etcd.request_timeout, the bound of every call.
func (s *EtcdStore) Timeout() time.Duration { return s.timeout }

// Fail wraps an etcd error as every store error is (ErrStoreUnavailable,
// the endpoints, the operation and key, and the setting at fault).
func (s *EtcdStore) Fail(op, key string, err error) error { return s.fail(op, key, err) }

// Endpoints names the servers, for messages.
func (s *EtcdStore) Endpoints() string { return s.endpoints }

// Host is the host this store records proposals for.
func (s *EtcdStore) Host() string { return s.host }

func (s *EtcdStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

func (s *EtcdStore) fail(op, key string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		// The client retries a failed TLS handshake until the deadline
		// and reports only the deadline: find out why, once.
		return fmt.Errorf("%w: etcd %s: %s %s: no answer within %s (fleet.etcd.request_timeout)%s: %w",
			remediate.ErrStoreUnavailable, s.endpoints, op, key, s.timeout, s.tlsProblem(), err)
	}
	if s.user != "" && op == "log in" {
		return fmt.Errorf("%w: etcd %s: log in as %q: %w%s", remediate.ErrStoreUnavailable, s.endpoints, s.user, err, s.authProblem(err))
	}
	return fmt.Errorf("%w: etcd %s: %s %s: %w%s", remediate.ErrStoreUnavailable, s.endpoints, op, key, err, s.authProblem(err))
}

// authProblem says which setting an authentication error is about. It
// names the user and the password's file, never the password.
func (s *EtcdStore) authProblem(err error) string {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Sprintf(" (fleet.etcd.username %q, the password in fleet.etcd.password_file %s)", s.user, s.pwFile)
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrUserEmpty):
		if s.user == "" {
			return " (etcd has authentication enabled: set fleet.etcd.username and fleet.etcd.password_file)"
		}
		return fmt.Sprintf(" (user %q needs a role granting readwrite on the prefix %s)", s.user, s.prefix)
	}
	return ""
}

// tlsProblem, with TLS configured, shakes hands with each https endpoint
// (within a second) and returns why that fails: the server's certificate
// not signed by fleet.etcd.tls.ca, or our client certificate refused.
// Empty when the handshakes succeed or the servers cannot be reached.
func (s *EtcdStore) tlsProblem() string {
	if s.cc.TLS == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(s.timeout, time.Second))
	defer cancel()
	for _, ep := range s.cc.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme != "https" {
			continue
		}
		tc := s.cc.TLS.Clone()
		if tc.ServerName == "" {
			tc.ServerName = u.Hostname()
		}
		d := tls.Dialer{Config: tc}
		conn, err := d.DialContext(ctx, "tcp", u.Host)
		if err == nil {
			// TLS 1.3: the server judges our certificate after the
			// handshake; its alert is the first thing read.
			dl, _ := ctx.Deadline()
			if soon := time.Now().Add(200 * time.Millisecond); soon.Before(dl) {
				dl = soon
			}
			conn.SetReadDeadline(dl)
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		var cv *tls.CertificateVerificationError
		var op *net.OpError
		switch {
		case errors.As(err, &cv):
			return fmt.Sprintf("; TLS handshake with %s: %v (is fleet.etcd.tls.ca the CA of the server's certificate?)", u.Host, err)
		case errors.As(err, &op) && op.Op == "remote error" && len(tc.Certificates) == 0:
			return fmt.Sprintf("; TLS handshake with %s: the server wants a client certificate: %v (set fleet.etcd.tls.cert and key)", u.Host, err)
		case errors.As(err, &op) && op.Op == "remote error":
			return fmt.Sprintf("; TLS handshake with %s: the server refused our client certificate: %v (fleet.etcd.tls.cert and key: is it signed by the CA the server trusts?)", u.Host, err)
		case err != nil && strings.Contains(err.Error(), "tls:"):
			return fmt.Sprintf("; TLS handshake with %s: %v (fleet.etcd.tls)", u.Host, err)
		}
	}
	return ""
}

func (s *EtcdStore) proposalKey(host, id string) string {
	return s.prefix + "proposals/" + seg(host) + "/" + id
}

func (s *EtcdStore) approvalKey(id string) string { return s.prefix + "approvals/" + id }

func (s *EtcdStore) rolloutPrefix() string { return s.prefix + "rollout/" }

// get reads one key: its value and ModRevision (0 when absent).
func (s *EtcdStore) get(key string) ([]byte, int64, error) {
	cli, err := s.client()
	if err != nil {
		return nil, 0, s.fail("get", key, err)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return nil, 0, s.fail("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// cas writes key if its ModRevision is still rev (0: still absent).
func (s *EtcdStore) cas(key string, rev int64, v any) (bool, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	cli, err := s.client()
	if err != nil {
		return false, s.fail("txn", key, err)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(b))).
		Commit()
	if err != nil {
		return false, s.fail("txn", key, err)
	}
	return resp.Succeeded, nil
}

// casRetries bounds the read-compare-write loops; each lost race means
// another writer succeeded, so a few are plenty.
const casRetries = 16

// RecordProposal implements remediate.Store, under the proposal's own host.
func (s *EtcdStore) RecordProposal(p remediate.Pending) error {
	if err := remediate.ValidID(p.Proposal.ID); err != nil {
		return err
	}
	host := p.Proposal.Host
	if host == "" {
		host = s.host
	}
	key := s.proposalKey(host, p.Proposal.ID)
	for range casRetries {
		b, rev, err := s.get(key)
		if err != nil {
			return err
		}
		q := p
		if b != nil {
			var old remediate.Pending
			if err := decode(key, b, &old); err == nil && !old.Recorded.IsZero() {
				q.Recorded = old.Recorded
			}
		}
		if q.Recorded.IsZero() {
			q.Recorded = time.Now().UTC()
		}
		if q.LastSeen.IsZero() {
			q.LastSeen = q.Recorded
		}
		ok, err := s.cas(key, rev, q)
		if err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("%w: etcd %s: put %s: too much contention", remediate.ErrStoreUnavailable, s.endpoints, key)
}

// Proposal implements remediate.Store. The id is looked up under this host first,
// then under every host, so that an operator anywhere can approve it.
func (s *EtcdStore) Proposal(id string) (remediate.Pending, error) {
	if err := remediate.ValidID(id); err != nil {
		return remediate.Pending{}, err
	}
	key := s.proposalKey(s.host, id)
	b, _, err := s.get(key)
	if err != nil {
		return remediate.Pending{}, err
	}
	if b == nil {
		pfx := s.prefix + "proposals/"
		cli, err := s.client()
		if err != nil {
			return remediate.Pending{}, s.fail("list", pfx, err)
		}
		ctx, cancel := s.ctx()
		defer cancel()
		resp, err := cli.Get(ctx, pfx, clientv3.WithPrefix())
		if err != nil {
			return remediate.Pending{}, s.fail("list", pfx, err)
		}
		for _, kv := range resp.Kvs {
			if strings.HasSuffix(string(kv.Key), "/"+id) {
				key, b = string(kv.Key), kv.Value
				break
			}
		}
	}
	if b == nil {
		return remediate.Pending{}, fmt.Errorf("%w: proposal %s (etcd %s, %s)", remediate.ErrNotFound, id, s.endpoints, s.prefix+"proposals/")
	}
	var p remediate.Pending
	if err := decode(key, b, &p); err != nil {
		return remediate.Pending{}, err
	}
	if p.Proposal.ID != id {
		return remediate.Pending{}, fmt.Errorf("%w: etcd key %s holds id %q", remediate.ErrUnsafeState, key, p.Proposal.ID)
	}
	return p, nil
}

// Proposals implements remediate.Store: this host's, newest first.
func (s *EtcdStore) Proposals() ([]remediate.Pending, error) {
	return s.list(s.prefix + "proposals/" + seg(s.host) + "/")
}

// FleetProposals lists the proposals of every host, newest first.
func (s *EtcdStore) FleetProposals() ([]remediate.Pending, error) {
	return s.list(s.prefix + "proposals/")
}

func (s *EtcdStore) list(pfx string) ([]remediate.Pending, error) {
	cli, err := s.client()
	if err != nil {
		return nil, s.fail("list", pfx, err)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, s.fail("list", pfx, err)
	}
	var out []remediate.Pending
	for _, kv := range resp.Kvs {
		var p remediate.Pending
		if err := decode(string(kv.Key), kv.Value, &p); err != nil {
			return nil, err
		}
		if !strings.HasSuffix(string(kv.Key), "/"+p.Proposal.ID) {
			return nil, fmt.Errorf("%w: etcd key %s holds id %q", remediate.ErrUnsafeState, kv.Key, p.Proposal.ID)
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Recorded.After(out[j].Recorded) })
	return out, nil
}

// PutApproval implements remediate.Store.
func (s *EtcdStore) PutApproval(a remediate.Approval) error {
	if err := remediate.ValidID(a.Proposal); err != nil {
		return err
	}
	key := s.approvalKey(a.Proposal)
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	cli, err := s.client()
	if err != nil {
		return s.fail("put", key, err)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := cli.Put(ctx, key, string(b)); err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

func (s *EtcdStore) approval(id string) (remediate.Approval, int64, error) {
	if err := remediate.ValidID(id); err != nil {
		return remediate.Approval{}, 0, err
	}
	key := s.approvalKey(id)
	b, rev, err := s.get(key)
	if err != nil {
		return remediate.Approval{}, 0, err
	}
	if b == nil {
		return remediate.Approval{}, 0, fmt.Errorf("%w: approval %s (etcd %s, %s)", remediate.ErrNotFound, id, s.endpoints, key)
	}
	var a remediate.Approval
	if err := decode(key, b, &a); err != nil {
		return remediate.Approval{}, 0, err
	}
	if a.Proposal != id {
		return remediate.Approval{}, 0, fmt.Errorf("%w: etcd key %s holds id %q", remediate.ErrUnsafeState, key, a.Proposal)
	}
	return a, rev, nil
}

// Approval implements remediate.Store.
func (s *EtcdStore) Approval(id string) (remediate.Approval, error) {
	a, _, err := s.approval(id)
	return a, err
}

// UseApproval implements remediate.Store, exactly once across the fleet: the
// approval is read, checked (not used, not denied, not expired), and
// marked used in one etcd Txn that succeeds only if the key's ModRevision
// is still the one read. Of concurrent callers on any hosts, one Txn wins;
// the others read the winner's mark and get ErrApprovalUsed.
func (s *EtcdStore) UseApproval(id, change string, now time.Time) (remediate.Approval, error) {
	for range casRetries {
		a, rev, err := s.approval(id)
		if err != nil {
			return remediate.Approval{}, err
		}
		if err := a.Usable(now); err != nil {
			return a, err
		}
		a.UsedBy, a.UsedAt = change, now.UTC()
		ok, err := s.cas(s.approvalKey(id), rev, a)
		if err != nil {
			return remediate.Approval{}, err
		}
		if ok {
			return a, nil
		}
		// Someone wrote the approval since we read it: read it again.
	}
	return remediate.Approval{}, fmt.Errorf("%w: etcd %s: use %s: too much contention", remediate.ErrStoreUnavailable, s.endpoints, s.approvalKey(id))
}

// Ping checks that the store answers a linearizable read (a quorum is up).
func (s *EtcdStore) Ping(ctx context.Context) error {
	cli, err := s.client()
	if err != nil {
		return s.fail("get", s.prefix, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := cli.Get(ctx, s.prefix, clientv3.WithCountOnly()); err != nil {
		return s.fail("get", s.prefix, err)
	}
	return nil
}

// Holders implements remediate.Rollout.
func (s *EtcdStore) Holders(ctx context.Context) ([]remediate.SlotHolder, int, error) {
	hs, _, err := s.holders(ctx)
	return hs, s.max, err
}

func (s *EtcdStore) holders(ctx context.Context) ([]remediate.SlotHolder, int64, error) {
	pfx := s.rolloutPrefix()
	cli, err := s.client()
	if err != nil {
		return nil, 0, s.fail("list", pfx, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, s.fail("list", pfx, err)
	}
	var out []remediate.SlotHolder
	for _, kv := range resp.Kvs {
		var h remediate.SlotHolder
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			// Still a holder: count it, whatever it says.
			h = remediate.SlotHolder{Host: "?", Change: string(kv.Key)}
		}
		out = append(out, h)
	}
	return out, resp.Header.Revision, nil
}

// Acquire implements remediate.Rollout. A slot is a key PREFIX/rollout/HOST/CHANGE
// bound to a lease of fleet.slot_ttl kept alive while held. It is taken by
// one Txn that succeeds only if no key under PREFIX/rollout/ changed since
// the holders were counted (a range compare on ModRevision) and the new key
// does not exist yet: two hosts counting the same free slot cannot both
// take it.
//
// The one exception is the change's own key, left by this host's previous
// process (killed, restarted) whose lease has not expired yet: that slot
// already counts this change, so it is taken over, rebound to the new
// lease, instead of counted against the limit. Only one process works on
// a change (its lock file), so nobody else holds that key.
func (s *EtcdStore) Acquire(ctx context.Context, h remediate.SlotHolder) (remediate.Slot, error) {
	if h.Host == "" {
		h.Host = s.host
	}
	if err := remediate.ValidID(h.Change); err != nil {
		return nil, err
	}
	key := s.rolloutPrefix() + seg(h.Host) + "/" + h.Change
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var lease clientv3.LeaseID
	var cli *clientv3.Client // set with the lease: holders logged in
	revoke := func() {
		if lease != 0 {
			rctx, cancel := s.ctx()
			defer cancel()
			cli.Revoke(rctx, lease)
		}
	}
	for range casRetries {
		hs, rev, err := s.holders(ctx)
		if err != nil {
			revoke()
			return nil, err
		}
		n := len(hs)
		hs = slices.DeleteFunc(hs, func(o remediate.SlotHolder) bool { return o.Host == h.Host && o.Change == h.Change })
		takeover := len(hs) < n
		if len(hs) >= s.max {
			revoke()
			return nil, fmt.Errorf("%w: %s; try again when one settles", remediate.ErrNoSlot, remediate.InFlight(hs, s.max))
		}
		if lease == 0 {
			if cli, err = s.client(); err != nil {
				return nil, s.fail("grant lease for", key, err)
			}
			gctx, cancel := context.WithTimeout(ctx, s.timeout)
			g, err := cli.Grant(gctx, int64((s.ttl+time.Second-1)/time.Second))
			cancel()
			if err != nil {
				return nil, s.fail("grant lease for", key, err)
			}
			lease = g.ID
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.rolloutPrefix()), "<", rev+1).WithPrefix()}
		if !takeover {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		}
		tctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := cli.Txn(tctx).
			If(cmps...).
			Then(clientv3.OpPut(key, string(b), clientv3.WithLease(lease))).
			Commit()
		cancel()
		if err != nil {
			revoke()
			return nil, s.fail("txn", key, err)
		}
		if resp.Succeeded {
			return s.hold(cli, key, lease, h), nil
		}
	}
	revoke()
	return nil, fmt.Errorf("%w: too much contention on %s", remediate.ErrNoSlot, s.rolloutPrefix())
}

// etcdSlot keeps its lease alive until released.
type etcdSlot struct {
	s       *EtcdStore
	cli     *clientv3.Client
	key     string
	lease   clientv3.LeaseID
	cancel  context.CancelFunc
	done    chan struct{}
	release sync.Once
}

func (s *EtcdStore) hold(cli *clientv3.Client, key string, lease clientv3.LeaseID, h remediate.SlotHolder) *etcdSlot {
	kctx, cancel := context.WithCancel(context.Background())
	sl := &etcdSlot{s: s, cli: cli, key: key, lease: lease, cancel: cancel, done: make(chan struct{})}
	log := s.log.With(zap.String("slot", key), zap.String("change", h.Change))
	go func() {
		defer close(sl.done)
		for kctx.Err() == nil {
			ch, err := cli.KeepAlive(kctx, lease)
			if err != nil {
				log.Warn("fleet rollout slot: keepalive failed; the slot is freed when its lease expires", zap.Error(err))
				return
			}
			for range ch {
			}
			if kctx.Err() != nil {
				return
			}
			// The channel closes when the lease is gone or the
			// client gave up; ask once more whether it still exists.
			tctx, tc := s.ctx()
			ttl, err := cli.TimeToLive(tctx, lease)
			tc()
			if err == nil && ttl.TTL <= 0 {
				log.Warn("fleet rollout slot lost (its lease expired): the change in flight continues; another host may start one")
				return
			}
			select {
			case <-kctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	log.Info("fleet rollout slot taken", zap.Duration("ttl", s.ttl))
	return sl
}

// Release implements Slot: the lease is revoked, which deletes the key.
// When etcd cannot be reached, the lease expires within fleet.slot_ttl.
func (sl *etcdSlot) Release() error {
	var err error
	sl.release.Do(func() {
		sl.cancel()
		<-sl.done
		ctx, cancel := sl.s.ctx()
		defer cancel()
		if _, rerr := sl.cli.Revoke(ctx, sl.lease); rerr != nil {
			err = sl.s.fail("revoke lease of", sl.key, rerr)
			sl.s.log.Warn("fleet rollout slot not released; freed when its lease expires", zap.String("slot", sl.key), zap.Duration("ttl", sl.s.ttl), zap.Error(rerr))
			return
		}
		sl.s.log.Info("fleet rollout slot released", zap.String("slot", sl.key))
	})
	return err
}
