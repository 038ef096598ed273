package remediate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/internal/fsperm"
)

// ErrUnsafeState: the state directory or a file in it could be written by
// someone other than its owner (root), so approvals and the journal there
// cannot be trusted.
var ErrUnsafeState = errors.New("unsafe state directory")

// OpenStateDir makes sure dir exists (created 0700) and that nobody but its
// owner, who must be the caller's effective user, can write it. It refuses a
// symlink, a non-directory, a directory owned by someone else or writable by
// group or others, and one under a directory that another user, or group
// or others, may write: they could rename the state directory away and put
// one of theirs, with its approvals, in its place.
func OpenStateDir(dir string) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return fmt.Errorf("%w: %q is not an absolute path", ErrUnsafeState, dir)
	}
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		// Nothing is made under a directory that is not safe.
		top := filepath.Dir(dir)
		for _, err := os.Lstat(top); errors.Is(err, os.ErrNotExist) && top != "/"; _, err = os.Lstat(top) {
			top = filepath.Dir(top)
		}
		if err := fsperm.Chain(top); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrUnsafeState, dir, err)
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("%w: %w", ErrUnsafeState, err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %w", ErrUnsafeState, err)
		}
	}
	if err := fsperm.Chain(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnsafeState, dir, err)
	}
	return checkOwned(dir, true)
}

// checkOwned refuses path unless it is owned by the effective user, is not a
// symlink, and is not writable (dirs) or readable/writable (files) by group
// or others (fsperm.Private).
func checkOwned(path string, dir bool) error {
	if err := fsperm.Private(path, dir); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsafeState, err)
	}
	return nil
}

// subdir makes (0700) and checks a directory under the state dir.
func subdir(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("%w: %w", ErrUnsafeState, err)
	}
	return p, checkOwned(p, true)
}

// writeFileAtomic writes data to path (0600) through a temporary file,
// fsync and rename, then fsyncs the directory: a reader sees the old or the
// new file, never half of one, even after a crash.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fileLock is an flock(2) lock. The kernel drops it when the holder dies,
// which is how a restarted sockwarden tells a change whose owner was killed
// from one another live process is still verifying.
type fileLock struct{ f *os.File }

// lockFile takes an exclusive lock on path (created 0600). With wait false
// it fails at once with ErrLocked when another process holds it.
func lockFile(path string, wait bool) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &fileLock{f: f}, nil
}

// ErrLocked: another live process holds the lock.
var ErrLocked = errors.New("locked by another process")

func (l *fileLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}
