package remediate

import "path/filepath"

// tryLock takes the lock at path or fails at once with ErrLocked: used
// where a held lock means "a live process is on it" (a change's lock).
func tryLock(path string) (*fileLock, error) { return lockFile(path, false) }

// waitLock takes the lock at path, waiting for its holder: used for short
// critical sections (the journal's append, the store's read-modify-write).
func waitLock(path string) (*fileLock, error) { return lockFile(path, true) }

// tryFlock is tryLock on an open descriptor (the namespace lock, which
// opens its file itself to check who owns it).
func tryFlock(fd int) error { return flock(fd, false) }

// changeLock takes the lock of change id without waiting. Its holder is the
// process applying or verifying the change; the kernel drops it when that
// process dies, which is how resolve tells a dead owner from a live one.
func (e *Engine) changeLock(id string) (*fileLock, error) {
	return tryLock(filepath.Join(e.locks, "change-"+id+".lock"))
}
