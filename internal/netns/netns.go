// Package netns runs work inside another network namespace.
//
// The kernel ties a network namespace to a thread, not to a process: the Go
// way is to lock the goroutine to its OS thread, setns(2) that thread into
// the target namespace, do the work, and switch back. Sockets created on that
// thread belong to the target namespace for their whole life, whichever
// thread later uses them. /proc/sys/net/... resolves by the calling thread's
// namespace; /proc/net is the thread-group leader's, so code running inside
// Do must read /proc/thread-self/net/... (see ProcNet).
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrNetns wraps every failure to enter or leave a namespace.
var ErrNetns = errors.New("netns")

// ProcNet is the /proc/net directory of the calling thread's network
// namespace. Use it instead of /proc/net for reads made inside Do.
const ProcNet = "/proc/thread-self/net"

// Do runs fn on a locked OS thread that has joined the network namespace
// named by path (a file such as /run/netns/NAME or /proc/PID/ns/net). An
// empty path runs fn in the caller's own namespace, still on a locked thread,
// so that callers can read /proc/thread-self/net either way.
//
// If the thread cannot be switched back, it is left locked so that the Go
// runtime throws it away instead of reusing it in the wrong namespace.
func Do(path string, fn func() error) error {
	runtime.LockOSThread()
	if path == "" {
		defer runtime.UnlockOSThread()
		return fn()
	}
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("%w: open own namespace: %w", ErrNetns, err)
	}
	defer orig.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		if cerr := Check(path); cerr != nil {
			return cerr // says what the path is
		}
		return fmt.Errorf("%w: open %q: %w", ErrNetns, path, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		if cerr := Check(path); cerr != nil {
			// "invalid argument" from setns says nothing of a
			// directory, a file or a mount namespace.
			return cerr
		}
		return fmt.Errorf("%w: setns %q: %w", ErrNetns, path, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime kills it when this
		// goroutine exits, so it never runs other code in the wrong
		// namespace.
		return errors.Join(ferr, fmt.Errorf("%w: restore namespace: %w", ErrNetns, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// ID returns the inode number that identifies the namespace at path (the
// number `ip netns identify` and `readlink /proc/PID/ns/net` show). An empty
// path means the caller's thread.
func ID(path string) (uint64, error) {
	if path == "" {
		path = "/proc/thread-self/ns/net"
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("%w: stat %q: %w", ErrNetns, path, err)
	}
	return st.Ino, nil
}

// New creates a fresh network namespace, with only a loopback device (up),
// and returns a path to it that Do accepts, plus a function that releases it.
// The namespace lives as long as the returned file is open or bound; tests
// and the lab use it for throwaway namespaces. It needs CAP_SYS_ADMIN.
//
// The namespace is pinned by a bind mount at /run/netns/NAME so that
// iproute2 (`ss -N NAME`, `ip netns exec NAME`) sees it too.
func New(name string) (path string, release func() error, err error) {
	if err := sharedRunDir("/run/netns"); err != nil {
		return "", nil, err
	}
	path = "/run/netns/" + name
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return "", nil, fmt.Errorf("%w: create %q: %w", ErrNetns, path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// This thread unshares, then goes back to its namespace. If it
		// cannot, it stays locked and dies with the goroutine; but the
		// runtime never lets the main thread die (it is only wedged),
		// and the main thread's namespace is what /proc/self/ns/net
		// names: left in the new namespace, it would move the process's
		// own namespace identity under whoever reads it later.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("%w: open own namespace: %w", ErrNetns, err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("%w: unshare: %w", ErrNetns, err)
			return
		}
		err = unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		if err != nil {
			errc <- fmt.Errorf("%w: bind %q: %w", ErrNetns, path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return "", nil, err
	}
	release = func() error {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("%w: unmount %q: %w", ErrNetns, path, err)
		}
		return os.Remove(path)
	}
	if err := Do(path, setLoopbackUp); err != nil {
		release()
		return "", nil, err
	}
	return path, release, nil
}

// sharedRunDir makes dir a shared mount point, bound on itself when it is
// not a mount point yet, as `ip netns add` does (iproute2 netns_add). A
// namespace file bound under a plain directory is hidden, not removed, the
// moment `ip netns add` later binds the directory on itself: the file then
// can be neither unmounted nor removed through its path (EBUSY), and every
// later clean-up of it fails. Binding first, as ip does, keeps both views
// the same mount.
func sharedRunDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w: %w", ErrNetns, err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("%w: make %s a shared mount: %w", ErrNetns, dir, err)
		}
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("%w: bind %s on itself: %w", ErrNetns, dir, err)
		}
	}
}

// setLoopbackUp brings lo up in the calling thread's namespace, as
// `ip link set lo up` does, with the SIOCSIFFLAGS ioctl.
func setLoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: socket: %w", ErrNetns, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNetns, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%w: get lo flags: %w", ErrNetns, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%w: set lo up: %w", ErrNetns, err)
	}
	return nil
}
