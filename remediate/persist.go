package remediate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PersistFile is the name of a persisted key's file in the persist
// directory: one file per key, so that a later change to another key never
// rewrites this one, and `sysctl --system` applies it at boot.
func PersistFile(key string) string { return "90-sockwarden-" + key + ".conf" }

// persist writes a verified change to remediate.persist_dir (default
// /etc/sysctl.d), since a /proc/sys write does not survive a reboot. It only
// persists changes to the host's own namespace: /etc/sysctl.d is applied to
// the host at boot, and a container's values belong to its own runtime.
func (e *Engine) persist(ns, change, proposal string, vals []Value) (string, error) {
	if ns != "" {
		return "", fmt.Errorf("namespace %s: /etc/sysctl.d applies to the host's namespace, so a namespace's value is not persisted", ns)
	}
	dir := e.cfg.Remediate.PersistDir
	return PersistValues(dir, change, proposal, vals, e.opts.Now())
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
		body := fmt.Sprintf("# Written by sockwarden: change %s (proposal %s), verified %s.\n# Was %q. Remove this file to stop applying it at boot.\n%s = %s\n",
			change, proposal, now.UTC().Format(time.RFC3339), v.Old, v.Key, v.New)
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
