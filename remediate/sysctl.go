// Package remediate is the only code in sockwarden that writes to the kernel
// (/proc/sys). It does so under guard: a proposal is applied only when the
// finding is kernel-side, the key is allowed and in bounds, two fresh samples
// still show the problem, an operator (or a standing rule) approved this exact
// proposal, and the live value is still the one the proposal saw. Every
// change is written to an append-only journal before the kernel is touched,
// so that a crash at any moment leaves no sysctl at a value the journal does
// not know. See docs/remediate.md.
//
// Who may write the kernel's settings, precisely: in the agent and the CLI
// (propose, apply, rollback, resolve) only this package, and only through
// Sysctl, which validates the key, runs in the namespace it names and,
// given Want, refuses any other; in the lab (sockwarden lab and the
// TestNetns... tests) lab's own checked writer, and only net.* keys of a
// namespace the lab made or was pointed at, put back when the scenario
// stops. No other package writes /proc/sys; sample, diagnose and verify
// only read or compute.
package remediate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/sockwarden/sockwarden/internal/netns"
	"github.com/sockwarden/sockwarden/internal/sysval"
)

// DefaultProcSys is where the kernel's sysctls live.
const DefaultProcSys = "/proc/sys"

// Sentinel errors of the sysctl type.
var (
	// ErrBadKey: the key is not a well-formed sysctl name.
	ErrBadKey = errors.New("invalid sysctl key")
	// ErrSysctl wraps every failed read or write.
	ErrSysctl = errors.New("sysctl")
)

// keyRE accepts dotted names of letters, digits, '_' and '-': no '/', no
// empty component, so no ".." and no way out of the /proc/sys tree.
// Compiled on first use, not at every command's start.
var keyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`) })

// ValidKey reports whether key is a well-formed sysctl name.
func ValidKey(key string) error {
	if !keyRE().MatchString(key) {
		return fmt.Errorf("%w: %q (letters, digits, '_', '-' separated by single dots)", ErrBadKey, key)
	}
	return nil
}

// Fold is sysval.Fold, the one normal form of a sysctl value: runs of
// whitespace become one space, no trailing newline.
func Fold(v string) string { return sysval.Fold(v) }

// Sysctl reads and writes the sysctls of one network namespace. It is the
// only door to /proc/sys in sockwarden (in the manner of Cilium's
// pkg/sysctl): it validates the key, reads before it writes, skips a write
// that changes nothing, and runs inside the namespace (internal/netns.Do) so
// that the namespace's own net.* values are the ones read and written.
type Sysctl struct {
	// Root is the /proc/sys tree; "" means DefaultProcSys. Tests point it
	// at a temporary directory.
	Root string
	// Netns is the namespace path ("" = the caller's own).
	Netns string
	// Want, when set, is the namespace identity every read and write must
	// happen in: the thread that entered Netns checks its own namespace
	// before touching the file, so a path that names another namespace
	// now (a /run/netns name reused, a --netns path bind-mounted over)
	// is never written.
	Want *NetnsIdentity
}

// WriteError is a write the kernel (or the file system) refused. The old
// value is left in place.
type WriteError struct {
	Key   string
	Value string
	// Errno is the system error ("EINVAL", "EPERM", "EROFS"), 0 if the
	// failure was not a system call's.
	Errno syscall.Errno
	Err   error
}

func (e *WriteError) Error() string {
	if e.Errno != 0 {
		return fmt.Sprintf("%v: write %s = %q: %s (%v)", ErrSysctl, e.Key, e.Value, ErrnoName(e.Errno), e.Errno)
	}
	return fmt.Sprintf("%v: write %s = %q: %v", ErrSysctl, e.Key, e.Value, e.Err)
}

func (e *WriteError) Unwrap() []error { return []error{ErrSysctl, e.Err} }

// ErrnoName is the symbolic name of an errno ("EINVAL"), or its number.
func ErrnoName(e syscall.Errno) string {
	if e == 0 {
		return ""
	}
	if n := errnoNames[e]; n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

var errnoNames = map[syscall.Errno]string{
	syscall.EINVAL: "EINVAL", syscall.EPERM: "EPERM", syscall.EROFS: "EROFS",
	syscall.EACCES: "EACCES", syscall.ENOENT: "ENOENT", syscall.EBUSY: "EBUSY",
	syscall.ERANGE: "ERANGE", syscall.EOPNOTSUPP: "EOPNOTSUPP", syscall.EIO: "EIO",
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// Path maps a key to its file under the root.
func (s Sysctl) Path(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	root := s.Root
	if root == "" {
		root = DefaultProcSys
	}
	return filepath.Join(root, strings.ReplaceAll(key, ".", "/")), nil
}

func (s Sysctl) in(fn func() error) error {
	if s.Want == nil {
		if s.Netns == "" {
			return fn()
		}
		return netns.Do(s.Netns, fn)
	}
	want := *s.Want
	return netns.Do(s.Netns, func() error {
		now, err := netnsIdentity("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		if now.Ino != want.Ino || (want.Dev != 0 && now.Dev != want.Dev) {
			return fmt.Errorf("%w: %s is %s now, not %s: nothing read or written", ErrNetnsIdentity, orStr(s.Netns, "this process's namespace"), now, want)
		}
		return fn()
	})
}

// Read returns the folded value of key.
func (s Sysctl) Read(key string) (string, error) {
	p, err := s.Path(key)
	if err != nil {
		return "", err
	}
	var v string
	err = s.in(func() error {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("%w: read %s: %w", ErrSysctl, key, err)
		}
		v = Fold(string(b))
		return nil
	})
	return v, err
}

// SetResult says what Set did.
type SetResult struct {
	// Old is the value read before writing, Live the value read back
	// after (equal to Old when nothing was written).
	Old, Live string
	// Written is false when the value was already the wanted one.
	Written bool
}

// ErrValueChanged: CompareAndSet found a value other than the expected one
// and wrote nothing.
var ErrValueChanged = errors.New("value changed")

// Set writes value to key: it reads the current value, writes only if it
// differs, then reads the value back. A refused write returns a *WriteError
// carrying the errno; the kernel leaves the old value in place then.
func (s Sysctl) Set(key, value string) (SetResult, error) {
	return s.set(key, "", false, value)
}

// CompareAndSet is Set that writes only if the value read just before the
// write is old (folded); otherwise it returns ErrValueChanged and writes
// nothing. /proc/sys offers no atomic compare-and-swap: this narrows the
// window between a guard's read and the write to one read and one write on
// the same locked thread.
func (s Sysctl) CompareAndSet(key, old, value string) (SetResult, error) {
	return s.set(key, Fold(old), true, value)
}

func (s Sysctl) set(key, expect string, compare bool, value string) (SetResult, error) {
	var r SetResult
	p, err := s.Path(key)
	if err != nil {
		return r, err
	}
	want := Fold(value)
	if want == "" {
		return r, &WriteError{Key: key, Value: value, Err: errors.New("empty value")}
	}
	err = s.in(func() error {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("%w: read %s: %w", ErrSysctl, key, err)
		}
		r.Old = Fold(string(b))
		r.Live = r.Old
		if compare && r.Old != expect {
			return fmt.Errorf("%w: %s is %q, expected %q", ErrValueChanged, key, r.Old, expect)
		}
		if r.Old == want {
			return nil
		}
		// No O_CREATE: a key the kernel does not have is an error,
		// never a new file.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return &WriteError{Key: key, Value: want, Errno: errnoOf(err), Err: err}
		}
		_, werr := f.Write([]byte(want + "\n"))
		cerr := f.Close()
		if werr == nil {
			werr = cerr
		}
		if werr != nil {
			return &WriteError{Key: key, Value: want, Errno: errnoOf(werr), Err: werr}
		}
		r.Written = true
		b, err = os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("%w: read back %s: %w", ErrSysctl, key, err)
		}
		r.Live = Fold(string(b))
		return nil
	})
	return r, err
}
