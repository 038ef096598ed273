package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Role names.
const (
	OperatorRole = "sockwarden-operator"
	// AgentRolePrefix + host is the role of that host's agent.
	AgentRolePrefix = "sockwarden-agent-"
)

// Permission is one grant of a role: a key or a prefix (range end set to
// the prefix's successor).
type Permission struct {
	Role   string
	Key    string
	Prefix bool
	Write  bool // readwrite, or read only
}

func (p Permission) String() string {
	t := "read"
	if p.Write {
		t = "readwrite"
	}
	pf := ""
	if p.Prefix {
		pf = " --prefix"
	}
	return fmt.Sprintf("etcdctl role grant-permission%s %s %s %s", pf, p.Role, t, p.Key)
}

// Permissions is what each role may do under prefix: the operator reads
// everything and writes rollouts, the halt and approvals; the agent of a
// host reads everything and writes only keys named after that host (its
// registration, proposals, rollout slots and rollout progress).
func Permissions(prefix string, hosts []string) []Permission {
	ps := []Permission{
		{OperatorRole, prefix, true, false},
		{OperatorRole, prefix + "rollouts/", true, true},
		{OperatorRole, prefix + "halt", false, true},
		{OperatorRole, prefix + "approvals/", true, true},
	}
	for _, h := range hosts {
		r := AgentRolePrefix + h
		ps = append(ps, Permission{r, prefix, true, false})
		for _, sub := range []string{"hosts/", "proposals/", "rollout/", "progress/"} {
			ps = append(ps, Permission{r, prefix + sub + seg(h) + "/", true, true})
		}
	}
	return ps
}

// RolesResult names the users created and their password files.
type RolesResult struct {
	Users         map[string]string // user -> password file
	Permissions   []Permission
	AuthEnabled   bool
	RootPassword  string // file, when auth was enabled here
	ExistingUsers []string
}

// SetupRoles creates the operator role and one agent role per host in
// etcd, a user for each (operator user "sockwarden-operator", agent users
// "sockwarden-agent-HOST") whose generated password is written to
// passwordDir/USER.password (0600) unless the user exists, and, with
// enableAuth, the root user and etcd's authentication. cli must be allowed
// to manage users and roles (root, or etcd without authentication yet).
func SetupRoles(ctx context.Context, cli *clientv3.Client, prefix string, hosts []string, passwordDir string, enableAuth bool) (RolesResult, error) {
	res := RolesResult{Users: map[string]string{}, Permissions: Permissions(prefix, hosts)}
	if err := os.MkdirAll(passwordDir, 0o700); err != nil {
		return res, err
	}
	roles := []string{OperatorRole}
	for _, h := range hosts {
		if h == "" || strings.ContainsAny(h, "/ \t\n") {
			return res, fmt.Errorf("host %q: not a host name", h)
		}
		roles = append(roles, AgentRolePrefix+h)
	}
	for _, r := range roles {
		if _, err := cli.RoleAdd(ctx, r); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return res, fmt.Errorf("role add %s: %w", r, err)
		}
	}
	for _, p := range res.Permissions {
		end := ""
		if p.Prefix {
			end = clientv3.GetPrefixRangeEnd(p.Key)
		}
		t := clientv3.PermissionType(authpb.READ)
		if p.Write {
			t = clientv3.PermissionType(authpb.READWRITE)
		}
		if _, err := cli.RoleGrantPermission(ctx, p.Role, p.Key, end, t); err != nil {
			return res, fmt.Errorf("%s: %w", p, err)
		}
	}
	users := append([]string{}, roles...) // one user per role, same name
	if enableAuth {
		users = append(users, "root")
	}
	for _, u := range users {
		file := filepath.Join(passwordDir, u+".password")
		pw := make([]byte, 18)
		rand.Read(pw)
		_, err := cli.UserAdd(ctx, u, hex.EncodeToString(pw))
		if errors.Is(err, rpctypes.ErrUserAlreadyExist) {
			res.ExistingUsers = append(res.ExistingUsers, u)
		} else if err != nil {
			return res, fmt.Errorf("user add %s: %w", u, err)
		} else if err := os.WriteFile(file, []byte(hex.EncodeToString(pw)+"\n"), 0o600); err != nil {
			return res, err
		} else if u == "root" {
			res.RootPassword = file
		} else {
			res.Users[u] = file
		}
		role := u
		if _, err := cli.UserGrantRole(ctx, u, role); err != nil && !errors.Is(err, rpctypes.ErrRoleNotGranted) {
			return res, fmt.Errorf("user grant-role %s %s: %w", u, role, err)
		}
	}
	if enableAuth {
		if _, err := cli.AuthEnable(ctx); err != nil {
			return res, fmt.Errorf("auth enable: %w", err)
		}
		res.AuthEnabled = true
	}
	return res, nil
}
