package remediate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/sample"
)

// world is a fake host for the engine's unit tests: a /proc/sys tree in a
// temp dir and a listener whose behaviour is scripted. The integration
// tests (TestNetns...) do the same against a real kernel and the lab.
type world struct {
	t     *testing.T
	host  string
	root  string
	mu    sync.Mutex
	sendQ uint32 // the listener's current limit
	// relisten: the app listens again when somaxconn changes.
	relisten bool
	// noload: no connections arrive.
	noload bool
	// side of the diagnosed finding.
	side      diagnose.Side
	overflows uint64
	opens     uint64
	// onVerifySample runs at each single sample (verification).
	onVerifySample func(n int)
	verifyN        int
	// store and rollout, when set, replace the engine's FileStore and
	// add a fleet rollout limit.
	store   Store
	rollout Rollout
	// lockDir is the world's runtime lock directory, shared by every
	// engine of the world as /run/sockwarden/locks is by every process.
	lockDir string
	// clock is every engine's of the world, and the samples' time.
	clock *fakeClock
}

func newWorld(t *testing.T) *world {
	root := fakeProcSys(t, map[string]string{
		"net/core/somaxconn":                  "128\n",
		"net/ipv4/ip_unprivileged_port_start": "1024\n",
		"net/ipv4/ip_local_port_range":        "32768\t60999\n",
		"net/ipv4/ip_local_reserved_ports":    "\n",
		"net/ipv4/tcp_syncookies":             "1\n",
		"net/ipv4/tcp_max_syn_backlog":        "512\n",
	})
	return &world{t: t, host: "h1", root: root, sendQ: 128, side: diagnose.SideKernel, lockDir: filepath.Join(t.TempDir(), "locks"), clock: newFakeClock()}
}

func (w *world) somaxconn() string {
	v, err := Sysctl{Root: w.root}.Read("net.core.somaxconn")
	if err != nil {
		w.t.Fatal(err)
	}
	return v
}

func (w *world) set(key, v string) {
	if _, err := (Sysctl{Root: w.root}).Set(key, v); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) take(at time.Time) *sample.Sample {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.relisten {
		n, _ := strconv.Atoi(w.somaxconn())
		w.sendQ = uint32(n)
	}
	if !w.noload {
		w.opens += 100
		if w.sendQ < 1024 {
			w.overflows += 50
		}
	}
	return &sample.Sample{Time: at, Host: w.host,
		Counters: map[string]uint64{"TcpExtListenOverflows": w.overflows, "TcpPassiveOpens": w.opens, "TcpActiveOpens": 0},
		Listeners: []sample.Listener{{Local: "127.0.0.1:8080", Port: 8080, SendQ: w.sendQ, RecvQ: w.sendQ + 1,
			Owners: []sample.Owner{{PID: 7, Comm: "labapp", Unit: "lab.service"}}}},
	}
}

func (w *world) Series(_ context.Context, _ string, n int, interval time.Duration) ([]*sample.Sample, error) {
	if n == 1 {
		w.verifyN++
		if w.onVerifySample != nil {
			w.onVerifySample(w.verifyN)
		}
		return []*sample.Sample{w.take(w.clock.Now())}, nil
	}
	now := w.clock.Now()
	var out []*sample.Sample
	for i := 0; i < n; i++ {
		out = append(out, w.take(now.Add(time.Duration(i)*time.Second)))
	}
	return out, nil
}

// diagnose is a stand-in for diagnose.Run with the same id rule: the id
// covers the current value, so a changed value gives a different id.
func (w *world) diagnose(series []*sample.Sample) diagnose.Report {
	cur := w.somaxconn()
	f := diagnose.Finding{Kind: diagnose.KindAcceptQueueOverflow, Side: w.side, Subject: "127.0.0.1:8080", Confirmed: true, Counter: "TcpExtListenOverflows"}
	r := diagnose.Report{Host: w.host, Findings: []diagnose.Finding{f}}
	if w.side == diagnose.SideKernel {
		r.Proposals = []diagnose.Proposal{w.proposal(cur)}
	}
	return r
}

func (w *world) proposal(cur string) diagnose.Proposal {
	return diagnose.Proposal{ID: "p-somaxconn-" + w.host + "-" + cur, Host: w.host, Finding: diagnose.KindAcceptQueueOverflow, Subject: "127.0.0.1:8080",
		Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: cur, Proposed: "1024"}}, Reason: "accept queue capped by somaxconn",
		Verify: diagnose.Verification{Counters: []string{"TcpExtListenOverflows"}, ListenerLocal: "127.0.0.1:8080", ListenerSendQ: 1024}, Ready: true}
}

func (w *world) engine(mod func(*config.Config)) *Engine {
	cfg := config.Defaults()
	cfg.StateDir = filepath.Join(w.t.TempDir(), "state")
	cfg.Verify.Window = 250 * time.Millisecond
	cfg.Verify.Interval = 10 * time.Millisecond
	cfg.Verify.MinCleanIntervals = 2
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(Options{Config: cfg, Host: w.host, ProcSys: w.root, Sampler: w, Diagnose: w.diagnose, Store: w.store, Rollout: w.rollout,
		LockDir: w.lockDir, HostNetns: SelfNetnsFile, Clock: w.clock})
	if err != nil {
		w.t.Fatal(err)
	}
	return e
}

// propose records what the world diagnoses now.
func (w *world) propose(e *Engine) string {
	ps, err := e.Propose(w.diagnose(nil), "test")
	if err != nil || len(ps) != 1 {
		w.t.Fatalf("Propose: %v, %d proposals", err, len(ps))
	}
	return ps[0].Proposal.ID
}

// ownTarget is the target every record of a change in the engine's own
// namespace carries, as commit writes it.
func ownTarget(t *testing.T, e *Engine) Target {
	t.Helper()
	id, err := netnsIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	return Target{Host: e.opts.Host, ID: id}
}

func states(t *testing.T, e *Engine, change string) []State {
	t.Helper()
	c, err := e.Journal().ChangeByID(change)
	if err != nil {
		t.Fatal(err)
	}
	return c.History
}

func TestApplyNoApprovalRefused(t *testing.T) {
	w := newWorld(t)
	e := w.engine(nil)
	id := w.propose(e)
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	var r *Refusal
	if !errors.As(err, &r) || r.Guard != GuardApproval {
		t.Fatalf("err = %v, want a refusal by %s", err, GuardApproval)
	}
	if out.State != StateRefused || w.somaxconn() != "128" {
		t.Fatalf("state %s, somaxconn %s: want refused and 128", out.State, w.somaxconn())
	}
	recs, _, _ := e.Journal().Records()
	if last := recs[len(recs)-1]; last.State != StateRefused || last.Guard != GuardApproval {
		t.Fatalf("last journal record %+v, want refused by guard 4", last)
	}
}

func TestApplyVerified(t *testing.T) {
	w := newWorld(t)
	w.relisten = true
	persist := t.TempDir()
	e := w.engine(func(c *config.Config) { c.Remediate.Persist = true; c.Remediate.PersistDir = persist })
	id := w.propose(e)
	if _, err := e.Approve(id, ApproveOptions{Comment: "ok", Approver: &Approver{UID: 0, User: "root", SudoUser: "alice"}}); err != nil {
		t.Fatal(err)
	}
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != StateVerified || w.somaxconn() != "1024" {
		t.Fatalf("outcome %s (%s), somaxconn %s; want verified, 1024", out.State, out.Reason, w.somaxconn())
	}
	if diff := cmp.Diff([]State{StateApplying, StateApplied, StateVerifying, StateVerified}, states(t, e, out.Change)); diff != "" {
		t.Fatalf("history (-want +got)\n%s", diff)
	}
	c, _ := e.Journal().ChangeByID(out.Change)
	if c.Values[0].Old != "128" || c.Values[0].New != "1024" || c.Approver != "uid 0 (root), claims SUDO_USER=alice" {
		t.Fatalf("journal values %+v approver %q", c.Values, c.Approver)
	}
	b, err := os.ReadFile(filepath.Join(persist, PersistFile("net.core.somaxconn")))
	if err != nil || !strings.Contains(string(b), "net.core.somaxconn = 1024\n") {
		t.Fatalf("persisted file: %q, %v", b, err)
	}
	// Used once: the approval cannot be replayed.
	a, _ := e.Store().Approval(id)
	if a.UsedBy != out.Change {
		t.Fatalf("approval used by %q, want %q", a.UsedBy, out.Change)
	}
}

func TestApplyNeverListensRolledBack(t *testing.T) {
	w := newWorld(t)
	e := w.engine(nil)
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != StateRolledBack || w.somaxconn() != "128" {
		t.Fatalf("outcome %s (%s), somaxconn %s; want rolled-back to 128", out.State, out.Reason, w.somaxconn())
	}
	if !strings.Contains(out.Reason, "waiting for the application to listen again") || !strings.Contains(out.Reason, "labapp") {
		t.Fatalf("reason %q does not say the app must listen again and name it", out.Reason)
	}
}

func TestApplyLoadGoneInconclusive(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "rollback", true: "keep"}[keep], func(t *testing.T) {
			w := newWorld(t)
			w.relisten = true
			e := w.engine(func(c *config.Config) {
				if keep {
					c.Verify.Inconclusive = "keep"
				}
			})
			id := w.propose(e)
			e.Approve(id, ApproveOptions{})
			w.onVerifySample = func(int) { w.noload = true }
			out, _ := e.Apply(context.Background(), id, ApplyOptions{})
			want, wantVal := StateRolledBack, "128"
			if keep {
				want, wantVal = StateKept, "1024"
			}
			if out.State != want || w.somaxconn() != wantVal || !strings.Contains(out.Reason, "load went away") {
				t.Fatalf("outcome %s (%s), somaxconn %s; want %s, %s", out.State, out.Reason, w.somaxconn(), want, wantVal)
			}
		})
	}
}

func TestApplyRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(w *world, e *Engine, id string) string // returns the id to apply
		guard string
		want  string // reason substring
	}{
		{
			name: "app-side finding with a forged approval",
			setup: func(w *world, e *Engine, _ string) string {
				// A hand-made proposal and approval for an app-side finding.
				p := w.proposal("128")
				p.ID = "forged"
				e.Store().RecordProposal(Pending{Proposal: p, Side: diagnose.SideApp})
				e.Store().PutApproval(Approval{Proposal: "forged", Host: "h1", Changes: p.Changes, Approver: Approver{User: "mallory"}, Expires: time.Now().Add(time.Hour)})
				return "forged"
			},
			guard: GuardKernelSide, want: `"app"-side`,
		},
		{
			name: "forged kernel side, fresh diagnosis says app",
			setup: func(w *world, e *Engine, id string) string {
				e.Approve(id, ApproveOptions{})
				w.side = diagnose.SideApp
				return id
			},
			guard: GuardKernelSide, want: "fresh diagnosis",
		},
		{
			name: "stale approval",
			setup: func(w *world, e *Engine, id string) string {
				e.Approve(id, ApproveOptions{})
				w.set("net.core.somaxconn", "256")
				return id
			},
			guard: GuardApproval, want: "stale",
		},
		{
			name: "expired approval",
			setup: func(w *world, e *Engine, id string) string {
				e.Approve(id, ApproveOptions{TTL: time.Nanosecond})
				w.clock.Advance(time.Millisecond)
				return id
			},
			guard: GuardApproval, want: "expired",
		},
		{
			name: "approval already used",
			setup: func(w *world, e *Engine, id string) string {
				e.Approve(id, ApproveOptions{})
				e.Store().UseApproval(id, "c-earlier", time.Now())
				return id
			},
			guard: GuardApproval, want: "used once",
		},
		{
			name: "denied",
			setup: func(w *world, e *Engine, id string) string {
				e.Approve(id, ApproveOptions{})
				e.Deny(id, "not now")
				return id
			},
			guard: GuardApproval, want: "denied",
		},
		{
			name: "approval edited to other values",
			setup: func(w *world, e *Engine, id string) string {
				a, _ := e.Approve(id, ApproveOptions{})
				a.Changes = []diagnose.Change{{Key: "net.core.somaxconn", Current: "128", Proposed: "65535"}}
				e.Store().PutApproval(a)
				return id
			},
			guard: GuardApproval, want: "does not match",
		},
		{
			name: "no drops now",
			setup: func(w *world, e *Engine, id string) string {
				e.Approve(id, ApproveOptions{})
				w.sendQ = 2048 // the queue no longer overflows
				return id
			},
			guard: GuardSamples, want: "did not rise",
		},
		{
			name: "not on the allowlist",
			setup: func(w *world, e *Engine, id string) string {
				p := w.proposal("128")
				p.ID = "other-key"
				p.Changes = []diagnose.Change{{Key: "kernel.panic", Current: "0", Proposed: "1"}}
				e.Store().RecordProposal(Pending{Proposal: p, Side: diagnose.SideKernel})
				return p.ID
			},
			guard: GuardAllowed, want: "allowlist",
		},
		{
			name: "above the cap",
			setup: func(w *world, e *Engine, id string) string {
				p := w.proposal("128")
				p.ID = "too-big"
				p.Changes[0].Proposed = "1000000"
				e.Store().RecordProposal(Pending{Proposal: p, Side: diagnose.SideKernel})
				return p.ID
			},
			guard: GuardAllowed, want: "somaxconn_cap",
		},
		{
			name: "port range over a listening port",
			setup: func(w *world, e *Engine, id string) string {
				p := w.proposal("128")
				p.ID = "range"
				p.Changes = []diagnose.Change{{Key: "net.ipv4.ip_local_port_range", Current: "32768 60999", Proposed: "2000 60999"}}
				e.Store().RecordProposal(Pending{Proposal: p, Side: diagnose.SideKernel})
				return p.ID
			},
			guard: GuardAllowed, want: "listening port 8080",
		},
		{
			name: "port range below unprivileged start",
			setup: func(w *world, e *Engine, id string) string {
				p := w.proposal("128")
				p.ID = "range-low"
				p.Changes = []diagnose.Change{{Key: "net.ipv4.ip_local_port_range", Current: "32768 60999", Proposed: "1000 8000"}}
				e.Store().RecordProposal(Pending{Proposal: p, Side: diagnose.SideKernel})
				return p.ID
			},
			guard: GuardAllowed, want: "ip_unprivileged_port_start",
		},
		{
			name: "syn backlog with syncookies on",
			setup: func(w *world, e *Engine, id string) string {
				p := w.proposal("128")
				p.ID = "synbl"
				p.Changes = []diagnose.Change{{Key: "net.ipv4.tcp_max_syn_backlog", Current: "512", Proposed: "4096"}}
				e.Store().RecordProposal(Pending{Proposal: p, Side: diagnose.SideKernel})
				return p.ID
			},
			guard: GuardAllowed, want: "tcp_syncookies=0",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			e := w.engine(nil)
			id := tc.setup(w, e, w.propose(e))
			before := w.somaxconn()
			out, err := e.Apply(context.Background(), id, ApplyOptions{})
			var r *Refusal
			if !errors.As(err, &r) {
				t.Fatalf("err = %v (outcome %s: %s), want a refusal", err, out.State, out.Reason)
			}
			if r.Guard != tc.guard || !strings.Contains(r.Reason, tc.want) {
				t.Fatalf("refused by %s: %q; want %s and %q", r.Guard, r.Reason, tc.guard, tc.want)
			}
			if w.somaxconn() != before {
				t.Fatalf("somaxconn changed %s -> %s on a refusal", before, w.somaxconn())
			}
			if got, _ := (Sysctl{Root: w.root}).Read("net.ipv4.ip_local_port_range"); got != "32768 60999" {
				t.Fatalf("port range changed to %s on a refusal", got)
			}
		})
	}
}

func TestApplyDriftDuringVerification(t *testing.T) {
	w := newWorld(t)
	e := w.engine(nil)
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	w.onVerifySample = func(n int) {
		if n == 3 {
			w.set("net.core.somaxconn", "2048") // someone else
		}
	}
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != StateDrift || w.somaxconn() != "2048" {
		t.Fatalf("outcome %s (%s), somaxconn %s; want drift and 2048 left alone", out.State, out.Reason, w.somaxconn())
	}
}

func TestApplyStandingApproval(t *testing.T) {
	w := newWorld(t)
	w.relisten = true
	e := w.engine(func(c *config.Config) { c.Remediate.Standing = []string{"net.core.somaxconn<=16384"} })
	id := w.propose(e)
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	if err != nil || out.State != StateVerified {
		t.Fatalf("outcome %s (%s), %v", out.State, out.Reason, err)
	}
	if out.Approver != "standing:net.core.somaxconn<=16384" {
		t.Fatalf("approver of record %q", out.Approver)
	}
	// A rule below the proposed value does not cover it.
	w2 := newWorld(t)
	e2 := w2.engine(func(c *config.Config) { c.Remediate.Standing = []string{"net.core.somaxconn<=512"} })
	if _, err := e2.Apply(context.Background(), w2.propose(e2), ApplyOptions{}); !errors.Is(err, ErrRefused) {
		t.Fatalf("standing rule below the value: %v, want refused", err)
	}
}

func TestApplyDryRun(t *testing.T) {
	w := newWorld(t)
	e := w.engine(nil)
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	out, err := e.Apply(context.Background(), id, ApplyOptions{DryRun: true})
	if err != nil || !out.OK() || !strings.Contains(out.Reason, `net.core.somaxconn = "1024"`) {
		t.Fatalf("dry run: %+v, %v", out, err)
	}
	if w.somaxconn() != "128" {
		t.Fatal("dry run wrote")
	}
	if a, _ := e.Store().Approval(id); a.UsedBy != "" {
		t.Fatal("dry run used the approval")
	}
}

func TestResolveInterrupted(t *testing.T) {
	tests := []struct {
		name  string
		state State
		live  string
		want  State
		final string
	}{
		{"killed during verification", StateVerifying, "1024", StateRolledBack, "128"},
		{"killed after the journal, before the write", StateApplying, "128", StateRolledBack, "128"},
		{"killed, then someone changed it", StateVerifying, "4096", StateDrift, "4096"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			e := w.engine(nil)
			vals := []Value{{Key: "net.core.somaxconn", Old: "128", New: "1024"}}
			for _, s := range []State{StateApplying, StateApplied, StateVerifying} {
				r := Record{Change: "c-1", Proposal: "p", State: s, Values: vals, PID: 999999}
				ownTarget(t, e).stamp(&r)
				e.Journal().Append(r)
				if s == tc.state {
					break
				}
			}
			w.set("net.core.somaxconn", tc.live)
			outs, err := e.Resolve(context.Background())
			if err != nil || len(outs) != 1 {
				t.Fatalf("Resolve: %v, %d outcomes", err, len(outs))
			}
			if outs[0].State != tc.want || w.somaxconn() != tc.final {
				t.Fatalf("outcome %s (%s), somaxconn %s; want %s, %s", outs[0].State, outs[0].Reason, w.somaxconn(), tc.want, tc.final)
			}
			// Closed: a second start has nothing to do.
			if outs, _ := e.Resolve(context.Background()); len(outs) != 0 {
				t.Fatalf("second Resolve settled %d changes again", len(outs))
			}
		})
	}
}

func TestResolveLeavesLiveOwner(t *testing.T) {
	w := newWorld(t)
	e := w.engine(nil)
	vals := []Value{{Key: "net.core.somaxconn", Old: "128", New: "1024"}}
	r := Record{Change: "c-2", Proposal: "p", State: StateVerifying, Values: vals}
	ownTarget(t, e).stamp(&r)
	e.Journal().Append(r)
	w.set("net.core.somaxconn", "1024")
	l, err := lockFile(filepath.Join(e.locks, "change-c-2.lock"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	outs, err := e.Resolve(context.Background())
	if err != nil || len(outs) != 0 || w.somaxconn() != "1024" {
		t.Fatalf("Resolve touched a change whose owner is alive: %v %v %s", outs, err, w.somaxconn())
	}
}

func TestRollbackByHand(t *testing.T) {
	w := newWorld(t)
	w.relisten = true
	e := w.engine(nil)
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	out, _ := e.Apply(context.Background(), id, ApplyOptions{})
	if out.State != StateVerified {
		t.Fatalf("apply: %s (%s)", out.State, out.Reason)
	}
	rb, err := e.Rollback(context.Background(), out.Change)
	if err != nil || rb.State != StateRolledBack || w.somaxconn() != "128" {
		t.Fatalf("rollback: %s (%s) %v, somaxconn %s", rb.State, rb.Reason, err, w.somaxconn())
	}
	// Again: already closed, nothing written.
	rb, err = e.Rollback(context.Background(), out.Change)
	if err != nil || !strings.Contains(rb.Reason, "already closed") {
		t.Fatalf("second rollback: %+v %v", rb, err)
	}
}

func TestFailedWriteRecorded(t *testing.T) {
	w := newWorld(t)
	e := w.engine(nil)
	// A key that vanished between the guards and the write (ENOENT).
	p := w.proposal("128")
	os.Remove(filepath.Join(w.root, "net/core/somaxconn"))
	out, err := e.commit(context.Background(), "c-fail", p, Approval{Approver: Approver{User: "root"}}, Target{}, nil, ApplyOptions{Window: time.Millisecond, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != StateFailed || out.Errno != "ENOENT" {
		t.Fatalf("outcome %s errno %q (%s), want failed ENOENT", out.State, out.Errno, out.Reason)
	}
	c, _ := e.Journal().ChangeByID("c-fail")
	if diff := cmp.Diff([]State{StateApplying, StateFailed}, c.History); diff != "" || c.Errno != "ENOENT" {
		t.Fatalf("journal (-want +got)\n%s errno %q", diff, c.Errno)
	}
}

func TestParseStanding(t *testing.T) {
	got, err := ParseStanding([]string{"net.core.somaxconn <= 16384"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Standing{{Rule: "net.core.somaxconn<=16384", Key: "net.core.somaxconn", Max: 16384}}, got); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	for _, bad := range []string{"net.core.somaxconn", "net..x<=1", "net.core.somaxconn<=lots"} {
		if _, err := ParseStanding([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

type fakeRestarter struct {
	w     *world
	units []string
}

func (f *fakeRestarter) RestartUnit(_ context.Context, unit string) error {
	f.units = append(f.units, unit)
	f.w.mu.Lock()
	f.w.relisten = true // a restarted service listens with the new limit
	f.w.mu.Unlock()
	return nil
}

func TestApplyRestartUnit(t *testing.T) {
	tests := []struct {
		name         string
		restartUnit  bool
		allowRestart bool
		want         State
		restarts     int
	}{
		{"config and approval allow", true, true, StateVerified, 1},
		{"approval does not allow", true, false, StateRolledBack, 0},
		{"config does not allow", false, true, StateRolledBack, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			cfg := config.Defaults()
			cfg.StateDir = filepath.Join(t.TempDir(), "state")
			cfg.Verify.Window, cfg.Verify.Interval = 250*time.Millisecond, 10*time.Millisecond
			cfg.Remediate.RestartUnit = tc.restartUnit
			r := &fakeRestarter{w: w}
			e, err := New(Options{Config: cfg, Host: "h1", ProcSys: w.root, Sampler: w, Diagnose: w.diagnose, Restarter: r, Clock: w.clock})
			if err != nil {
				t.Fatal(err)
			}
			id := w.propose(e)
			e.Approve(id, ApproveOptions{AllowRestart: tc.allowRestart})
			out, _ := e.Apply(context.Background(), id, ApplyOptions{})
			if out.State != tc.want || len(r.units) != tc.restarts {
				t.Fatalf("outcome %s (%s), restarts %v; want %s, %d", out.State, out.Reason, r.units, tc.want, tc.restarts)
			}
			if tc.restarts > 0 && r.units[0] != "lab.service" {
				t.Fatalf("restarted %v, want lab.service", r.units)
			}
		})
	}
}

func TestResolveResume(t *testing.T) {
	w := newWorld(t)
	w.relisten = true
	e := w.engine(func(c *config.Config) { c.Remediate.OnRestart = "resume" })
	p := w.proposal("128")
	vals := []Value{{Key: "net.core.somaxconn", Old: "128", New: "1024"}}
	for _, r := range []Record{{Change: "c-3", Proposal: p.ID, State: StateApplying, Values: vals, Verify: &p.Verify, PID: 999999},
		{Change: "c-3", Proposal: p.ID, State: StateVerifying, Values: vals, PID: 999999}} {
		ownTarget(t, e).stamp(&r)
		e.Journal().Append(r)
	}
	w.set("net.core.somaxconn", "1024")
	outs, err := e.Resolve(context.Background())
	if err != nil || len(outs) != 1 || outs[0].State != StateVerified || w.somaxconn() != "1024" {
		t.Fatalf("resume: %+v %v, somaxconn %s; want verified, 1024 kept", outs, err, w.somaxconn())
	}
}

func TestApplyInterruptedRollsBack(t *testing.T) {
	w := newWorld(t)
	e := w.engine(func(c *config.Config) { c.Verify.Inconclusive = "keep"; c.Verify.Window = 10 * time.Second })
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.onVerifySample = func(n int) {
		if n == 2 {
			cancel() // SIGINT/SIGTERM during verification
		}
	}
	start := time.Now()
	out, _ := e.Apply(ctx, id, ApplyOptions{})
	if out.State != StateRolledBack || w.somaxconn() != "128" || time.Since(start) > 5*time.Second {
		t.Fatalf("outcome %s (%s) after %s, somaxconn %s; want a prompt rollback to 128", out.State, out.Reason, time.Since(start), w.somaxconn())
	}
	if !out.Interrupted {
		t.Errorf("outcome %+v: want interrupted set (the agent's rollout tells an interruption from a quiet window by it)", out)
	}
}
