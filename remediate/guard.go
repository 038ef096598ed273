package remediate

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/internal/policy"
	"github.com/sockwarden/sockwarden/sample"
)

// The guards, in the order they are checked. A refusal names one of them.
const (
	GuardKernelSide = "1-kernel-side"
	GuardAllowed    = "2-allowlist-bounds"
	GuardSamples    = "3-fresh-samples"
	GuardApproval   = "4-approval"
	GuardLiveValue  = "5-live-value"
	// GuardFleetSlot is checked last, when a fleet store is configured:
	// one of the fleet's fleet.max_concurrent rollout slots must be free.
	// It is taken before the approval is used, and held until the change
	// is kept or rolled back.
	GuardFleetSlot = "6-fleet-slot"
)

// ErrRefused is wrapped by every *Refusal.
var ErrRefused = errors.New("refused")

// Refusal is a guard stopping an apply. Nothing was written.
type Refusal struct {
	Guard  string
	Reason string
	// Err is the cause when one is worth testing for (ErrNoSlot,
	// ErrStoreUnavailable: the agent tries again later).
	Err error
}

// ErrNotNow is the cause of the refusals that say the fresh samples do
// not bear the recorded proposal out at this moment: they do not show the
// finding, do not confirm it in every interval, its drop counters stand
// still (guard 3), or they read it on another side than the kernel's
// (guard 1 on the fresh diagnosis; the recorded side stays a lasting
// refusal). It is a
// refusal of the moment, not of the change: nothing was written and the
// approval is unused, so the agent tries again once its census confirms
// the finding again (in a fleet rollout the host gives its place back
// instead of being skipped for good).
var ErrNotNow = errors.New("the finding is not seen now")

func (r *Refusal) Error() string {
	return fmt.Sprintf("refused by guard %s: %s", r.Guard, r.Reason)
}

func (r *Refusal) Unwrap() []error {
	if r.Err != nil {
		return []error{ErrRefused, r.Err}
	}
	return []error{ErrRefused}
}

// refuseErr is refuse with a cause: the reason says err.
func refuseErr(guard string, err error, format string, a ...any) *Refusal {
	r := refuse(guard, format, a...)
	r.Err = err
	return r
}

func refuse(guard, format string, a ...any) *Refusal {
	return &Refusal{Guard: guard, Reason: fmt.Sprintf(format, a...)}
}

// checkSide is guard 1: only a kernel-side finding may change the kernel.
func checkSide(side diagnose.Side, what string) *Refusal {
	if side != diagnose.SideKernel {
		return refuse(GuardKernelSide, "%s is %q-side, not kernel-side: no sysctl change is made for it, approved or not", what, orStr(string(side), "unknown"))
	}
	return nil
}

// checkStatic is the part of guard 2 that needs no live data: the key is
// valid and allowlisted, the value well-formed and within bounds.
func checkStatic(p diagnose.Proposal, cfg config.Config) *Refusal {
	if len(p.Changes) == 0 {
		return refuse(GuardAllowed, "proposal %s changes nothing", p.ID)
	}
	seen := map[string]bool{}
	for _, c := range p.Changes {
		if err := ValidKey(c.Key); err != nil {
			return refuse(GuardAllowed, "%v", err)
		}
		if seen[c.Key] {
			return refuse(GuardAllowed, "%s appears twice in the proposal", c.Key)
		}
		seen[c.Key] = true
		if !slices.Contains(cfg.Remediate.Allowlist, c.Key) {
			return refuse(GuardAllowed, "%s is not on the allowlist (remediate.allowlist: %s)", c.Key, strings.Join(cfg.Remediate.Allowlist, ", "))
		}
		if Fold(c.Current) == Fold(c.Proposed) {
			return refuse(GuardAllowed, "%s: proposed value %q equals the current one", c.Key, c.Proposed)
		}
		// The bounds live in one place, which diagnose sizes its
		// proposals with too.
		if err := policy.Check(c.Key, c.Proposed, cfg.Diagnose); err != nil {
			return refuse(GuardAllowed, "%s = %q: %v", c.Key, c.Proposed, err)
		}
	}
	return nil
}

// checkKernelRules is the live part of guard 2: the kernel's own rules
// (KERNEL-NOTES.md), judged with the values and listeners of the fresh
// sample and the live sysctls.
func checkKernelRules(p diagnose.Proposal, live func(string) (string, error), series ...*sample.Sample) *Refusal {
	proposed := map[string]string{}
	for _, c := range p.Changes {
		proposed[c.Key] = Fold(c.Proposed)
	}
	value := func(key string) (string, error) {
		if v, ok := proposed[key]; ok {
			return v, nil
		}
		return live(key)
	}
	for _, c := range p.Changes {
		switch c.Key {
		case "net.ipv4.ip_local_port_range":
			lo, hi, err := policy.ParseRange(c.Proposed)
			if err != nil {
				return refuse(GuardAllowed, "%s = %q: %v", c.Key, c.Proposed, err)
			}
			start, err := live("net.ipv4.ip_unprivileged_port_start")
			if err == nil {
				if s, err := strconv.Atoi(start); err == nil && lo < s {
					return refuse(GuardAllowed, "%s = %q: low end %d is below net.ipv4.ip_unprivileged_port_start %d (the kernel refuses it)", c.Key, c.Proposed, lo, s)
				}
			}
			rv, err := value("net.ipv4.ip_local_reserved_ports")
			if err != nil {
				rv = ""
			}
			reserved, err := sample.ParsePortSet(rv)
			if err != nil {
				return refuse(GuardAllowed, "net.ipv4.ip_local_reserved_ports = %q: %v", rv, err)
			}
			for _, s := range series {
				if s == nil {
					continue
				}
				for _, l := range s.Listeners {
					port := int(l.Port)
					if port >= lo && port <= hi && !reserved[port] {
						return refuse(GuardAllowed, "%s = %q would cover listening port %d (%s), which is not in net.ipv4.ip_local_reserved_ports", c.Key, c.Proposed, port, l.Local)
					}
				}
			}
		case "net.core.somaxconn":
			// Kernels before 5.4 keep the limit in 16 bits.
			if n, err := strconv.ParseInt(Fold(c.Proposed), 10, 64); err == nil && n > 65535 && !kernelAtLeast(5, 4) {
				return refuse(GuardAllowed, "%s = %d: kernels before 5.4 store the backlog in 16 bits (this one is %s)", c.Key, n, kernelRelease())
			}
		case "net.ipv4.tcp_max_syn_backlog":
			sc, err := value("net.ipv4.tcp_syncookies")
			if err == nil && sc != "0" {
				return refuse(GuardAllowed, "%s is consulted only when net.ipv4.tcp_syncookies=0; it is %s here, so raising it changes nothing", c.Key, sc)
			}
		}
	}
	return nil
}

// Standing is one standing approval rule from config: KEY<=MAX.
type Standing struct {
	Rule string
	Key  string
	Max  int64
}

// ParseStanding parses remediate.standing entries ("net.core.somaxconn<=16384").
func ParseStanding(rules []string) ([]Standing, error) {
	var out []Standing
	for _, r := range rules {
		k, m, ok := strings.Cut(strings.ReplaceAll(r, " ", ""), "<=")
		if !ok {
			return nil, fmt.Errorf("remediate.standing: %q: want KEY<=MAX", r)
		}
		if err := ValidKey(k); err != nil {
			return nil, fmt.Errorf("remediate.standing: %q: %w", r, err)
		}
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("remediate.standing: %q: MAX must be a non-negative integer", r)
		}
		out = append(out, Standing{Rule: k + "<=" + m, Key: k, Max: n})
	}
	return out, nil
}

// standingFor returns the rules covering every change of p (each change a
// raise of an integer value up to the rule's MAX), or nil.
func standingFor(p diagnose.Proposal, rules []Standing) []Standing {
	var used []Standing
	for _, c := range p.Changes {
		cur, err1 := strconv.ParseInt(Fold(c.Current), 10, 64)
		want, err2 := strconv.ParseInt(Fold(c.Proposed), 10, 64)
		if err1 != nil || err2 != nil || want <= cur {
			return nil
		}
		found := false
		for _, r := range rules {
			if r.Key == c.Key && want <= r.Max {
				used = append(used, r)
				found = true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return used
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// kernelAtLeast compares the running kernel's release with major.minor; an
// unreadable release counts as older (the safe answer).
func kernelAtLeast(major, minor int) bool {
	var a, b int
	if _, err := fmt.Sscanf(kernelRelease(), "%d.%d", &a, &b); err != nil {
		return false
	}
	return a > major || (a == major && b >= minor)
}
