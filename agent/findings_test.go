package agent

import (
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/internal/journalzap"
	"github.com/sockwarden/sockwarden/remediate"
)

// sent is one journal entry as the fake sink received it, cut down to the
// fields a finding's entry must carry.
type sent struct {
	Pri    journal.Priority
	Fields map[string]string
}

var findingFields = []string{"SOCKWARDEN_EVENT", "SOCKWARDEN_KIND", "SOCKWARDEN_SIDE", "SOCKWARDEN_SUBJECT",
	"SOCKWARDEN_SEVERITY", "SOCKWARDEN_NETNS", "SOCKWARDEN_PROPOSAL", "SOCKWARDEN_OLD_SEVERITY"}

func overflow(sev diagnose.Severity, confirmed bool) diagnose.Finding {
	return diagnose.Finding{Kind: diagnose.KindAcceptQueueOverflow, Side: diagnose.SideKernel, Severity: sev,
		Subject: "0.0.0.0:8080", Confirmed: confirmed, Title: "accept queue of 0.0.0.0:8080 overflows"}
}

func closeWait() diagnose.Finding {
	return diagnose.Finding{Kind: diagnose.KindCloseWaitPile, Side: diagnose.SideApp, Severity: diagnose.SevWarning,
		Subject: "pid 42 (java)", Title: "CLOSE-WAIT pile"}
}

func report(fs ...diagnose.Finding) diagnose.Report {
	r := diagnose.Report{Findings: fs}
	for _, f := range fs {
		if f.Side == diagnose.SideKernel {
			r.Proposals = append(r.Proposals, diagnose.Proposal{ID: "3c2731033c78", Finding: f.Kind, Subject: f.Subject})
		}
	}
	return r
}

func entryOf(pri journal.Priority, ev, kind, side, subject, sev, proposal string) sent {
	return sent{Pri: pri, Fields: map[string]string{"SOCKWARDEN_EVENT": ev, "SOCKWARDEN_KIND": kind, "SOCKWARDEN_SIDE": side,
		"SOCKWARDEN_SUBJECT": subject, "SOCKWARDEN_SEVERITY": sev, "SOCKWARDEN_NETNS": "host", "SOCKWARDEN_PROPOSAL": proposal}}
}

// TestFindingsJournal runs diagnoses through the agent's finding log into
// a fake journald sink: each diagnosis must give exactly the entries of
// what changed since the one before.
func TestFindingsJournal(t *testing.T) {
	aq, cw := diagnose.KindAcceptQueueOverflow, diagnose.KindCloseWaitPile
	steps := []struct {
		name string
		rep  diagnose.Report
		want []sent
	}{
		{"healthy: nothing", report(), nil},
		{"info findings are not problems", report(diagnose.Finding{Kind: cw, Severity: diagnose.SevInfo, Subject: "host"}), nil},
		{"appears unconfirmed", report(overflow(diagnose.SevWarning, false)),
			[]sent{entryOf(journal.PriInfo, "appeared", aq, "kernel", "0.0.0.0:8080", "warning", "3c2731033c78")}},
		{"same again: nothing", report(overflow(diagnose.SevWarning, false)), nil},
		{"confirmed", report(overflow(diagnose.SevWarning, true)),
			[]sent{entryOf(journal.PriInfo, "confirmed", aq, "kernel", "0.0.0.0:8080", "warning", "3c2731033c78")}},
		{"still confirmed: nothing", report(overflow(diagnose.SevWarning, true)), nil},
		{"severity rises; another finding appears", report(closeWait(), overflow(diagnose.SevCritical, true)),
			[]sent{
				entryOf(journal.PriInfo, "appeared", cw, "app", "pid 42 (java)", "warning", ""),
				func() sent {
					e := entryOf(journal.PriWarning, "severity", aq, "kernel", "0.0.0.0:8080", "critical", "3c2731033c78")
					e.Fields["SOCKWARDEN_OLD_SEVERITY"] = "warning"
					return e
				}(),
			}},
		{"loses its confirmation: nothing", report(closeWait(), overflow(diagnose.SevCritical, false)), nil},
		{"both clear", report(),
			[]sent{
				entryOf(journal.PriInfo, "cleared", aq, "kernel", "0.0.0.0:8080", "critical", "3c2731033c78"),
				entryOf(journal.PriInfo, "cleared", cw, "app", "pid 42 (java)", "warning", ""),
			}},
		{"healthy again: nothing", report(), nil},
	}
	var got []sent
	core := journalzap.NewWithSender(zapcore.DebugLevel, "sockwarden", func(msg string, pri journal.Priority, vars map[string]string) error {
		if msg == "" || vars["SOCKWARDEN_LOGGER"] != "agent" {
			t.Errorf("entry %q with logger %q: want a message from the agent's logger", msg, vars["SOCKWARDEN_LOGGER"])
		}
		e := sent{Pri: pri, Fields: map[string]string{}}
		for _, k := range findingFields {
			if v, ok := vars[k]; ok {
				e.Fields[k] = v
			}
		}
		got = append(got, e)
		return nil
	})
	log := zap.New(core).Named("agent")
	var seen map[findingKey]seenFinding
	for _, s := range steps {
		got = nil
		var evs []findingEvent
		evs, seen = diffFindings(seen, s.rep)
		logFindings(log, "", evs)
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("%s: journal entries (-want +got):\n%s", s.name, diff)
		}
	}
}

// TestFindingsJournalMessage checks the plain-English message of an entry.
func TestFindingsJournalMessage(t *testing.T) {
	var msgs []string
	core := journalzap.NewWithSender(zapcore.InfoLevel, "sockwarden", func(msg string, _ journal.Priority, _ map[string]string) error {
		msgs = append(msgs, msg)
		return nil
	})
	evs, _ := diffFindings(nil, report(overflow(diagnose.SevWarning, true)))
	logFindings(zap.New(core), "/run/netns/web", evs)
	want := `finding appeared: accept-queue-overflow on 0.0.0.0:8080 (warning, kernel-side, confirmed): accept queue of 0.0.0.0:8080 overflows` +
		` confirmed=true event=appeared kind=accept-queue-overflow netns=/run/netns/web proposal=3c2731033c78 severity=warning side=kernel subject=0.0.0.0:8080`
	if len(msgs) != 1 || msgs[0] != want {
		t.Errorf("messages %q, want [%q]", msgs, want)
	}
}

// TestNetnsOneSpelling: the agent's own namespace has one name in its
// metrics, its logs and the remediate engine's logs.
func TestHostNamespaceOneSpelling(t *testing.T) {
	if NetnsLabel != remediate.HostNetns || nsLabel("") != remediate.NetnsName("") {
		t.Errorf("agent names the host namespace %q, remediate %q", NetnsLabel, remediate.HostNetns)
	}
}
