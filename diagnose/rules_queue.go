package diagnose

import (
	"fmt"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/internal/policy"
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

	kSomaxconn  = policy.KeySomaxconn
	kSynBacklog = policy.KeySynBacklog
	kSyncookies = policy.KeySyncookies
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
	case l.LimitUnknown:
		o.Side = SideUnknown
		o.Title = fmt.Sprintf("%s overflow on %s (its limit is not in the capture)", queue, l.Local)
		o.Explanation = fmt.Sprintf("%d connections wait in the %s of %s, but the capture does not show the queue's limit (net-tools and busybox netstat print 0 for a listener's Send-Q), so it cannot say whether the application's backlog or net.core.somaxconn caps it. Capture `ss -tlnp` (Send-Q is the limit) and `sysctl net.core.somaxconn`.", l.RecvQ, queue, l.Local)
	case !okS:
		o.Side = SideUnknown
		o.Title = fmt.Sprintf("%s overflow on %s (somaxconn unknown)", queue, l.Local)
		o.Explanation = fmt.Sprintf("The %s of %s reached its limit %d and connections were dropped, but net.core.somaxconn was not recorded, so the samples cannot say whether the application's backlog or the kernel's cap limits it. Capture `sysctl net.core.somaxconn`: a Send-Q below it is the application's backlog, equal to it the kernel's cap.", queue, l.Local, l.SendQ)
	case int64(l.SendQ) < somax:
		want := min(somax, policy.NextPow2(max(2*int64(l.SendQ), 2*peakDemand(w.Series, l.Local), 1)))
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
		target, ok := policy.Somaxconn(max(somax, int64(l.SendQ)), peakDemand(w.Series, l.Local), cfg)
		if !ok || target <= somax {
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
	// snapshot: the counters give no rise for this window (one sample, or
	// counters not read at either end). The queues of the closing sample
	// still tell the truth they hold: Recv-Q > Send-Q is a queue holding
	// backlog+1, full and overflowing now.
	_, haveCounter := cur.Counter(cOverflows)
	_, haveDelta := w.count(cOverflows)
	snapshot := !haveDelta
	if !snapshot && !w.rising(cOverflows, cfg) {
		return nil
	}
	unconf, loadEv := loadCheck(w, cfg)
	var common []string
	if haveCounter {
		common = append(common, counterLine(w, cOverflows), counterLine(w, cDrops))
	} else {
		common = append(common, cOverflows+" not read: the drops themselves are not in the input (capture: nstat -az TcpExtListenOverflows TcpExtListenDrops, twice, a few seconds apart)")
	}
	if loadEv != "" && !snapshot {
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
		switch {
		case snapshot && overflowing(l):
			hits = append(hits, hit{l, peakOf(cur, l.Local)})
		case snapshot && w.Delta == nil && haveCounter:
			// One sample, counter above zero since boot and the
			// queue at its limit now or in the watch before it.
			if v, _ := cur.Counter(cOverflows); v > 0 {
				if ok, pk := atLimitInWindow(w, l); ok {
					hits = append(hits, hit{l, pk})
				}
			}
		case !snapshot:
			if ok, pk := atLimitInWindow(w, l); ok {
				hits = append(hits, hit{l, pk})
			}
		}
	}
	sinceBoot := false
	if snapshot && w.Delta == nil && len(hits) == 0 && len(cur.Listeners) == 1 {
		// One sample: overflows counted since boot and a single listener
		// in the input to own them (a pasted netstat -s with ss -lnt).
		if v, _ := cur.Counter(cOverflows); v > 0 {
			l := &cur.Listeners[0]
			hits = append(hits, hit{l, peakOf(cur, l.Local)})
			sinceBoot = true
		}
	}
	if snapshot {
		if len(hits) == 0 {
			// A cumulative counter with no listener full now may be
			// from any time since boot: nothing to say.
			return nil
		}
		if w.Delta != nil {
			unconf = cOverflows + " not read at both ends of " + w.label() + ": confirm with the counters"
		}
	}
	fallback := false
	if len(hits) == 0 && len(cur.Listeners) == 1 {
		// Bursts shorter than a poll leave no trace in the queue; with a
		// single listener in the namespace there is no one else to blame.
		l := &cur.Listeners[0]
		hits = append(hits, hit{l, peakOf(cur, l.Local)})
		fallback = true
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
	// A process whose every listener (two or more) is full now is not
	// accepting at all: whatever the limits, the application is stuck.
	stuck := map[int]int{} // pid -> its listeners, when all are full
	for i := range cur.Listeners {
		l := &cur.Listeners[i]
		for _, ow := range l.Owners {
			if n, seen := stuck[ow.PID]; !seen || n > 0 {
				if atLimit(l) {
					stuck[ow.PID] = n + 1
				} else {
					stuck[ow.PID] = -1
				}
			}
		}
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
		switch {
		case snapshot && h.l.LimitUnknown && overflowing(h.l):
			ev = append(ev, fmt.Sprintf("Recv-Q %d: connections waiting for accept(); the capture does not show the queue's limit (net-tools and busybox netstat print 0 for a listener's Send-Q: capture ss -tlnp)", h.l.RecvQ))
			if commonBacklog(h.l.RecvQ - 1) {
				ev = append(ev, fmt.Sprintf("Recv-Q %d = %d + 1: the kernel's signature of a full queue with a backlog of %d", h.l.RecvQ, h.l.RecvQ-1, h.l.RecvQ-1))
			}
		case snapshot && overflowing(h.l):
			ev = append(ev, fmt.Sprintf("Recv-Q %d > Send-Q %d: the queue holds its limit plus one, so it is full and refusing handshakes now", h.l.RecvQ, h.l.SendQ))
		}
		o := listenerVerdict(w, cfg, KindAcceptQueueOverflow, cOverflows, h.l, h.pk, ev)
		o.Unconfirmed = unconf
		if sinceBoot {
			o.Evidence = append(o.Evidence, "the only listener in the input; its queue is not full now: the overflows may be from any time since boot")
			o.Explanation += " Judged from one snapshot: the overflow counter is cumulative since boot and this is the only listener in the input to own it; whether it still overflows needs a second sample (nstat -az TcpExtListenOverflows, twice)."
		}
		if snapshot && overflowing(h.l) {
			o.Explanation += " Judged from one snapshot of the queue: confirm with a second sample and the counters (nstat -az TcpExtListenOverflows TcpExtListenDrops, twice)."
		}
		if arr, ok := w.arrivals(); ok && arr > 0 && !snapshot {
			if r, _ := w.rate(cOverflows); r >= 0.1*arr {
				o.Severity = SevCritical
			}
		}
		for _, ow := range h.l.Owners {
			if n := stuck[ow.PID]; n >= 2 {
				o.Side = SideApp
				o.Plan = nil
				o.Title = fmt.Sprintf("%s is not accepting: all %d of its listeners are full", ownerLong(ow), n)
				o.Explanation = fmt.Sprintf("Every listener of %s (%d of them) has a full accept queue at once: the process does not call accept(), whatever its limits are. It is stuck, overloaded or blocked (a deadlock, a full thread pool, descriptors exhausted). A bigger queue would only hold more connections waiting.", ownerLong(ow), n)
				if snapshot {
					o.Explanation += " Judged from one snapshot: confirm with a second sample."
				}
				o.AppActions = append([]string{fmt.Sprintf("See what %s is doing: `cat /proc/%d/status`, its thread stacks (`gdb -p`, jstack, py-spy dump), `ls /proc/%d/fd | wc -l` against its limit.", ownerLong(ow), ow.PID, ow.PID)}, slowAcceptActions(h.l)...)
				o.Evidence = append(o.Evidence, fmt.Sprintf("all %d listeners of %s are full", n, ownerName(ow)))
				break
			}
		}
		out = append(out, o)
	}
	return out
}
