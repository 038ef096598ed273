package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsDir is where scenario namespaces are pinned (as iproute2 does).
const netnsDir = "/run/netns"

// CleanStale removes the namespaces of scenarios whose process is gone (a
// `lab run` or test killed with SIGKILL cannot remove its own): every
// /run/netns/sw-lab-PID-N whose PID no longer exists. Their applications
// have already exited by then (they follow their parent). It returns the
// names it removed. Start calls it, best effort.
func CleanStale() ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLab, err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		pid, ok := scenarioPID(e.Name())
		if !ok || processAlive(pid) {
			continue
		}
		path := filepath.Join(netnsDir, e.Name())
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", path, err))
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
			continue
		}
		removed = append(removed, e.Name())
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("%w: clean stale namespaces: %w", ErrLab, err)
	}
	return removed, nil
}

// scenarioPID parses "sw-lab-PID-N".
func scenarioPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "sw-lab-")
	if !ok {
		return 0, false
	}
	p, n, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0, false
	}
	if _, err := strconv.Atoi(n); err != nil {
		return 0, false
	}
	return pid, true
}

// processAlive: the process exists and is not a zombie (a killed run whose
// parent has not reaped it yet holds nothing).
func processAlive(pid int) bool {
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// "pid (comm) S ...": the state follows the last ')'.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		switch b[i+2] {
		case 'Z', 'X':
			return false
		}
	}
	return true
}
