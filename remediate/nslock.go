package remediate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultLockDir holds the per-namespace apply locks. It is in the runtime
// directory (the unit's RuntimeDirectory=sockwarden, tmpfiles.d for the
// CLI) and not in the state directory, because every sockwarden on the host
// must see the same lock whatever --state-dir it was given: two state
// directories are two journals, not two kernels.
const DefaultLockDir = "/run/sockwarden/locks"

// netnsLock is the lock of one namespace, held for a whole apply (guards,
// write, verification, keep or roll back) and for a rollback.
type netnsLock struct {
	path string
	f    *os.File
}

// lockNetns takes the lock of namespace id in dir without waiting: a
// second apply to the same namespace is refused, never queued behind a
// verification that may take minutes. The lock file is opened without
// following symlinks, must be a regular file of ours that nobody else can
// read or write, holds the holder's pid, and is removed on release.
func lockNetns(dir string, id NetnsIdentity) (*netnsLock, error) {
	if err := lockDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fmt.Sprintf("netns-%d-%d.lock", id.Dev, id.Ino))
	for try := 0; try < 10; try++ {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("%w: lock %s: %w", ErrUnsafeState, path, err)
		}
		f := os.NewFile(uintptr(fd), path)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		switch {
		case st.Mode&unix.S_IFMT != unix.S_IFREG:
			f.Close()
			return nil, fmt.Errorf("%w: lock %s is not a regular file", ErrUnsafeState, path)
		case int(st.Uid) != os.Geteuid():
			f.Close()
			return nil, fmt.Errorf("%w: lock %s is owned by uid %d, not %d", ErrUnsafeState, path, st.Uid, os.Geteuid())
		case st.Mode&0o077 != 0:
			f.Close()
			return nil, fmt.Errorf("%w: lock %s has mode %04o: group or others may use it", ErrUnsafeState, path, st.Mode&0o7777)
		}
		if err := tryFlock(fd); err != nil {
			holder, _ := os.ReadFile(path)
			f.Close()
			if errors.Is(err, ErrLocked) {
				return nil, &NetnsBusy{ID: id, Lock: path, PID: strings.TrimSpace(string(holder))}
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The holder before us may have removed the file between our
		// open and our flock: then we hold a lock on a file nobody
		// else can find, and must take the one at the path.
		var now unix.Stat_t
		if err := unix.Lstat(path, &now); err != nil || now.Ino != st.Ino || now.Dev != st.Dev {
			f.Close()
			continue
		}
		if err := f.Truncate(0); err == nil {
			f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
		return &netnsLock{path: path, f: f}, nil
	}
	return nil, fmt.Errorf("lock %s: replaced under us 10 times", path)
}

// lockDir makes the lock directory (0700, and its parent when missing) and
// checks it is ours alone.
func lockDir(dir string) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return fmt.Errorf("%w: lock directory %q is not an absolute path", ErrUnsafeState, dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsafeState, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %w", ErrUnsafeState, err)
	}
	return checkOwned(dir, true)
}

// Unlock removes the lock file, then drops the lock (in that order, so that
// a waiter never takes a lock on a file that is about to go).
func (l *netnsLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// NetnsBusy: another live process holds the namespace's lock.
type NetnsBusy struct {
	ID   NetnsIdentity
	Lock string
	PID  string
}

func (b *NetnsBusy) Error() string {
	return fmt.Sprintf("namespace %s is being changed by another sockwarden (pid %s, lock %s), whatever path or state directory it was given: one apply per namespace; try again when it settles",
		b.ID, orStr(b.PID, "?"), b.Lock)
}

func (b *NetnsBusy) Unwrap() error { return ErrLocked }

func flock(fd int, wait bool) error {
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		err := unix.Flock(fd, how)
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return ErrLocked
		}
		return err
	}
}
