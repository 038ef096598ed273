// Package verify judges whether a kernel change worked. It is pure: Judge
// reads nothing but its arguments (the proposal's verification plan and the
// samples taken after the write), so the same code judges the CLI's
// foreground apply, the agent's loop and a test's hand-built samples.
//
// A change is verified only by its effect on the symptom, never by the
// write having succeeded: for somaxconn the listener's Send-Q must reach
// the new limit (it changes only when the application calls listen()
// again), and then the drop counters behind the finding must stay at or
// below the allowed rate while load persists. No load means no proof:
// inconclusive, not success.
package verify

import (
	"fmt"
	"strings"
	"time"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/sample"
)

// Outcome of a judgement.
type Outcome string

const (
	// Pending: the window is not over yet.
	Pending Outcome = "pending"
	// Verified: the change took effect and the symptom stopped under load.
	Verified Outcome = "verified"
	// Failed: the change took effect but drops continued.
	Failed Outcome = "failed"
	// NoEffect: the change never took effect in the window (for
	// somaxconn: the application did not listen again).
	NoEffect Outcome = "no-effect"
	// Inconclusive: no load (or no counter) to judge by.
	Inconclusive Outcome = "inconclusive"
)

// Input is what Judge needs.
type Input struct {
	Plan diagnose.Verification
	// Samples were taken after the write, oldest first, the first one
	// right after it.
	Samples []*sample.Sample
	// MaxDropsPerSec: the symptom has stopped when the summed rate of
	// Plan.Counters is at or below it.
	MaxDropsPerSec float64
	// MinArrivalsPerSec: an interval is under load when passive plus
	// active opens per second reach it (diagnose's load floor).
	MinArrivalsPerSec float64
	// MinCleanIntervals: how many clean intervals under load, after the
	// change took effect, make it verified (at least 1).
	MinCleanIntervals int
	// Final is true when the window is over: Judge then returns a final
	// outcome instead of Pending.
	Final bool
	// After is the diagnosis of Samples, and Finding and Subject the
	// finding the change was made for. A plan without counters (a wider
	// port range) is judged by the finding itself: it must be gone while
	// load persists.
	After            *diagnose.Report
	Finding, Subject string
}

// Interval is the judgement of one interval between two samples.
type Interval struct {
	From, To time.Time
	Seconds  float64
	// DropsPerSec is the summed rate of the plan's counters; Known is
	// false when a counter was missing.
	DropsPerSec    float64
	ArrivalsPerSec float64
	Known          bool
	// Effective: the change had taken effect at the interval's start.
	Effective bool
	Loaded    bool
	Clean     bool
}

// Verdict is Judge's answer.
type Verdict struct {
	Outcome Outcome `json:"outcome"`
	Reason  string  `json:"reason"`
	// Waiting is set while a listener has not picked up the new limit:
	// "waiting for the application to listen again: ...".
	Waiting string `json:"waiting,omitempty"`
	// Owners of the listener (to name the process and unit, or restart
	// the unit).
	Owners []sample.Owner `json:"owners,omitempty"`
	// EffectiveAt is the time of the first sample showing the change in
	// effect (zero if none).
	EffectiveAt time.Time  `json:"effective_at,omitzero"`
	Intervals   []Interval `json:"intervals,omitempty"`
}

// Arrivals is the load over d: passive plus active opens per second. An
// interval is under load when it reaches diagnose.min_arrivals_per_sec
// (Input.MinArrivalsPerSec, Interval.Loaded); a fleet rollout's bake is
// judged by the same measure.
func Arrivals(d sample.Delta) float64 {
	p, _ := d.Rate("TcpPassiveOpens")
	o, _ := d.Rate("TcpActiveOpens")
	return p + o
}

// Judge judges a change from the samples taken after it.
func Judge(in Input) Verdict {
	v := Verdict{Outcome: Pending}
	minClean := max(in.MinCleanIntervals, 1)
	effect := 0
	if in.Plan.ListenerLocal != "" && in.Plan.ListenerSendQ > 0 {
		effect = -1
		var lastQ uint32
		seen := false
		for i, s := range in.Samples {
			l := s.Listener(in.Plan.ListenerLocal)
			if l == nil {
				continue
			}
			if len(l.Owners) > 0 {
				v.Owners = l.Owners
			}
			lastQ, seen = l.SendQ, true
			if l.SendQ >= in.Plan.ListenerSendQ {
				effect = i
				break
			}
		}
		if effect < 0 {
			now := "not listening"
			if seen {
				now = fmt.Sprintf("Send-Q %d", lastQ)
			}
			v.Waiting = fmt.Sprintf("waiting for the application to listen again: listener %s has %s, below the new limit %d%s",
				in.Plan.ListenerLocal, now, in.Plan.ListenerSendQ, ownersText(v.Owners))
		}
	}
	if effect >= 0 && effect < len(in.Samples) {
		v.EffectiveAt = in.Samples[effect].Time
	}

	dirty, clean, counted, unknown := 0, 0, 0, 0
	var worst float64
	for i := 1; i < len(in.Samples); i++ {
		a, b := in.Samples[i-1], in.Samples[i]
		d := sample.Diff(a, b)
		iv := Interval{From: a.Time, To: b.Time, Seconds: d.Seconds, Known: len(in.Plan.Counters) > 0}
		for _, c := range in.Plan.Counters {
			r, ok := d.Rate(c)
			if !ok {
				iv.Known = false
				continue
			}
			iv.DropsPerSec += r
		}
		iv.ArrivalsPerSec = Arrivals(d)
		iv.Loaded = iv.ArrivalsPerSec >= in.MinArrivalsPerSec
		iv.Effective = effect >= 0 && i-1 >= effect
		if iv.Effective {
			counted++
			switch {
			case !iv.Known:
				unknown++
			case iv.DropsPerSec > in.MaxDropsPerSec:
				dirty++
				worst = max(worst, iv.DropsPerSec)
			case iv.Loaded:
				iv.Clean = true
				clean++
			}
		}
		v.Intervals = append(v.Intervals, iv)
	}

	counters := strings.Join(in.Plan.Counters, "+")
	if !in.Final {
		v.Reason = fmt.Sprintf("%d clean interval(s) under load so far, %d with drops", clean, dirty)
		if len(in.Plan.Counters) == 0 {
			v.Reason = "no drop counter for this change: judged by re-diagnosis when the window ends"
		}
		if effect < 0 {
			v.Reason = v.Waiting
		}
		return v
	}
	switch {
	case effect < 0:
		v.Outcome = NoEffect
		v.Reason = "the change never took effect in the window: " + v.Waiting
	case dirty > 0:
		v.Outcome = Failed
		v.Reason = fmt.Sprintf("drops continued after the change took effect: %s at up to %.1f/s (allowed %.1f/s) in %d of %d interval(s)",
			counters, worst, in.MaxDropsPerSec, dirty, counted)
	case len(in.Plan.Counters) == 0:
		judgeByFinding(&v, in, minClean)
	case clean >= minClean:
		v.Outcome = Verified
		v.Reason = fmt.Sprintf("%s at or below %.1f/s in %d interval(s) under load after the change took effect", counters, in.MaxDropsPerSec, clean)
		if in.Plan.ListenerLocal != "" && in.Plan.ListenerSendQ > 0 {
			v.Reason += fmt.Sprintf("; listener %s Send-Q reached %d", in.Plan.ListenerLocal, in.Plan.ListenerSendQ)
		}
	case counted == 0:
		v.Outcome = Inconclusive
		v.Reason = "the change took effect too late in the window to judge"
	case clean > 0 && clean+unknown == counted:
		v.Outcome = Inconclusive
		v.Reason = fmt.Sprintf("the window was too short: %d clean interval(s) under load after the change took effect, need %d", clean, minClean)
	case unknown > 0 && clean+unknown == counted:
		v.Outcome = Inconclusive
		v.Reason = fmt.Sprintf("counter %s missing from the samples", counters)
	default:
		v.Outcome = Inconclusive
		v.Reason = fmt.Sprintf("the load went away: %d of %d interval(s) after the change were under load (at least %.1f opens/s); need %d clean", clean, counted, in.MinArrivalsPerSec, minClean)
	}
	return v
}

func ownersText(owners []sample.Owner) string {
	if len(owners) == 0 {
		return ""
	}
	var parts []string
	for _, o := range owners {
		s := fmt.Sprintf("pid %d (%s)", o.PID, o.Comm)
		if o.Unit != "" {
			s += ", unit " + o.Unit
		}
		parts = append(parts, s)
	}
	return "; owned by " + strings.Join(parts, ", ")
}

// Units returns the distinct systemd units of the owners, for a restart.
func (v Verdict) Units() []string {
	var out []string
	seen := map[string]bool{}
	for _, o := range v.Owners {
		if o.Unit != "" && !seen[o.Unit] {
			seen[o.Unit] = true
			out = append(out, o.Unit)
		}
	}
	return out
}

// judgeByFinding judges a plan without counters by re-diagnosis: verified
// when the finding is gone (or merely informational) in the post-change
// samples and enough intervals were under load, failed when it is still
// there, inconclusive otherwise.
func judgeByFinding(v *Verdict, in Input, minClean int) {
	if in.After == nil || in.Finding == "" {
		v.Outcome = Inconclusive
		v.Reason = "the proposal names no counter to judge the symptom by"
		return
	}
	loaded := 0
	for _, iv := range v.Intervals {
		if iv.Effective && iv.Loaded {
			loaded++
		}
	}
	for _, f := range in.After.Findings {
		if f.Kind == in.Finding && f.Subject == in.Subject && f.Severity != diagnose.SevInfo {
			v.Outcome = Failed
			v.Reason = fmt.Sprintf("still diagnosed after the change: %s", f.Title)
			return
		}
	}
	if loaded >= minClean {
		v.Outcome = Verified
		v.Reason = fmt.Sprintf("%s on %s is no longer diagnosed, in %d interval(s) under load after the change", in.Finding, in.Subject, loaded)
		return
	}
	v.Outcome = Inconclusive
	v.Reason = fmt.Sprintf("%s on %s is no longer diagnosed, but only %d interval(s) after the change were under load (at least %.1f opens/s); need %d",
		in.Finding, in.Subject, loaded, in.MinArrivalsPerSec, minClean)
}
