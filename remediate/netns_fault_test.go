package remediate

// Fault injection: a real `sockwarden apply`, built with the test-only
// sockwarden_faultinject tag, kills itself (SIGKILL) at each durable step
// of an apply in a lab namespace; then a real `sockwarden resolve` runs.
// Whatever the step, the namespace's value must be the old one or the new
// one with a journal record that says so, the approval must not be used by
// a change the journal does not know, the sysctl.d file must exist only for
// a kept change, and no other namespace (nor the host) may change.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/internal/gobuild"
	"github.com/sockwarden/sockwarden/lab"
)

// faultSteps are the durable steps of an apply, in order: the write-ahead
// record written but not yet fsynced, then fsynced; the approval used; the
// sysctl written; the applied and verifying records; the sysctl.d file
// written; the verified record.
var faultSteps = []string{
	"append-applying-unsynced", "append-applying", "approval-used", "sysctl-written",
	"append-applied-unsynced", "append-applied", "append-verifying", "persisted",
	"append-verified-unsynced", "append-verified",
}

var (
	faultOnce sync.Once
	faultBin  string
	faultErr  error
)

// buildFaultBinary builds sockwarden with the fault-injection hooks; no
// release build has them (see fault_inject.go).
func buildFaultBinary(t *testing.T) string {
	t.Helper()
	faultOnce.Do(func() {
		dir := t.TempDir()
		faultBin = filepath.Join(dir, "sockwarden-faultinject")
		faultErr = gobuild.Sockwarden(faultBin, "sockwarden_faultinject")
	})
	if faultErr != nil {
		t.Fatal(faultErr)
	}
	return faultBin
}

func TestNetnsFaultInjection(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go tool to build the sockwarden binary")
	}
	hostGuard(t)
	bin := buildFaultBinary(t)
	// SWTEST_FAULT_ROUNDS=N (test-only) repeats every step N times, to
	// measure more kills than the one per step CI runs.
	rounds := max(1, atoiOr(os.Getenv("SWTEST_FAULT_ROUNDS"), 1))
	// The lab's load must outlast the test, which took 142-178 s at a load
	// average of 20-27 (57 s when quiet); Stop ends it as soon as the test
	// is done.
	env, err := lab.Start(context.Background(), lab.SomaxconnCapped, lab.Options{Duration: time.Duration(rounds) * 6 * time.Minute, Relisten: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	bystander := throwawayNetns(t, "bystander")
	if _, err := (Sysctl{Netns: bystander}).Set("net.core.somaxconn", "333"); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	e := liveEngine(t, cfg, nil)
	ps, _ := proposeLive(t, e, cfg, env.Netns)
	p := somaxconnProposal(t, ps)
	old, want := Fold(p.Proposal.Changes[0].Current), Fold(p.Proposal.Changes[0].Proposed)
	lns := Sysctl{Netns: env.Netns}

	steps := faultSteps
	for i := 1; i < rounds; i++ {
		steps = append(steps, faultSteps...)
	}
	kills, consistent := 0, 0
	for _, step := range steps {
		// The scenario's value again; the lab application listens again
		// with it, so the drops (and the proposal) come back.
		if _, err := lns.Set("net.core.somaxconn", old); err != nil {
			t.Fatal(err)
		}
		persist := t.TempDir()
		runEnv := append(os.Environ(), "SOCKWARDEN_REMEDIATE_PERSIST=true", "SOCKWARDEN_REMEDIATE_PERSIST_DIR="+persist,
			"SOCKWARDEN_VERIFY_MIN_CLEAN_INTERVALS=2", "SWTEST_FAULT_HOST_NETNS="+env.Netns)
		killed := false
		var state string
		var fe *Engine
		for try := 1; try <= 3 && !killed; try++ {
			// A state directory per try: the journal then holds the
			// killed apply's change alone.
			state = filepath.Join(t.TempDir(), "state")
			fcfg := cfg
			fcfg.StateDir = state
			var err error
			if fe, err = New(Options{Config: fcfg, Log: e.log}); err != nil {
				t.Fatal(err)
			}
			if err := fe.Store().RecordProposal(p); err != nil {
				t.Fatal(err)
			}
			if _, err := fe.Approve(p.Proposal.ID, ApproveOptions{TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd := exec.Command(bin, "apply", p.Proposal.ID, "--state-dir", state, "--interval", "1s", "--verify-window", "4s", "--log-level", "warn")
			cmd.Env = append(runEnv, "SWTEST_FAULT_KILL_AT="+step)
			cmd.Stderr = &stderr
			err = cmd.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
					killed = true
					break
				}
			}
			if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 2 {
				t.Fatalf("%s: apply: usage error: %s", step, stderr.String())
			}
			// Not killed: guard 3 refused (the lab's bursts missed an
			// interval) or verification rolled back before the step.
			t.Logf("%s: try %d ended without reaching the step (%v); stderr:\n%s", step, try, err, stderr.String())
			if _, err := lns.Set("net.core.somaxconn", old); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // the app listens again with the old limit
		}
		if !killed {
			t.Errorf("%s: never reached in 3 tries", step)
			continue
		}
		kills++
		rcmd := exec.Command(bin, "resolve", "--state-dir", state, "--log-level", "warn")
		rcmd.Env = runEnv
		rout, rerr := rcmd.CombinedOutput()
		if rerr != nil {
			t.Errorf("%s: resolve: %v\n%s", step, rerr, rout)
			continue
		}
		if why := faultConsistent(fe, p.Proposal.ID, lns, bystander, persist, old, want); why != "" {
			t.Errorf("%s: INCONSISTENT: %s\nresolve:\n%s", step, why, rout)
			continue
		}
		consistent++
		c := lastChange(fe)
		live, _ := lns.Read("net.core.somaxconn")
		t.Logf("%s: killed; after resolve somaxconn %s, change %s %v", step, live, c.ID, c.History)
	}
	t.Logf("fault injection: %d steps, %d kills, %d consistent", len(steps), kills, consistent)
	if kills != len(steps) || consistent != kills {
		t.Fatalf("%d kills of %d steps, %d consistent: want every step killed and every kill consistent", kills, len(steps), consistent)
	}
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

func lastChange(e *Engine) Change {
	recs, _, _ := e.Journal().Records()
	cs := Changes(recs)
	if len(cs) == 0 {
		return Change{}
	}
	return cs[len(cs)-1]
}

// faultConsistent says what is wrong after a kill and a resolve, or "".
func faultConsistent(e *Engine, id string, lns Sysctl, bystander, persist, old, want string) string {
	live, err := lns.Read("net.core.somaxconn")
	if err != nil {
		return err.Error()
	}
	if v, _ := (Sysctl{Netns: bystander}).Read("net.core.somaxconn"); v != "333" {
		return fmt.Sprintf("the bystander namespace's somaxconn is %s, not 333", v)
	}
	recs, damage, err := e.Journal().Read()
	if err != nil {
		return err.Error()
	}
	cs := Changes(recs)
	if len(cs) != 1 {
		return fmt.Sprintf("%d changes in the journal, want 1 (damage %v)", len(cs), damage)
	}
	c := cs[0]
	if c.State.Open() {
		return fmt.Sprintf("change %s still %s after resolve", c.ID, c.State)
	}
	_, ferr := os.Stat(filepath.Join(persist, PersistFile("net.core.somaxconn")))
	filed := ferr == nil
	switch {
	case live == want && slices.Contains([]State{StateVerified, StateKept}, c.State):
		if c.State == StateVerified && !filed {
			return "verified and persisting, but no sysctl.d file"
		}
	case live == old && slices.Contains([]State{StateRolledBack, StateFailed, StateRefused}, c.State):
		if filed {
			return "rolled back, but the sysctl.d file with the new value is still there"
		}
	default:
		return fmt.Sprintf("somaxconn %s (old %s, new %s) with the journal saying %s %v", live, old, want, c.State, c.History)
	}
	if a, err := e.Store().Approval(id); err == nil && a.UsedBy != "" && a.UsedBy != c.ID {
		return "approval used by " + a.UsedBy + ", a change the journal does not know"
	}
	if _, err := strconv.Atoi(live); err != nil {
		return "somaxconn unreadable: " + live
	}
	return ""
}
