package diagnose

import (
	"fmt"
	"strings"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/internal/policy"
	"github.com/sockwarden/sockwarden/sample"
)

// The SYN-queue rule (KERNEL-NOTES "Drops and their counters"): the queue
// is full at the listener's own backlog; tcp_max_syn_backlog only drops
// unproven peers past 3/4 of it while syncookies are off.

// synSubject names the listener a SYN-queue symptom belongs to: the one a
// SYN-flooding kernel line names, or the only listener. The line's event
// comes back too, and subject names its port even when the listener is
// not in the input.
func synSubject(s *sample.Sample) (*sample.Listener, *sample.KernelEvent, string) {
	var named *sample.KernelEvent
	for i := range s.Kernel {
		e := &s.Kernel[i]
		if e.Kind != sample.KernelSynFlood {
			continue
		}
		if l := listenerFor(s, e.Addr, e.Port); l != nil {
			return l, e, l.Local
		}
		if named == nil {
			named = e
		}
	}
	if named != nil {
		return nil, named, floodSubject(*named)
	}
	if len(s.Listeners) == 1 {
		return &s.Listeners[0], nil, s.Listeners[0].Local
	}
	return nil, nil, "host"
}

// floodSubject names the listener of a SYN-flooding line that is not in
// the input: "127.0.0.1:8080", "[::1]:8443", or "port 80" (older kernels
// print the port only).
func floodSubject(e sample.KernelEvent) string {
	switch {
	case e.Addr == "":
		return fmt.Sprintf("port %d", e.Port)
	case strings.Contains(e.Addr, ":"):
		return fmt.Sprintf("[%s]:%d", e.Addr, e.Port)
	}
	return fmt.Sprintf("%s:%d", e.Addr, e.Port)
}

func checkSynQueue(w *window, cfg config.Diagnose) []Observation {
	cur := w.Cur
	cookies, okC := sysInt(cur, kSyncookies)
	synRecv := cur.States[sample.StateSynRecv]
	l, line, subject := synSubject(cur)
	ev := []string{stateCountLine(cur, sample.StateSynRecv)}
	if okC {
		ev = append(ev, fmt.Sprintf("%s = %d", kSyncookies, cookies))
	}
	if line != nil {
		ev = append(ev, "kernel: "+line.Line)
	}
	_, haveDelta := w.count(cReqQDrop)
	_, haveDropsDelta := w.count(cDrops)

	if w.Delta == nil || (!haveDelta && !haveDropsDelta) {
		// One sample, or no counters at both ends: cumulative counters
		// say it happened since boot, not that it happens now. The
		// kernel's own line is a finding on its own.
		if line != nil {
			// One finding per listener the kernel named (a paste may
			// hold lines for several ports).
			var out []Observation
			seen := map[string]bool{}
			for i := range cur.Kernel {
				e := &cur.Kernel[i]
				if e.Kind != sample.KernelSynFlood {
					continue
				}
				el, subj := listenerFor(cur, e.Addr, e.Port), floodSubject(*e)
				if el != nil {
					subj = el.Local
				}
				if seen[subj] {
					continue
				}
				seen[subj] = true
				lev := append([]string{}, ev[:len(ev)-1]...) // without the first line's quote
				out = append(out, synLineObservation(w, cfg, el, e, subj, append(lev, "kernel: "+e.Line)))
			}
			return out
		}
		if synRecv < cfg.SynRecvMin {
			return nil
		}
		drop, _ := cur.Counter(cReqQDrop)
		cook, _ := cur.Counter(cReqQCook)
		if drop == 0 && cook == 0 {
			return nil
		}
		o := Observation{Kind: KindSynQueueOverflow, Subject: subject, Side: SideUnknown, Severity: SevWarning, Counter: cReqQDrop,
			Title:       "SYN-RECV pile with SYN-queue drops or cookies since boot",
			Explanation: fmt.Sprintf("%d half-open connections and SYN-queue counters above zero, but one sample cannot tell a flood from a burst or from an accept-queue overflow: take two samples.", synRecv),
			Evidence:    append(ev, counterLine(w, cReqQDrop), counterLine(w, cReqQCook))}
		if w.Delta != nil {
			o.Unconfirmed = "SYN-queue counters not read at both ends of " + w.label()
		}
		return []Observation{o}
	}
	if w.rising(cOverflows, cfg) {
		return nil // the accept queue is the cause; its rule reports it
	}
	// SYNs that find a full SYN queue do not complete a handshake, so they
	// count as arrivals only through the cookie and drop counters.
	unconf, loadEv := loadCheck(w, cfg, cCookSent, cReqQDrop)
	if loadEv != "" {
		ev = append(ev, loadEv)
	}
	sentRising := w.rising(cCookSent, cfg) || w.rising(cReqQCook, cfg)
	recv, okR := w.count(cCookRecv)

	// tcp_syncookies=2 answers every SYN with a cookie: the cookie
	// counters then say nothing about a full queue, so neither the flood
	// nor the burst reading applies.
	switch {
	case okC && cookies == 1 && sentRising && okR && recv == 0:
		failing := w.rising(cCookFail, cfg)
		o := Observation{Kind: KindSynFlood, Subject: subject, Side: SidePeer, Severity: SevWarning, Counter: cCookSent, Unconfirmed: unconf,
			Evidence: append(ev, counterLine(w, cCookSent), counterLine(w, cReqQCook), counterLine(w, cCookRecv), counterLine(w, cCookFail))}
		o.Title = fmt.Sprintf("SYN flood on %s: cookies sent, none answered", subject)
		o.Explanation = "The SYN queue is full and the kernel answers with SYN cookies, but no cookie comes back (SyncookiesRecv flat): the SYNs come from sources that never complete a handshake. "
		if failing {
			o.Explanation += "Invalid cookies arrive (SyncookiesFailed rising): the signature of spoofed SYNs. "
		} else {
			o.Explanation += "Either the sources are spoofed or our SYN-ACKs do not reach them (a firewall or the network drops them). "
		}
		o.Explanation += "Cookies already keep real clients working; do not grow queues to feed a flood. Filter at the edge (rate limits, upstream scrubbing) and check the path of the SYN-ACKs."
		o.AppActions = []string{"Find the sources (`tcpdump -ni any 'tcp[tcpflags] == tcp-syn'`) and filter or rate-limit them upstream.", "Check that SYN-ACKs leave the host and reach the clients (firewall OUTPUT rules, asymmetric routing)."}
		return []Observation{o}

	case okC && cookies == 0 && w.rising(cReqQDrop, cfg):
		o := cookiesOffQueueFull(w, cfg, l, subject, append(ev, counterLine(w, cReqQDrop), counterLine(w, cDrops)))
		o.Unconfirmed = unconf
		return []Observation{o}

	case okC && cookies == 0 && w.rising(cDrops, cfg) && synRecv >= cfg.SynRecvMin:
		o := cookiesOffUnproven(w, cfg, l, subject, synRecv, append(ev, counterLine(w, cReqQDrop), counterLine(w, cDrops)))
		o.Unconfirmed = unconf
		return []Observation{o}

	case okC && cookies == 1 && sentRising && okR && recv > 0:
		if l == nil {
			o := Observation{Kind: KindSynQueueOverflow, Subject: subject, Side: SideUnknown, Severity: SevWarning, Counter: cReqQCook, Unconfirmed: unconf,
				Title:       "SYN-queue overflows answered with cookies on an unknown listener",
				Explanation: "SYN queues overflow and the kernel falls back to SYN cookies, which clients answer: a legitimate burst larger than the listen backlog. No kernel line names a listener in the input and there are several, so the samples cannot say which backlog to raise.",
				Evidence:    append(ev, counterLine(w, cReqQCook), counterLine(w, cCookRecv))}
			return []Observation{o}
		}
		o := listenerVerdict(w, cfg, KindSynQueueOverflow, cReqQCook, l, peakOf(cur, l.Local), append(ev, counterLine(w, cReqQCook), counterLine(w, cCookRecv)))
		o.Unconfirmed = unconf
		o.Explanation += " Clients answer the SYN cookies, so connections still succeed, but cookie connections lose TCP options (window scaling, SACK) without timestamps."
		return []Observation{o}
	}
	return nil
}

// cookiesOffQueueFull judges TCPReqQFullDrop rising with syncookies off:
// the SYN queue is full at the listener's own backlog (sk_max_ack_backlog,
// min(listen() backlog, somaxconn)); tcp_max_syn_backlog never raises it.
// Cookies are the fix; when the operator keeps them off, the listener's
// backlog is, as for the accept queue.
func cookiesOffQueueFull(w *window, cfg config.Diagnose, l *sample.Listener, subject string, ev []string) Observation {
	if msb, ok := sysInt(w.Cur, kSynBacklog); ok {
		ev = append(ev, fmt.Sprintf("%s = %d (consulted only while syncookies are off)", kSynBacklog, msb))
	}
	if !cfg.KeepSyncookiesOff {
		o := Observation{Kind: KindSynQueueOverflow, Subject: subject, Side: SideKernel, Severity: SevCritical, Counter: cReqQDrop, Evidence: ev}
		o.Title = fmt.Sprintf("SYN-queue overflow on %s with syncookies off: SYNs dropped", subject)
		o.Explanation = "The SYN queue is full and, with net.ipv4.tcp_syncookies=0, the kernel drops new SYNs (TCPReqQFullDrop): clients wait for retransmits or fail. SYN cookies let the kernel answer without queueing and cost nothing until the queue is full; they are the first fix, whether this is a burst or a flood."
		o.Plan = syncookiesPlan(w.Cur, l, subject)
		return o
	}
	if l == nil {
		return Observation{Kind: KindSynQueueOverflow, Subject: subject, Side: SideUnknown, Severity: SevCritical, Counter: cReqQDrop, Evidence: ev,
			Title:       fmt.Sprintf("SYN-queue overflow on %s with syncookies kept off: which listener is unknown", subject),
			Explanation: "The SYN queue of a listener is full and, with syncookies kept off (diagnose.keep_syncookies_off), the kernel drops new SYNs (TCPReqQFullDrop). The SYN queue is full at the listener's own backlog, so that backlog must grow; but no kernel line names a listener in the input and there are several. net.ipv4.tcp_max_syn_backlog does not raise this limit and is not proposed."}
	}
	o := listenerVerdict(w, cfg, KindSynQueueOverflow, cReqQDrop, l, peakOf(w.Cur, l.Local), ev)
	o.Severity = SevCritical
	o.Explanation += " With syncookies kept off (diagnose.keep_syncookies_off) the kernel drops SYNs once this queue is full (TCPReqQFullDrop). The SYN queue is full at the listener's own backlog: net.ipv4.tcp_max_syn_backlog does not raise that limit and is not proposed."
	if o.Plan != nil {
		o.Plan.Verify.Counters = []string{cReqQDrop, cDrops}
		o.Plan.Verify.Fixed = fmt.Sprintf("Send-Q of %s reads %d after the application listens again, and %s stops rising (0/s) under the same arrivals.", l.Local, o.Plan.Verify.ListenerSendQ, cReqQDrop)
	}
	return o
}

// cookiesOffUnproven judges ListenDrops rising with syncookies off while
// TCPReqQFullDrop and ListenOverflows stay flat: with cookies off,
// tcp_conn_request drops SYNs of unproven peers once the SYN queue passes
// 3/4 of tcp_max_syn_backlog. Only then, with cookies kept off and the
// SYN-RECV pile near that point, is tcp_max_syn_backlog proposed.
func cookiesOffUnproven(w *window, cfg config.Diagnose, l *sample.Listener, subject string, synRecv int, ev []string) Observation {
	msb, okM := sysInt(w.Cur, kSynBacklog)
	if okM {
		ev = append(ev, fmt.Sprintf("%s = %d: with syncookies off, SYNs of unproven peers are dropped past 3/4 of it (%d)", kSynBacklog, msb, 3*msb/4))
	}
	o := Observation{Kind: KindSynQueueOverflow, Subject: subject, Severity: SevCritical, Counter: cDrops, Evidence: ev}
	o.Title = fmt.Sprintf("SYNs dropped on %s with syncookies off: the half-open pile nears tcp_max_syn_backlog", subject)
	o.Explanation = fmt.Sprintf("ListenDrops rise while TCPReqQFullDrop and ListenOverflows stay flat, with %d half-open connections and net.ipv4.tcp_syncookies=0: the kernel drops SYNs of peers it has not seen before once the SYN queue passes 3/4 of net.ipv4.tcp_max_syn_backlog.", synRecv)
	switch {
	case !cfg.KeepSyncookiesOff:
		o.Side = SideKernel
		o.Explanation += " SYN cookies end that check (it is made only while they are off) and cost nothing until a queue is full."
		o.Plan = syncookiesPlan(w.Cur, l, subject)
	case !okM:
		o.Side = SideUnknown
		o.Explanation += " diagnose.keep_syncookies_off is set and tcp_max_syn_backlog was not recorded: no change proposed (capture: sysctl net.ipv4.tcp_max_syn_backlog)."
	case !policy.NearSynBacklogDrop(int64(synRecv), msb):
		o.Side = SideUnknown
		o.Explanation += fmt.Sprintf(" But the SYN-RECV pile (%d) is not near 3/4 of tcp_max_syn_backlog (%d), so that check does not explain the drops: no change proposed.", synRecv, 3*msb/4)
	default:
		target, ok := policy.SynBacklog(msb, int64(synRecv), cfg)
		o.Side = SideKernel
		if !ok {
			o.Explanation += fmt.Sprintf(" tcp_max_syn_backlog is at diagnose.syn_backlog_cap (%d): no change proposed.", cfg.SynBacklogCap)
			break
		}
		p := syncookiesPlan(w.Cur, l, subject)
		p.Changes = []Change{{Key: kSynBacklog, Current: fmt.Sprint(msb), Proposed: fmt.Sprint(target)}}
		p.Reason = "diagnose.keep_syncookies_off: cookies stay off, and SYNs of unproven peers are dropped past 3/4 of tcp_max_syn_backlog; policy: at least double, at least twice the SYN-RECV pile, a power of two, at most diagnose.syn_backlog_cap"
		p.Notes = []string{"The SYN queue itself is still full at the listener's own backlog (Send-Q): tcp_max_syn_backlog does not raise that limit."}
		p.Verify.Counters = []string{cDrops}
		p.Verify.Fixed = fmt.Sprintf("%s stops rising (0/s) under the same arrivals.", cDrops)
		o.Plan = p
	}
	return o
}

// synLineObservation is the finding of a SYN-flooding kernel line read
// without counters that rise (one snapshot, a paste): the kernel prints it
// when a listener's SYN queue is full, once per listener.
func synLineObservation(w *window, cfg config.Diagnose, l *sample.Listener, line *sample.KernelEvent, subject string, ev []string) Observation {
	o := Observation{Kind: KindSynQueueOverflow, Subject: subject, Side: SideUnknown, Severity: SevWarning, Counter: cReqQDrop, Evidence: ev}
	o.Title = fmt.Sprintf("the kernel logged SYN flooding on %s: its SYN queue was full", subject)
	o.Explanation = "The kernel prints \"Possible SYN flooding\" when a listener's SYN queue is full. That queue is full at the listener's own backlog (min(listen() backlog, somaxconn)), not at tcp_max_syn_backlog. "
	if line.Action == "drop" {
		o.Explanation += "It dropped the SYN (syncookies off): clients retry and time out. "
	} else {
		o.Explanation += "It answered with SYN cookies: clients still connect, without some TCP options. "
	}
	o.Explanation += "The line alone cannot tell a flood from a legitimate burst, nor whether it still happens (it is printed once per listener): capture `nstat -az TcpExtTCPReqQFullDrop TcpExtTCPReqQFullDoCookies TcpExtSyncookiesRecv TcpExtSyncookiesFailed TcpExtListenOverflows` twice, a few seconds apart."
	if l == nil {
		o.Explanation += fmt.Sprintf(" The listener on %s is not in the input: capture `ss -tlnp` for its Send-Q (its backlog) and owner.", subject)
	}
	if line.Action == "drop" {
		if cookies, ok := sysInt(w.Cur, kSyncookies); ok && cookies == 0 && !cfg.KeepSyncookiesOff {
			o.Side = SideKernel
			o.Explanation += " With net.ipv4.tcp_syncookies=0 the first fix is to turn cookies on."
			o.Plan = syncookiesPlan(w.Cur, l, subject)
		}
	}
	if w.Delta != nil {
		o.Unconfirmed = "SYN-queue counters not read at both ends of " + w.label()
	}
	return o
}

func syncookiesPlan(s *sample.Sample, l *sample.Listener, subject string) *Plan {
	pre := nsPrefix(s.Netns)
	cmds := []string{pre + fmt.Sprintf("watch -n1 'nstat -az %s %s %s'", cReqQDrop, cReqQCook, cCookRecv)}
	if l != nil {
		cmds = append(cmds, pre+fmt.Sprintf("ss -tn state syn-recv '( sport = :%d )' | wc -l", l.Port))
	}
	cur, _ := sysInt(s, kSyncookies)
	return &Plan{
		Changes:    []Change{{Key: kSyncookies, Current: fmt.Sprint(cur), Proposed: "1"}},
		Reason:     fmt.Sprintf("SYNs to %s are dropped at a full SYN queue because syncookies are off; tcp_max_syn_backlog matters only while they stay off", subject),
		AppActions: []string{"Check that the listener's backlog (Send-Q) is sized for the bursts it gets: the SYN queue is bounded by it too."},
		Notes:      []string{"net.ipv4.tcp_max_syn_backlog is not proposed: with syncookies on it changes nothing."},
		Verify: Verification{
			Commands: cmds,
			Fixed:    fmt.Sprintf("%s stops rising (0/s); %s may rise instead, which means the kernel now answers with cookies instead of dropping.", cReqQDrop, cReqQCook),
			Counters: []string{cReqQDrop},
		},
	}
}
