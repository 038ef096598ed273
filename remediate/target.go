package remediate

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// NetnsIdentity identifies a network namespace whatever path names it: the
// device and inode of its nsfs file, as stat(2) of /proc/PID/ns/net, of a
// /run/netns bind mount or of the --netns path reports them. Two paths name
// the same namespace exactly when both numbers are equal.
type NetnsIdentity struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

func (n NetnsIdentity) String() string { return fmt.Sprintf("net:[%d] on dev %d", n.Ino, n.Dev) }

// SelfNetnsFile is the file of the process's own network namespace, the one a
// change without --netns writes.
const SelfNetnsFile = "/proc/self/ns/net"

// HostNetnsFile is PID 1's network namespace: the host's, the one
// /etc/sysctl.d is applied to at boot.
const HostNetnsFile = "/proc/1/ns/net"

// ErrNetnsIdentity: a namespace could not be identified, or is not the one
// a change recorded.
var ErrNetnsIdentity = errors.New("namespace identity")

// netnsIdentity stats the namespace file at path ("" = this process's own
// namespace).
func netnsIdentity(path string) (NetnsIdentity, error) {
	if path == "" {
		path = SelfNetnsFile
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return NetnsIdentity{}, fmt.Errorf("%w: stat %s: %w", ErrNetnsIdentity, path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		// nsfs files are regular files to stat(2); a directory or a
		// socket at a --netns path is a mistake, not a namespace.
		return NetnsIdentity{}, fmt.Errorf("%w: %s is not a namespace file (mode %o)", ErrNetnsIdentity, path, st.Mode&unix.S_IFMT)
	}
	return NetnsIdentity{Dev: uint64(st.Dev), Ino: st.Ino}, nil
}

// Target is what identifies the namespace a change writes: the host, the
// path it was named by, and the namespace's identity when the change was
// made. Every journal record of a change carries it, so that losing any one
// line (the applying record, say) never leaves a change whose namespace
// resolve or rollback would have to guess.
type Target struct {
	Host  string
	Netns string
	ID    NetnsIdentity
}

// stamp writes t into a record.
func (t Target) stamp(r *Record) {
	r.Host, r.Netns, r.NetnsID, r.NetnsDev = t.Host, t.Netns, t.ID.Ino, t.ID.Dev
}

// ErrUnprovenTarget: a change's journal does not prove which namespace it
// wrote, so nothing is written back; the operator restores it by hand.
var ErrUnprovenTarget = errors.New("cannot prove which namespace")

// proveTarget decides whether change c may be written back (rolled back or
// resumed) by this process. It returns the target, or an error wrapping
// ErrUnprovenTarget when the journal does not prove the namespace (no record
// carries the identity, records disagree, another host's change), or
// ErrNetnsIdentity when the namespace is gone or was replaced (provably not
// ours any more: nothing to restore).
func (e *Engine) proveTarget(c Change) (Target, error) {
	t := Target{Host: c.Host, Netns: c.Netns, ID: NetnsIdentity{Dev: c.NetnsDev, Ino: c.NetnsID}}
	switch {
	case c.TargetConflict != "":
		return t, fmt.Errorf("%w change %s touched: its records disagree (%s)", ErrUnprovenTarget, c.ID, c.TargetConflict)
	case c.NetnsID == 0:
		return t, fmt.Errorf("%w change %s touched: no readable journal record of it carries the namespace's identity", ErrUnprovenTarget, c.ID)
	case c.Host != e.opts.Host:
		return t, fmt.Errorf("%w change %s touched: it was made on host %q, this is %q", ErrUnprovenTarget, c.ID, c.Host, e.opts.Host)
	}
	now, err := netnsIdentity(c.Netns)
	same := err == nil && now.Ino == t.ID.Ino && (t.ID.Dev == 0 || now.Dev == t.ID.Dev)
	switch {
	case same:
		return t, nil
	case c.Netns == "":
		// The writer's own namespace, and we are in another one (run
		// under `ip netns exec` or `unshare -n`, or the other way
		// round): the changed namespace may well be alive, just not
		// here.
		return t, fmt.Errorf("%w change %s touched: it wrote its writer's own namespace (%s) and this process runs in %s", ErrUnprovenTarget, c.ID, t.ID, now)
	case err != nil:
		return t, fmt.Errorf("%w: namespace %q is gone: %w", ErrNetnsIdentity, c.Netns, err)
	}
	return t, fmt.Errorf("%w: namespace %q was replaced (%s when changed, %s now)", ErrNetnsIdentity, c.Netns, t.ID, now)
}

// restoreByHand says what the operator must do for a change whose target
// cannot be proven.
func restoreByHand(c Change) string {
	var parts []string
	for _, v := range c.Values {
		parts = append(parts, fmt.Sprintf("sysctl -w %s=%q (it was %q before the change wrote %q)", v.Key, v.Old, v.Old, v.New))
	}
	if len(parts) == 0 {
		parts = append(parts, "no readable record holds its values either; see the journal")
	}
	where := "in the namespace it was made for"
	if c.Netns != "" {
		where = fmt.Sprintf("in the namespace it names (%s), after checking it is that one", c.Netns)
	}
	return where + ", " + strings.Join(parts, "; ")
}
