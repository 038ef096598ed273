//go:build !sockwarden_lean

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/fleet"
	"github.com/sockwarden/sockwarden/internal/etcdtest"
	"github.com/sockwarden/sockwarden/lab"
	"github.com/sockwarden/sockwarden/remediate"
)

// fleetLab is a real etcd and n agents, each a separate process (this
// test binary as `sockwarden agent`) in a UTS namespace of its own (its
// own host name, web-1 ... web-n), watching a throwaway network namespace
// of its own where the lab's somaxconn-capped scenario runs.
type fleetLab struct {
	t     *testing.T
	srv   *etcdtest.Server
	envs  map[string]*lab.Env
	logs  map[string]string
	store *fleet.EtcdStore
	f     *fleet.Fleet
	ctx   context.Context
}

func startFleetLab(t *testing.T, n int, relisten bool) *fleetLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: lab scenarios in throwaway network namespaces, agents in UTS namespaces")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	srv := etcdtest.Start(t)
	fl := &fleetLab{t: t, srv: srv, envs: map[string]*lab.Env{}, logs: map[string]string{}, ctx: ctx}
	t.Setenv("SOCKWARDEN_FLEET_ETCD_ENDPOINTS", srv.Endpoint)
	t.Setenv("SOCKWARDEN_FLEET_STORM_PERCENT", "100")
	t.Setenv("SOCKWARDEN_FLEET_ETCD_REQUEST_TIMEOUT", "2s")
	fc := config.Defaults().Fleet
	fc.Etcd.Endpoints = []string{srv.Endpoint}
	fc.Etcd.RequestTimeout = 2 * time.Second
	s, err := fleet.OpenEtcdStore(fc, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	fl.store, fl.f = s, fleet.New(s, "", nil)
	dir := t.TempDir()
	var mu sync.Mutex
	for i := 1; i <= n; i++ {
		host := fmt.Sprintf("web-%d", i)
		env, err := lab.Start(ctx, lab.SomaxconnCapped, lab.Options{Duration: 8 * time.Minute, Relisten: relisten})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { env.Stop() })
		fl.envs[host] = env
		hd := filepath.Join(dir, host)
		os.MkdirAll(hd, 0o700)
		cfgFile := filepath.Join(hd, "config.yaml")
		cfg := fmt.Sprintf(`log_level: info
state_dir: %s/state
agent:
  mode: propose
  tick: 1s
  netns: [%s]
  control_socket: %s/control.sock
diagnose:
  interval: 1s
  # Every host proposes the same value (a group), whatever its peak.
  somaxconn_cap: 256
verify:
  # Long enough for two clean intervals after the app listens again
  # even when a loaded machine delays its relisten by seconds.
  window: 20s
  interval: 1s
fleet:
  etcd:
    endpoints: [%s]
    request_timeout: 2s
  max_concurrent: 5
  slot_ttl: 5s
  storm_percent: 100
  labels:
    role: web
`, hd, env.Netns, hd, srv.Endpoint)
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		logFile := filepath.Join(hd, "agent.log")
		fl.logs[host] = logFile
		lf, err := os.Create(logFile)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("unshare", "--uts", "sh", "-c", `hostname "$0" && exec "$@"`, host, os.Args[0], "-test.run=^TestHelperCLI$")
		cmd.Env = append(os.Environ(), "SWTEST_CLI_ARGS=--config "+cfgFile+" agent")
		cmd.Stdout, cmd.Stderr = lf, lf
		// Killed with the test binary: Pdeathsig fires when the forking
		// thread exits, so the agent is forked from a thread locked for
		// as long as it runs (as internal/etcdtest does for etcd).
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		started, done := make(chan error, 1), make(chan struct{})
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the agent
			err := cmd.Start()
			started <- err
			if err == nil {
				cmd.Wait()
			}
			lf.Close()
			close(done)
		}()
		if err := <-started; err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(25 * time.Second):
				cmd.Process.Kill()
			}
			if t.Failed() {
				b, _ := os.ReadFile(logFile)
				mu.Lock()
				t.Logf("--- %s agent log, its rollout and apply lines:\n%s", host, rolloutLines(string(b), 8000))
				t.Logf("--- %s agent log (last 4000 bytes):\n%s", host, tail(string(b), 4000))
				mu.Unlock()
			}
		})
	}
	// Runs first (cleanups run last in, first out): etcd and the agents
	// are still up, so a failure shows where the rollout stood.
	t.Cleanup(func() {
		if t.Failed() {
			out, errOut, code := runCLI(t, "fleet", "status")
			t.Logf("--- fleet status at the failure (exit %d):\n%s%s", code, out, errOut)
		}
	})
	return fl
}

// rolloutLines keeps the lines of an agent's log that say what it did in
// a rollout (claims, waits, applies, outcomes, store outages), the last n
// bytes of them.
func rolloutLines(log string, n int) string {
	var b strings.Builder
	for _, l := range strings.Split(log, "\n") {
		for _, k := range []string{"fleet rollout", "fleet store", "applying", "kernel change", "apply ", "proposal pending"} {
			if strings.Contains(l, k) {
				b.WriteString(l + "\n")
				break
			}
		}
	}
	return tail(b.String(), n)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// group waits until every host proposes the same somaxconn change and
// returns that group.
func (fl *fleetLab) group(n int) string {
	fl.t.Helper()
	var g string
	waitFor(fl.t, fl.ctx, 120*time.Second, fmt.Sprintf("%d hosts proposing the same somaxconn change", n), func() bool {
		out, _, code := runCLI(fl.t, "fleet", "proposals", "-o", "json")
		var doc fleetProposalsDoc
		if code != exitOK || json.Unmarshal([]byte(out), &doc) != nil {
			return false
		}
		for _, x := range doc.Groups {
			if x.Key == "net.core.somaxconn" && x.Count == n && doc.Hosts == n {
				g = x.Group
				return true
			}
		}
		return false
	})
	return g
}

func (fl *fleetLab) status(id string) rolloutStatus {
	fl.t.Helper()
	out, errOut, code := runCLI(fl.t, "fleet", "status", id, "-o", "json")
	var doc fleetStatusDoc
	if code != exitOK || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Rollouts) != 1 {
		fl.t.Fatalf("fleet status %s -o json: exit %d: %s %s", id, code, out, errOut)
	}
	return doc.Rollouts[0]
}

func (fl *fleetLab) approve(group string, args ...string) string {
	fl.t.Helper()
	out, errOut, code := runCLI(fl.t, append([]string{"fleet", "approve", group, "--selector", "role=web", "--comment", "fleet test"}, args...)...)
	if code != exitOK {
		fl.t.Fatalf("fleet approve: exit %d: %s %s", code, out, errOut)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(out, "rollout "), " ")
	return id
}

func (fl *fleetLab) somaxconn(host string) string {
	fl.t.Helper()
	v, err := remediate.Sysctl{Netns: fl.envs[host].Netns}.Read("net.core.somaxconn")
	if err != nil {
		fl.t.Fatal(err)
	}
	return v
}

func countState(r rolloutStatus, state string) int { return r.Counts[state] }

// claims lists the timeline's claims with their wave, in order.
func claims(r rolloutStatus) []fleet.Event {
	var out []fleet.Event
	for _, e := range r.Timeline {
		if e.What == "claimed" {
			out = append(out, e)
		}
	}
	return out
}

// checkWaves asserts from the timeline in etcd: the canary alone first,
// every claim of wave k after every host of wave k-1 verified and baked,
// never more than max in flight.
func checkWaves(t *testing.T, r rolloutStatus, bake time.Duration, max int) {
	t.Helper()
	if m := fleet.MaxInFlight(r.Timeline); m > max {
		t.Errorf("%d hosts in flight at once (timeline), want at most %d", m, max)
	}
	wave := map[string]int{}
	settled := map[int]time.Time{}
	for _, h := range r.Hosts {
		wave[h.Host] = h.Wave
		if h.Settled.After(settled[h.Wave]) {
			settled[h.Wave] = h.Settled
		}
	}
	cl := claims(r)
	if len(cl) == 0 || wave[cl[0].Host] != 0 {
		t.Fatalf("first claim %+v: want the canary (wave 0)", cl)
	}
	if n := len(r.Hosts); WaveCount(r.Hosts, 0) != r.Canary && n >= r.Canary {
		t.Errorf("wave 0 has %d hosts, want the canary count %d", WaveCount(r.Hosts, 0), r.Canary)
	}
	for _, c := range cl {
		k := wave[c.Host]
		if k == 0 {
			continue
		}
		if prev := settled[k-1].Add(bake); c.Time.Before(prev) {
			t.Errorf("%s claimed wave %d at %s, before wave %d settled and baked (%s)", c.Host, k, c.Time.Format(time.RFC3339Nano), k-1, prev.Format(time.RFC3339Nano))
		}
	}
}

// WaveCount is how many hosts took part in wave k.
func WaveCount(hs []hostStatus, k int) int {
	n := 0
	for _, h := range hs {
		if h.Wave == k && h.State != fleet.Skipped {
			n++
		}
	}
	return n
}

// The main bar: five agents, one fleet approve; the canary first,
// then waves of at most --max-concurrent, each after the one before
// verified and baked, asserted from the timeline in etcd; all verified.
// etcd is killed while the canary verifies: the canary settles by its own
// verification and reports when etcd is back, then the rollout goes on.
func TestNetnsFleetRollout(t *testing.T) {
	const n = 5
	fl := startFleetLab(t, n, true)
	g := fl.group(n)
	before := map[string]string{}
	for h := range fl.envs {
		before[h] = fl.somaxconn(h)
	}
	const bake = 2 * time.Second
	id := fl.approve(g, "--canary", "1", "--wave-factor", "2", "--max-concurrent", "2", "--bake", bake.String(), "--halt-after", "1")

	// The canary applies; etcd dies while it verifies.
	var canary string
	waitFor(t, fl.ctx, 60*time.Second, "the canary's change written", func() bool {
		for _, h := range fl.status(id).Hosts {
			if h.Change != "" {
				canary = h.Host
				return true
			}
		}
		return false
	})
	fl.srv.Kill()
	killed := time.Now()
	waitFor(t, fl.ctx, 3*time.Minute, "the canary to settle by itself with etcd down", func() bool {
		b, _ := os.ReadFile(fl.logs[canary])
		return strings.Contains(string(b), "kernel change verified") || strings.Contains(string(b), "kernel change rolled-back")
	})
	time.Sleep(time.Second)
	fl.srv.Restart()
	restarted := time.Now()

	// Generous: under a load average of 90 a 12 s verify window has
	// taken 100 s of samples here.
	waitFor(t, fl.ctx, 5*time.Minute, "every host verified", func() bool {
		r := fl.status(id)
		return countState(r, fleet.Verified) == n || countState(r, fleet.RolledBack)+countState(r, fleet.Failed) > 0
	})
	r := fl.status(id)
	if countState(r, fleet.Verified) != n {
		t.Fatalf("states %v, want %d verified: %+v", r.Counts, n, r.Hosts)
	}
	for _, h := range r.Hosts {
		if h.Host == canary && (h.Settled.Before(killed) || h.Settled.After(restarted)) {
			t.Errorf("canary %s settled at %s: want during the outage (%s .. %s), reported afterwards", canary, h.Settled, killed, restarted)
		}
	}
	checkWaves(t, r, bake, 2)
	if WaveCount(r.Hosts, 1) != 2 || WaveCount(r.Hosts, 2) != 2 {
		t.Errorf("waves %d/%d/%d, want 1/2/2", WaveCount(r.Hosts, 0), WaveCount(r.Hosts, 1), WaveCount(r.Hosts, 2))
	}
	for h := range fl.envs {
		if got := fl.somaxconn(h); got == before[h] {
			t.Errorf("%s: somaxconn still %s", h, got)
		}
	}
	if b, err := os.ReadFile(fl.logs[canary]); err != nil || !strings.Contains(string(b), "progress reported now that the fleet store answers") {
		t.Errorf("the canary's log does not say it reported once etcd was back")
	}
	text, _, _ := runCLI(t, "fleet", "status", id)
	t.Logf("fleet status %s:\n%s", id, text)
	if p := os.Getenv("SWTEST_FLEET_STATUS_OUT"); p != "" {
		md, _, _ := runCLI(t, "fleet", "status", id, "-o", "markdown")
		os.WriteFile(p, []byte(text+"\n\n"+md), 0o644)
	}
}

// Without the application listening again, raising somaxconn changes
// nothing: the canary's verification fails and it rolls back; the rollout
// halts by itself and no other host applies.
func TestNetnsFleetCanaryFails(t *testing.T) {
	const n = 5
	fl := startFleetLab(t, n, false)
	g := fl.group(n)
	before := map[string]string{}
	for h := range fl.envs {
		before[h] = fl.somaxconn(h)
	}
	id := fl.approve(g, "--canary", "1", "--max-concurrent", "2", "--bake", "1s", "--halt-after", "1")
	waitFor(t, fl.ctx, 4*time.Minute, "the canary to settle", func() bool {
		r := fl.status(id)
		return r.State == fleet.Halted || countState(r, fleet.Verified) > 0
	})
	time.Sleep(5 * time.Second) // other hosts would start now if they could
	r := fl.status(id)
	if r.State != fleet.Halted || countState(r, fleet.RolledBack) != 1 {
		t.Fatalf("rollout %s (%s), states %v: want halted after the canary rolled back", r.State, r.Why, r.Counts)
	}
	if cl := claims(r); len(cl) != 1 {
		t.Errorf("%d claims, want only the canary's: %+v", len(cl), cl)
	}
	if countState(r, "halted") != n-1 {
		t.Errorf("states %v: want the %d other hosts shown halted", r.Counts, n-1)
	}
	for h := range fl.envs {
		if got := fl.somaxconn(h); got != before[h] {
			t.Errorf("%s: somaxconn %s, want %s (rolled back or never applied)", h, got, before[h])
		}
	}
}

// fleet halt during a wave: no host starts after it (2 s and more), the
// hosts in flight settle by themselves; clearing the halt lets the rest go;
// fleet rollback then restores every host through its own journal.
func TestNetnsFleetHalt(t *testing.T) {
	const n = 5
	fl := startFleetLab(t, n, true)
	g := fl.group(n)
	id := fl.approve(g, "--canary", "1", "--wave-factor", "2", "--max-concurrent", "2", "--bake", "0s", "--halt-after", "1")
	waitFor(t, fl.ctx, 120*time.Second, "wave 1 in flight", func() bool {
		for _, h := range fl.status(id).Hosts {
			if h.Wave == 1 && h.State == fleet.InFlight {
				return true
			}
		}
		return false
	})
	if _, errOut, code := runCLI(t, "fleet", "halt", "--comment", "test"); code != exitOK {
		t.Fatalf("fleet halt: exit %d %s", code, errOut)
	}
	halted := time.Now()
	waitFor(t, fl.ctx, 3*time.Minute, "the hosts in flight to settle", func() bool {
		return countState(fl.status(id), fleet.InFlight) == 0
	})
	time.Sleep(max(0, 2*time.Second-time.Since(halted)) + 3*time.Second)
	r := fl.status(id)
	for _, c := range claims(r) {
		if c.Time.After(halted) {
			t.Errorf("%s claimed at %s, after the halt at %s", c.Host, c.Time.Format(time.RFC3339Nano), halted.Format(time.RFC3339Nano))
		}
	}
	if r.State != fleet.Halted || countState(r, "halted") == 0 {
		t.Fatalf("after halt: %s %v", r.State, r.Counts)
	}
	for _, h := range r.Hosts {
		if h.Wave == 1 && h.State != fleet.Verified {
			t.Errorf("%s (in flight at the halt) is %s, want verified by its own verification", h.Host, h.State)
		}
	}
	if _, _, code := runCLI(t, "fleet", "halt", "--clear"); code != exitOK {
		t.Fatal("fleet halt --clear")
	}
	waitFor(t, fl.ctx, 5*time.Minute, "every host verified after the halt is lifted", func() bool {
		return countState(fl.status(id), fleet.Verified) == n
	})
	checkWaves(t, fl.status(id), 0, 2)

	// fleet rollback: each host restores its change through its own
	// journal (the drift rule kept: the value is still ours).
	if _, errOut, code := runCLI(t, "fleet", "rollback", id, "--comment", "test"); code != exitOK {
		t.Fatalf("fleet rollback: exit %d %s", code, errOut)
	}
	waitFor(t, fl.ctx, 2*time.Minute, "every host to restore its change", func() bool {
		return countState(fl.status(id), fleet.Reverted) == n
	})
	for h := range fl.envs {
		if got := fl.somaxconn(h); got != "64" {
			t.Errorf("%s: somaxconn %s after the fleet rollback, want 64", h, got)
		}
	}
}
