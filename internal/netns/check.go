package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// nsGetNstype is NS_GET_NSTYPE, _IO(0xb7, 0x3) (Linux 4.11).
const nsGetNstype = 0xb703

var nsTypes = map[int]string{
	unix.CLONE_NEWNS: "mount", unix.CLONE_NEWUTS: "uts", unix.CLONE_NEWIPC: "ipc",
	unix.CLONE_NEWUSER: "user", unix.CLONE_NEWPID: "pid", unix.CLONE_NEWCGROUP: "cgroup",
	unix.CLONE_NEWTIME: "time",
}

// Check says whether path names a network namespace, and when it does not,
// what the path is instead: absent, not absolute, unreadable, a directory,
// an ordinary or empty file (a /run/netns entry whose namespace is gone),
// or a namespace of another kind. The error wraps ErrNetns. An empty path
// (the caller's own namespace) passes.
func Check(path string) error {
	const want = "want a namespace file such as /run/netns/NAME or /proc/PID/ns/net"
	if path == "" {
		return nil
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%w: %q is not an absolute path (%s)", ErrNetns, path, want)
	}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s does not exist (%s; ip netns list shows the named ones)", ErrNetns, path, want)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %s: permission denied (a namespace file is opened as root, with CAP_SYS_ADMIN and ptrace access to the process that holds it)", ErrNetns, path)
	case err != nil:
		return fmt.Errorf("%w: %s: %w", ErrNetns, path, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNetns, path, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNetns, path, err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			return fmt.Errorf("%w: %s is a directory, not a namespace file (%s)", ErrNetns, path, want)
		case st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0:
			return fmt.Errorf("%w: %s is an empty file, not a namespace: no namespace is mounted on it (deleted, or ip netns add did not finish?)", ErrNetns, path)
		case st.Mode&unix.S_IFMT == unix.S_IFREG:
			return fmt.Errorf("%w: %s is an ordinary file, not a namespace file (%s)", ErrNetns, path, want)
		default:
			return fmt.Errorf("%w: %s is not a namespace file (%s)", ErrNetns, path, want)
		}
	}
	t, err := unix.IoctlRetInt(int(f.Fd()), nsGetNstype)
	if err != nil {
		// Kernels before 4.11 cannot say; setns will.
		return nil
	}
	if t != unix.CLONE_NEWNET {
		kind := nsTypes[t]
		if kind == "" {
			kind = fmt.Sprintf("type %#x", t)
		}
		return fmt.Errorf("%w: %s is a %s namespace, not a network namespace (%s)", ErrNetns, path, kind, want)
	}
	return nil
}
