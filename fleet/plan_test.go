package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/diagnose"
)

func TestWaveSize(t *testing.T) {
	r := Rollout{Canary: 1, WaveFactor: 2, MaxConcurrent: 5}
	var got []int
	for k := range 6 {
		got = append(got, WaveSize(r, k))
	}
	if d := cmp.Diff([]int{1, 2, 4, 5, 5, 5}, got); d != "" {
		t.Errorf("wave sizes (-want +got):\n%s", d)
	}
}

// Decide, table-driven: who may start, in which wave, and why not.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	r := Rollout{ID: "r-1", GroupID: "g-1", Selector: map[string]string{"role": "web"}, Canary: 1, WaveFactor: 2, MaxConcurrent: 2,
		Bake: Duration(10 * time.Minute), HaltAfter: 1, Expires: now.Add(time.Hour)}
	web := func(h, kernel string) HostInfo {
		return HostInfo{Host: h, Labels: map[string]string{"role": "web"}, Kernel: kernel, Groups: []string{"g-1"}}
	}
	pr := func(h string, wave int, state string, settledAgo time.Duration) Progress {
		p := Progress{Rollout: "r-1", Host: h, Kernel: "k1", Wave: wave, State: state, Started: now.Add(-time.Hour / 2), Settled: now.Add(-settledAgo)}
		if state == Verified && settledAgo >= time.Duration(r.Bake) {
			p.Baked = p.Settled.Add(time.Duration(r.Bake)) // its load check passed at the bake's end
		}
		return p
	}
	// unbaked is a verified host whose bake is over, before its own load
	// check (EndBake).
	unbaked := func(h string) Progress {
		p := pr(h, 0, Verified, 11*time.Minute)
		p.Baked = time.Time{}
		return p
	}
	endBake := func(p Progress, arrivals float64) Progress {
		p, done := EndBake(p, time.Duration(r.Bake), BakeLoad{Samples: 60, ArrivalsPerSec: arrivals, Floor: 1}, now)
		if !done {
			t.Fatalf("EndBake(%+v) not done", p)
		}
		return p
	}
	for _, tc := range []struct {
		name     string
		mod      func(*View)
		me       HostInfo
		wantWave int
		wantWhy  string
	}{
		{"first host is the canary", nil, web("a", "k1"), 0, ""},
		{"not selected", nil, HostInfo{Host: "db", Labels: map[string]string{"role": "db"}}, -1, "not selected"},
		{"canary in flight: wait", func(v *View) { v.Progress = []Progress{pr("a", 0, InFlight, 0)} }, web("b", "k1"), -1, "a in-flight"},
		{"canary baking: wait", func(v *View) { v.Progress = []Progress{pr("a", 0, Verified, time.Minute)} }, web("b", "k1"), -1, "baking until"},
		{"canary baked: wave 1", func(v *View) { v.Progress = []Progress{pr("a", 0, Verified, 11*time.Minute)} }, web("b", "k1"), 1, ""},
		{"wave 1 has room: late host joins it", func(v *View) {
			v.Progress = []Progress{pr("a", 0, Verified, 11*time.Minute), pr("b", 1, InFlight, 0)}
		}, web("c", "k1"), 1, ""},
		{"max concurrent", func(v *View) {
			v.Rollout.MaxConcurrent = 1
			v.Progress = []Progress{pr("a", 0, Verified, 11*time.Minute), pr("b", 1, InFlight, 0)}
		}, web("c", "k1"), -1, "--max-concurrent 1"},
		{"wave 1 full: wait", func(v *View) {
			v.Progress = []Progress{pr("a", 0, Verified, 11*time.Minute), pr("b", 1, InFlight, 0), pr("c", 1, Verified, 0)}
		}, web("d", "k1"), -1, "wave 1"},
		{"rolled back canary halts", func(v *View) { v.Progress = []Progress{pr("a", 0, RolledBack, time.Minute)} }, web("b", "k1"), -1, "halted by itself"},
		{"halt-after 2 tolerates one", func(v *View) {
			v.Rollout.HaltAfter, v.Rollout.Canary = 2, 2
			v.Progress = []Progress{pr("a", 0, RolledBack, time.Minute)}
		}, web("b", "k1"), 0, ""},
		{"bake over, load not checked yet: wait", func(v *View) { v.Progress = []Progress{unbaked("a")} }, web("b", "k1"), -1, "waiting for its load check"},
		{"bake without load pauses", func(v *View) { v.Progress = []Progress{endBake(unbaked("a"), 0.5)} }, web("b", "k1"), -1, "paused: host a: verification inconclusive (no load during the bake"},
		{"bake under load: wave 1", func(v *View) { v.Progress = []Progress{endBake(unbaked("a"), 40)} }, web("b", "k1"), 1, ""},
		{"bake without load, resumed: wave 1", func(v *View) {
			v.Progress = []Progress{endBake(unbaked("a"), 0)}
			v.Rollout.ResumedAt = now
		}, web("b", "k1"), 1, ""},
		{"no bake: verified is enough", func(v *View) {
			v.Rollout.Bake = 0
			v.Progress = []Progress{unbaked("a")}
		}, web("b", "k1"), 1, ""},
		{"inconclusive pauses", func(v *View) { v.Progress = []Progress{pr("a", 0, Inconclusive, time.Minute)} }, web("b", "k1"), -1, "inconclusive"},
		{"resumed after inconclusive", func(v *View) {
			v.Rollout.ResumedAt = now
			v.Progress = []Progress{pr("a", 0, Inconclusive, time.Minute)}
		}, web("b", "k1"), 1, ""},
		{"skipped host frees its place", func(v *View) { v.Progress = []Progress{pr("a", 0, Skipped, time.Minute)} }, web("b", "k1"), 0, ""},
		{"fleet halt", func(v *View) { v.Halt = &Halt{Time: now} }, web("a", "k1"), -1, "fleet halt"},
		{"paused", func(v *View) { v.Rollout.Paused = true }, web("a", "k1"), -1, "paused"},
		{"expired", func(v *View) { v.Rollout.Expires = now }, web("a", "k1"), -1, "expired"},
		{"used once", func(v *View) { v.Progress = []Progress{pr("a", 0, Verified, 11*time.Minute)} }, web("a", "k1"), -1, "already took part"},
		{"changes per hour", func(v *View) { v.MaxPerHour, v.StartedLastHour = 3, 3 }, web("a", "k1"), -1, "max_changes_per_hour"},
		{"canary prefers an unrepresented kernel", func(v *View) {
			v.Rollout.Canary = 2
			v.Progress = []Progress{pr("a", 0, InFlight, 0)}
			v.Hosts = []HostInfo{web("a", "k1"), web("b", "k1"), web("c", "k2")}
		}, web("b", "k1"), -1, "kernel k1 has one; c (kernel k2) goes first"},
		{"kernel k2's host takes the canary place", func(v *View) {
			v.Rollout.Canary = 2
			v.Progress = []Progress{pr("a", 0, InFlight, 0)}
			v.Hosts = []HostInfo{web("a", "k1"), web("b", "k1"), web("c", "k2")}
		}, web("c", "k2"), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := View{Rollout: r, Now: now}
			if tc.mod != nil {
				tc.mod(&v)
			}
			k, why := v.Decide(tc.me)
			if k != tc.wantWave || (tc.wantWhy == "") != (why == "") || !strings.Contains(why, tc.wantWhy) {
				t.Errorf("Decide = %d, %q; want %d, %q", k, why, tc.wantWave, tc.wantWhy)
			}
		})
	}
}

// EndBake: the bake is judged by the load seen during it, as a
// verification is; a quiet bake is inconclusive, never a pass.
func TestEndBake(t *testing.T) {
	settled := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	verified := Progress{Rollout: "r-1", Host: "a", State: Verified, Settled: settled, Events: []Event{}}
	const bake = 10 * time.Minute
	after := settled.Add(bake)
	for _, tc := range []struct {
		name      string
		p         Progress
		bake      time.Duration
		load      BakeLoad
		now       time.Time
		wantDone  bool
		wantState string
		wantBaked bool
		wantWhy   string
	}{
		{"under load: baked", verified, bake, BakeLoad{Samples: 60, ArrivalsPerSec: 12.5, Floor: 1}, after, true, Verified, true, ""},
		{"at the floor: baked", verified, bake, BakeLoad{Samples: 2, ArrivalsPerSec: 1, Floor: 1}, after, true, Verified, true, ""},
		{"below the floor: inconclusive", verified, bake, BakeLoad{Samples: 60, ArrivalsPerSec: 0.4, Floor: 1}, after, true, Inconclusive, false,
			"no load during the bake: 0.4 opens/s (diagnose.min_arrivals_per_sec 1.0)"},
		{"one sample: inconclusive", verified, bake, BakeLoad{Samples: 1, ArrivalsPerSec: 50, Floor: 1}, after, true, Inconclusive, false,
			"1 sample(s) in the bake, no interval to measure"},
		{"still baking", verified, bake, BakeLoad{Samples: 60, Floor: 1}, after.Add(-time.Second), false, Verified, false, ""},
		{"no bake", verified, 0, BakeLoad{Floor: 1}, after, false, Verified, false, ""},
		{"regressed stays regressed", Progress{State: Regressed, Settled: settled}, bake, BakeLoad{Floor: 1}, after, false, Regressed, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, done := EndBake(tc.p, tc.bake, tc.load, tc.now)
			if done != tc.wantDone || got.State != tc.wantState || got.Baked.IsZero() == tc.wantBaked || !strings.Contains(got.Reason, tc.wantWhy) {
				t.Fatalf("EndBake = %+v, %v; want done %v, state %s, baked %v, reason with %q", got, done, tc.wantDone, tc.wantState, tc.wantBaked, tc.wantWhy)
			}
			if tc.wantState == Inconclusive {
				v := View{Rollout: Rollout{ID: "r-1", Bake: Duration(bake), HaltAfter: 1}, Progress: []Progress{got}, Now: tc.now.Add(time.Minute)}
				if st, why := v.State(); st != Paused || !strings.Contains(why, "no load during the bake") {
					t.Errorf("rollout after a bake without load: %s (%s), want paused", st, why)
				}
				// Two hosts in flight after a's bake: its bake event must not
				// count as a second settling.
				ev := append([]Event{{What: "claimed"}, {What: Verified}}, got.Events...)
				ev = append(ev, Event{What: "claimed"}, Event{What: "claimed"})
				if n := MaxInFlight(ev); n != 2 {
					t.Errorf("MaxInFlight with the bake's event = %d, want 2", n)
				}
			}
		})
	}
}

func TestMaxInFlight(t *testing.T) {
	t0 := time.Now()
	ev := []Event{{Time: t0, What: "claimed"}, {Time: t0.Add(1), What: "claimed"}, {Time: t0.Add(2), What: Verified},
		{Time: t0.Add(3), What: "claimed"}, {Time: t0.Add(4), What: RolledBack}, {Time: t0.Add(5), What: Verified}}
	if got := MaxInFlight(ev); got != 2 {
		t.Errorf("MaxInFlight = %d, want 2", got)
	}
}

func TestGroupOf(t *testing.T) {
	// Whitespace in values does not split a group; the id is stable.
	a := GroupOf(proposal("net.ipv4.tcp_rmem", "4096 131072  6291456", "4096\t131072 12582912"))
	b := GroupOf(proposal("net.ipv4.tcp_rmem", "4096 131072 6291456", "4096 131072 12582912"))
	if a != b || a.ID() != b.ID() || !strings.HasPrefix(a.ID(), "g-") {
		t.Errorf("groups %+v (%s) and %+v (%s) differ", a, a.ID(), b, b.ID())
	}
	if c := GroupOf(proposal("net.ipv4.tcp_rmem", "4096 131072 6291456", "4096 131072 6291457")); c.ID() == a.ID() {
		t.Error("a different proposed value gives the same group")
	}
}

func proposal(key, cur, next string) diagnose.Proposal {
	return diagnose.Proposal{Finding: "rmem-small", Changes: []diagnose.Change{{Key: key, Current: cur, Proposed: next}}}
}
