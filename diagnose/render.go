package diagnose

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes the report as JSON ("schema": "sockwarden.report/v1",
// documented field by field in docs/report-schema.md).
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteRules lists the rules (`sockwarden diagnose --rules`): name, kinds,
// sides, condition and why; the thresholds are the diagnose.* keys.
func WriteRules(w io.Writer) error {
	b := bufio.NewWriter(w)
	for i, r := range Rules {
		if i > 0 {
			fmt.Fprintln(b)
		}
		var sides []string
		for _, s := range r.Sides {
			sides = append(sides, string(s))
		}
		mode := "per interval, counters rising under load"
		if r.Confirm == ConfirmPile {
			mode = "on both samples of every interval"
		}
		fmt.Fprintf(b, "%s: %s\n", r.Name, strings.Join(r.Kinds, ", "))
		fmt.Fprintf(b, "  sides: %s; confirmed %s\n", strings.Join(sides, ", "), mode)
		writeWrapped(b, "  when: ", "    ", r.Condition+".")
		writeWrapped(b, "  why: ", "    ", r.Why)
	}
	fmt.Fprintln(b, "\nThresholds: the diagnose.* keys (docs/rules.md).")
	return b.Flush()
}

// WriteText writes the report for a terminal, in the four sections a
// person reads in order: (a) the read, (b) the verdict with its evidence,
// (c) the change, current -> proposed, (d) how to verify it.
func WriteText(w io.Writer, r Report) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "sockwarden diagnose: %s\n", header(r))
	if a := r.Symptom; a != nil {
		writeWrapped(b, "Symptom: ", "  ", a.Answer)
		if len(a.NotRead) > 0 {
			writeWrapped(b, "Not read that could explain it: ", "  ", strings.Join(a.NotRead, "; ")+".")
		}
	}
	if r.Read != "" {
		writeWrapped(b, "", "  ", r.Read)
	}
	fmt.Fprintf(b, "%s\n\n", verdictLine(r))

	fmt.Fprintln(b, "(a) Read")
	for _, s := range r.Summary {
		writeWrapped(b, "  ", "    ", s)
	}

	fmt.Fprintln(b, "\n(b) Verdict and evidence")
	if len(r.Findings) == 0 {
		fmt.Fprintln(b, "  "+noFindingLine(r))
	}
	for i, f := range r.Findings {
		fmt.Fprintf(b, "  %d. [%s] %s on %s: side %s, %s\n", i+1, f.Severity, f.Kind, f.Subject, f.Side, confirmedWord(f))
		writeWrapped(b, "     ", "     ", f.Title+".")
		writeWrapped(b, "     ", "     ", f.Explanation)
		if f.NotConfirmedReason != "" {
			writeWrapped(b, "     Not confirmed: ", "       ", f.NotConfirmedReason+".")
		}
		if s := sparkFor(r, f); s != "" {
			fmt.Fprintf(b, "     %s per interval: %s\n", f.Counter, s)
		}
		fmt.Fprintln(b, "     Evidence:")
		for _, e := range f.Evidence {
			writeWrapped(b, "       - ", "         ", e)
		}
		if len(f.AppActions) > 0 {
			fmt.Fprintf(b, "     %s:\n", actionsLabel(f))
			for j, a := range f.AppActions {
				writeWrapped(b, fmt.Sprintf("       %d. ", j+1), "          ", a)
			}
		}
	}

	fmt.Fprintln(b, "\n(c) Change: current -> proposed")
	if len(r.Proposals) == 0 {
		fmt.Fprintln(b, "  No kernel change proposed: "+noChangeWhy(r))
	}
	for _, p := range r.Proposals {
		fmt.Fprintf(b, "  Proposal %s for %s on %s: %s\n", p.ID, p.Finding, p.Subject, readyWord(p))
		for _, c := range p.Changes {
			fmt.Fprintf(b, "    %s: %s -> %s\n", c.Key, shown(c.Current), shown(c.Proposed))
		}
		writeWrapped(b, "    Why: ", "      ", p.Reason+".")
		for _, a := range p.AppActions {
			writeWrapped(b, "    Then: ", "      ", a)
		}
		for _, n := range p.Notes {
			writeWrapped(b, "    Note: ", "      ", n)
		}
		writeWrapped(b, "    Under guard: ", "      ", guardSteps(p, "`"))
	}

	fmt.Fprintln(b, "\n(d) Verification")
	writeVerification(b, r, func(cmd string) string { return "  $ " + cmd }, "  ")
	return b.Flush()
}

// WriteMarkdown writes the report for a change ticket: the same four
// sections, a current -> proposed table, the `sysctl -w` lines and their
// rollback, and a sparkline of the drop rate per interval.
func WriteMarkdown(w io.Writer, r Report) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "# sockwarden diagnosis: %s\n\n", mdHost(r))
	if a := r.Symptom; a != nil {
		fmt.Fprintf(b, "**Symptom:** %s\n\n", a.Answer)
		if len(a.NotRead) > 0 {
			fmt.Fprintf(b, "Not read that could explain it: %s.\n\n", strings.Join(a.NotRead, "; "))
		}
	}
	fmt.Fprintf(b, "**%s**\n\n", verdictLine(r))
	fmt.Fprintf(b, "Source: `%s`, %s.\n\n", r.Source, samplesPhrase(r))
	if r.Read != "" {
		fmt.Fprintf(b, "%s\n\n", strings.Replace(r.Read, "read: ", "Read: ", 1))
	}

	fmt.Fprintln(b, "## (a) Read")
	fmt.Fprintln(b)
	for _, s := range r.Summary {
		fmt.Fprintf(b, "- %s\n", s)
	}

	fmt.Fprintln(b, "\n## (b) Verdict and evidence")
	fmt.Fprintln(b)
	if len(r.Findings) == 0 {
		fmt.Fprintln(b, noFindingLine(r))
	}
	for _, f := range r.Findings {
		fmt.Fprintf(b, "### `%s` on `%s`: side **%s**, %s, %s\n\n", f.Kind, f.Subject, f.Side, f.Severity, confirmedWord(f))
		fmt.Fprintf(b, "**%s.** %s\n\n", f.Title, f.Explanation)
		if f.NotConfirmedReason != "" {
			fmt.Fprintf(b, "Not confirmed: %s.\n\n", f.NotConfirmedReason)
		}
		if s := sparkFor(r, f); s != "" {
			fmt.Fprintf(b, "Drop rate per interval, `%s`: %s\n\n", f.Counter, s)
		}
		fmt.Fprintln(b, "Evidence:")
		fmt.Fprintln(b)
		for _, e := range f.Evidence {
			fmt.Fprintf(b, "- %s\n", e)
		}
		if len(f.AppActions) > 0 {
			fmt.Fprintf(b, "\n%s:\n", actionsLabel(f))
			fmt.Fprintln(b)
			for j, a := range f.AppActions {
				fmt.Fprintf(b, "%d. %s\n", j+1, a)
			}
		}
		fmt.Fprintln(b)
	}

	fmt.Fprintln(b, "## (c) Change: current -> proposed")
	fmt.Fprintln(b)
	if len(r.Proposals) == 0 {
		fmt.Fprintf(b, "No kernel change proposed: %s\n\n", noChangeWhy(r))
	}
	for _, p := range r.Proposals {
		fmt.Fprintf(b, "### Proposal `%s`: `%s` on `%s`, %s\n\n", p.ID, p.Finding, p.Subject, readyWord(p))
		fmt.Fprintln(b, "| key | current | proposed |")
		fmt.Fprintln(b, "|---|---|---|")
		for _, c := range p.Changes {
			fmt.Fprintf(b, "| `%s` | `%s` | `%s` |\n", c.Key, c.Current, c.Proposed)
		}
		fmt.Fprintf(b, "\nWhy: %s.\n\n", p.Reason)
		pre := nsPrefix(p.Netns)
		fmt.Fprintln(b, "Apply (in this order):")
		fmt.Fprintln(b)
		fmt.Fprintln(b, "```sh")
		for _, c := range p.Changes {
			fmt.Fprintf(b, "%ssysctl -w %s=%s\n", pre, c.Key, shellValue(c.Proposed))
		}
		fmt.Fprintln(b, "```")
		fmt.Fprintln(b, "\nRollback (in this order):")
		fmt.Fprintln(b)
		fmt.Fprintln(b, "```sh")
		for i := len(p.Changes) - 1; i >= 0; i-- {
			c := p.Changes[i]
			fmt.Fprintf(b, "%ssysctl -w %s=%s\n", pre, c.Key, shellValue(c.Current))
		}
		fmt.Fprintln(b, "```")
		if len(p.AppActions) > 0 {
			fmt.Fprintln(b, "\nThen:")
			fmt.Fprintln(b)
			for _, a := range p.AppActions {
				fmt.Fprintf(b, "- %s\n", a)
			}
		}
		if len(p.Notes) > 0 {
			fmt.Fprintln(b, "\nNotes:")
			fmt.Fprintln(b)
			for _, n := range p.Notes {
				fmt.Fprintf(b, "- %s\n", n)
			}
		}
		fmt.Fprintf(b, "\nUnder guard: %s\n\n", guardSteps(p, "`"))
	}

	fmt.Fprintln(b, "## (d) Verification")
	fmt.Fprintln(b)
	writeVerification(b, r, func(cmd string) string { return "    " + cmd }, "")
	return b.Flush()
}

// writeVerification writes section (d): for each proposal its commands and
// what "fixed" looks like; for findings without a proposal, what to watch
// after the application-side fix.
func writeVerification(b *bufio.Writer, r Report, cmd func(string) string, indent string) {
	hasProp := map[groupKey]bool{}
	for _, p := range r.Proposals {
		hasProp[groupKey{p.Finding, p.Subject}] = true
		fmt.Fprintf(b, "%sProposal %s (%s on %s):\n\n", indent, p.ID, p.Finding, p.Subject)
		for _, c := range p.Verify.Commands {
			fmt.Fprintln(b, cmd(c))
		}
		fmt.Fprintln(b)
		writeWrapped(b, indent+"Fixed when: ", indent+"  ", p.Verify.Fixed)
		fmt.Fprintln(b)
	}
	n := 0
	for _, f := range r.Findings {
		if hasProp[groupKey{f.Kind, f.Subject}] || f.Side == SideNone {
			continue
		}
		c, fixed := findingCheck(r, f)
		if c == "" {
			continue
		}
		n++
		after := "after the " + string(f.Side) + "-side fix"
		if f.Side == SideUnknown {
			after = "once the cause is found"
		}
		fmt.Fprintf(b, "%s%s on %s (%s):\n\n", indent, f.Kind, f.Subject, after)
		fmt.Fprintln(b, cmd(c))
		fmt.Fprintln(b)
		writeWrapped(b, indent+"Fixed when: ", indent+"  ", fixed)
		fmt.Fprintln(b)
	}
	if len(r.Proposals) == 0 && n == 0 {
		fmt.Fprintf(b, "%sNothing to verify. To watch the listen drops yourself:\n\n", indent)
		fmt.Fprintln(b, cmd(nsPrefix(r.Netns)+fmt.Sprintf("watch -n1 'nstat -az %s %s'", cOverflows, cDrops)))
		fmt.Fprintln(b)
	}
}

// findingCheck is the command and the "fixed" numbers for a finding that
// has no proposal.
func findingCheck(r Report, f Finding) (string, string) {
	pre := nsPrefix(r.Netns)
	port := ""
	if i := strings.LastIndex(f.Subject, ":"); i > 0 && !strings.Contains(f.Subject, " ") {
		port = f.Subject[i+1:]
	}
	switch f.Kind {
	case KindAcceptQueueOverflow, KindSynQueueOverflow:
		c := pre + fmt.Sprintf("watch -n1 'nstat -az %s %s %s'", cOverflows, cDrops, cReqQDrop)
		if port != "" {
			c = pre + fmt.Sprintf("watch -n1 \"ss -tln '( sport = :%s )'; nstat -az %s %s\"", port, cOverflows, cDrops)
		}
		if port == "" {
			return c, fmt.Sprintf("%s stops rising (0/s) under the same arrivals.", f.Counter)
		}
		return c, fmt.Sprintf("%s stops rising (0/s) under the same arrivals, and Recv-Q of %s stays below Send-Q.", f.Counter, f.Subject)
	case KindSynFlood:
		return pre + fmt.Sprintf("watch -n1 'nstat -az %s %s %s'", cCookSent, cCookRecv, cCookFail), "SyncookiesSent falls back to 0/s once the flood is filtered."
	case KindCloseWaitPile:
		return pre + "ss -Htan state close-wait | wc -l", "the CLOSE-WAIT count stays near 0 instead of growing."
	case KindFinWait2Pile:
		return pre + "ss -Htan state fin-wait-2 | wc -l", "the FIN-WAIT-2 count stays well below the threshold."
	case KindEphemeralPorts:
		return pre + "ss -Htan state time-wait | wc -l", "sockets to the destination stay well below the usable port count."
	case KindFDExhaustion:
		if strings.HasPrefix(f.Subject, "pid ") {
			pid := strings.Fields(f.Subject)[1]
			return fmt.Sprintf("grep 'open files' /proc/%s/limits; ls /proc/%s/fd | wc -l", pid, pid), "the open descriptors stay below the configured share of the limit."
		}
		if p := findingPort(f.Subject); p != 0 { // EMFILE logged on a listener
			return fmt.Sprintf("ss -tlnp 'sport = :%d'   # then, for its pid: ls /proc/PID/fd | wc -l; grep 'open files' /proc/PID/limits", p),
				"its open descriptors stay well below its limit under the same load, and its log has no new \"too many open files\"."
		}
		if f.Subject == "application" {
			return "grep 'open files' /proc/PID/limits; ls /proc/PID/fd | wc -l   # PID: the process that logged EMFILE",
				"its open descriptors stay well below its limit under the same load, and its log has no new \"too many open files\"."
		}
		return "cat /proc/sys/fs/file-nr", "the first number stays well below the third."
	case KindTCPMemoryPressure:
		return pre + "cat /proc/net/sockstat", "TCP mem stays below the pressure value of net.ipv4.tcp_mem."
	case KindOrphanPressure:
		return pre + "cat /proc/net/sockstat", "orphan stays well below net.ipv4.tcp_max_orphans."
	case KindTWBucketOverflow:
		return pre + "dmesg | grep -c 'time wait bucket table overflow'; sysctl net.ipv4.tcp_max_tw_buckets", "the count of lines stops growing (or, being benign, is accepted)."
	case KindSynSentPile:
		return pre + "ss -Htan state syn-sent | wc -l", "connects to the destination leave SYN-SENT within a round trip: the count stays near 0."
	case KindNoListener, KindListenerLocalOnly:
		if p := findingPort(f.Subject); p != 0 {
			return pre + fmt.Sprintf("ss -tlnp '( sport = :%d )'", p), "a listener on the port, bound to an address the clients use (0.0.0.0, :: or the host's address)."
		}
	case KindConntrackFull:
		return pre + "cat /proc/sys/net/netfilter/nf_conntrack_count /proc/sys/net/netfilter/nf_conntrack_max; dmesg | grep -c 'nf_conntrack: table full'",
			"the count stays below the max and the number of `table full` lines stops growing."
	}
	return "", ""
}

func header(r Report) string {
	h := "host " + r.Host
	if r.Host == "" {
		h = "host unknown" // a paste names none
	}
	if r.Netns != "" {
		h += ", netns " + r.Netns
	}
	return h + ", source " + r.Source + ", " + samplesPhrase(r)
}

func mdHost(r Report) string {
	h := "`" + r.Host + "`"
	if r.Netns != "" {
		h += ", netns `" + r.Netns + "`"
	}
	return h
}

func samplesPhrase(r Report) string {
	if r.Samples == 1 {
		return "1 sample"
	}
	if r.IntervalSeconds == nil {
		return fmt.Sprintf("%d samples, times unknown", r.Samples)
	}
	return fmt.Sprintf("%d samples %.1fs apart", r.Samples, *r.IntervalSeconds)
}

// noFindingLine is section (b) without findings: what "nothing wrong"
// covers.
func noFindingLine(r Report) string {
	if len(r.NotJudged) > 0 {
		return "Nothing wrong: no rule fired on what was read; what was not judged is named in (a)."
	}
	return "Nothing wrong: no rule fired."
}

func verdictLine(r Report) string {
	if r.NothingJudged {
		return "Nothing judged: the input holds no source the rules can judge; this is not a clean bill of health."
	}
	if r.Healthy {
		if len(r.Findings) > 0 {
			return "Healthy: nothing wrong (informational findings only)."
		}
		if len(r.NotJudged) > 0 {
			return fmt.Sprintf("Healthy in what was read: nothing wrong there; %d area(s) not judged (named in (a)): not a clean bill of health.", len(r.NotJudged))
		}
		return "Healthy: nothing wrong."
	}
	n, conf := 0, 0
	for _, f := range r.Findings {
		if f.Severity != SevInfo {
			n++
			if f.Confirmed {
				conf++
			}
		}
	}
	return fmt.Sprintf("Findings: %d (%d confirmed), %d kernel change(s) proposed.", n, conf, len(r.Proposals))
}

// handOnly names the limit of the kernel-side kinds that never propose a
// change: their sysctl is not on the remediation allowlist.
var handOnly = map[string]string{
	KindTCPMemoryPressure: "net.ipv4.tcp_mem",
	KindConntrackFull:     "net.netfilter.nf_conntrack_max",
	KindTWBucketOverflow:  "net.ipv4.tcp_max_tw_buckets",
}

func noChangeWhy(r Report) string {
	for _, f := range r.Findings {
		if key := handOnly[f.Kind]; key != "" && f.Side == SideKernel {
			return fmt.Sprintf("%s is not on the remediation allowlist: for %s, see what holds the resource, then change it by hand (see its explanation).", key, f.Kind)
		}
	}
	for _, f := range r.Findings {
		if f.Side == SideKernel {
			return "the kernel-side finding has no change within the configured bounds (see its explanation)."
		}
	}
	if len(r.Findings) == 0 {
		return "nothing to fix."
	}
	return "no finding is kernel-side; the fixes are in the application, the peers, or nowhere (see (b))."
}

// guardSteps says how to apply a proposal with sockwarden's guard: the
// agent or `sockwarden propose` records it (from fresh samples, which may
// move the proposed value and so the id), then approve and apply.
func guardSteps(p Proposal, q string) string {
	ns := ""
	if p.Netns != "" {
		ns = " --netns " + p.Netns
	}
	return fmt.Sprintf("%ssockwarden propose%s%s records it (or the agent does), then %ssockwarden approve %s%s and %ssockwarden apply %s%s; the id changes if the fresh samples give another current or proposed value.",
		q, ns, q, q, p.ID, q, q, p.ID, q)
}

// actionsLabel heads a finding's actions: the application's own fixes, or
// what to do about the peers or the cause.
func actionsLabel(f Finding) string {
	switch f.Side {
	case SideApp, SideKernel:
		return "Application side"
	}
	return "What to do"
}

func confirmedWord(f Finding) string {
	if f.Confirmed {
		return "confirmed"
	}
	return "not confirmed"
}

func readyWord(p Proposal) string {
	if p.Ready {
		return "ready"
	}
	return "not ready (" + p.NotReadyReason + ")"
}

func shown(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

func shellValue(v string) string {
	if v == "" || strings.ContainsAny(v, " \t,") {
		return `"` + v + `"`
	}
	return v
}

// sparkFor is the sparkline of a finding's counter with its values.
func sparkFor(r Report, f Finding) string {
	vals := r.Rates[f.Counter]
	if f.Counter == "" || len(vals) == 0 {
		return ""
	}
	return "`" + Sparkline(vals) + "` " + joinRates(vals) + " /s"
}

// Sparkline draws values as unicode bars scaled to their maximum; zero is
// the lowest bar.
func Sparkline(vals []float64) string {
	bars := []rune("▁▂▃▄▅▆▇█")
	hi := 0.0
	for _, v := range vals {
		hi = max(hi, v)
	}
	var sb strings.Builder
	for _, v := range vals {
		i := 0
		if hi > 0 && v > 0 {
			i = 1 + int(v/hi*float64(len(bars)-2)+0.5)
			i = min(i, len(bars)-1)
		}
		sb.WriteRune(bars[i])
	}
	return sb.String()
}

// writeWrapped writes s wrapped at 100 columns, first line after first,
// the rest after rest.
func writeWrapped(b *bufio.Writer, first, rest, s string) {
	const width = 100
	line := first
	lead := len([]rune(first))
	n := lead
	for _, word := range strings.Fields(s) {
		wl := len([]rune(word))
		if n > lead && n+1+wl > width {
			fmt.Fprintln(b, line)
			line, n = rest+word, len([]rune(rest))+wl
			lead = len([]rune(rest))
			continue
		}
		if n > lead {
			line += " "
			n++
		}
		line += word
		n += wl
	}
	fmt.Fprintln(b, line)
}
