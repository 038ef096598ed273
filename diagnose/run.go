package diagnose

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/sample"
)

// Run diagnoses a series of samples of one network namespace, oldest first.
// It is pure: the same series and thresholds always give the same report.
//
// Counter rules are judged per interval (consecutive samples), pile rules
// on each sample; a finding is confirmed only when every interval shows it
// with the same side (and, for counter rules, the drops rising under load).
// With one sample nothing can be confirmed and the report says why.
func Run(series []*sample.Sample, cfg config.Diagnose) Report {
	return RunFocus(series, cfg, Focus{})
}

// RunFocus is Run for a user who names what they are fighting (--symptom,
// --port): the port's own rule runs, and the report answers first whether
// the evidence explains the symptom and what was not read that could.
func RunFocus(series []*sample.Sample, cfg config.Diagnose, focus Focus) Report {
	r := Report{Schema: ReportSchema, Samples: len(series), Findings: []Finding{}, Proposals: []Proposal{}, Summary: []string{}}
	if len(series) == 0 {
		r.Summary = append(r.Summary, "No sample to read.")
		r.Healthy = true
		return r
	}
	last := series[len(series)-1]
	r.Host, r.Netns, r.Source = last.Host, last.Netns, sourceOf(series)
	r.Read = sample.ReadSummary(series)
	if n := len(series); n > 1 && !series[0].Time.IsZero() && !last.Time.IsZero() {
		iv := round2(last.Time.Sub(series[0].Time).Seconds() / float64(n-1))
		r.IntervalSeconds = &iv
	}

	wins := windows(series)
	groups := map[groupKey]*group{}
	var order []groupKey
	add := func(i int, obs []Observation) {
		for _, o := range obs {
			k := groupKey{o.Kind, o.Subject}
			g := groups[k]
			if g == nil {
				g = &group{obs: make([]*Observation, len(wins))}
				groups[k] = g
				order = append(order, k)
			}
			oc := o
			g.obs[i] = &oc
		}
	}
	for _, rule := range Rules {
		for i, w := range wins {
			switch rule.Confirm {
			case ConfirmCounters:
				add(i, rule.Counters(w, cfg))
			case ConfirmPile:
				pile := rule.Pile
				if rule.Focused != nil {
					pile = func(s *sample.Sample, _ []*sample.Sample, cfg config.Diagnose) []Observation {
						return rule.Focused(s, focus, cfg)
					}
				}
				cur := pile(w.Cur, series, cfg)
				if w.Prev == nil {
					add(i, cur)
					continue
				}
				// A pile counts in an interval when both ends show it.
				before := map[groupKey]bool{}
				for _, o := range pile(w.Prev, series, cfg) {
					before[groupKey{o.Kind, o.Subject}] = true
				}
				var both []Observation
				for _, o := range cur {
					if before[groupKey{o.Kind, o.Subject}] {
						both = append(both, o)
					}
				}
				add(i, both)
			}
		}
	}

	for _, k := range order {
		f, p := groups[k].merge(wins, cfg)
		r.Findings = append(r.Findings, f)
		if p != nil {
			r.Proposals = append(r.Proposals, *p)
		}
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if sevRank(a.Severity) != sevRank(b.Severity) {
			return sevRank(a.Severity) > sevRank(b.Severity)
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Subject < b.Subject
	})
	rank := map[groupKey]int{}
	for i, f := range r.Findings {
		rank[groupKey{f.Kind, f.Subject}] = i
	}
	sort.SliceStable(r.Proposals, func(i, j int) bool {
		return rank[groupKey{r.Proposals[i].Finding, r.Proposals[i].Subject}] < rank[groupKey{r.Proposals[j].Finding, r.Proposals[j].Subject}]
	})

	r.Healthy = true
	for _, f := range r.Findings {
		if f.Severity != SevInfo {
			r.Healthy = false
		}
	}
	r.Rates = rates(wins)
	fine, notJudged := claims(series)
	r.NotJudged = notJudged
	if len(fine) == 0 && r.Healthy {
		r.NothingJudged = true
	}
	r.Summary = summarize(series, wins, r, cfg)
	r.Symptom = answerSymptom(series, r, focus)
	return r
}

// window is what a rule sees: one interval (Prev -> Cur) of the series, or
// a lone sample (Prev nil, Delta nil).
type window struct {
	Index int // 0-based interval number
	Of    int // number of intervals (1 for a lone sample)
	Prev  *sample.Sample
	Cur   *sample.Sample
	Delta *sample.Delta
	// Series is the whole series, for values that must not depend on the
	// interval (a proposal's target is computed from all of it).
	Series []*sample.Sample
}

func windows(series []*sample.Sample) []*window {
	if len(series) == 1 {
		return []*window{{Of: 1, Cur: series[0], Series: series}}
	}
	ws := make([]*window, 0, len(series)-1)
	for i := 1; i < len(series); i++ {
		d := sample.Diff(series[i-1], series[i])
		ws = append(ws, &window{Index: i - 1, Of: len(series) - 1, Prev: series[i-1], Cur: series[i], Delta: &d, Series: series})
	}
	return ws
}

// count returns a counter's increase over the window (false for a lone
// sample or a counter missing at either end or reset).
func (w *window) count(name string) (uint64, bool) {
	if w.Delta == nil {
		return 0, false
	}
	v, ok := w.Delta.Counters[name]
	return v, ok
}

// rate returns a counter's per-second rate over the window.
func (w *window) rate(name string) (float64, bool) {
	if w.Delta == nil {
		return 0, false
	}
	return w.Delta.Rate(name)
}

// rising reports whether a drop counter rose faster than the noise floor.
func (w *window) rising(name string, cfg config.Diagnose) bool {
	n, ok := w.count(name)
	if !ok || n == 0 {
		return false
	}
	r, _ := w.rate(name)
	return r > cfg.MinDropsPerSec
}

// arrivals is the connection arrival rate: passive plus active opens per
// second. ok is false for a lone sample.
func (w *window) arrivals() (float64, bool) {
	p, okP := w.rate("TcpPassiveOpens")
	a, okA := w.rate("TcpActiveOpens")
	return p + a, okP || okA
}

func (w *window) label() string {
	if w.Delta == nil {
		return "the sample"
	}
	return fmt.Sprintf("interval %d/%d (%.1fs)", w.Index+1, w.Of, w.Delta.Seconds)
}

type groupKey struct{ kind, subject string }

type group struct {
	obs []*Observation // one slot per window, nil where not seen
}

// merge turns the per-window observations of one (kind, subject) into a
// finding and, for a kernel finding with a plan, a proposal.
func (g *group) merge(wins []*window, cfg config.Diagnose) (Finding, *Proposal) {
	var last *Observation
	seen := 0
	var missing []string
	for i, o := range g.obs {
		if o == nil {
			missing = append(missing, fmt.Sprint(i+1))
			continue
		}
		seen++
		last = o
	}
	f := Finding{
		Kind: last.Kind, Side: last.Side, Severity: last.Severity, Subject: last.Subject,
		Title: upperFirst(last.Title), Explanation: last.Explanation, AppActions: last.AppActions,
		Counter: last.Counter, Evidence: mergeEvidence(g.obs, wins),
	}
	// The worst severity seen.
	for _, o := range g.obs {
		if o != nil && sevRank(o.Severity) > sevRank(f.Severity) {
			f.Severity = o.Severity
		}
	}

	var why []string
	switch {
	case wins[0].Prev == nil:
		why = append(why, "one sample only: counters need two samples to give a rate, and a pile in one snapshot may be normal traffic; take at least two samples (--samples 2)")
	case seen < len(wins):
		why = append(why, fmt.Sprintf("seen in %d of %d intervals (not in interval %s)", seen, len(wins), strings.Join(missing, ", ")))
	}
	sides := map[Side]bool{}
	for _, o := range g.obs {
		if o != nil {
			sides[o.Side] = true
		}
	}
	if len(sides) > 1 {
		var parts []string
		for i, o := range g.obs {
			if o != nil {
				parts = append(parts, fmt.Sprintf("%s in interval %d", o.Side, i+1))
			}
		}
		why = append(why, "the verdict changed between intervals ("+strings.Join(parts, ", ")+")")
	}
	for _, o := range g.obs {
		if o != nil && o.Unconfirmed != "" && wins[0].Prev != nil {
			why = append(why, o.Unconfirmed)
		}
	}
	f.Confirmed = len(why) == 0
	f.NotConfirmedReason = strings.Join(dedupe(why), "; ")

	if last.Plan == nil || f.Side != SideKernel || len(last.Plan.Changes) == 0 {
		return f, nil
	}
	p := Proposal{
		Host: wins[len(wins)-1].Cur.Host, Netns: wins[len(wins)-1].Cur.Netns,
		Finding: f.Kind, Subject: f.Subject, Changes: last.Plan.Changes,
		Reason: last.Plan.Reason, AppActions: last.Plan.AppActions, Verify: last.Plan.Verify,
		Notes: last.Plan.Notes, Ready: f.Confirmed,
	}
	if !f.Confirmed {
		p.NotReadyReason = "finding not confirmed: " + f.NotConfirmedReason
	}
	p.ID = ProposalID(p.Host, p.Netns, p.Finding, p.Subject, p.Changes)
	return f, &p
}

// mergeEvidence keeps a line once when every window that saw the finding
// says the same, and prefixes the others with their interval.
func mergeEvidence(obs []*Observation, wins []*window) []string {
	seen := 0
	for _, o := range obs {
		if o != nil {
			seen++
		}
	}
	count := map[string]int{}
	for _, o := range obs {
		if o == nil {
			continue
		}
		for _, l := range dedupe(o.Evidence) {
			count[l]++
		}
	}
	out := []string{}
	var common []string
	done := map[string]bool{}
	for i, o := range obs {
		if o == nil {
			continue
		}
		for _, l := range o.Evidence {
			if count[l] == seen || len(wins) == 1 {
				if !done[l] {
					common = append(common, l)
					done[l] = true
				}
				continue
			}
			out = append(out, fmt.Sprintf("interval %d: %s", i+1, l))
		}
	}
	return append(out, common...)
}

func sevRank(s Severity) int {
	switch s {
	case SevCritical:
		return 2
	case SevWarning:
		return 1
	}
	return 0
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func sourceOf(series []*sample.Sample) string {
	src := series[len(series)-1].Source
	// "bundle:PATH#N" -> "bundle:PATH" for the series as a whole.
	if i := strings.LastIndex(src, "#"); i > 0 && (strings.HasPrefix(src, "bundle:") || strings.HasPrefix(src, "paste:")) {
		src = src[:i]
	}
	return src
}

func round2(f float64) float64 {
	if f < 0 {
		return -round2(-f)
	}
	return float64(int64(f*100+0.5)) / 100
}

// rateCounters are the counters whose per-interval rates a report carries.
var rateCounters = []string{
	"TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop", "TcpExtTCPReqQFullDoCookies",
	"TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed", "TcpExtTCPAbortOnMemory",
	"TcpPassiveOpens", "TcpActiveOpens",
}

func rates(wins []*window) map[string][]float64 {
	if wins[0].Delta == nil {
		return nil
	}
	out := map[string][]float64{}
	for _, c := range rateCounters {
		// A rate unknown in some interval (the counter missing at one
		// end, or reset) leaves the counter out: an unknown is never 0.
		vals := make([]float64, len(wins))
		known := true
		for i, w := range wins {
			r, ok := w.rate(c)
			known = known && ok
			vals[i] = round2(r)
		}
		if known {
			out[c] = vals
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
