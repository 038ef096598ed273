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
		return Progress{Rollout: "r-1", Host: h, Kernel: "k1", Wave: wave, State: state, Started: now.Add(-time.Hour / 2), Settled: now.Add(-settledAgo)}
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
