package fleet

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sockwarden/sockwarden/internal/etcdtest"
)

// Against a real etcd with authentication enabled by SetupRoles: the
// agent of web-1 writes its own keys and reads rollouts; etcd refuses its
// writes to web-2's keys, to a rollout and to the halt. The operator
// writes rollouts and the halt but not a host's progress.
func TestRolesEnforcedByEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	const pfx = "/sockwarden/"
	if _, err := root.Put(ctx, pfx+"rollouts/r-1", `{"id":"r-1"}`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, err := SetupRoles(ctx, root, pfx, []string{"web-1", "web-2"}, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if !res.AuthEnabled || res.Users["sockwarden-agent-web-1"] == "" {
		t.Fatalf("setup: %+v", res)
	}
	login := func(user string) *clientv3.Client {
		t.Helper()
		pw, err := os.ReadFile(res.Users[user])
		if err != nil {
			t.Fatal(err)
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second,
			Username: user, Password: strings.TrimSpace(string(pw))})
		if err != nil {
			t.Fatalf("log in as %s: %v", user, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	agent, op := login("sockwarden-agent-web-1"), login(OperatorRole)
	for _, tc := range []struct {
		who  string
		cli  *clientv3.Client
		key  string
		want bool
	}{
		{"agent web-1", agent, pfx + "progress/web-1/r-1", true},
		{"agent web-1", agent, pfx + "hosts/web-1/info", true},
		{"agent web-1", agent, pfx + "proposals/web-1/p1", true},
		{"agent web-1", agent, pfx + "rollout/web-1/c-1", true},
		{"agent web-1", agent, pfx + "progress/web-2/r-1", false},
		{"agent web-1", agent, pfx + "hosts/web-2/info", false},
		{"agent web-1", agent, pfx + "proposals/web-2/p1", false},
		{"agent web-1", agent, pfx + "rollouts/r-1", false},
		{"agent web-1", agent, pfx + "rollouts/r-2", false},
		{"agent web-1", agent, pfx + "halt", false},
		{"agent web-1", agent, pfx + "approvals/p1", false},
		{"operator", op, pfx + "rollouts/r-2", true},
		{"operator", op, pfx + "halt", true},
		{"operator", op, pfx + "approvals/p1", true},
		{"operator", op, pfx + "progress/web-1/r-1", false},
	} {
		_, err := tc.cli.Put(ctx, tc.key, "{}")
		switch {
		case tc.want && err != nil:
			t.Errorf("%s put %s: %v, want allowed", tc.who, tc.key, err)
		case !tc.want && !errors.Is(err, rpctypes.ErrPermissionDenied):
			t.Errorf("%s put %s: %v, want etcd's permission denied", tc.who, tc.key, err)
		}
	}
	// The agent reads rollouts and every host's progress (its decisions
	// need them).
	if r, err := agent.Get(ctx, pfx+"rollouts/", clientv3.WithPrefix()); err != nil || len(r.Kvs) == 0 {
		t.Fatalf("agent reads rollouts: %v", err)
	}
	if _, err := agent.Get(ctx, pfx+"progress/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("agent reads progress: %v", err)
	}
}
