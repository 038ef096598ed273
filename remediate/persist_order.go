package remediate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// bootSysctlDirs are the directories systemd-sysctl and `sysctl --system`
// read at boot besides remediate.persist_dir (which stands for
// /etc/sysctl.d, the first of them). A package variable so that tests point
// it at a fixture tree.
var bootSysctlDirs = []string{"/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"}

// bootOverrides names the boot-time settings of key that are applied after
// the file sockwarden would write (PersistFile(key) in persistDir), so that
// the persisted value would not be the one the host boots with. The boot
// order (systemd-sysctl, procps `sysctl --system`): every *.conf of the
// directories, a name in an earlier directory hiding the same name in a
// later one, applied in the lexical order of their names, the last
// setting winning; procps then reads sysctl.conf beside persistDir
// (/etc/sysctl.conf) last of all. Debian links /etc/sysctl.d/99-sysctl.conf
// to it, so it is seen either way. Each entry reads "FILE:LINE sets KEY =
// VALUE".
func bootOverrides(persistDir, key string) ([]string, error) {
	ours := PersistFile(key)
	byName := map[string]string{} // basename -> path of the first dir that has it
	for _, dir := range append([]string{persistDir}, bootSysctlDirs...) {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}
		for _, e := range ents {
			if n := e.Name(); strings.HasSuffix(n, ".conf") && byName[n] == "" {
				byName[n] = filepath.Join(dir, n)
			}
		}
	}
	var after []string
	for n, p := range byName {
		if n > ours {
			after = append(after, p)
		}
	}
	slices.SortFunc(after, func(a, b string) int { return strings.Compare(filepath.Base(a), filepath.Base(b)) })
	after = append(after, filepath.Join(filepath.Dir(persistDir), "sysctl.conf"))
	var out []string
	seen := map[string]bool{}
	for _, p := range after {
		real, err := filepath.EvalSymlinks(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if seen[real] {
			continue
		}
		seen[real] = true
		b, err := os.ReadFile(real)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		out = append(out, settingsOf(p, b, key)...)
	}
	return out, nil
}

// settingsOf lists the lines of a sysctl.d file that set key, as
// "FILE:LINE sets KEY = VALUE". Keys may be written with / for . (the
// sysctl.d(5) form), and a leading - (ignore errors) does not change
// what the line sets.
func settingsOf(path string, b []byte, key string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimPrefix(strings.TrimSpace(k), "-")
		if i := strings.IndexAny(k, "./"); i >= 0 && k[i] == '/' {
			k = strings.ReplaceAll(k, "/", ".")
		}
		if k == key {
			out = append(out, fmt.Sprintf("%s:%d sets %s = %s", path, n, key, strings.TrimSpace(v)))
		}
	}
	return out
}
