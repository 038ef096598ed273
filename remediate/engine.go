package remediate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/sample"
	"github.com/sockwarden/sockwarden/verify"
)

// Sampler takes live samples of a namespace. The CLI and the agent wire it
// to sample.Series; unit tests use hand-built samples.
type Sampler interface {
	// Series takes n samples interval apart in the namespace netns.
	Series(ctx context.Context, netns string, n int, interval time.Duration) ([]*sample.Sample, error)
}

// SamplerFunc adapts a function to Sampler.
type SamplerFunc func(ctx context.Context, netns string, n int, interval time.Duration) ([]*sample.Sample, error)

// Series implements Sampler.
func (f SamplerFunc) Series(ctx context.Context, netns string, n int, interval time.Duration) ([]*sample.Sample, error) {
	return f(ctx, netns, n, interval)
}

// UnitRestarter restarts a systemd unit (SystemdRestarter over D-Bus).
type UnitRestarter interface {
	RestartUnit(ctx context.Context, unit string) error
}

// Options configure an Engine.
type Options struct {
	// Config: the remediate, verify and diagnose sections are used.
	Config config.Config
	// StateDir holds the journal, the store and the locks; default
	// Config.StateDir.
	StateDir string
	// Store defaults to the FileStore under StateDir.
	Store Store
	// Rollout, when set (a fleet: EtcdStore), limits the changes in
	// flight across hosts: guard 6 takes a slot before the write and
	// releases it once the change is kept or rolled back.
	Rollout Rollout
	// Host is this host's name (default os.Hostname).
	Host string
	// ProcSys is the /proc/sys root (tests: a temporary tree).
	ProcSys string
	// Sampler and Diagnose produce the fresh samples and their diagnosis
	// (guard 3) and the verification samples.
	Sampler  Sampler
	Diagnose func([]*sample.Sample) diagnose.Report
	// Restarter, when set, may restart the listener's unit after a
	// somaxconn change (config remediate.restart_unit and the approval's
	// AllowRestart must both allow it).
	Restarter UnitRestarter
	// OnEvent receives progress (the CLI prints it on stderr, the agent
	// logs and exports it). May be nil.
	OnEvent func(Event)
	Log     *zap.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// LockDir holds the per-namespace apply locks; default
	// DefaultLockDir. Tests point it at a temporary directory.
	LockDir string
	// HostNetns is the host's namespace file; default HostNetnsFile (PID 1's).
	// Only a change whose namespace has its identity is persisted.
	HostNetns string
}

// Engine proposes, approves, applies, verifies and rolls back sysctl
// changes under guard. It is safe for use by one goroutine at a time; other
// processes are kept out by file locks.
type Engine struct {
	opts     Options
	cfg      config.Config
	store    Store
	journal  *Journal
	log      *zap.Logger
	standing []Standing
	locks    string
	// holding is the namespace whose lock this engine holds (during
	// Apply), so that its own rollback does not wait for itself.
	holding *NetnsIdentity
}

// Event is one step of an apply, for progress reporting.
type Event struct {
	Time     time.Time `json:"time"`
	Proposal string    `json:"proposal,omitempty"`
	Change   string    `json:"change,omitempty"`
	Step     string    `json:"step"`
	Message  string    `json:"message"`
}

// Outcome is the result of Apply, Rollback or one change of Resolve.
type Outcome struct {
	Proposal string  `json:"proposal"`
	Change   string  `json:"change,omitempty"`
	State    State   `json:"state"`
	Guard    string  `json:"guard,omitempty"`
	Reason   string  `json:"reason"`
	Host     string  `json:"host,omitempty"`
	Netns    string  `json:"netns,omitempty"`
	Values   []Value `json:"values,omitempty"`
	Approver string  `json:"approver,omitempty"`
	DryRun   bool    `json:"dry_run,omitempty"`
	Errno    string  `json:"errno,omitempty"`
	// Verdict is the verification's judgement, when one ran.
	Verdict *verify.Verdict `json:"verdict,omitempty"`
	// Persisted is the sysctl.d file written for a verified change.
	Persisted string `json:"persisted,omitempty"`
}

// OK reports whether the outcome is a success (exit status 0).
func (o Outcome) OK() bool {
	return o.State == StateVerified || o.State == StateKept || (o.DryRun && o.Guard == "")
}

// New makes an Engine, opening the journal and store under the state dir.
func New(opts Options) (*Engine, error) {
	if opts.StateDir == "" {
		opts.StateDir = opts.Config.StateDir
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.LockDir == "" {
		opts.LockDir = DefaultLockDir
	}
	if opts.HostNetns == "" {
		opts.HostNetns = orStr(testHostNetns(), HostNetnsFile)
	}
	j, err := OpenJournal(opts.StateDir)
	if err != nil {
		return nil, err
	}
	if opts.Store == nil {
		fs, err := OpenFileStore(opts.StateDir)
		if err != nil {
			return nil, err
		}
		opts.Store = fs
	}
	locks, err := subdir(opts.StateDir, "locks")
	if err != nil {
		return nil, err
	}
	st, err := ParseStanding(opts.Config.Remediate.Standing)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", config.ErrConfig, err)
	}
	e := &Engine{opts: opts, cfg: opts.Config, store: opts.Store, journal: j, log: opts.Log.Named("remediate"), standing: st, locks: locks}
	for _, s := range st {
		e.log.Warn("standing approval in force: matching changes are applied without an operator", zap.String("rule", s.Rule))
	}
	return e, nil
}

// Journal returns the engine's journal.
func (e *Engine) Journal() *Journal { return e.journal }

// Store returns the engine's approval store.
func (e *Engine) Store() Store { return e.store }

func (e *Engine) sysctl(ns string) Sysctl { return Sysctl{Root: e.opts.ProcSys, Netns: ns} }

// sysctlAt reads and writes only in the namespace t identifies.
func (e *Engine) sysctlAt(t Target) Sysctl {
	id := t.ID
	return Sysctl{Root: e.opts.ProcSys, Netns: t.Netns, Want: &id}
}

// lockTarget takes the namespace lock of t unless this engine holds it.
func (e *Engine) lockTarget(t Target) (func(), error) {
	if e.holding != nil && *e.holding == t.ID {
		return func() {}, nil
	}
	l, err := lockNetns(e.opts.LockDir, t.ID)
	if err != nil {
		return nil, err
	}
	id := t.ID
	e.holding = &id
	return func() { e.holding = nil; l.Unlock() }, nil
}

func (e *Engine) event(p, c, step, format string, a ...any) {
	ev := Event{Time: e.opts.Now().UTC(), Proposal: p, Change: c, Step: step, Message: fmt.Sprintf(format, a...)}
	e.log.Debug(ev.Message, zap.String("step", step), zap.String("proposal", p), zap.String("change", c))
	if e.opts.OnEvent != nil {
		e.opts.OnEvent(ev)
	}
}

// Propose records the proposals of a report as pending approval, each with
// the side of its finding, and journals the new ones. It returns the
// recorded proposals.
func (e *Engine) Propose(r diagnose.Report, source string) ([]Pending, error) {
	var out []Pending
	now := e.opts.Now().UTC()
	for _, p := range r.Proposals {
		if err := ValidID(p.ID); err != nil {
			return out, err
		}
		side := diagnose.SideUnknown
		for _, f := range r.Findings {
			if f.Kind == p.Finding && f.Subject == p.Subject {
				side = f.Side
			}
		}
		_, err := e.store.Proposal(p.ID)
		isNew := errors.Is(err, ErrNotFound)
		pp := Pending{Proposal: p, Side: side, Recorded: now, LastSeen: now, Source: source}
		if err := e.store.RecordProposal(pp); err != nil {
			return out, err
		}
		if isNew {
			if err := e.journal.Append(Record{Proposal: p.ID, State: StateProposed, Host: p.Host, Netns: p.Netns,
				Finding: p.Finding, Subject: p.Subject, Values: valuesOf(p), Reason: p.Reason}); err != nil {
				return out, err
			}
		}
		out = append(out, pp)
	}
	return out, nil
}

func valuesOf(p diagnose.Proposal) []Value {
	var v []Value
	for _, c := range p.Changes {
		v = append(v, Value{Key: c.Key, Old: Fold(c.Current), New: Fold(c.Proposed)})
	}
	return v
}

// ApproveOptions qualify an approval.
type ApproveOptions struct {
	TTL          time.Duration
	Comment      string
	AllowRestart bool
	// Approver defaults to CurrentApprover().
	Approver *Approver
}

// ErrBadTTL: an approval's lifetime is not positive or is over
// remediate.max_approval_ttl.
var ErrBadTTL = errors.New("invalid approval lifetime")

// ErrInFlight: a deny or approve came while a change of the proposal is
// open (verifying, or left open by a process that died); it changes nothing.
var ErrInFlight = errors.New("change in flight")

// Approve records an operator's approval of a pending proposal. A zero TTL
// is remediate.approval_ttl; a negative one, or one over
// remediate.max_approval_ttl, is an error: an approval that never expires
// is a standing approval by another name.
func (e *Engine) Approve(id string, o ApproveOptions) (Approval, error) {
	p, err := e.store.Proposal(id)
	if err != nil {
		return Approval{}, err
	}
	if o.TTL < 0 {
		return Approval{}, fmt.Errorf("%w: --ttl %s: an approval must last a positive time", ErrBadTTL, o.TTL)
	}
	if o.TTL == 0 {
		o.TTL = e.cfg.Remediate.ApprovalTTL
	}
	if max := e.cfg.Remediate.MaxApprovalTTL; max > 0 && o.TTL > max {
		return Approval{}, fmt.Errorf("%w: --ttl %s is over remediate.max_approval_ttl (%s)", ErrBadTTL, o.TTL, max)
	}
	if err := e.inFlight(id, "approve"); err != nil {
		return Approval{}, err
	}
	who := CurrentApprover()
	if o.Approver != nil {
		who = *o.Approver
	}
	now := e.opts.Now().UTC()
	a := Approval{Proposal: id, Host: p.Proposal.Host, Netns: p.Proposal.Netns, Changes: p.Proposal.Changes,
		Approver: who, Comment: o.Comment, AllowRestart: o.AllowRestart, Created: now, Expires: now.Add(o.TTL)}
	if err := e.store.PutApproval(a); err != nil {
		return a, err
	}
	reason := fmt.Sprintf("approved until %s", a.Expires.Format(time.RFC3339))
	if o.Comment != "" {
		reason += ": " + o.Comment
	}
	e.log.Info("proposal approved", zap.String("proposal", id), zap.String("approver", who.String()), zap.Time("expires", a.Expires), zap.Bool("allow_restart", o.AllowRestart))
	return a, e.journal.Append(Record{Proposal: id, State: StateApproved, Host: p.Proposal.Host, Netns: p.Proposal.Netns,
		Finding: p.Proposal.Finding, Subject: p.Proposal.Subject, Values: valuesOf(p.Proposal), Approver: who.String(), Reason: reason})
}

// Deny records that a proposal must not be applied (replacing any
// approval). While a change of the proposal is in flight it changes nothing
// and returns ErrInFlight saying what the change will do.
func (e *Engine) Deny(id, comment string) error {
	p, err := e.store.Proposal(id)
	if err != nil {
		return err
	}
	if err := e.inFlight(id, "deny"); err != nil {
		return err
	}
	who := CurrentApprover()
	now := e.opts.Now().UTC()
	d := Approval{Proposal: id, Host: p.Proposal.Host, Netns: p.Proposal.Netns, Changes: p.Proposal.Changes,
		Approver: who, Comment: comment, Created: now, Expires: now, Denied: true}
	if old, err := e.store.Approval(id); err == nil {
		// Who used the approval before stays on record.
		d.UsedBy, d.UsedAt = old.UsedBy, old.UsedAt
	}
	if err := e.store.PutApproval(d); err != nil {
		return err
	}
	return e.journal.Append(Record{Proposal: id, State: StateDenied, Host: p.Proposal.Host, Netns: p.Proposal.Netns,
		Finding: p.Proposal.Finding, Subject: p.Proposal.Subject, Values: valuesOf(p.Proposal), Approver: who.String(), Reason: comment})
}

// inFlight returns ErrInFlight when the approval of id was used by a change
// this journal holds open: a deny or a new approval then would say it
// changed something while the change goes on regardless.
func (e *Engine) inFlight(id, verb string) error {
	a, err := e.store.Approval(id)
	if err != nil || a.UsedBy == "" {
		return nil
	}
	c, err := e.journal.ChangeByID(a.UsedBy)
	if err != nil || !c.State.Open() {
		return nil
	}
	var vals []string
	for _, v := range c.Values {
		vals = append(vals, fmt.Sprintf("%s %q -> %q", v.Key, v.Old, v.New))
	}
	what := fmt.Sprintf("it is %s (pid %d); if verification passes it keeps %s, otherwise it restores the old values", c.State, c.PID, strings.Join(vals, ", "))
	if l, err := lockFile(filepath.Join(e.locks, "change-"+c.ID+".lock"), false); err == nil {
		l.Unlock()
		what = fmt.Sprintf("it was left %s by pid %d, which is gone; sockwarden resolve settles it (remediate.on_restart: %s)", c.State, c.PID, e.cfg.Remediate.OnRestart)
	}
	return fmt.Errorf("%w: proposal %s is being applied by change %s: %s does not stop it and was not recorded; %s. To undo it once settled: sockwarden rollback %s",
		ErrInFlight, id, c.ID, verb, what, c.ID)
}

// ApplyOptions qualify one apply.
type ApplyOptions struct {
	// DryRun runs every guard and reports what would be written.
	DryRun bool
	// Window and Interval of the verification (default: config verify.*).
	Window, Interval time.Duration
}

func newChangeID(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return "c-" + now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
}

// Apply runs the whole guarded path for one pending proposal: fresh
// samples, the five guards, the journaled write, verification, and keep or
// roll back. A refusal returns an Outcome in state refused and a *Refusal
// error; other failures are in the Outcome's state and reason.
func (e *Engine) Apply(ctx context.Context, id string, o ApplyOptions) (Outcome, error) {
	if o.Window <= 0 {
		o.Window = e.cfg.Verify.Window
	}
	if o.Interval <= 0 {
		o.Interval = e.cfg.Verify.Interval
	}
	pp, err := e.store.Proposal(id)
	unavailable := errors.Is(err, ErrStoreUnavailable)
	if err != nil && !unavailable {
		return Outcome{Proposal: id, State: StateFailed, Reason: err.Error()}, err
	}
	p := pp.Proposal
	if unavailable {
		p = diagnose.Proposal{}
	}
	out := Outcome{Proposal: id, Host: p.Host, Netns: p.Netns, Values: valuesOf(p), DryRun: o.DryRun}
	refused := func(r *Refusal) (Outcome, error) {
		out.State, out.Guard, out.Reason = StateRefused, r.Guard, r.Reason
		e.log.Warn("apply refused", zap.String("proposal", id), zap.String("guard", r.Guard), zap.String("reason", r.Reason))
		if !o.DryRun {
			if err := e.journal.Append(Record{Proposal: id, State: StateRefused, Host: p.Host, Netns: p.Netns, Finding: p.Finding,
				Subject: p.Subject, Values: out.Values, Guard: r.Guard, Reason: r.Reason}); err != nil {
				return out, errors.Join(r, err)
			}
		}
		return out, r
	}
	if unavailable {
		// Fail closed: without the store there is no approval to check.
		return refused(refuseErr(GuardApproval, err, "cannot read proposal %s and its approval: %v; nothing applied", id, err))
	}
	if p.Host != "" && e.opts.Host != "" && p.Host != e.opts.Host {
		return refused(refuse(GuardAllowed, "proposal %s is for host %q, this is %q", id, p.Host, e.opts.Host))
	}

	// One apply at a time per namespace, whatever path names it and
	// whatever state directory the process was given: two changes to the
	// same namespace would confuse each other's verification, and both
	// would pass guard 5 before either wrote.
	nsid, err := netnsIdentity(p.Netns)
	if err != nil {
		return refused(refuseErr(GuardLiveValue, err, "cannot identify the namespace to write: %v", err))
	}
	tgt := Target{Host: e.opts.Host, Netns: p.Netns, ID: nsid}
	unlock, err := e.lockTarget(tgt)
	if err != nil {
		var busy *NetnsBusy
		if errors.As(err, &busy) {
			return refused(refuseErr(GuardLiveValue, err, "%v", err))
		}
		return out, err
	}
	defer unlock()

	// Guards 1 and 2 on the recorded proposal: cheap, before sampling.
	if r := checkSide(pp.Side, fmt.Sprintf("finding %s on %s", p.Finding, p.Subject)); r != nil {
		return refused(r)
	}
	if r := checkStatic(p, e.cfg); r != nil {
		return refused(r)
	}
	// An approval is for writing p's values over p's current ones: if a
	// key no longer holds its current value, the approval is stale
	// (guard 4), whatever fresh samples would show. Checked before the
	// samples, it cannot be masked by a pathology that happens to pause
	// during them (the fresh diagnosis finds the same when it runs).
	for _, c := range p.Changes {
		live, err := e.sysctlAt(tgt).Read(c.Key)
		if err == nil && Fold(live) != Fold(c.Current) {
			return refused(refuse(GuardApproval, "stale: proposal %s was made for %s = %q; it is %q now; diagnose again and approve the new proposal if it is still wanted",
				id, c.Key, Fold(c.Current), Fold(live)))
		}
	}

	// Fresh samples: a baseline and two more, so drops must rise in two
	// intervals.
	e.event(id, "", "sample", "taking 3 fresh samples %s apart (guard 3)", o.Interval)
	series, err := e.opts.Sampler.Series(ctx, p.Netns, 3, o.Interval)
	if err != nil {
		return refused(refuse(GuardSamples, "fresh samples: %v", err))
	}
	if len(series) < 3 {
		return refused(refuse(GuardSamples, "fresh samples: got %d, need 3", len(series)))
	}
	rep := e.opts.Diagnose(series)

	// Guard 1 again, with the fresh diagnosis: a forged or outdated
	// record cannot turn an application problem into a kernel change.
	var fresh *diagnose.Finding
	for i := range rep.Findings {
		if rep.Findings[i].Kind == p.Finding && rep.Findings[i].Subject == p.Subject {
			fresh = &rep.Findings[i]
		}
	}
	if fresh != nil {
		if r := checkSide(fresh.Side, fmt.Sprintf("finding %s on %s (fresh diagnosis)", p.Finding, p.Subject)); r != nil {
			return refused(r)
		}
	}
	// Guard 2, the kernel's rules with live values.
	sc := e.sysctlAt(tgt)
	if r := checkKernelRules(p, sc.Read, series...); r != nil {
		return refused(r)
	}
	// Guard 3: the fresh diagnosis agrees.
	stale, r := checkFresh(p, fresh, rep, series)
	if r != nil {
		return refused(r)
	}
	e.event(id, "", "guard", "fresh samples agree: %s on %s, confirmed in every interval%s", p.Finding, p.Subject,
		map[bool]string{true: " with drops rising", false: ""}[len(p.Verify.Counters) > 0 || fresh.Counter != ""])
	for _, q := range rep.Proposals {
		if q.Finding == p.Finding && q.Subject == p.Subject && q.ID != p.ID && stale == nil {
			e.event(id, "", "guard", "note: the fresh diagnosis would now propose %s (proposal %s); applying the approved %s",
				describeValues(q.Changes, false), q.ID, describeValues(p.Changes, false))
		}
	}

	// Guard 4: an approval of this exact proposal.
	var appr Approval
	var standing []Standing
	if stale != nil {
		return refused(refuse(GuardApproval, "stale: proposal %s was made for %s; the host now gives proposal %s (%s); approve that one if it is still wanted",
			id, describeValues(p.Changes, true), stale.ID, describeValues(stale.Changes, true)))
	}
	appr, standing, r = e.approvalFor(id, p)
	if r != nil {
		return refused(r)
	}
	out.Approver = appr.Approver.String()

	// Guard 5: the live value is still the proposal's current.
	for i, c := range p.Changes {
		v, err := sc.Read(c.Key)
		if err != nil {
			return refused(refuse(GuardLiveValue, "read %s: %v", c.Key, err))
		}
		out.Values[i].Live = v
		if v != Fold(c.Current) {
			return refused(refuse(GuardLiveValue, "%s is %q now, not the proposal's %q: someone changed it", c.Key, v, Fold(c.Current)))
		}
	}

	// Guard 6: a fleet rollout slot (a dry run only looks).
	if e.opts.Rollout != nil && o.DryRun {
		hs, max, err := e.opts.Rollout.Holders(ctx)
		if err != nil {
			return refused(refuseErr(GuardFleetSlot, err, "fleet rollout slots unreadable: %v", err))
		}
		if len(hs) >= max {
			return refused(refuseErr(GuardFleetSlot, ErrNoSlot, "%v: %s", ErrNoSlot, InFlight(hs, max)))
		}
	}

	if o.DryRun {
		out.State = StateApproved
		out.Reason = "dry run: every guard passed; would write " + describeValues(p.Changes, false)
		e.event(id, "", "dry-run", "%s", out.Reason)
		return out, nil
	}

	change := newChangeID(e.opts.Now())
	cl, err := lockFile(filepath.Join(e.locks, "change-"+change+".lock"), false)
	if err != nil {
		return out, err
	}
	defer cl.Unlock()
	if e.opts.Rollout != nil {
		slot, err := e.takeSlot(ctx, id, change, p.Netns, out.Values, "fleet rollout slot taken")
		if err != nil {
			return refused(refuseErr(GuardFleetSlot, err, "%v", err))
		}
		// Released once the change is kept or rolled back (commit
		// returns only then); a dead process's slot expires with its
		// lease.
		defer slot.Release()
	}
	out.Change = change
	var use func() error
	if standing == nil {
		use = func() error {
			_, err := e.store.UseApproval(id, change, e.opts.Now())
			return err
		}
	} else {
		e.log.Warn("applying under a standing approval", zap.String("proposal", id), zap.String("approver", out.Approver))
	}
	return e.commit(ctx, change, p, appr, tgt, use, o)
}

// approvalFor is guard 4 without side effects: the approval of id, or the
// standing rules covering p when there is none (then standing is not nil).
func (e *Engine) approvalFor(id string, p diagnose.Proposal) (appr Approval, standing []Standing, r *Refusal) {
	appr, err := e.store.Approval(id)
	switch {
	case errors.Is(err, ErrNotFound):
		standing = standingFor(p, e.standing)
		if standing == nil {
			return Approval{}, nil, refuse(GuardApproval, "no approval for proposal %s (sockwarden approve %s)", id, id)
		}
		rules := make([]string, len(standing))
		for i, s := range standing {
			rules[i] = s.Rule
		}
		return Approval{Proposal: id, Approver: Approver{Standing: strings.Join(rules, ",")}}, standing, nil
	case err != nil:
		return Approval{}, nil, refuseErr(GuardApproval, err, "approval for %s unreadable: %v", id, err)
	}
	if r := checkApproval(appr, p, e.opts.Now()); r != nil {
		return appr, nil, r
	}
	return appr, nil, nil
}

// checkFresh is guard 3. It returns the fresh proposal when it differs from
// p only in the current values (the approval is then stale: guard 4).
func checkFresh(p diagnose.Proposal, fresh *diagnose.Finding, rep diagnose.Report, series []*sample.Sample) (*diagnose.Proposal, *Refusal) {
	if fresh == nil {
		return nil, refuse(GuardSamples, "the fresh samples do not show %s on %s any more", p.Finding, p.Subject)
	}
	if !fresh.Confirmed {
		return nil, refuse(GuardSamples, "%s on %s is not confirmed by the fresh samples: %s", p.Finding, p.Subject, orStr(fresh.NotConfirmedReason, "not in every interval"))
	}
	counters := p.Verify.Counters
	if len(counters) == 0 && fresh.Counter != "" {
		counters = []string{fresh.Counter}
	}
	if len(counters) > 0 {
		for i := 1; i < len(series); i++ {
			d := sample.Diff(series[i-1], series[i])
			rising := false
			for _, c := range counters {
				if d.Counters[c] > 0 {
					rising = true
				}
			}
			if !rising {
				return nil, refuse(GuardSamples, "%s did not rise in fresh interval %d/%d: no drops now", strings.Join(counters, "+"), i, len(series)-1)
			}
		}
	}
	// The fresh diagnosis must propose a change to the same keys. Its id
	// equals p's when current and proposed values are the same. A
	// different current value means the approval is stale (guard 4). A
	// different proposed value alone (the target follows the observed peak
	// demand, which moves from one burst to the next) does not undo the
	// agreement: the operator approved writing exactly p's values over
	// exactly p's current ones, guard 5 checks the latter, and verification
	// judges whether they are enough.
	var same *diagnose.Proposal
	for i := range rep.Proposals {
		q := &rep.Proposals[i]
		if q.Finding != p.Finding || q.Subject != p.Subject {
			continue
		}
		if q.ID == p.ID {
			return nil, nil
		}
		if sameKeys(p.Changes, q.Changes) {
			same = q
		}
	}
	if same == nil {
		return nil, refuse(GuardSamples, "the fresh diagnosis of %s on %s proposes no change to %s", p.Finding, p.Subject, keysOf(p.Changes))
	}
	for i := range p.Changes {
		if Fold(p.Changes[i].Current) != Fold(same.Changes[i].Current) {
			return same, nil
		}
	}
	return nil, nil
}

func sameKeys(a, b []diagnose.Change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key {
			return false
		}
	}
	return true
}

func keysOf(cs []diagnose.Change) string {
	var k []string
	for _, c := range cs {
		k = append(k, c.Key)
	}
	return strings.Join(k, ", ")
}

func describeValues(cs []diagnose.Change, withCurrent bool) string {
	var parts []string
	for _, c := range cs {
		if withCurrent {
			parts = append(parts, fmt.Sprintf("%s %q -> %q", c.Key, Fold(c.Current), Fold(c.Proposed)))
		} else {
			parts = append(parts, fmt.Sprintf("%s = %q", c.Key, Fold(c.Proposed)))
		}
	}
	return strings.Join(parts, ", ")
}

// checkApproval is guard 4 on a stored approval.
func checkApproval(a Approval, p diagnose.Proposal, now time.Time) *Refusal {
	switch {
	case a.Denied:
		return refuse(GuardApproval, "proposal %s was denied by %s", p.ID, a.Approver)
	case a.UsedBy != "":
		return refuse(GuardApproval, "the approval of %s was already used by change %s; approvals are used once", p.ID, a.UsedBy)
	case a.Expires.IsZero() || !now.Before(a.Expires):
		return refuse(GuardApproval, "the approval of %s expired at %s", p.ID, a.Expires.Format(time.RFC3339))
	case a.Approver.User == "" && a.Approver.Standing == "" && a.Approver.SudoUser == "":
		return refuse(GuardApproval, "the approval of %s names no approver", p.ID)
	case a.Host != p.Host || a.Netns != p.Netns || !sameChanges(a.Changes, p.Changes):
		return refuse(GuardApproval, "the approval of %s does not match the proposal (host, namespace or values differ): stale or forged", p.ID)
	}
	return nil
}

func sameChanges(a, b []diagnose.Change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || Fold(a[i].Current) != Fold(b[i].Current) || Fold(a[i].Proposed) != Fold(b[i].Proposed) {
			return false
		}
	}
	return true
}

// commit journals, uses the approval (use, nil under a standing approval),
// writes, reads back, verifies and keeps or rolls back. The caller holds the
// change's lock and the namespace's; a zero tgt is the proposal's namespace
// as it is now.
func (e *Engine) commit(ctx context.Context, change string, p diagnose.Proposal, appr Approval, tgt Target, use func() error, o ApplyOptions) (Outcome, error) {
	vals := valuesOf(p)
	out := Outcome{Proposal: p.ID, Change: change, Host: p.Host, Netns: p.Netns, Values: vals, Approver: appr.Approver.String()}
	if tgt.ID.Ino == 0 {
		id, err := netnsIdentity(p.Netns)
		if err != nil {
			out.State, out.Reason = StateFailed, err.Error()
			return out, err
		}
		tgt = Target{Host: e.opts.Host, Netns: p.Netns, ID: id}
	}
	rec := func(r Record) error {
		r.Change, r.Proposal = change, p.ID
		tgt.stamp(&r)
		return e.journal.Append(r)
	}

	// The write-ahead record (the intent): fsynced before the approval
	// is used and before the kernel is touched, so that a kill at any
	// later moment leaves a change the journal knows.
	v := p.Verify
	if err := rec(Record{State: StateApplying, Finding: p.Finding, Subject: p.Subject, Values: vals, Approver: out.Approver, Reason: p.Reason, Verify: &v}); err != nil {
		out.State, out.Reason = StateFailed, "journal: "+err.Error()
		return out, err
	}
	if use != nil {
		if err := use(); err != nil {
			r := refuseErr(GuardApproval, err, "%v; nothing written", err)
			out.State, out.Guard, out.Reason = StateRefused, r.Guard, r.Reason
			return out, errors.Join(r, rec(Record{State: StateRefused, Guard: r.Guard, Reason: r.Reason}))
		}
		faultPoint("approval-used")
	}
	sc := e.sysctlAt(tgt)
	for i, c := range p.Changes {
		e.log.Info("writing sysctl", zap.String("change", change), zap.String("proposal", p.ID), zap.String("key", c.Key), zap.String("netns", NetnsName(p.Netns)),
			zap.String("old", vals[i].Old), zap.String("new", vals[i].New), zap.String("approver", out.Approver), zap.String("reason", p.Reason))
		res, err := sc.CompareAndSet(c.Key, vals[i].Old, vals[i].New)
		vals[i].Live = res.Live
		if res.Written {
			faultPoint("sysctl-written")
		}
		if errors.Is(err, ErrValueChanged) {
			// Changed between guard 5 and the write: nothing written.
			out.State = StateFailed
			out.Reason = fmt.Sprintf("%v; nothing written to %s", err, c.Key)
			if i > 0 {
				back, _ := e.restore(tgt, vals[:i], zap.String("change", change), zap.String("proposal", p.ID))
				out.Reason += "; earlier keys: " + back
			}
			return out, rec(Record{State: StateFailed, Values: vals, Error: err.Error(), Reason: out.Reason})
		}
		if err != nil {
			errno := ErrnoName(errnoOf(err))
			out.State, out.Errno = StateFailed, errno
			out.Reason = fmt.Sprintf("write %s = %q refused: %v; old value left in place", c.Key, vals[i].New, err)
			// Undo the changes of this proposal already written.
			if i > 0 {
				back, _ := e.restore(tgt, vals[:i], zap.String("change", change), zap.String("proposal", p.ID))
				out.Reason += "; earlier keys: " + back
			}
			if now, rerr := sc.Read(c.Key); rerr == nil {
				vals[i].Live = now
			}
			e.log.Error("sysctl write refused", zap.String("change", change), zap.String("key", c.Key), zap.String("errno", errno), zap.Error(err))
			if jerr := rec(Record{State: StateFailed, Values: vals, Error: err.Error(), Errno: errno, Reason: out.Reason}); jerr != nil {
				return out, errors.Join(err, jerr)
			}
			return out, nil
		}
		if res.Live != vals[i].New {
			// The kernel accepted the write but reads back something else
			// (clamped): record it and roll back what we can.
			out.State = StateFailed
			out.Reason = fmt.Sprintf("%s reads back %q after writing %q", c.Key, res.Live, vals[i].New)
			vals[i].New = res.Live
			back, st := e.restore(tgt, vals[:i+1], zap.String("change", change), zap.String("proposal", p.ID))
			out.Reason += "; " + back
			if st == StateDrift {
				out.State = StateDrift
			}
			return out, rec(Record{State: out.State, Values: vals, Reason: out.Reason})
		}
	}
	e.event(p.ID, change, "applied", "wrote %s", describeValues(p.Changes, true))
	if err := rec(Record{State: StateApplied, Values: vals, Reason: "written and read back"}); err != nil {
		return out, err
	}
	return e.verifyAndSettle(ctx, change, tgt, vals, p.Verify, nil, appr, o)
}

// verifyAndSettle runs the verification window for an applied change and
// keeps it, rolls it back, or records drift. notes are the sysctl.d files a
// dead process already planned (resume); nil plans them now.
func (e *Engine) verifyAndSettle(ctx context.Context, change string, tgt Target, vals []Value, plan diagnose.Verification, notes []PersistNote, appr Approval, o ApplyOptions) (Outcome, error) {
	ns := tgt.Netns
	c, _ := e.journal.ChangeByID(change)
	out := Outcome{Proposal: c.Proposal, Change: change, Host: tgt.Host, Netns: ns, Values: vals, Approver: c.Approver}
	rec := func(r Record) error {
		r.Change, r.Proposal = change, c.Proposal
		tgt.stamp(&r)
		if r.Values == nil {
			r.Values = vals
		}
		return e.journal.Append(r)
	}
	// Persistence is planned (and journaled with what the files held)
	// before any file is written, so that a rollback, even of a change
	// killed while persisting, can put the files back.
	var persistErr error
	if e.cfg.Remediate.Persist && notes == nil {
		notes, persistErr = e.planPersist(tgt, vals)
	}
	if err := rec(Record{State: StateVerifying, Persist: notes, Reason: fmt.Sprintf("watching for %s, a sample every %s", o.Window, o.Interval)}); err != nil {
		return out, err
	}
	e.event(c.Proposal, change, "verifying", "verifying for %s, a sample every %s", o.Window, o.Interval)
	sc := e.sysctlAt(tgt)
	in := verify.Input{Plan: plan, MaxDropsPerSec: e.cfg.Verify.MaxDropsPerSec, MinArrivalsPerSec: e.cfg.Diagnose.MinArrivalsPerSec,
		MinCleanIntervals: e.cfg.Verify.MinCleanIntervals}
	deadline := e.opts.Now().Add(o.Window)
	restarted := false
	var verdict verify.Verdict
	for {
		s, err := e.opts.Sampler.Series(ctx, ns, 1, 0)
		if err != nil || len(s) == 0 {
			if ctx.Err() != nil {
				// Cancelled (signal): settle by rolling back.
				break
			}
			e.log.Warn("verification sample failed", zap.Error(err))
		} else {
			in.Samples = append(in.Samples, s[0])
		}
		// Drift: someone else changed a value during verification.
		for i := range vals {
			live, err := sc.Read(vals[i].Key)
			if err != nil {
				continue
			}
			vals[i].Live = live
			if live != vals[i].New {
				out.State = StateDrift
				out.Reason = fmt.Sprintf("drift: %s changed to %q by someone else during verification (we wrote %q); not rolled back, left as found", vals[i].Key, live, vals[i].New)
				e.log.Error("DRIFT: sysctl changed under us; leaving it", zap.String("change", change), zap.String("key", vals[i].Key),
					zap.String("ours", vals[i].New), zap.String("live", live), zap.String("old", vals[i].Old), zap.String("netns", NetnsName(ns)))
				e.event(c.Proposal, change, "drift", "%s", out.Reason)
				return out, rec(Record{State: StateDrift, Values: vals, Reason: out.Reason})
			}
		}
		verdict = verify.Judge(in)
		if verdict.Waiting != "" {
			e.event(c.Proposal, change, "waiting", "%s", verdict.Waiting)
			if !restarted && e.opts.Restarter != nil && e.cfg.Remediate.RestartUnit && appr.AllowRestart {
				for _, u := range verdict.Units() {
					restarted = true
					e.log.Warn("restarting unit so that it listens again", zap.String("unit", u), zap.String("change", change))
					if err := e.opts.Restarter.RestartUnit(ctx, u); err != nil {
						e.event(c.Proposal, change, "restart", "restart of %s failed: %v", u, err)
					} else {
						e.event(c.Proposal, change, "restart", "restarted %s so that it listens again", u)
					}
				}
			}
		} else if len(in.Samples) > 1 {
			e.event(c.Proposal, change, "verifying", "%s", verdict.Reason)
		}
		if !e.opts.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		wait := min(o.Interval, time.Until(deadline))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	in.Final = true
	in.Finding, in.Subject = c.Finding, c.Subject
	if e.opts.Diagnose != nil && len(in.Samples) > 1 {
		rep := e.opts.Diagnose(in.Samples)
		in.After = &rep
	}
	verdict = verify.Judge(in)
	if ctx.Err() != nil {
		verdict = verify.Verdict{Outcome: verify.Inconclusive, Reason: "verification interrupted: " + ctx.Err().Error()}
	}
	out.Verdict = &verdict
	switch {
	case verdict.Outcome == verify.Verified:
		out.State, out.Reason = StateVerified, verdict.Reason
		if e.cfg.Remediate.Persist {
			f, err := e.persist(notes, persistErr, change, c.Proposal, vals)
			switch {
			case err != nil:
				out.Reason += "; not persisted: " + err.Error()
			case f != "":
				out.Persisted = f
				out.Reason += "; persisted to " + f
				faultPoint("persisted")
			}
		}
		e.event(c.Proposal, change, "verified", "%s", out.Reason)
		return out, rec(Record{State: StateVerified, Reason: out.Reason})
	case verdict.Outcome == verify.Inconclusive && e.cfg.Verify.Inconclusive == "keep" && ctx.Err() == nil:
		out.State, out.Reason = StateKept, "inconclusive, kept (verify.inconclusive: keep): "+verdict.Reason
		e.event(c.Proposal, change, "kept", "%s", out.Reason)
		return out, rec(Record{State: StateKept, Reason: out.Reason})
	}
	why := string(verdict.Outcome) + ": " + verdict.Reason
	e.event(c.Proposal, change, "rollback", "rolling back (%s)", why)
	return e.rollback(change, tgt, vals, why)
}

// restore writes the old values back, in reverse order, but only where the
// live value is still ours, and only in the namespace t identifies. It
// returns a description and StateRolledBack or StateDrift. ids (the change
// and proposal) go on every log line.
func (e *Engine) restore(t Target, vals []Value, ids ...zap.Field) (string, State) {
	ns := t.Netns
	if now, err := netnsIdentity(ns); err != nil || now != t.ID {
		return fmt.Sprintf("namespace %q is gone or was replaced (%s when changed, %s now): nothing of ours to restore", ns, t.ID, now), StateDrift
	}
	sc := e.sysctlAt(t)
	state := StateRolledBack
	var parts []string
	for i := len(vals) - 1; i >= 0; i-- {
		v := &vals[i]
		live, err := sc.Read(v.Key)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: read failed (%v), left alone", v.Key, err))
			state = StateDrift
			continue
		}
		switch live {
		case v.Old:
			v.Live = live
			parts = append(parts, fmt.Sprintf("%s already %q", v.Key, v.Old))
		case v.New:
			res, err := sc.CompareAndSet(v.Key, v.New, v.Old)
			v.Live = res.Live
			if errors.Is(err, ErrValueChanged) {
				parts = append(parts, fmt.Sprintf("drift: %s changed to %q while being restored; left alone", v.Key, res.Live))
				if state == StateRolledBack {
					state = StateDrift
				}
				continue
			}
			if err != nil || res.Live != v.Old {
				parts = append(parts, fmt.Sprintf("%s: restore to %q failed: %v (live %q)", v.Key, v.Old, err, res.Live))
				state = StateFailed
				continue
			}
			// OLD/NEW are this write's, as on "writing sysctl": ours
			// before, the old value after.
			e.log.Info("sysctl restored", append([]zap.Field{zap.String("key", v.Key), zap.String("netns", NetnsName(ns)),
				zap.String("old", v.New), zap.String("new", v.Old), zap.String("state", string(StateRolledBack))}, ids...)...)
			parts = append(parts, fmt.Sprintf("%s restored %q -> %q", v.Key, v.New, v.Old))
		default:
			v.Live = live
			e.log.Error("DRIFT: sysctl is neither ours nor the old value; leaving it", append([]zap.Field{zap.String("key", v.Key), zap.String("netns", NetnsName(ns)),
				zap.String("old", v.Old), zap.String("ours", v.New), zap.String("live", live), zap.String("state", string(StateDrift))}, ids...)...)
			parts = append(parts, fmt.Sprintf("drift: %s is %q, neither ours (%q) nor the old value (%q); left alone", v.Key, live, v.New, v.Old))
			if state == StateRolledBack {
				state = StateDrift
			}
		}
	}
	return strings.Join(parts, "; "), state
}

// rollback restores a change's values in the namespace t identifies, puts
// back the sysctl.d files it wrote, and journals the outcome. The caller has
// proven t (the apply's own, or proveTarget's).
func (e *Engine) rollback(change string, t Target, vals []Value, why string) (Outcome, error) {
	c, _ := e.journal.ChangeByID(change)
	out := Outcome{Proposal: c.Proposal, Change: change, Host: t.Host, Netns: t.Netns, Values: vals, Approver: c.Approver}
	unlock, err := e.lockTarget(t)
	if err != nil {
		out.State, out.Reason = c.State, fmt.Sprintf("not rolled back: %v", err)
		return out, err
	}
	defer unlock()
	desc, st := e.restore(t, vals, zap.String("change", change), zap.String("proposal", c.Proposal))
	if d := e.unpersist(change, c.Persist); d != "" {
		desc += "; " + d
	}
	out.State, out.Reason = st, desc
	if why != "" {
		out.Reason = why + "; " + desc
	}
	e.event(c.Proposal, change, string(st), "%s", out.Reason)
	r := Record{Change: change, Proposal: c.Proposal, State: st, Values: vals, Reason: out.Reason}
	t.stamp(&r)
	return out, e.journal.Append(r)
}

// unproven closes change c, whose namespace cannot be proven, without
// writing anything, and says how to restore it by hand.
func (e *Engine) unproven(c Change, perr error) (Outcome, error) {
	err := fmt.Errorf("%w change %s touched: restore by hand: %s (%v)", ErrUnprovenTarget, c.ID, restoreByHand(c), strings.TrimPrefix(perr.Error(), ErrUnprovenTarget.Error()+" change "+c.ID+" touched: "))
	out := Outcome{Proposal: c.Proposal, Change: c.ID, State: StateUnproven, Host: c.Host, Netns: c.Netns, Values: c.Values, Approver: c.Approver, Reason: err.Error()}
	e.log.Error("change left alone: its namespace cannot be proven", zap.String("change", c.ID), zap.Error(err))
	e.event(c.Proposal, c.ID, string(StateUnproven), "%s", out.Reason)
	jerr := e.journal.Append(Record{Change: c.ID, Proposal: c.Proposal, State: StateUnproven, Reason: out.Reason})
	return out, errors.Join(err, jerr)
}

// Rollback restores a change by hand (sockwarden rollback CHANGE_ID), under
// the drift rule: only values still ours are restored.
func (e *Engine) Rollback(ctx context.Context, changeID string) (Outcome, error) {
	c, err := e.journal.ChangeByID(changeID)
	if err != nil {
		return Outcome{Change: changeID, State: StateFailed, Reason: err.Error()}, err
	}
	switch c.State {
	case StateRolledBack, StateFailed, StateDrift, StateRefused, StateUnproven:
		return Outcome{Proposal: c.Proposal, Change: c.ID, State: c.State, Netns: c.Netns, Values: c.Values,
			Reason: fmt.Sprintf("change %s is already closed (%s): nothing to roll back", c.ID, c.State)}, nil
	}
	l, err := lockFile(filepath.Join(e.locks, "change-"+c.ID+".lock"), false)
	if err != nil {
		return Outcome{Change: c.ID, State: c.State, Reason: "change is being verified by a live process (pid " + fmt.Sprint(c.PID) + "); try again when it settles"}, err
	}
	defer l.Unlock()
	t, perr := e.proveTarget(c)
	if errors.Is(perr, ErrUnprovenTarget) {
		return e.unproven(c, perr)
	}
	return e.rollback(c.ID, t, c.Values, "rolled back by hand by "+CurrentApprover().String())
}

// takeSlot takes a fleet rollout slot for this host's change of proposal
// id and records the event saying so; the caller releases it once the
// change is settled.
func (e *Engine) takeSlot(ctx context.Context, id, change, netns string, v []Value, event string) (Slot, error) {
	slot, err := e.opts.Rollout.Acquire(ctx, SlotHolder{Host: e.opts.Host, Change: change, Proposal: id, Netns: netns,
		Values: v, PID: os.Getpid(), Since: e.opts.Now().UTC()})
	if err != nil {
		return nil, err
	}
	e.event(id, change, "guard", "%s", event)
	return slot, nil
}

// resume verifies an interrupted change again. The change is live on the
// host, so with a fleet store it holds a rollout slot while it is verified
// (the dead process's own slot, if its lease has not expired, is taken
// over); when no slot can be had it is rolled back instead: resuming must
// not take the fleet over fleet.max_concurrent.
func (e *Engine) resume(ctx context.Context, c Change, t Target, why string) (Outcome, error) {
	if e.opts.Rollout != nil {
		slot, err := e.takeSlot(ctx, c.Proposal, c.ID, c.Netns, c.Values, "fleet rollout slot taken to resume verification")
		if err != nil {
			return e.rollback(c.ID, t, c.Values, fmt.Sprintf("%s; not resumed: no fleet rollout slot: %v", why, err))
		}
		defer slot.Release()
	}
	unlock, err := e.lockTarget(t)
	if err != nil {
		return Outcome{Proposal: c.Proposal, Change: c.ID, State: c.State, Netns: c.Netns, Values: c.Values, Reason: "not resumed: " + err.Error()}, err
	}
	defer unlock()
	appr, _ := e.store.Approval(c.Proposal)
	return e.verifyAndSettle(ctx, c.ID, t, c.Values, *c.Verify, c.Persist, appr,
		ApplyOptions{Window: e.cfg.Verify.Window, Interval: e.cfg.Verify.Interval})
}

// Resolve settles every change left open (applying, applied, verifying) by
// a process that is gone (killed, host rebooted): rolled back by default,
// or verified again when remediate.on_restart is "resume". Changes whose
// process is still alive are left to it.
func (e *Engine) Resolve(ctx context.Context) ([]Outcome, error) {
	recs, damage, err := e.journal.Read()
	if err != nil {
		return nil, err
	}
	for _, d := range damage {
		e.log.Warn("journal line skipped", zap.String("line", d))
	}
	var outs []Outcome
	var errs []error
	for _, c := range Changes(recs) {
		if !c.State.Open() {
			continue
		}
		l, err := lockFile(filepath.Join(e.locks, "change-"+c.ID+".lock"), false)
		if errors.Is(err, ErrLocked) {
			continue // its process is alive
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		why := fmt.Sprintf("resolved at start: change left %s by pid %d, which is gone", c.State, c.PID)
		e.log.Warn("resolving an interrupted change", zap.String("change", c.ID), zap.String("state", string(c.State)), zap.String("on_restart", e.cfg.Remediate.OnRestart))
		var o Outcome
		t, perr := e.proveTarget(c)
		switch {
		case errors.Is(perr, ErrUnprovenTarget):
			o, err = e.unproven(c, perr)
		case e.cfg.Remediate.OnRestart == "resume" && c.State != StateApplying && c.Verify != nil && e.opts.Sampler != nil && perr == nil:
			o, err = e.resume(ctx, c, t, why)
		default:
			// A namespace that is gone or was replaced comes out of
			// restore as drift: nothing of ours is left to restore.
			o, err = e.rollback(c.ID, t, c.Values, why)
		}
		if errors.Is(err, ErrLocked) {
			// Another process is changing that namespace: the change
			// stays open for a later resolve, and says so.
			e.log.Warn("interrupted change left open: its namespace is busy", zap.String("change", c.ID), zap.Error(err))
			o = Outcome{Proposal: c.Proposal, Change: c.ID, State: c.State, Host: c.Host, Netns: c.Netns, Values: c.Values,
				Reason: "left open for a later resolve: " + err.Error()}
			err = nil
		}
		l.Unlock()
		outs = append(outs, o)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return outs, errors.Join(errs...)
}
