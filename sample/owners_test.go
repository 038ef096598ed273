package sample

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// procTree builds a /proc-shaped fixture: each process has fd links
// (dangling symlinks read just like /proc's), comm, limits and cgroup.
func procTree(t *testing.T, procs map[int]struct {
	comm, cgroup string
	fds          []string
}) string {
	t.Helper()
	root := t.TempDir()
	limits := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max cpu time              unlimited            unlimited            seconds   \n" +
		"Max open files            1024                 524288               files     \n"
	for pid, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, target := range p.fds {
			if err := os.Symlink(target, filepath.Join(dir, "fd", strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		for name, body := range map[string]string{"comm": p.comm + "\n", "limits": limits, "cgroup": p.cgroup} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	os.WriteFile(filepath.Join(root, "uptime"), []byte("1.0 1.0\n"), 0o644)
	return root
}

func TestScanOwners(t *testing.T) {
	root := procTree(t, map[int]struct {
		comm, cgroup string
		fds          []string
	}{
		100: {"nginx", "0::/system.slice/nginx.service\n", []string{"/dev/null", "socket:[5000]", "socket:[5001]", "pipe:[9]", "anon_inode:[eventpoll]"}},
		101: {"nginx", "0::/system.slice/nginx.service\n", []string{"socket:[5000]"}}, // inherited listener
		200: {"psql", "0::/user.slice/user-0.slice/session-3.scope\n", []string{"socket:[6000]", "socket:[bad]"}},
		300: {"cat", "0::/init.scope\n", []string{"/etc/passwd"}},
	})
	x, miss, err := scanOwners(root)
	if err != nil || miss != nil {
		t.Fatalf("scanOwners: %v, %+v", err, miss)
	}
	nginx := func(pid, fds int) Owner {
		return Owner{PID: pid, Comm: "nginx", Unit: "nginx.service", FDs: fds, FDLimit: 1024}
	}
	for _, tc := range []struct {
		inode uint64
		want  []Owner
	}{
		{5000, []Owner{nginx(100, 5), nginx(101, 1)}},
		{5001, []Owner{nginx(100, 5)}},
		{6000, []Owner{{PID: 200, Comm: "psql", Unit: "session-3.scope", FDs: 2, FDLimit: 1024}}},
		{7000, nil},
		{0, nil},
	} {
		if d := cmp.Diff(tc.want, x.lookup(tc.inode)); d != "" {
			t.Errorf("owners of %d (-want +got):\n%s", tc.inode, d)
		}
	}
	if len(x.owners) != 3 {
		t.Errorf("%d socket-owning processes, want 3 (cat holds none)", len(x.owners))
	}
	var nilIndex *ownerIndex
	if nilIndex.lookup(5000) != nil {
		t.Error("a nil index must know no owner")
	}
}

func TestUnitFromPath(t *testing.T) {
	for path, want := range map[string]string{
		"/system.slice/nginx.service":                                                 "nginx.service",
		"/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service":         "foo.service",
		"/user.slice/user-0.slice/session-3.scope":                                    "session-3.scope",
		"/machine.slice/systemd-nspawn@c1.service/payload/system.slice/redis.service": "redis.service",
		"/system.slice/docker-abc.scope":                                              "docker-abc.scope",
		"/":                                                                           "",
		"":                                                                            "",
		"/kubepods/burstable/pod1/abc":                                                "",
	} {
		if got := unitFromPath(path); got != want {
			t.Errorf("unitFromPath(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestOwnerIndexFind checks the sealed index against a map of the same
// descriptors: inodes spread over the whole 32-bit range (a bucket
// directory of very unequal buckets), dense runs, a clump with irregular
// gaps, a socket held twice by one process and one held by two.
func TestOwnerIndexFind(t *testing.T) {
	x := &ownerIndex{more: map[uint32][]Owner{}}
	for pid := 1; pid <= 4; pid++ {
		x.owners = append(x.owners, Owner{PID: pid * 10})
	}
	want := map[uint32]int32{}
	add := func(ino uint32, idx int32) {
		x.add(ino, idx)
		if w, ok := want[ino]; ok && w != idx {
			idx = sharedInode
		}
		want[ino] = idx
	}
	add(1, 0)
	add(1, 0) // one process, two descriptors: one owner
	add(math.MaxUint32, 1)
	add(7, 2)
	add(7, 3) // shared
	for i := range uint32(5000) {
		add(1_000_000+3*i, int32(i%4)) // a dense run, four processes interleaved
	}
	// A clump with irregular gaps, as sockets made in a burst by several
	// processes get: crowded buckets, searched by interpolation.
	ino := uint32(5_000_000)
	for i := range uint32(20000) {
		ino += 1 + (i*i)%7 + (i%500)/499*300
		add(ino, int32(i%4))
	}
	clumpEnd := ino
	add(1<<31, 3)
	x.seal()
	got := map[uint32]int32{}
	for _, e := range x.ents {
		ino := uint32(e >> 32)
		i, ok := x.find(ino)
		if !ok {
			t.Errorf("inode %d in the index, not found", ino)
		}
		got[ino] = i
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("index (-want +got):\n%s", diff)
	}
	for _, ino := range []uint32{0, 2, 6, 8, 1_000_001, 1_000_000 + 3*5000, 1<<31 - 1, math.MaxUint32 - 1} {
		if i, ok := x.find(ino); ok {
			t.Errorf("inode %d absent, found with owner %d", ino, i)
		}
	}
	for ino := uint32(4_999_990); ino <= clumpEnd+10; ino++ {
		if _, ok := want[ino]; !ok {
			if i, ok := x.find(ino); ok {
				t.Fatalf("inode %d absent (in the clump), found with owner %d", ino, i)
			}
		}
	}
	if diff := cmp.Diff([]Owner{{PID: 30}, {PID: 40}}, x.lookup(7)); diff != "" {
		t.Errorf("shared inode 7 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Owner{{PID: 10}}, x.lookup(1)); diff != "" {
		t.Errorf("inode 1 held twice by one process (-want +got):\n%s", diff)
	}
}
