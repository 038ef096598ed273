// Package fsperm holds the ownership and mode checks of the files
// sockwarden trusts: the state directory and what is in it (approvals, the
// journal), the directories above it, and the config file (which can grant
// standing approvals). One place, so that config and remediate refuse the
// same things with the same words.
//
// The errors name the path and the owner or mode found; callers wrap them
// with their own sentinel (remediate.ErrUnsafeState, config.ErrConfig).
// An error from lstat or stat wraps the os error (errors.Is(err,
// fs.ErrNotExist) works).
package fsperm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Private refuses path unless it is owned by the effective user, is not a
// symlink, is a directory (dir) or a regular file, and is not writable
// (directories) or readable or writable (files) by group or others.
func Private(path string, dir bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	mode := st.Mode & unix.S_IFMT
	switch {
	case dir && mode != unix.S_IFDIR:
		return fmt.Errorf("%s is not a directory", path)
	case !dir && mode != unix.S_IFREG:
		return fmt.Errorf("%s is not a regular file", path)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not %d", path, st.Uid, os.Geteuid())
	}
	bad := uint32(0o022)
	want := "0700"
	if !dir {
		bad, want = 0o077, "0600"
	}
	if st.Mode&bad != 0 {
		return fmt.Errorf("%s has mode %04o: group or others may use it (want %s)", path, st.Mode&0o7777, want)
	}
	return nil
}

// trustedOwner: root, or the user sockwarden runs as.
func trustedOwner(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

func ownerNames() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	return fmt.Sprintf("root or uid %d", os.Geteuid())
}

// File refuses an open file that is not a regular file owned by root or the
// effective user, or that group or others may write. name is for messages.
// Checking the open descriptor, not the path, checks what is then read.
func File(f *os.File, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(1, 3) {
		// /dev/null (--config /dev/null: the defaults) reads as
		// empty whoever may write it.
		return nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", name)
	}
	if !trustedOwner(st.Uid) {
		return fmt.Errorf("%s is owned by uid %d, not %s: another user may change it", name, st.Uid, ownerNames())
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("%s has mode %04o: group or others may write it (chmod go-w)", name, st.Mode&0o7777)
	}
	// The directories above the name and, when it is a symlink, the
	// link itself and the directories above what it leads to.
	if err := Chain(filepath.Dir(name)); err != nil {
		return err
	}
	var lst unix.Stat_t
	if err := unix.Lstat(name, &lst); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if lst.Mode&unix.S_IFMT != unix.S_IFLNK {
		return nil
	}
	if !trustedOwner(lst.Uid) {
		return fmt.Errorf("%s is a symlink owned by uid %d, not %s", name, lst.Uid, ownerNames())
	}
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return Chain(filepath.Dir(real))
}

// Chain refuses dir unless it and every directory above it are owned by
// root or the effective user and not writable by group or others: whoever
// can write a directory can replace what is under it. A sticky directory
// owned by root (/tmp) passes: others cannot rename or remove what is not
// theirs there. Symlinks on the way must be owned by root or the effective
// user, and the directories they lead to are checked the same way.
func Chain(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := chain(abs, false); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("%s: %w", abs, err)
	}
	if real != abs {
		return chain(real, true)
	}
	return nil
}

func chain(abs string, resolved bool) error {
	p := "/"
	parts := strings.Split(strings.Trim(abs, "/"), "/")
	for i := -1; i < len(parts); i++ {
		if i >= 0 {
			if parts[i] == "" {
				continue
			}
			p = filepath.Join(p, parts[i])
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if !trustedOwner(st.Uid) {
			return fmt.Errorf("%s is owned by uid %d, not %s: that user may replace what is under it", p, st.Uid, ownerNames())
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if resolved {
				return fmt.Errorf("%s is a symlink after resolving %s", p, abs)
			}
			// Its target is checked with the resolved path.
			continue
		case unix.S_IFDIR:
		default:
			return fmt.Errorf("%s is not a directory", p)
		}
		if st.Mode&0o022 != 0 && !(st.Mode&unix.S_ISVTX != 0 && st.Uid == 0) {
			return fmt.Errorf("%s has mode %04o: group or others may replace what is under it (chmod go-w)", p, st.Mode&0o7777)
		}
	}
	return nil
}
