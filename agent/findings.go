package agent

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/diagnose"
)

// Finding events, the value of SOCKWARDEN_EVENT on a finding's journal
// entry. Stable: alerts and scripts key on them.
const (
	FindingAppeared  = "appeared"
	FindingConfirmed = "confirmed"
	FindingSeverity  = "severity"
	FindingCleared   = "cleared"
)

// findingKey is what makes two findings of consecutive diagnoses the same
// one: its kind and subject in one namespace (the subject is stable across
// samples by diagnose's contract).
type findingKey struct{ kind, subject string }

// seenFinding is what the agent last logged about a finding.
type seenFinding struct {
	side      diagnose.Side
	severity  diagnose.Severity
	confirmed bool
	title     string
	proposal  string
}

// findingEvent is one change of a finding between two diagnoses of a
// namespace.
type findingEvent struct {
	event string
	key   findingKey
	now   seenFinding
	// was is the severity before a severity change.
	was diagnose.Severity
}

// diffFindings compares the findings of a new diagnosis with those seen
// before, and returns what changed and the new set. Findings at info
// severity are not problems (status leaves them out too): a finding that
// falls to info is cleared, one that rises from it appears. A finding that
// loses its confirmation is not an event (the next confirmation is), so a
// flapping interval does not fill the journal; nothing changed, nothing
// returned.
func diffFindings(prev map[findingKey]seenFinding, rep diagnose.Report) ([]findingEvent, map[findingKey]seenFinding) {
	proposals := map[findingKey]string{}
	for _, p := range rep.Proposals {
		proposals[findingKey{p.Finding, p.Subject}] = p.ID
	}
	next := map[findingKey]seenFinding{}
	var evs []findingEvent
	for _, f := range rep.Findings {
		if f.Severity == diagnose.SevInfo {
			continue
		}
		k := findingKey{f.Kind, f.Subject}
		now := seenFinding{side: f.Side, severity: f.Severity, confirmed: f.Confirmed, title: f.Title, proposal: proposals[k]}
		next[k] = now
		old, had := prev[k]
		switch {
		case !had:
			evs = append(evs, findingEvent{event: FindingAppeared, key: k, now: now})
		case old.severity != now.severity:
			evs = append(evs, findingEvent{event: FindingSeverity, key: k, now: now, was: old.severity})
		case now.confirmed && !old.confirmed:
			evs = append(evs, findingEvent{event: FindingConfirmed, key: k, now: now})
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(prev), func(x, y findingKey) int {
		return strings.Compare(x.kind+" "+x.subject, y.kind+" "+y.subject)
	}) {
		if _, ok := next[k]; !ok {
			evs = append(evs, findingEvent{event: FindingCleared, key: k, now: prev[k]})
		}
	}
	return evs, next
}

// logFindings writes one log entry per finding event: under systemd one
// journal entry with SOCKWARDEN_EVENT, _KIND, _SIDE, _SUBJECT, _SEVERITY,
// _NETNS and _PROPOSAL, so that
//
//	journalctl -u sockwarden SOCKWARDEN_KIND=accept-queue-overflow
//
// lists a finding's life without metrics. The message is plain English.
func logFindings(log *zap.Logger, netns string, evs []findingEvent) {
	for _, ev := range evs {
		f := ev.now
		var msg string
		switch ev.event {
		case FindingAppeared:
			conf := "not yet confirmed"
			if f.confirmed {
				conf = "confirmed"
			}
			msg = fmt.Sprintf("finding appeared: %s on %s (%s, %s-side, %s): %s", ev.key.kind, ev.key.subject, f.severity, f.side, conf, f.title)
		case FindingConfirmed:
			msg = fmt.Sprintf("finding confirmed: %s on %s (%s, %s-side): every interval shows it under load", ev.key.kind, ev.key.subject, f.severity, f.side)
		case FindingSeverity:
			msg = fmt.Sprintf("finding severity changed: %s on %s is now %s (was %s)", ev.key.kind, ev.key.subject, f.severity, ev.was)
		case FindingCleared:
			msg = fmt.Sprintf("finding cleared: %s on %s is no longer seen", ev.key.kind, ev.key.subject)
		}
		fields := []zap.Field{zap.String("event", ev.event), zap.String("kind", ev.key.kind), zap.String("side", string(f.side)),
			zap.String("subject", ev.key.subject), zap.String("severity", string(f.severity)), zap.String("netns", nsLabel(netns)),
			zap.String("proposal", f.proposal), zap.Bool("confirmed", f.confirmed)}
		if ev.event == FindingSeverity {
			fields = append(fields, zap.String("old_severity", string(ev.was)))
		}
		lvl := log.Info
		if ev.event != FindingCleared && f.severity == diagnose.SevCritical {
			lvl = log.Warn
		}
		lvl(msg, fields...)
	}
}
