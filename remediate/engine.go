package remediate

import (
	"context"
	"fmt"
	"os"
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
	// Clock tells the time and waits between verification samples;
	// default the wall clock. Tests drive a fake one, so that approvals
	// expire and verification windows pass without sleeping.
	Clock Clock
	// LockDir holds the per-namespace apply locks; default
	// DefaultLockDir. Tests point it at a temporary directory.
	LockDir string
	// HostNetns is the host's namespace file; default HostNetnsFile (PID 1's).
	// Only a change whose namespace has its identity is persisted.
	HostNetns string
}

// Clock is the engine's time: Now for every time it records or compares,
// After for the wait between verification samples.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// WallClock is the real time: the Clock of an engine, and of the agent,
// that no test drives.
var WallClock Clock = wallClock{}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

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
	Step     Step      `json:"step"`
	Message  string    `json:"message"`
}

// Step names an Event. The agent reacts to StepApplied (the kernel was
// written); the others are progress for people.
type Step string

// The steps of an apply, in the order they come.
const (
	StepSample    Step = "sample"    // fresh samples are being taken (guard 3)
	StepGuard     Step = "guard"     // a guard passed, or a note on one
	StepDryRun    Step = "dry-run"   // every guard passed; nothing written
	StepApplied   Step = "applied"   // the new values are written and read back
	StepVerifying Step = "verifying" // the verification window runs
	StepWaiting   Step = "waiting"   // verification waits for the listener
	StepRestart   Step = "restart"   // the listener's unit was restarted
	StepDrift     Step = "drift"     // someone else changed a value of ours
	StepVerified  Step = "verified"  // kept: verification passed
	StepKept      Step = "kept"      // kept: inconclusive, verify.inconclusive is keep
	StepRollback  Step = "rollback"  // rolling back; then a step named after the state reached
)

// stepOf is the event step that reports reaching state st.
func stepOf(st State) Step { return Step(st) }

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
	// Interrupted: the verification window was cut short (the agent
	// stopping, a cancelled command), so the verdict is Inconclusive for
	// want of time, not of load, and the change was rolled back.
	Interrupted bool `json:"interrupted,omitempty"`
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
	if opts.Clock == nil {
		opts.Clock = wallClock{}
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

func (e *Engine) now() time.Time { return e.opts.Clock.Now() }

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

func (e *Engine) event(p, c string, step Step, format string, a ...any) {
	ev := Event{Time: e.now().UTC(), Proposal: p, Change: c, Step: step, Message: fmt.Sprintf(format, a...)}
	e.log.Debug(ev.Message, zap.String("step", string(step)), zap.String("proposal", p), zap.String("change", c))
	if e.opts.OnEvent != nil {
		e.opts.OnEvent(ev)
	}
}
