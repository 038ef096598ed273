package agent

import (
	"fmt"
	"slices"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/sample"
)

// Floors under which a sockstat rise is noise, whatever the ratio.
const (
	timeWaitRiseFloor = 200
	orphanRiseFloor   = 20
	inUseRiseFloor    = 500
)

// tierInput is what the tier decision looks at.
type tierInput struct {
	// prev is the previous tick's sample (cheap or full), lastFull the
	// last full census; both nil at start.
	prev, lastFull *sample.Sample
	// cur is this tick's cheap sample.
	cur *sample.Sample
	// ticksSinceFull counts ticks since the last full census, this one
	// included.
	ticksSinceFull int
	// open is true while the last diagnosis had findings above info: the
	// agent keeps taking full censuses until they clear or are confirmed.
	open bool
}

// census is the tier decision of one tick.
type census struct {
	// why the full census is taken ("" = stay cheap), for the log and
	// status.
	why string
	// routine: taken although nothing moved (the first one, or every
	// agent.full_every ticks). A routine census skips the socket-owner
	// scan (/proc/PID/fd of every process, the most expensive part on a
	// busy host); one triggered by a signal or by open findings reads
	// owners as sample.owners says, so findings name their processes.
	routine bool
}

const reasonFirst = "first census"

// decideCensus decides whether this tick takes the full census, and says
// why. It is pure: docs/agent.md describes the tiers.
func decideCensus(in tierInput, cfg config.Config) census {
	switch {
	case in.lastFull == nil:
		return census{why: reasonFirst, routine: true}
	case in.open:
		return census{why: "findings open"}
	case in.ticksSinceFull >= cfg.Agent.FullEvery:
		return census{why: fmt.Sprintf("every %d ticks", cfg.Agent.FullEvery), routine: true}
	}
	return census{why: signalReason(in, cfg)}
}

// fullReason is decideCensus's reason alone.
func fullReason(in tierInput, cfg config.Config) string { return decideCensus(in, cfg).why }

// signalReason names the cheap signal that calls for a full census, if
// any; in.lastFull is not nil.
// Any of sample.DropCounters rising between two ticks above
// diagnose.min_drops_per_sec takes the full census.
func signalReason(in tierInput, cfg config.Config) string {
	if in.prev != nil {
		d := sample.Diff(in.prev, in.cur)
		for _, c := range sample.DropCounters {
			if n := d.Counters[c]; n > 0 {
				if r, ok := d.Rate(c); !ok || r > cfg.Diagnose.MinDropsPerSec {
					return fmt.Sprintf("%s +%d", c, n)
				}
			}
		}
	}
	for _, l := range in.cur.Listeners {
		// Half full at an instant is a queue that is not being drained
		// as fast as it fills; the watch in the full census tells a
		// burst from saturation.
		if l.SendQ > 0 && 2*l.RecvQ >= l.SendQ {
			return fmt.Sprintf("listener %s filling (%d/%d)", l.Local, l.RecvQ, l.SendQ)
		}
	}
	for _, k := range in.cur.Kernel {
		switch k.Kind {
		case "port-range-parity":
			// Advice about a setting, not a symptom.
		case "syn-flood":
			// The kernel log is the host's, shared by every namespace:
			// a SYN-flooding line concerns this namespace only if one
			// of its listeners has that port.
			if slices.ContainsFunc(in.cur.Listeners, func(l sample.Listener) bool { return l.Port == k.Port }) {
				return fmt.Sprintf("kernel log: syn-flood on port %d", k.Port)
			}
		default:
			return "kernel log: " + k.Kind
		}
	}
	base := in.lastFull.Sockstat
	now := in.cur.Sockstat
	if rose(base.TCPTimeWait, now.TCPTimeWait, cfg.Agent.SockstatRise, timeWaitRiseFloor) {
		return fmt.Sprintf("TIME-WAIT %d -> %d", base.TCPTimeWait, now.TCPTimeWait)
	}
	if rose(base.TCPOrphan, now.TCPOrphan, cfg.Agent.SockstatRise, orphanRiseFloor) {
		return fmt.Sprintf("orphans %d -> %d", base.TCPOrphan, now.TCPOrphan)
	}
	// Sockets in use climbing: a CLOSE-WAIT or FIN-WAIT-2 leak moves no
	// drop counter, only this.
	if rose(base.TCPInUse, now.TCPInUse, cfg.Agent.SockstatRise, inUseRiseFloor) {
		return fmt.Sprintf("sockets in use %d -> %d", base.TCPInUse, now.TCPInUse)
	}
	return ""
}

func rose(from, to int, ratio float64, floor int) bool {
	return to-from >= floor && float64(to) > float64(from)*(1+ratio)
}
