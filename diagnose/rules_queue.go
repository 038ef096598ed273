package diagnose

import (
	"fmt"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/sample"
)

const (
	cOverflows = "TcpExtListenOverflows"
	cDrops     = "TcpExtListenDrops"
	cReqQDrop  = "TcpExtTCPReqQFullDrop"
	cReqQCook  = "TcpExtTCPReqQFullDoCookies"
	cCookSent  = "TcpExtSyncookiesSent"
	cCookRecv  = "TcpExtSyncookiesRecv"
	cCookFail  = "TcpExtSyncookiesFailed"

	kSomaxconn  = "net.core.somaxconn"
	kSynBacklog = "net.ipv4.tcp_max_syn_backlog"
	kSyncookies = "net.ipv4.tcp_syncookies"
)

// loadCheck returns why a window does not count for lack of load ("" when
// the arrivals are above the floor), and the evidence line.
func loadCheck(w *window, cfg config.Diagnose, extra ...string) (string, string) {
	if w.Delta == nil {
		return "", ""
	}
	arr, ok := w.arrivals()
	var parts []string
	for _, c := range extra {
		if r, okc := w.rate(c); okc {
			arr += r
			ok = true
			parts = append(parts, c)
		}
	}
	if !ok {
		return "arrivals unknown in " + w.label() + " (no TcpPassiveOpens/TcpActiveOpens counters)", ""
	}
	p, _ := w.rate("TcpPassiveOpens")
	a, _ := w.rate("TcpActiveOpens")
	ev := fmt.Sprintf("arrivals %.1f/s (TcpPassiveOpens %.1f/s, TcpActiveOpens %.1f/s", arr, p, a)
	for _, c := range parts {
		r, _ := w.rate(c)
		ev += fmt.Sprintf(", %s %.1f/s", c, r)
	}
	ev += ")"
	if arr < cfg.MinArrivalsPerSec {
		return fmt.Sprintf("arrivals %.1f/s in %s are below diagnose.min_arrivals_per_sec (%g): not under load", arr, w.label(), cfg.MinArrivalsPerSec), ev
	}
	return "", ev
}

// counterLine is "TcpExtListenOverflows +523 in 5.0s (104.6/s)".
func counterLine(w *window, name string) string {
	n, ok := w.count(name)
	if !ok {
		if v, okv := w.Cur.Counter(name); okv {
			return fmt.Sprintf("%s = %d (cumulative since boot; one sample gives no rate)", name, v)
		}
		return name + " not recorded"
	}
	return fmt.Sprintf("%s +%d in %.1fs (%s)", name, n, w.Delta.Seconds, perSec(n, w.Delta.Seconds))
}

// atLimitInWindow says whether a listener reached its limit in the window:
// in the closing sample, or in the watch that ends with it.
func atLimitInWindow(w *window, l *sample.Listener) (bool, *sample.ListenerPeak) {
	pk := peakOf(w.Cur, l.Local)
	return atLimit(l) || (pk != nil && pk.AtLimit > 0), pk
}

// saturated tells a saturated acceptor (the queue stays at its limit) from
// a burst (it drains between peaks). With a watch, the share of polls at
// the limit decides; without one, both ends of the window must be full.
func saturated(w *window, l *sample.Listener, pk *sample.ListenerPeak, cfg config.Diagnose) bool {
	if pk != nil && pk.Polls > 0 {
		return pk.Drained == 0 && float64(pk.AtLimit) >= cfg.SaturatedRatio*float64(pk.Polls)
	}
	if w.Prev == nil {
		return false
	}
	return atLimit(l) && atLimit(w.Prev.Listener(l.Local))
}

// peakDemand estimates the queue a listener needed over the whole series:
// its limit plus the overflows of its worst burst, or its peak fill. An
// interval's overflows are spread over the polls that saw the queue at its
// limit (each burst fills it for at least one poll, so this errs low per
// burst and is doubled by the policy); without a watch (a bundle) the whole
// interval counts as one burst, which errs high.
func peakDemand(series []*sample.Sample, local string) int64 {
	var demand int64
	for i := 1; i < len(series); i++ {
		l := series[i].Listener(local)
		if l == nil {
			continue
		}
		d := sample.Diff(series[i-1], series[i])
		ov := d.Counters[cOverflows]
		bursts := uint64(1)
		if pk := peakOf(series[i], local); pk != nil {
			bursts = max(bursts, uint64(pk.AtLimit))
			demand = max(demand, int64(pk.PeakRecvQ))
		}
		demand = max(demand, int64(l.SendQ)+int64((ov+bursts-1)/bursts))
	}
	return demand
}

// somaxconnTarget applies the somaxconn policy: at least double the
// current value, at least double the peak demand (retransmitted SYNs of
// earlier drops add to later bursts, and an accept-queue slot costs
// nothing until used), a power of two, never above diagnose.somaxconn_cap.
func somaxconnTarget(current, demand int64, cfg config.Diagnose) int64 {
	t := nextPow2(max(2*current, 2*demand, 1))
	return min(t, int64(cfg.SomaxconnCap))
}

// backlogActions are the application-side ways to raise a listen backlog.
func backlogActions(l *sample.Listener, want int64) []string {
	return []string{
		fmt.Sprintf("Raise the listen() backlog of %s (%s) to at least %d. Usual settings: nginx `listen %d backlog=%d;` (default 511), HAProxy `backlog %d`, Node.js `server.listen({port: %d, backlog: %d})` (default 511), Java `new ServerSocket(%d, %d)` (default 50) or Tomcat `acceptCount` (default 100) or Netty `SO_BACKLOG`, gunicorn `--backlog %d` (default 2048), Redis `tcp-backlog %d` (default 511); Go's net.Listen already asks for net.core.somaxconn.",
			l.Local, ownersLong(l.Owners), want, l.Port, want, want, l.Port, want, l.Port, want, want, want),
		"Restart or reload the application so that it calls listen() with the new backlog; then Send-Q in `ss -tln` shows it.",
	}
}

func slowAcceptActions(l *sample.Listener) []string {
	return []string{
		fmt.Sprintf("Make %s (%s) accept faster: more workers or threads (nginx worker_processes, gunicorn --workers, a bigger accept pool), an accept loop that hands connections off instead of serving them inline.", l.Local, ownersLong(l.Owners)),
		"Find what blocks the handlers (a slow upstream, a lock, GC pauses, CPU saturation) and shed or rate-limit load upstream; a bigger queue only adds latency to every connection.",
	}
}

// listenerVerdict decides app or kernel for a listener that reached its
// limit, and builds the observation (shared by the accept-queue and the
// SYN-queue rules, since one listen backlog bounds both queues).
func listenerVerdict(w *window, cfg config.Diagnose, kind, counter string, l *sample.Listener, pk *sample.ListenerPeak, evidence []string) Observation {
	o := Observation{Kind: kind, Subject: l.Local, Severity: SevWarning, Counter: counter}
	somax, okS := sysInt(w.Cur, kSomaxconn)
	queue := "accept queue"
	if kind == KindSynQueueOverflow {
		queue = "SYN queue"
	}
	snap := fmt.Sprintf("listener %s (%s): Recv-Q %d, Send-Q %d in the closing sample", l.Local, ownersLong(l.Owners), l.RecvQ, l.SendQ)
	if atLimit(l) {
		snap += " (queue full)"
	}
	evidence = append([]string{snap}, evidence...)
	if pk != nil {
		evidence = append(evidence, fmt.Sprintf("listener watch: peak Recv-Q %d of Send-Q %d, at the limit in %d of %d polls, below half of it in %d polls after reaching it", pk.PeakRecvQ, pk.SendQ, pk.AtLimit, pk.Polls, pk.Drained))
	}
	if okS {
		evidence = append(evidence, fmt.Sprintf("%s = %d", kSomaxconn, somax))
	}
	o.Evidence = evidence

	switch {
	case kind == KindAcceptQueueOverflow && saturated(w, l, pk, cfg):
		o.Side = SideApp
		o.Title = fmt.Sprintf("slow acceptor: %s stays at its accept-queue limit", l.Local)
		o.Explanation = fmt.Sprintf("The accept queue of %s is full all the time, not only in bursts: the application (%s) accepts connections more slowly than they arrive. New connections are dropped and retried by the clients (seconds of delay each). A bigger queue would only hold more connections waiting longer; the fix is in the application.", l.Local, ownersLong(l.Owners))
		o.AppActions = slowAcceptActions(l)
	case !okS:
		o.Side = SideUnknown
		o.Title = fmt.Sprintf("%s overflow on %s (somaxconn unknown)", queue, l.Local)
		o.Explanation = fmt.Sprintf("The %s of %s reached its limit %d and connections were dropped, but net.core.somaxconn was not recorded, so the samples cannot say whether the application's backlog or the kernel's cap limits it.", queue, l.Local, l.SendQ)
	case int64(l.SendQ) < somax:
		want := min(somax, nextPow2(max(2*int64(l.SendQ), 2*peakDemand(w.Series, l.Local), 1)))
		o.Side = SideApp
		o.Title = fmt.Sprintf("%s overflow on %s: the application's backlog (%d) is the cap", queue, l.Local, l.SendQ)
		o.Explanation = fmt.Sprintf("Connections to %s are dropped because its %s is full. Its limit (Send-Q %d) is below net.core.somaxconn (%d), so the limit is the backlog the application passed to listen(): raising somaxconn cannot help. Raise the application's backlog (and check that it accepts fast enough). If somaxconn was lower when the application called listen(), a restart may be enough: its backlog is then capped by the current value instead.", l.Local, queue, l.SendQ, somax)
		o.AppActions = backlogActions(l, want)
		o.Evidence = append(o.Evidence, fmt.Sprintf("Send-Q %d < somaxconn %d: the application's listen() backlog is the cap", l.SendQ, somax))
	default:
		o.Side = SideKernel
		o.Title = fmt.Sprintf("%s overflow on %s: net.core.somaxconn (%d) is the cap", queue, l.Local, somax)
		o.Explanation = fmt.Sprintf("Connections to %s are dropped because its %s is full, and its limit (Send-Q %d) equals net.core.somaxconn: the kernel caps the backlog the application asked for.", l.Local, queue, l.SendQ)
		if pk != nil && pk.Drained > 0 {
			o.Explanation += fmt.Sprintf(" The queue drains between bursts (below half its limit in %d of %d polls after reaching it), so the application keeps up on average; a larger somaxconn absorbs the bursts.", pk.Drained, pk.Polls)
		}
		o.Explanation += " A new somaxconn takes effect only when the application calls listen() again, with a backlog at least the new value."
		if int64(l.SendQ) == somax {
			o.Evidence = append(o.Evidence, fmt.Sprintf("Send-Q %d == somaxconn %d: the kernel's cap, not the application's backlog", l.SendQ, somax))
		} else {
			o.Evidence = append(o.Evidence, fmt.Sprintf("Send-Q %d > somaxconn %d: somaxconn was lowered after the application listened; a new limit must exceed the current Send-Q", l.SendQ, somax))
		}
		target := somaxconnTarget(max(somax, int64(l.SendQ)), peakDemand(w.Series, l.Local), cfg)
		if target <= somax {
			o.Explanation += fmt.Sprintf(" somaxconn is already at diagnose.somaxconn_cap (%d): no larger value is proposed.", cfg.SomaxconnCap)
			break
		}
		o.Plan = somaxconnPlan(w.Cur, l, somax, target, kind)
	}
	return o
}

func somaxconnPlan(s *sample.Sample, l *sample.Listener, current, target int64, kind string) *Plan {
	pre := nsPrefix(s.Netns)
	counter := cOverflows
	if kind == KindSynQueueOverflow {
		counter = cReqQCook
	}
	relisten := "Make the application listen() again (a reload or restart) so the new limit applies"
	if len(l.Owners) > 0 && l.Owners[0].Unit != "" {
		relisten += fmt.Sprintf(": `systemctl reload-or-restart %s`", l.Owners[0].Unit)
	}
	return &Plan{
		Changes: []Change{{Key: kSomaxconn, Current: fmt.Sprint(current), Proposed: fmt.Sprint(target)}},
		Reason: fmt.Sprintf("the queue of %s overflows at Send-Q %d, which is net.core.somaxconn; policy: at least double the current value and the observed peak demand, a power of two, at most diagnose.somaxconn_cap",
			l.Local, l.SendQ),
		AppActions: []string{
			relisten + ".",
			fmt.Sprintf("Make sure its own listen() backlog is at least %d (nginx `listen %d backlog=%d;`, Node.js/Java/Python backlog settings); Go's net package reads somaxconn itself.", target, l.Port, target),
		},
		Notes: []string{
			fmt.Sprintf("The change does nothing for a socket already listening: %s (%s) must call listen() again (restart or reload) before Send-Q rises.", l.Local, ownersLong(l.Owners)),
			fmt.Sprintf("Its own backlog must be at least %d, or Send-Q stops at that backlog instead.", target),
			"Kernels before 5.4 store the limit in 16 bits: values above 65535 are not safe there.",
		},
		Verify: Verification{
			Commands: []string{
				pre + fmt.Sprintf("ss -tlnp '( sport = :%d )'", l.Port),
				pre + fmt.Sprintf("watch -n1 'nstat -az %s %s'", cOverflows, cDrops),
			},
			Fixed: fmt.Sprintf("Send-Q of %s reads %d after the application listens again, and %s stops rising (0/s) while connections keep arriving at the same rate.",
				l.Local, target, counter),
			Counters:      []string{counter, cDrops},
			ListenerLocal: l.Local, ListenerSendQ: uint32(target),
		},
	}
}

func checkAcceptQueue(w *window, cfg config.Diagnose) []Observation {
	cur := w.Cur
	if w.Delta != nil {
		if !w.rising(cOverflows, cfg) {
			return nil
		}
	} else if v, ok := cur.Counter(cOverflows); !ok || v == 0 {
		return nil
	}
	unconf, loadEv := loadCheck(w, cfg)
	common := []string{counterLine(w, cOverflows), counterLine(w, cDrops)}
	if loadEv != "" {
		common = append(common, loadEv)
	}
	if n := cur.States[sample.StateSynRecv]; n > 0 {
		common = append(common, fmt.Sprintf("%d SYN-RECV sockets (dropped final ACKs leave requests half-open)", n))
	}
	if v, ok := sysInt(cur, "net.ipv4.tcp_abort_on_overflow"); ok && v != 0 {
		common = append(common, "net.ipv4.tcp_abort_on_overflow = 1: clients get a reset at once instead of retrying the handshake")
	}

	type hit struct {
		l  *sample.Listener
		pk *sample.ListenerPeak
	}
	var hits []hit
	for i := range cur.Listeners {
		l := &cur.Listeners[i]
		if ok, pk := atLimitInWindow(w, l); ok {
			hits = append(hits, hit{l, pk})
		}
	}
	fallback := false
	if len(hits) == 0 && len(cur.Listeners) == 1 && w.Delta != nil {
		// Bursts shorter than a poll leave no trace in the queue; with a
		// single listener in the namespace there is no one else to blame.
		l := &cur.Listeners[0]
		hits = append(hits, hit{l, peakOf(cur, l.Local)})
		fallback = true
	}
	if len(hits) == 0 && w.Delta == nil {
		// One sample: a cumulative counter with no listener full now may
		// be from any time since boot.
		return nil
	}
	if len(hits) == 0 {
		why := "no listener was seen at its limit"
		if cur.Watch == nil {
			why += " and no listener watch ran between the samples"
		}
		o := Observation{
			Kind: KindAcceptQueueOverflow, Subject: "unattributed", Side: SideUnknown, Severity: SevWarning,
			Counter: cOverflows, Unconfirmed: unconf,
			Title:       "accept-queue overflows that no listener can be tied to",
			Explanation: "The namespace's ListenOverflows counter rose, so some listener's accept queue overflowed, but " + why + ". The counter is per namespace, not per listener. Run diagnose again with the listener watch on (sample.watch_interval) or during the overflow to name the listener.",
			Evidence:    append(common, plural(len(cur.Listeners), "listener")+", none at its limit"),
		}
		return []Observation{o}
	}
	var out []Observation
	for _, h := range hits {
		ev := append([]string{}, common...)
		if len(hits) > 1 {
			ev = append(ev, fmt.Sprintf("%d listeners reached their limit in %s; the namespace-wide counters are shared among them", len(hits), w.label()))
		}
		if fallback {
			ev = append(ev, "the only listener in the namespace; its queue was not caught at the limit (bursts shorter than a poll)")
		}
		o := listenerVerdict(w, cfg, KindAcceptQueueOverflow, cOverflows, h.l, h.pk, ev)
		o.Unconfirmed = unconf
		if arr, ok := w.arrivals(); ok && arr > 0 {
			if r, _ := w.rate(cOverflows); r >= 0.1*arr {
				o.Severity = SevCritical
			}
		}
		out = append(out, o)
	}
	return out
}

// synSubject names the listener a SYN-queue symptom belongs to: the one a
// SYN-flooding kernel line names, or the only listener.
func synSubject(s *sample.Sample) (*sample.Listener, string) {
	for _, e := range s.Kernel {
		if e.Kind == "syn-flood" {
			if l := listenerFor(s, e.Addr, e.Port); l != nil {
				return l, e.Line
			}
		}
	}
	if len(s.Listeners) == 1 {
		return &s.Listeners[0], ""
	}
	return nil, ""
}

func checkSynQueue(w *window, cfg config.Diagnose) []Observation {
	cur := w.Cur
	cookies, okC := sysInt(cur, kSyncookies)
	synRecv := cur.States[sample.StateSynRecv]
	l, line := synSubject(cur)
	subject := "host"
	if l != nil {
		subject = l.Local
	}
	ev := []string{fmt.Sprintf("%d SYN-RECV sockets", synRecv)}
	if okC {
		ev = append(ev, fmt.Sprintf("%s = %d", kSyncookies, cookies))
	}
	if line != "" {
		ev = append(ev, "kernel: "+line)
	}

	if w.Delta == nil {
		// One sample: cumulative counters say it happened since boot,
		// not that it happens now.
		if synRecv < cfg.SynRecvMin {
			return nil
		}
		drop, _ := cur.Counter(cReqQDrop)
		cook, _ := cur.Counter(cReqQCook)
		if drop == 0 && cook == 0 && line == "" {
			return nil
		}
		o := Observation{Kind: KindSynQueueOverflow, Subject: subject, Side: SideUnknown, Severity: SevWarning, Counter: cReqQDrop,
			Title:       "SYN-RECV pile with SYN-queue drops or cookies since boot",
			Explanation: fmt.Sprintf("%d half-open connections and SYN-queue counters above zero, but one sample cannot tell a flood from a burst or from an accept-queue overflow: take two samples.", synRecv),
			Evidence:    append(ev, counterLine(w, cReqQDrop), counterLine(w, cReqQCook))}
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

	switch {
	case okC && cookies != 0 && sentRising && okR && recv == 0:
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

	case okC && cookies == 0 && (w.rising(cReqQDrop, cfg) || (w.rising(cDrops, cfg) && synRecv >= cfg.SynRecvMin)):
		o := Observation{Kind: KindSynQueueOverflow, Subject: subject, Side: SideKernel, Severity: SevCritical, Counter: cReqQDrop, Unconfirmed: unconf,
			Evidence: append(ev, counterLine(w, cReqQDrop), counterLine(w, cDrops))}
		o.Title = fmt.Sprintf("SYN-queue overflow on %s with syncookies off: SYNs dropped", subject)
		o.Explanation = "The SYN queue is full and, with net.ipv4.tcp_syncookies=0, the kernel drops new SYNs (TCPReqQFullDrop): clients wait for retransmits or fail. SYN cookies let the kernel answer without queueing and cost nothing until the queue is full; they are the first fix, whether this is a burst or a flood."
		msb, okM := sysInt(cur, kSynBacklog)
		if okM {
			o.Evidence = append(o.Evidence, fmt.Sprintf("%s = %d (consulted only while syncookies are off)", kSynBacklog, msb))
		}
		if !cfg.KeepSyncookiesOff {
			o.Plan = syncookiesPlan(cur, l, subject)
			return []Observation{o}
		}
		if !okM {
			o.Explanation += " diagnose.keep_syncookies_off is set and tcp_max_syn_backlog was not recorded: no change proposed."
			return []Observation{o}
		}
		target := min(nextPow2(max(2*msb, 2*int64(synRecv), 1)), int64(cfg.SynBacklogCap))
		if target <= msb {
			o.Explanation += fmt.Sprintf(" tcp_max_syn_backlog is at diagnose.syn_backlog_cap (%d): no change proposed.", cfg.SynBacklogCap)
			return []Observation{o}
		}
		p := syncookiesPlan(cur, l, subject)
		p.Changes = []Change{{Key: kSynBacklog, Current: fmt.Sprint(msb), Proposed: fmt.Sprint(target)}}
		p.Reason = "diagnose.keep_syncookies_off: cookies stay off, so the SYN queue must hold the burst; policy: at least double, at least twice the SYN-RECV pile, a power of two, at most diagnose.syn_backlog_cap"
		p.Notes = append(p.Notes, "The SYN queue is also bounded by the listener's own backlog (Send-Q): raise it too if it is lower.")
		o.Plan = p
		return []Observation{o}

	case okC && cookies != 0 && sentRising && okR && recv > 0:
		if l == nil {
			o := Observation{Kind: KindSynQueueOverflow, Subject: "host", Side: SideUnknown, Severity: SevWarning, Counter: cReqQCook, Unconfirmed: unconf,
				Title:       "SYN-queue overflows answered with cookies on an unknown listener",
				Explanation: "SYN queues overflow and the kernel falls back to SYN cookies, which clients answer: a legitimate burst larger than the listen backlog. No kernel line names the listener and there are several, so the samples cannot say which backlog to raise.",
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
