package remediate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// PersistFile is the name of a persisted key's file in the persist
// directory: one file per key, so that a later change to another key never
// rewrites this one, and `sysctl --system` applies it at boot.
func PersistFile(key string) string { return "90-sockwarden-" + key + ".conf" }

// planPersist names the sysctl.d file of each value and what it holds now.
// It refuses (the error) unless the change's namespace is provably the
// host's: the one PID 1 runs in, which /etc/sysctl.d is applied to at boot.
// "No --netns given" is not proof: `ip netns exec X sockwarden apply` and a
// sockwarden inside `unshare -n` have none either.
func (e *Engine) planPersist(t Target, vals []Value) ([]PersistNote, error) {
	host, err := netnsIdentity(e.opts.HostNetns)
	if err != nil {
		return nil, fmt.Errorf("cannot tell whether namespace %s is the host's: %w; a value is persisted only for the host's namespace", orStr(t.Netns, "(own)"), err)
	}
	if host != t.ID {
		return nil, fmt.Errorf("namespace %s (%s) is not the host's (%s is %s): /etc/sysctl.d applies to the host's namespace at boot, so a namespace's value is not persisted",
			orStr(t.Netns, "of this process"), t.ID, e.opts.HostNetns, host)
	}
	dir := e.cfg.Remediate.PersistDir
	if dir == "" || !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("remediate.persist_dir %q must be an absolute path", dir)
	}
	var notes []PersistNote
	for _, v := range vals {
		if err := ValidKey(v.Key); err != nil {
			return nil, err
		}
		over, err := bootOverrides(dir, v.Key)
		if err != nil {
			return nil, fmt.Errorf("persist %s: %w", v.Key, err)
		}
		if len(over) > 0 {
			return nil, fmt.Errorf("%s: applied after %s at boot, where the last setting wins, so the verified value would not survive a reboot; not persisted: set %s = %s there by hand",
				strings.Join(over, "; "), PersistFile(v.Key), v.Key, v.New)
		}
		n := PersistNote{Path: filepath.Join(dir, PersistFile(v.Key))}
		b, err := readSmall(n.Path)
		switch {
		case err == nil:
			n.Existed, n.Before = true, string(b)
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("persist %s: %w", v.Key, err)
		}
		notes = append(notes, n)
	}
	return notes, nil
}

// readSmall reads a sysctl.d file, refusing a symlink or anything but a
// small regular file (it is journaled whole).
func readSmall(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > 64<<10 {
		return nil, fmt.Errorf("%s is not a regular file under 64 KiB", path)
	}
	return io.ReadAll(f)
}

// persist writes a verified change to remediate.persist_dir (default
// /etc/sysctl.d), since a /proc/sys write does not survive a reboot, as
// planned (notes) when verification began.
func (e *Engine) persist(notes []PersistNote, planErr error, change, proposal string, vals []Value) (string, error) {
	if planErr != nil {
		return "", planErr
	}
	if len(notes) != len(vals) {
		return "", fmt.Errorf("no persistence planned for change %s when its verification began", change)
	}
	return PersistValues(e.cfg.Remediate.PersistDir, change, proposal, vals, e.now())
}

// persistMarker is in every file PersistValues writes: a file without the
// change's marker was not written by that change and is left alone.
func persistMarker(change string) string { return "# Written by sockwarden: change " + change + " " }

// unpersist puts back the sysctl.d files change wrote: the content noted
// before, or no file. A file that does not carry the change's marker (never
// written, or rewritten since by someone else) is left alone.
func (e *Engine) unpersist(change string, notes []PersistNote) string {
	var parts []string
	for _, n := range notes {
		b, err := readSmall(n.Path)
		if errors.Is(err, os.ErrNotExist) || (err == nil && !strings.HasPrefix(string(b), persistMarker(change))) {
			continue
		}
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v; left alone", n.Path, err))
			continue
		}
		if n.Existed {
			err = writeFileAtomic(n.Path, []byte(n.Before))
			if err == nil {
				err = os.Chmod(n.Path, 0o644)
			}
		} else if err = os.Remove(n.Path); err == nil {
			err = syncDir(filepath.Dir(n.Path))
		}
		switch {
		case err != nil:
			parts = append(parts, fmt.Sprintf("%s: restore failed: %v", n.Path, err))
		case n.Existed:
			parts = append(parts, fmt.Sprintf("%s restored to what it held before", n.Path))
		default:
			parts = append(parts, fmt.Sprintf("%s removed", n.Path))
		}
		e.log.Info("persisted file undone", zap.String("change", change), zap.String("path", n.Path), zap.Bool("restored", n.Existed), zap.Error(err))
	}
	return strings.Join(parts, "; ")
}

// PersistValues writes one sysctl.d file per value into dir, atomically.
// It returns the files written, comma-separated.
func PersistValues(dir, change, proposal string, vals []Value, now time.Time) (string, error) {
	if dir == "" || !filepath.IsAbs(dir) {
		return "", fmt.Errorf("remediate.persist_dir %q must be an absolute path", dir)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("remediate.persist_dir %q: %w", dir, errors.Join(err, errors.New("not a directory")))
	}
	var files []string
	for _, v := range vals {
		if err := ValidKey(v.Key); err != nil {
			return "", err
		}
		p := filepath.Join(dir, PersistFile(v.Key))
		body := fmt.Sprintf("%s(proposal %s), verified %s.\n# Was %q. Remove this file to stop applying it at boot.\n%s = %s\n",
			persistMarker(change), proposal, now.UTC().Format(time.RFC3339), v.Old, v.Key, v.New)
		if err := writeFileAtomic(p, []byte(body)); err != nil {
			return "", fmt.Errorf("persist %s: %w", v.Key, err)
		}
		// sysctl.d files are world-readable by convention.
		if err := os.Chmod(p, 0o644); err != nil {
			return "", err
		}
		files = append(files, p)
	}
	return strings.Join(files, ","), nil
}
