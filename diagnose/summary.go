package diagnose

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/sample"
)

// summarize writes the plain-English read of the census (section (a)).
func summarize(series []*sample.Sample, wins []*window, r Report, cfg config.Diagnose) []string {
	last := series[len(series)-1]
	var out []string
	cov := coverageOf(last)
	switch {
	case last.Partial:
		out = append(out, "Cheap sample (listeners, counters, sysctls only): sockets by state, destinations and processes were not counted, so state piles and ports are not judged.")
	case cov.socketsPart:
		out = append(out, fmt.Sprintf("%s: %s (part of the socket table, or counts without addresses: state piles are judged, ports and owners not).", plural(last.Total, "TCP socket"), statesLine(last.States)))
	case !cov.sockets:
		out = append(out, "TCP sockets by state not read (no socket table: capture ss -tanp): state piles, destinations and ports are not judged.")
	default:
		out = append(out, fmt.Sprintf("%s: %s.", plural(last.Total, "TCP socket"), statesLine(last.States)))
	}

	if n := len(last.Listeners); n == 0 && !cov.listeners && len(last.ListenerPorts) > 0 {
		out = append(out, fmt.Sprintf("No listening sockets on %s (the tables pasted are filtered by port); listeners on other ports not read (capture: ss -tlnp).",
			portList(last.ListenerPorts)))
	} else if n == 0 && !cov.listeners {
		out = append(out, "Listeners not read (capture: ss -tlnp).")
	} else if n == 0 {
		out = append(out, "No listening sockets.")
	} else {
		var full *sample.Listener
		var fill float64 = -1
		for i := range last.Listeners {
			l := &last.Listeners[i]
			f := float64(l.RecvQ)
			if pk := peakOf(last, l.Local); pk != nil {
				f = float64(pk.PeakRecvQ)
			}
			if l.SendQ > 0 {
				f /= float64(l.SendQ)
			}
			if f > fill {
				full, fill = l, f
			}
		}
		line := fmt.Sprintf("%s; the fullest is %s (%s) with Recv-Q %d of Send-Q %d", plural(n, "listener"), full.Local, ownersLong(full.Owners), full.RecvQ, full.SendQ)
		if full.LimitUnknown {
			line = fmt.Sprintf("%s; the fullest is %s (%s) with Recv-Q %d (its limit is not in the capture)", plural(n, "listener"), full.Local, ownersLong(full.Owners), full.RecvQ)
		}
		if pk := peakOf(last, full.Local); pk != nil {
			line += fmt.Sprintf(", peak %d in the last watch (%d polls)", pk.PeakRecvQ, pk.Polls)
		}
		if v, ok := last.Sysctls[kSomaxconn]; ok {
			line += "; somaxconn " + v
		}
		out = append(out, line+".")
	}

	switch {
	case wins[0].Delta == nil && !cov.tcpExt:
		out = append(out, "One sample, without TCP counters (capture: nstat -az): findings cannot be confirmed.")
	case wins[0].Delta == nil:
		out = append(out, "One sample: counters are cumulative since boot, so no rates; findings cannot be confirmed.")
	case r.IntervalSeconds == nil:
		out = append(out, fmt.Sprintf("%d samples without times: no rates (capture date +%%s.%%N with each); findings cannot be confirmed.", len(series)))
	default:
		var lo, hi float64 = -1, 0
		for _, w := range wins {
			a, _ := w.arrivals()
			if lo < 0 || a < lo {
				lo = a
			}
			hi = max(hi, a)
		}
		line := fmt.Sprintf("%d samples %.1fs apart; arrivals %.1f/s", len(series), *r.IntervalSeconds, lo)
		if hi != lo {
			line = fmt.Sprintf("%d samples %.1fs apart; arrivals %.1f-%.1f/s per interval", len(series), *r.IntervalSeconds, lo, hi)
		}
		if !cov.tcp {
			line = fmt.Sprintf("%d samples %.1fs apart; arrivals unknown (no Tcp counters)", len(series), *r.IntervalSeconds)
		} else if lo < cfg.MinArrivalsPerSec {
			line += fmt.Sprintf(" (below the load floor of %g/s in some interval)", cfg.MinArrivalsPerSec)
		}
		var drops []string
		for _, c := range []string{cOverflows, cDrops, cReqQDrop, cReqQCook, cCookFail} {
			if vals := r.Rates[c]; anyAbove(vals, 0) {
				drops = append(drops, fmt.Sprintf("%s %s/s", strings.TrimPrefix(c, "TcpExt"), joinRates(vals)))
			}
		}
		switch {
		case len(drops) > 0:
			line += "; drops: " + strings.Join(drops, ", ")
		case cov.tcpExt:
			line += "; no listen drops"
		default:
			line += "; listen drops not read (no TcpExt counters)"
		}
		out = append(out, line+".")
	}

	if rng, ok := sysInts(last, kPortRange, 2); ok && rng[0] <= rng[1] {
		reserved := parsePortSet(last.Sysctls[kReserved])
		usable := int(rng[1]-rng[0]+1) - reserved.CountIn(int(rng[0]), int(rng[1]))
		line := fmt.Sprintf("Ephemeral ports %d-%d (%d usable)", rng[0], rng[1], usable)
		if len(last.Destinations) > 0 && usable > 0 {
			d := last.Destinations[0]
			line += fmt.Sprintf("; the busiest destination, %s, holds %d (%.0f%%)", destSubject(d), d.Total, 100*float64(d.Total)/float64(usable))
		}
		out = append(out, line+".")
	}

	if line := kernelLogLine(series); line != "" {
		out = append(out, line)
	}

	var worst *Finding
	for i := range r.Findings {
		if r.Findings[i].Severity != SevInfo {
			worst = &r.Findings[i]
			break
		}
	}
	switch {
	case worst != nil:
		n := 0
		for _, f := range r.Findings {
			if f.Severity != SevInfo {
				n++
			}
		}
		out = append(out, fmt.Sprintf("Suspect: %s (%d finding(s) worth a look).", worst.Title, n))
	case len(r.Findings) > 0:
		out = append(out, fmt.Sprintf("Nothing wrong: %s.", r.Findings[0].Title))
	default:
		out = append(out, healthyLine(series))
	}

	if len(last.Missing) > 0 {
		var parts []string
		for _, m := range last.Missing {
			parts = append(parts, m.Source+" ("+m.Reason+")")
		}
		out = append(out, "Not read: "+strings.Join(parts, "; ")+".")
	}
	return out
}

// kernelLogLine names the kernel log lines that matter in the series. The
// kernel log is host-wide and a sample's first read of it goes back to
// boot, so lines are named, not counted as current: a SYN-flooding line
// only when it names a port that listens in these samples, the others
// marked host-wide (they may come from another namespace). Port-range
// parity notes are left out: harmless, and from any namespace.
func kernelLogLine(series []*sample.Sample) string {
	meaning := map[string]string{
		"tcp-oom":          "TCP out of memory (tcp_mem; host-wide)",
		"too-many-orphans": "too many orphaned sockets (host-wide)",
		"conntrack-full":   "nf_conntrack table full: netfilter drops new connections before TCP sees them (net.netfilter.nf_conntrack_max; host-wide)",
	}
	var parts []string
	seen := map[string]bool{}
	for _, s := range series {
		for _, e := range s.Kernel {
			m := meaning[e.Kind]
			if e.Kind == "syn-flood" {
				if l := listenerFor(s, e.Addr, e.Port); l != nil {
					m = fmt.Sprintf("SYN flooding on %s (%s)", l.Local, map[string]string{"drop": "dropping requests", "cookies": "sending cookies"}[e.Action])
				}
			}
			if m == "" || seen[m] {
				continue
			}
			seen[m] = true
			parts = append(parts, m)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Kernel log: " + strings.Join(parts, "; ") + "."
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func anyAbove(vals []float64, x float64) bool {
	for _, v := range vals {
		if v > x {
			return true
		}
	}
	return false
}

func joinRates(vals []float64) string {
	var s []string
	for _, v := range vals {
		s = append(s, fmt.Sprintf("%.1f", v))
	}
	return strings.Join(s, ", ")
}

// healthyLine is the explicit "nothing wrong" read. It claims only what was
// read (claims); the rest is named as not judged rather than as fine.
func healthyLine(series []*sample.Sample) string {
	fine, notJudged := claims(series)
	line := "Nothing wrong"
	if len(fine) > 0 {
		line += ": " + strings.Join(fine, ", ") + "."
	} else {
		line += " that the input shows: nothing it holds could be judged."
	}
	if len(notJudged) > 0 {
		line += " Not judged: " + strings.Join(notJudged, "; ") + "."
	}
	return line
}

// portList is "port 443" or "ports 80, 443".
func portList(ports []uint16) string {
	var ps []string
	for _, p := range ports {
		ps = append(ps, strconv.Itoa(int(p)))
	}
	if len(ps) == 1 {
		return "port " + ps[0]
	}
	return "ports " + strings.Join(ps, ", ")
}
