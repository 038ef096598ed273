package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/sockwarden/sockwarden/internal/netns"
	"github.com/sockwarden/sockwarden/internal/sysval"
)

// The lab's only writes to /proc/sys: a scenario's sysctls, set in its
// namespace (a throwaway one, or one checked by CheckNetns) and restored at
// Stop. remediate.Sysctl is the agent's door to /proc/sys, with journal and
// guards; the lab has no approval to ask for, but it keeps the same two
// limits: a key cannot leave /proc/sys/net, and nothing is written outside
// a named namespace.

// ErrLabSysctl is a sysctl the lab refuses to write.
var ErrLabSysctl = errors.New("lab sysctl")

// netKeyRE accepts dotted names under net. of letters, digits, '_' and
// '-': no '/', no empty component, so no ".." and no way out of
// /proc/sys/net. Only net.* sysctls belong to a network namespace; any
// other (fs.*, kernel.*, vm.*) would be the host's. Compiled on first
// use: cmd/sockwarden imports lab, so a package-level one would be
// compiled at every command's start (as remediate's keyRE is not).
var netKeyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^net(\.[A-Za-z0-9_-]+)+$`) })

// check refuses a key outside net.* or a value of more than one line.
func (s Sysctl) check() error {
	if !netKeyRE().MatchString(s.Key) {
		return fmt.Errorf("%w: %q is not a per-namespace key (net.NAME..., letters, digits, '_', '-')", ErrLabSysctl, s.Key)
	}
	if strings.ContainsAny(s.Value, "\n\x00") {
		return fmt.Errorf("%w: %s: the value %q has a newline or NUL", ErrLabSysctl, s.Key, s.Value)
	}
	return nil
}

// setSysctls writes sysctls inside the namespace path (never the host's)
// and reads each back. Every key is checked before the first write. When
// old is not nil, each sysctl's value before the write is appended to it
// first, so that a failed write leaves in old everything that needs
// restoring.
func setSysctls(path string, kv []Sysctl, old *[]Sysctl) error {
	if len(kv) == 0 {
		return nil
	}
	if path == "" {
		return fmt.Errorf("%w: no namespace path: the sysctls would be the host's", ErrLabSysctl)
	}
	for _, s := range kv {
		if err := s.check(); err != nil {
			return err
		}
	}
	return netns.Do(path, func() error {
		for _, s := range kv {
			if err := setSysctl(s, old); err != nil {
				return err
			}
		}
		return nil
	})
}

// setSysctl writes one checked sysctl in the calling thread's namespace.
func setSysctl(s Sysctl, old *[]Sysctl) error {
	file := filepath.Join("/proc/sys", strings.ReplaceAll(s.Key, ".", "/"))
	if old != nil {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("read %s before setting it: %w", s.Key, err)
		}
		*old = append(*old, Sysctl{s.Key, sysval.Fold(string(b))})
	}
	if err := os.WriteFile(file, []byte(s.Value+"\n"), 0); err != nil {
		return fmt.Errorf("set %s=%q in namespace: %w", s.Key, s.Value, err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read back %s: %w", s.Key, err)
	}
	if got := sysval.Fold(string(b)); got != s.Value {
		return fmt.Errorf("set %s=%q in namespace: reads back %q", s.Key, s.Value, got)
	}
	return nil
}
