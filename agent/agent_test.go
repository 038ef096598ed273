package agent

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sockwarden/sockwarden/config"
)

// SIGHUP: RELOADING=1, then READY=1; a bad configuration is refused with a
// log line naming the problem and the running one kept; a good one is
// installed.
func TestReload(t *testing.T) {
	read := notifySocket(t)
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Agent.ControlSocket = filepath.Join(dir, "control.sock")
	next := cfg
	next.Agent.Mode = "observe"
	next.Agent.Netns = []string{"/run/netns/other"}
	loadErr := errors.New(`config: /etc/sockwarden/config.yaml: agent.mode: "bogus" is not one of observe, propose, auto`)

	core, logs := observer.New(zapcore.InfoLevel)
	a, err := New(Options{Config: cfg, Log: zap.New(core), Load: func() (config.Config, error) {
		if loadErr != nil {
			return config.Config{}, loadErr
		}
		return next, nil
	}})
	if err != nil {
		t.Fatal(err)
	}

	a.reload()
	if a.cfg.Agent.Mode != "propose" || len(a.ns) != 1 {
		t.Errorf("after a bad reload: mode %q, %d namespaces; want the old config (propose, 1)", a.cfg.Agent.Mode, len(a.ns))
	}
	refused := logs.FilterMessageSnippet("config reload refused").All()
	if len(refused) != 1 || !strings.Contains(refused[0].ContextMap()["error"].(string), "agent.mode") {
		t.Errorf("want one 'config reload refused' line naming agent.mode, got %v", refused)
	}
	got := read()
	if len(got) != 2 || !strings.HasPrefix(got[0], "RELOADING=1\n") || !strings.HasPrefix(got[1], "READY=1\n") {
		t.Errorf("datagrams after a refused reload = %q, want RELOADING=1 then READY=1", got)
	}

	loadErr = nil
	a.reload()
	if a.cfg.Agent.Mode != "observe" || len(a.ns) != 2 || a.ns[1].path != "/run/netns/other" {
		t.Errorf("after a good reload: mode %q, namespaces %d; want observe, 2", a.cfg.Agent.Mode, len(a.ns))
	}
	if logs.FilterMessage("configuration reloaded").Len() != 1 {
		t.Error("no 'configuration reloaded' line")
	}
	if got := read(); len(got) != 2 || !strings.HasPrefix(got[1], "READY=1\nSTATUS=") {
		t.Errorf("datagrams after a good reload = %q", got)
	}
}
