package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
)

// recordProposal records one kernel proposal in a fresh state dir, as
// sockwarden propose would, and returns the dir and the proposal id.
func recordProposal(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	cfg := config.Defaults()
	cfg.StateDir = dir
	e, err := remediate.New(remediate.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	f := diagnose.Finding{Kind: diagnose.KindAcceptQueueOverflow, Side: diagnose.SideKernel, Severity: diagnose.SevWarning, Subject: "127.0.0.1:8080", Confirmed: true}
	p := diagnose.Proposal{ID: "3c2731033c78", Host: host, Finding: f.Kind, Subject: f.Subject, Ready: true,
		Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "128", Proposed: "1024"}}, Reason: "accept queue capped by somaxconn",
		Verify: diagnose.Verification{Commands: []string{"nstat -az TcpExtListenOverflows"}, Fixed: "TcpExtListenOverflows stops rising",
			Counters: []string{"TcpExtListenOverflows"}, ListenerLocal: "127.0.0.1:8080", ListenerSendQ: 1024}}
	if _, err := e.Propose(diagnose.Report{Findings: []diagnose.Finding{f}, Proposals: []diagnose.Proposal{p}}, "test"); err != nil {
		t.Fatal(err)
	}
	return dir, p.ID
}

// TestOperatorJournal: approve and deny run by hand reach the system
// journal (a fake one here) with the operator's identity, and nothing is
// sent when there is no journal.
func TestOperatorJournal(t *testing.T) {
	saved := systemJournal
	t.Cleanup(func() { systemJournal = saved })
	var got []map[string]string
	systemJournal.send = func(msg string, _ journal.Priority, vars map[string]string) error {
		v := map[string]string{"MESSAGE": msg}
		for k, x := range vars {
			v[k] = x
		}
		got = append(got, v)
		return nil
	}

	systemJournal.enabled = func() bool { return false }
	dir, id := recordProposal(t)
	if _, errOut, code := runCLI(t, "approve", id, "--state-dir", dir); code != exitOK {
		t.Fatalf("approve: exit %d: %s", code, errOut)
	}
	if len(got) != 0 {
		t.Fatalf("no journal: %d entries sent", len(got))
	}

	systemJournal.enabled = func() bool { return true }
	for _, cmd := range []string{"approve", "deny", "apply"} {
		got = nil
		dir, id := recordProposal(t)
		args := []string{cmd, id, "--state-dir", dir, "--comment", "ticket 42"}
		wantCode := exitOK
		if cmd == "apply" {
			// Not approved: refused by a guard, nothing written.
			args, wantCode = []string{cmd, id, "--state-dir", dir, "--interval", "50ms"}, exitFailed
		}
		if _, errOut, code := runCLI(t, args...); code != wantCode {
			t.Fatalf("%s: exit %d: %s", cmd, code, errOut)
		}
		var e map[string]string
		for _, x := range got {
			if x["SOCKWARDEN_PROPOSAL"] == id {
				e = x
			}
		}
		if e == nil {
			t.Fatalf("%s: no journal entry names proposal %s; sent %v", cmd, id, got)
		}
		who := remediate.CurrentApprover()
		for k, want := range map[string]string{"SOCKWARDEN_COMMAND": cmd, "SOCKWARDEN_UID": strconv.Itoa(os.Geteuid()),
			"SOCKWARDEN_OPERATOR": who.String(), "SYSLOG_IDENTIFIER": "sockwarden"} {
			if e[k] != want {
				t.Errorf("%s: %s=%q, want %q (entry %v)", cmd, k, e[k], want, e)
			}
		}
		if _, ok := e["SOCKWARDEN_LOGINUID"]; !ok {
			t.Errorf("%s: no SOCKWARDEN_LOGINUID field", cmd)
		}
		if !strings.HasPrefix(e["MESSAGE"], map[string]string{"approve": "proposal approved", "deny": "proposal denied", "apply": "apply refused"}[cmd]) {
			t.Errorf("%s: message %q", cmd, e["MESSAGE"])
		}
	}
}

// TestLogFormatAuto: auto writes JSON when stderr is not a terminal.
func TestLogFormatAuto(t *testing.T) {
	var b strings.Builder
	cfg := config.Defaults()
	if cfg.LogFormat != "auto" {
		t.Fatalf("default log_format %q", cfg.LogFormat)
	}
	log, err := newLogger(cfg, &b)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", zap.String("key", "net.core.somaxconn"))
	if !strings.HasPrefix(b.String(), "{") || !strings.Contains(b.String(), `"key":"net.core.somaxconn"`) {
		t.Errorf("log_format auto to a pipe wrote %q, want JSON", b.String())
	}
	b.Reset()
	cfg.LogFormat = "console"
	log, _ = newLogger(cfg, &b)
	log.Info("hello")
	if strings.HasPrefix(b.String(), "{") {
		t.Errorf("console wrote %q", b.String())
	}
}
