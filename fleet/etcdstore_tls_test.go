package fleet

// The production configuration of the fleet store against a real etcd:
// TLS with client certificates (etcdtest.StartTLS: https only,
// --client-cert-auth, a throwaway CA) and etcd's authentication (a user
// whose role reads and writes the prefix only, the password from
// fleet.etcd.password_file).

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zaptest"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/internal/etcdtest"
	"github.com/sockwarden/sockwarden/internal/storetest"
	"github.com/sockwarden/sockwarden/remediate"
)

// tlsFleetConfig is etcdtest.FleetConfig for a StartTLS server: its CA and its
// client pair in fleet.etcd.tls.
func tlsFleetConfig(srv *etcdtest.Server) config.Fleet {
	f := srv.FleetConfig()
	f.Etcd.TLS = config.EtcdTLS{CA: srv.TLS.CA, Cert: srv.TLS.ClientCert, Key: srv.TLS.ClientKey}
	return f
}

// rawTLSClient is an etcd client of srv (TLS, client certificate),
// logged in as user when it is not empty.
func rawTLSClient(t *testing.T, srv *etcdtest.Server, user, password string) *clientv3.Client {
	t.Helper()
	tc, err := srv.TLS.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 2 * time.Second, TLS: tc,
		Username: user, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip is the Store contract's core through s: a proposal recorded,
// read back, approved, used exactly once; and a rollout slot taken and
// released (a lease, kept alive over the same connection).
func roundTrip(t *testing.T, s *EtcdStore) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	p := remediate.Pending{Proposal: diagnose.Proposal{ID: "7e57c0ffee01", Host: s.Host(), Finding: diagnose.KindAcceptQueueOverflow, Subject: "127.0.0.1:8080",
		Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "128", Proposed: "1024"}}}, Side: diagnose.SideKernel, Recorded: now, LastSeen: now}
	if err := s.RecordProposal(p); err != nil {
		t.Fatalf("RecordProposal: %v", err)
	}
	if got, err := s.Proposal(p.Proposal.ID); err != nil || got.Proposal.ID != p.Proposal.ID {
		t.Fatalf("Proposal: %+v, %v", got, err)
	}
	a := remediate.Approval{Proposal: p.Proposal.ID, Host: s.Host(), Changes: p.Proposal.Changes, Approver: remediate.Approver{User: "root"},
		Created: now, Expires: now.Add(time.Hour)}
	if err := s.PutApproval(a); err != nil {
		t.Fatalf("PutApproval: %v", err)
	}
	if u, err := s.UseApproval(p.Proposal.ID, "c-1", now); err != nil || u.UsedBy != "c-1" {
		t.Fatalf("UseApproval: %+v, %v", u, err)
	}
	if _, err := s.UseApproval(p.Proposal.ID, "c-2", now); !errors.Is(err, remediate.ErrApprovalUsed) {
		t.Fatalf("second UseApproval: %v, want ErrApprovalUsed", err)
	}
	ctx := context.Background()
	sl, err := s.Acquire(ctx, holder(s.Host(), "c-1"))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if hs, _, err := s.Holders(ctx); err != nil || len(hs) != 1 {
		t.Fatalf("Holders: %+v, %v", hs, err)
	}
	if err := sl.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestEtcdTLSClientCert(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	if !strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatalf("StartTLS endpoint %s", srv.Endpoint)
	}
	roundTrip(t, openEtcd(t, tlsFleetConfig(srv), "h1"))
	storetest.Contract(t, func(t *testing.T) remediate.Store { return openEtcd(t, tlsFleetConfig(srv), "h1") })
}

// A TLS misconfiguration fails the first call, within the request
// timeout, with ErrStoreUnavailable naming the endpoint and the key, and
// saying what is wrong with the handshake.
func TestEtcdTLSRefused(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	other := etcdtest.NewTLSFiles(t, t.TempDir())
	for _, tc := range []struct {
		name string
		tls  func(*config.EtcdTLS)
		want string
	}{
		// The server's certificate is not signed by the CA we trust.
		{"wrong CA", func(c *config.EtcdTLS) { c.CA = other.CA }, "certificate signed by unknown authority"},
		// The server requires a client certificate; we have none.
		{"no client certificate", func(c *config.EtcdTLS) { c.Cert, c.Key = "", "" }, "the server wants a client certificate"},
		// A client certificate the server's CA did not sign.
		{"client certificate of another CA", func(c *config.EtcdTLS) { c.Cert, c.Key = other.ClientCert, other.ClientKey }, "refused our client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tlsFleetConfig(srv)
			f.Etcd.RequestTimeout = time.Second
			tc.tls(&f.Etcd.TLS)
			t0 := time.Now()
			s, err := OpenEtcdStore(f, "h1", zaptest.NewLogger(t))
			if err == nil {
				defer s.Close()
				_, err = s.Approval("abc123")
			}
			took := time.Since(t0)
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
			if !errors.Is(err, remediate.ErrStoreUnavailable) || !strings.Contains(err.Error(), srv.Endpoint) {
				t.Fatalf("err = %v: want ErrStoreUnavailable naming %s", err, srv.Endpoint)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v: want it to say %q", err, tc.want)
			}
			// The request timeout, then at most a second to find out why.
			if took > 2*f.Etcd.RequestTimeout+500*time.Millisecond {
				t.Fatalf("took %s, want about the request timeout %s", took, f.Etcd.RequestTimeout)
			}
		})
	}
}

// enableAuth turns on etcd's authentication on srv: user root (role
// root) and a user sockwarden whose role reads and writes only prefix, as
// docs/remediate.md advises. It returns sockwarden's password.
func enableAuth(t *testing.T, srv *etcdtest.Server, prefix string) string {
	t.Helper()
	const rootPW, userPW = "root-Secret-1", "sw-Secret-2"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := rawTLSClient(t, srv, "", "")
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", rootPW); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "sockwarden"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "sockwarden", prefix, clientv3.GetPrefixRangeEnd(prefix),
				clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "sockwarden", userPW); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "sockwarden", "sockwarden"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("enabling auth: %v", err)
		}
	}
	// Auth is on: without a login, the client certificate's CN (no
	// user) gets nothing.
	if _, err := admin.Get(ctx, prefix); err == nil {
		t.Fatal("auth enabled, but a client without a user may read")
	}
	return userPW
}

// writePassword writes pw to a file of mode under dir.
func writePassword(t *testing.T, dir, name, pw string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(pw+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// etcd's authentication on the TLS server, the password in a file of
// mode 0600.
func TestEtcdAuth(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	f := tlsFleetConfig(srv)
	userPW := enableAuth(t, srv, f.Etcd.Prefix)
	dir := t.TempDir()
	pwFile := func(name, pw string, mode os.FileMode) string { return writePassword(t, dir, name, pw, mode) }

	t.Run("right password", func(t *testing.T) {
		f := f
		f.Etcd.Username, f.Etcd.PasswordFile = "sockwarden", pwFile("right", userPW, 0o600)
		c := config.Defaults()
		c.Fleet = f
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, openEtcd(t, f, "h1"))
	})

	t.Run("wrong password", func(t *testing.T) {
		f := f
		f.Etcd.Username, f.Etcd.PasswordFile = "sockwarden", pwFile("wrong", "not-"+userPW, 0o600)
		t0 := time.Now()
		s, err := OpenEtcdStore(f, "h1", zaptest.NewLogger(t))
		if err == nil {
			defer s.Close()
			_, err = s.Approval("abc123")
		}
		t.Logf("after %s: %v", time.Since(t0).Round(time.Millisecond), err)
		if err == nil || !strings.Contains(err.Error(), srv.Endpoint) || !strings.Contains(err.Error(), `"sockwarden"`) ||
			!strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), "fleet.etcd.password_file") {
			t.Fatalf("err = %v: want the endpoint, the user \"sockwarden\", fleet.etcd.password_file and authentication failed", err)
		}
		if strings.Contains(err.Error(), userPW) {
			t.Fatalf("the error prints the password: %v", err)
		}
	})

	t.Run("role without the prefix", func(t *testing.T) {
		f := f
		f.Etcd.Prefix = "/not-granted/"
		f.Etcd.Username, f.Etcd.PasswordFile = "sockwarden", pwFile("right2", userPW, 0o600)
		s := openEtcd(t, f, "h1")
		_, err := s.Approval("abc123")
		if !errors.Is(err, remediate.ErrStoreUnavailable) || !strings.Contains(err.Error(), "permission denied") ||
			!strings.Contains(err.Error(), `user "sockwarden" needs a role granting readwrite on the prefix /not-granted/`) {
			t.Fatalf("err = %v: want permission denied naming the user and the prefix", err)
		}
	})

	t.Run("password file readable by others", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o640, 0o604} {
			f := f
			f.Etcd.Username, f.Etcd.PasswordFile = "sockwarden", pwFile("loose", userPW, mode)
			s, err := OpenEtcdStore(f, "h1", zaptest.NewLogger(t))
			if err == nil {
				s.Close()
				t.Fatalf("mode %04o: opened", mode)
			}
			if !errors.Is(err, config.ErrConfig) || !strings.Contains(err.Error(), "fleet.etcd.password_file") ||
				!strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), userPW) {
				t.Fatalf("mode %04o: %v: want ErrConfig naming fleet.etcd.password_file, chmod 600, and no password", mode, err)
			}
		}
	})
}

// With authentication, too, an agent started while etcd is down starts:
// opening does not wait for etcd, the calls fail closed until it answers,
// and then work (the client logs in when etcd is back).
func TestEtcdAuthOpenDuringOutage(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	f := tlsFleetConfig(srv)
	f.Etcd.RequestTimeout = time.Second
	f.Etcd.DialTimeout = time.Second
	f.Etcd.Username, f.Etcd.PasswordFile = "sockwarden", writePassword(t, t.TempDir(), "pw", enableAuth(t, srv, f.Etcd.Prefix), 0o600)
	srv.Kill()
	s, err := OpenEtcdStore(f, "h1", zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("open while etcd is down: %v; want the store, failing its calls until etcd answers", err)
	}
	defer s.Close()
	t0 := time.Now()
	_, err = s.Approval("abc123")
	if !errors.Is(err, remediate.ErrStoreUnavailable) || !strings.Contains(err.Error(), srv.Endpoint) {
		t.Fatalf("call while etcd is down: %v, want ErrStoreUnavailable naming %s", err, srv.Endpoint)
	}
	if took := time.Since(t0); took > 2*f.Etcd.RequestTimeout+500*time.Millisecond {
		t.Fatalf("took %s, want about the request timeout %s", took, f.Etcd.RequestTimeout)
	}
	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := s.PutApproval(remediate.Approval{Proposal: "abc123", Approver: remediate.Approver{User: "root"}, Expires: time.Now().Add(time.Hour)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store not usable after etcd came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	roundTrip(t, s)
}
