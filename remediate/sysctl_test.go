package remediate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/internal/netns"
)

// fakeProcSys makes a /proc/sys-like tree under a temp dir.
func fakeProcSys(t *testing.T, values map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for k, v := range values {
		p := filepath.Join(root, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestValidKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"net.core.somaxconn", true},
		{"net.ipv4.ip_local_port_range", true},
		{"net.ipv4.conf.eth-0.rp_filter", true},
		{"kernel", true},
		{"", false},
		{"net..core", false},
		{".net.core", false},
		{"net.core.", false},
		{"net/core/somaxconn", false},
		{"../../etc/passwd", false},
		{"net.core.some maxconn", false},
		{"net.core.x*", false},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			err := ValidKey(tc.key)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadKey) {
				t.Fatalf("error %v is not ErrBadKey", err)
			}
		})
	}
}

func TestSysctlSetFakeRoot(t *testing.T) {
	tests := []struct {
		name     string
		initial  string
		value    string
		want     SetResult
		wantFile string
	}{
		{"change", "4096\n", "8192", SetResult{Old: "4096", Live: "8192", Written: true}, "8192\n"},
		{"same value skipped", "4096\n", "4096", SetResult{Old: "4096", Live: "4096"}, "4096\n"},
		{"whitespace folded, same", "32768\t60999\n", " 32768  60999 ", SetResult{Old: "32768 60999", Live: "32768 60999"}, "32768\t60999\n"},
		{"whitespace folded, change", "32768\t60999\n", "20000\t60999", SetResult{Old: "32768 60999", Live: "20000 60999", Written: true}, "20000 60999\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeProcSys(t, map[string]string{"net/core/somaxconn": tc.initial})
			s := Sysctl{Root: root}
			got, err := s.Set("net.core.somaxconn", tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
			b, _ := os.ReadFile(filepath.Join(root, "net/core/somaxconn"))
			if string(b) != tc.wantFile {
				t.Fatalf("file = %q, want %q", b, tc.wantFile)
			}
		})
	}
}

func TestSysctlErrorsFakeRoot(t *testing.T) {
	root := fakeProcSys(t, map[string]string{"net/core/somaxconn": "4096\n"})
	s := Sysctl{Root: root}
	if _, err := s.Set("net.core.nosuch", "1"); !errors.Is(err, ErrSysctl) {
		t.Fatalf("missing key: %v, want ErrSysctl", err)
	}
	if _, err := os.Stat(filepath.Join(root, "net/core/nosuch")); !os.IsNotExist(err) {
		t.Fatal("Set created a file for an unknown key")
	}
	if _, err := s.Set("net..core", "1"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("bad key: %v, want ErrBadKey", err)
	}
	if _, err := s.Set("net.core.somaxconn", "  "); err == nil {
		t.Fatal("empty value accepted")
	}
	if os.Geteuid() != 0 {
		// A read-only file refuses the write with EACCES (root ignores
		// the mode, so this check only runs unprivileged).
		os.Chmod(filepath.Join(root, "net/core/somaxconn"), 0o444)
		_, err := s.Set("net.core.somaxconn", "1")
		var we *WriteError
		if !errors.As(err, &we) || we.Errno != syscall.EACCES {
			t.Fatalf("read-only: %v, want WriteError EACCES", err)
		}
	}
}

// TestNetnsSysctl exercises the type against a real kernel, in a throwaway
// namespace: the namespace's own values change, the host's do not, and a
// value the kernel refuses comes back as EINVAL with the old value kept.
func TestNetnsSysctl(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	path, release, err := netns.New(fmt.Sprintf("sw-sysctl-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	host := Sysctl{}
	hostSomax, err := host.Read("net.core.somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	s := Sysctl{Netns: path}
	old, err := s.Read("net.core.somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	want := "1234"
	if old == want {
		want = "1235"
	}
	r, err := s.Set("net.core.somaxconn", want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(SetResult{Old: old, Live: want, Written: true}, r); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	if got, _ := host.Read("net.core.somaxconn"); got != hostSomax {
		t.Fatalf("host somaxconn changed: %s -> %s", hostSomax, got)
	}
	// Same again: no write.
	if r, err := s.Set("net.core.somaxconn", want); err != nil || r.Written {
		t.Fatalf("rewrite of the same value: %+v, %v", r, err)
	}

	// The kernel refuses a port range below ip_unprivileged_port_start.
	start, err := s.Read("net.ipv4.ip_unprivileged_port_start")
	if err != nil {
		t.Fatal(err)
	}
	oldRange, _ := s.Read("net.ipv4.ip_local_port_range")
	var low int
	fmt.Sscan(start, &low)
	bad := fmt.Sprintf("%d 60999", low-10)
	_, err = s.Set("net.ipv4.ip_local_port_range", bad)
	var we *WriteError
	if !errors.As(err, &we) || we.Errno != syscall.EINVAL {
		t.Fatalf("port range %q: err = %v, want WriteError EINVAL", bad, err)
	}
	if got, _ := s.Read("net.ipv4.ip_local_port_range"); got != oldRange {
		t.Fatalf("port range changed after a refused write: %q -> %q", oldRange, got)
	}
}

func TestSysctlCompareAndSet(t *testing.T) {
	root := fakeProcSys(t, map[string]string{"net/core/somaxconn": "4096\n"})
	s := Sysctl{Root: root}
	if _, err := s.CompareAndSet("net.core.somaxconn", "128", "8192"); !errors.Is(err, ErrValueChanged) {
		t.Fatalf("unexpected old value: %v, want ErrValueChanged", err)
	}
	if v, _ := s.Read("net.core.somaxconn"); v != "4096" {
		t.Fatalf("CompareAndSet wrote %s on a mismatch", v)
	}
	r, err := s.CompareAndSet("net.core.somaxconn", "4096", "8192")
	if err != nil || !r.Written || r.Live != "8192" {
		t.Fatalf("matching old value: %+v, %v", r, err)
	}
}
