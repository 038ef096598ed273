package fleet

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// View is what a host (or the operator's status) knows of one rollout at
// one etcd revision. The decisions below are pure functions of it.
type View struct {
	Rollout Rollout
	Halt    *Halt
	// Progress is every host's part in this rollout.
	Progress []Progress
	// StartedLastHour counts the changes fleet rollouts started in the
	// hour before Now, across every rollout; MaxPerHour bounds it (0:
	// no bound).
	StartedLastHour int
	MaxPerHour      int
	// Hosts are the registered hosts; nil when not read (then the canary
	// takes the first host that asks, whatever its kernel).
	Hosts []HostInfo
	Now   time.Time
}

// Rollout states (View.State).
const (
	Running     = "running"
	Halted      = "halted"
	Paused      = "paused"
	Expired     = "expired"
	RollingBack = "rollback"
	Done        = "done"
)

// WaveSize is the number of hosts of wave k: the canary count, times the
// factor for each wave after it, rounded up, at most MaxConcurrent.
func WaveSize(r Rollout, k int) int {
	s := float64(max(r.Canary, 1))
	for range k {
		s *= max(r.WaveFactor, 1)
		if s > 1e6 {
			break
		}
	}
	n := int(math.Ceil(s - 1e-9))
	if r.MaxConcurrent > 0 {
		n = min(n, r.MaxConcurrent)
	}
	return max(n, 1)
}

// State is the rollout's state and why.
func (v View) State() (string, string) {
	r := v.Rollout
	if v.Halt != nil {
		return Halted, fmt.Sprintf("fleet halt by %s at %s%s", v.Halt.Approver, v.Halt.Time.Format(time.RFC3339), commentOf(v.Halt.Comment))
	}
	if r.Rollback {
		return RollingBack, "the operator asked every host to restore the change"
	}
	var bads []string
	for _, p := range v.Progress {
		if bad(p.State) {
			bads = append(bads, p.Host+" "+p.State)
		}
	}
	if len(bads) >= max(r.HaltAfter, 1) {
		return Halted, fmt.Sprintf("halted by itself: %s (--halt-after %d)", strings.Join(bads, ", "), max(r.HaltAfter, 1))
	}
	if r.Paused {
		return Paused, "paused by the operator (sockwarden fleet resume " + r.ID + ")"
	}
	for _, p := range v.Progress {
		if p.State == Inconclusive && p.Settled.After(r.ResumedAt) {
			return Paused, fmt.Sprintf("host %s: verification inconclusive (%s): not a pass; sockwarden fleet resume %s to go on", p.Host, p.Reason, r.ID)
		}
	}
	if !r.Expires.IsZero() && !v.Now.Before(r.Expires) {
		return Expired, "expired at " + r.Expires.Format(time.RFC3339)
	}
	return Running, ""
}

func commentOf(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}

// clean says whether p no longer holds its wave back: verified and baked,
// or an inconclusive verification the operator resumed past, or skipped.
func (v View) clean(p Progress) bool {
	switch p.State {
	case Verified:
		// A bake passes only when the host saw load during it (EndBake):
		// a quiet bake proves nothing, whatever the clock says.
		bake := time.Duration(v.Rollout.Bake)
		return !v.Now.Before(p.Settled.Add(bake)) && (bake <= 0 || !p.Baked.IsZero())
	case Inconclusive:
		return !p.Settled.After(v.Rollout.ResumedAt)
	case Skipped:
		return true
	}
	return false
}

// BakeLoad is what a host saw of its namespace's load during a bake: the
// arrivals per second (verify.Arrivals) between its first and last sample
// in the bake, Samples how many it took, Floor diagnose's load floor
// (diagnose.min_arrivals_per_sec).
type BakeLoad struct {
	Samples        int
	ArrivalsPerSec float64
	Floor          float64
}

// Bake events (Progress.Events).
const (
	EventBaked          = "baked"
	EventBakeNoLoad     = "bake inconclusive"
	bakeNoLoadReasonFmt = "no load during the bake: %s (diagnose.min_arrivals_per_sec %.1f): not a pass; the rollout pauses"
)

// EndBake settles the bake of p, a verified host's progress, once the bake
// is over at now. Load seen (arrivals at or above the floor over the bake)
// passes it: Baked is set and p's wave may go on. Without load the bake is
// inconclusive, as a verification without load is: the rollout pauses
// (State), it does not pass. done is false while the bake runs, without a
// bake, or when p is not verified and unbaked.
func EndBake(p Progress, bake time.Duration, l BakeLoad, now time.Time) (_ Progress, done bool) {
	if p.State != Verified || !p.Baked.IsZero() || bake <= 0 || now.Before(p.Settled.Add(bake)) {
		return p, false
	}
	now = now.UTC()
	if l.Samples >= 2 && l.ArrivalsPerSec >= l.Floor {
		p.Baked = now
		p.Events = append(p.Events, Event{Time: now, What: EventBaked, Detail: fmt.Sprintf("%.1f opens/s during the bake", l.ArrivalsPerSec)})
		return p, true
	}
	seen := fmt.Sprintf("%.1f opens/s", l.ArrivalsPerSec)
	if l.Samples < 2 {
		seen = fmt.Sprintf("%d sample(s) in the bake, no interval to measure", l.Samples)
	}
	p.State, p.Reason, p.Settled = Inconclusive, fmt.Sprintf(bakeNoLoadReasonFmt, seen, l.Floor), now
	p.Events = append(p.Events, Event{Time: now, What: EventBakeNoLoad, Detail: p.Reason})
	return p, true
}

// Waves lists the hosts of each wave (skipped hosts left out: they took
// no place).
func (v View) Waves() [][]Progress {
	var out [][]Progress
	for _, p := range v.Progress {
		if p.State == Skipped {
			continue
		}
		for len(out) <= p.Wave {
			out = append(out, nil)
		}
		out[p.Wave] = append(out[p.Wave], p)
	}
	return out
}

// NextWave is the wave a host starting now joins, or why none may start:
// the lowest wave with room whose earlier waves are all clean.
func (v View) NextWave() (int, string) {
	inFlight := 0
	for _, p := range v.Progress {
		if p.State == InFlight {
			inFlight++
		}
	}
	if m := v.Rollout.MaxConcurrent; m > 0 && inFlight >= m {
		return -1, fmt.Sprintf("%d hosts in flight (--max-concurrent %d)", inFlight, m)
	}
	waves := v.Waves()
	for k := 0; ; k++ {
		var m []Progress
		if k < len(waves) {
			m = waves[k]
		}
		if len(m) < WaveSize(v.Rollout, k) {
			return k, ""
		}
		for _, p := range m {
			if !v.clean(p) {
				why := p.State
				if end := p.Settled.Add(time.Duration(v.Rollout.Bake)); p.State == Verified && v.Now.Before(end) {
					why = fmt.Sprintf("baking until %s", end.Format(time.RFC3339))
				} else if p.State == Verified {
					why = "bake over, waiting for its load check"
				}
				return -1, fmt.Sprintf("wave %d (%d hosts) not done: %s %s", k, len(m), p.Host, why)
			}
		}
	}
}

// Decide says whether host me, with a pending proposal of the rollout's
// group, may start now, and in which wave; why not otherwise.
func (v View) Decide(me HostInfo) (int, string) {
	r := v.Rollout
	if !Matches(r.Selector, me.Labels) {
		return -1, "not selected by " + SelectorString(r.Selector)
	}
	for _, p := range v.Progress {
		if p.Host == me.Host {
			return -1, "already took part: " + p.State
		}
	}
	if st, why := v.State(); st != Running {
		return -1, st + ": " + why
	}
	if v.MaxPerHour > 0 && v.StartedLastHour >= v.MaxPerHour {
		return -1, fmt.Sprintf("%d changes started in the last hour (fleet.max_changes_per_hour %d)", v.StartedLastHour, v.MaxPerHour)
	}
	k, why := v.NextWave()
	if why != "" {
		return -1, why
	}
	if k == 0 && v.Hosts != nil {
		// Canaries: one per kernel release first, so that a change that
		// misbehaves on one kernel shows before the fleet takes it.
		kernels := map[string]bool{}
		took := map[string]bool{}
		for _, p := range v.Progress {
			kernels[p.Kernel], took[p.Host] = true, true
		}
		if kernels[me.Kernel] {
			for _, h := range v.Hosts {
				if h.Host != me.Host && !took[h.Host] && !kernels[h.Kernel] && Matches(r.Selector, h.Labels) && slices.Contains(h.Groups, r.GroupID) {
					return -1, fmt.Sprintf("canary: kernel %s has one; %s (kernel %s) goes first", me.Kernel, h.Host, h.Kernel)
				}
			}
		}
	}
	return k, ""
}

// SelectorString is "role=web,zone=a", sorted.
func SelectorString(s map[string]string) string {
	var kv []string
	for k, v := range s {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	if len(kv) == 0 {
		return "(every host)"
	}
	return strings.Join(kv, ",")
}

// Timeline merges the rollout's events and every host's, oldest first.
func (v View) Timeline() []Event {
	ev := slices.Clone(v.Rollout.Events)
	for _, p := range v.Progress {
		for _, e := range p.Events {
			e.Host = p.Host
			ev = append(ev, e)
		}
	}
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].Time.Before(ev[j].Time) })
	if ev == nil {
		ev = []Event{}
	}
	return ev
}

// MaxInFlight replays the timeline and returns the most hosts that were
// in flight at once: a host is in flight from its "claimed" event to its
// settling one.
func MaxInFlight(ev []Event) int {
	n, most := 0, 0
	for _, e := range ev {
		switch e.What {
		case "claimed":
			n++
		case Verified, RolledBack, Failed, Inconclusive, Skipped:
			n--
		}
		most = max(most, n)
	}
	return most
}
