// Package policy is the one place that says which values sockwarden may
// propose for a sysctl: the bounds that remediate's guard 2 enforces and
// the sizing rules diagnose proposes with. Both packages call it, so a
// proposal that diagnose makes is, by construction, one that guard 2 can
// accept (TestPropProposalsPassGuard in remediate holds them to it).
//
// It is pure: values in, values or errors out.
package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/internal/sysval"
	"github.com/sockwarden/sockwarden/sample"
)

// Keys with bounds.
const (
	KeySomaxconn  = "net.core.somaxconn"
	KeySynBacklog = "net.ipv4.tcp_max_syn_backlog"
	KeySyncookies = "net.ipv4.tcp_syncookies"
	KeyTwReuse    = "net.ipv4.tcp_tw_reuse"
	KeyPortRange  = "net.ipv4.ip_local_port_range"
	KeyReserved   = "net.ipv4.ip_local_reserved_ports"
)

// Floors of the queue limits: below 128 (somaxconn's default before 5.4,
// and the kernel's own minimum for tcp_max_syn_backlog on small machines)
// a proposal would still be a cap, not a fix.
const (
	SomaxconnMin  = 128
	SynBacklogMin = 128
)

// ErrBounds is wrapped by every refusal of Check.
var ErrBounds = errors.New("outside policy bounds")

// Check says whether v (whitespace folded) is a value sockwarden may ever
// propose for key: guard 2 of remediate refuses anything it refuses.
func Check(key, v string, cfg config.Diagnose) error {
	v = sysval.Fold(v)
	switch key {
	case KeySomaxconn:
		return intIn(v, SomaxconnMin, int64(cfg.SomaxconnCap), "diagnose.somaxconn_cap")
	case KeySynBacklog:
		return intIn(v, SynBacklogMin, int64(cfg.SynBacklogCap), "diagnose.syn_backlog_cap")
	case KeySyncookies, KeyTwReuse:
		return intIn(v, 0, 2, "")
	case KeyPortRange:
		_, _, err := ParseRange(v)
		return err
	case KeyReserved:
		if _, err := sample.ParsePortSet(v); err != nil {
			return fmt.Errorf("%w: %w", ErrBounds, err)
		}
		return nil
	}
	if v == "" {
		return fmt.Errorf("%w: empty value", ErrBounds)
	}
	return nil
}

func intIn(v string, lo, hi int64, key string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: not an integer", ErrBounds)
	}
	if n < lo || n > hi {
		if key != "" {
			return fmt.Errorf("%w: outside [%d, %d] (%s)", ErrBounds, lo, hi, key)
		}
		return fmt.Errorf("%w: outside [%d, %d]", ErrBounds, lo, hi)
	}
	return nil
}

// ParseRange parses an ip_local_port_range value "low high" with
// 1 <= low < high <= 65535.
func ParseRange(v string) (lo, hi int, err error) {
	f := strings.Fields(v)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%w: want two ports \"low high\"", ErrBounds)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 {
		return 0, 0, fmt.Errorf("%w: ports must be integers in [1, 65535]", ErrBounds)
	}
	if lo >= hi {
		return 0, 0, fmt.Errorf("%w: low %d must be below high %d", ErrBounds, lo, hi)
	}
	return lo, hi, nil
}

// Somaxconn is the somaxconn policy: at least double the current value and
// the peak demand (retransmitted SYNs of earlier drops add to later bursts,
// and an accept-queue slot costs nothing until used), a power of two, never
// below SomaxconnMin nor above diagnose.somaxconn_cap. ok is false when no
// value above current fits.
func Somaxconn(current, demand int64, cfg config.Diagnose) (int64, bool) {
	t := min(max(NextPow2(max(2*current, 2*demand, 1)), SomaxconnMin), int64(cfg.SomaxconnCap))
	return t, t > current
}

// SynBacklog is the tcp_max_syn_backlog policy, used only while the
// operator keeps syncookies off: at least double the current value, and
// large enough that the SYN-RECV pile sits below half of it (unproven
// peers are dropped from 3/4 of it), a power of two within
// [SynBacklogMin, diagnose.syn_backlog_cap]. ok is false when no value
// above current fits.
func SynBacklog(current, synRecv int64, cfg config.Diagnose) (int64, bool) {
	t := min(max(NextPow2(max(2*current, 2*synRecv, 1)), SynBacklogMin), int64(cfg.SynBacklogCap))
	return t, t > current
}

// NearSynBacklogDrop says whether a SYN-RECV pile is near the point where
// the kernel, with syncookies off, drops SYNs of unproven peers: 3/4 of
// tcp_max_syn_backlog (tcp_conn_request). "Near" is at least 90% of it.
func NearSynBacklogDrop(synRecv, maxSynBacklog int64) bool {
	return maxSynBacklog > 0 && 40*synRecv >= 27*maxSynBacklog // synRecv >= 0.9 * 3/4 * max
}

// NextPow2 returns the smallest power of two >= n (n >= 1).
func NextPow2(n int64) int64 {
	p := int64(1)
	for p < n {
		p <<= 1
	}
	return p
}
