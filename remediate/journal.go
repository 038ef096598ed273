package remediate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sockwarden/sockwarden/diagnose"
)

// State is the state of a proposal or a change in the journal.
type State string

// Journal states. A proposal is proposed, then approved or denied; applying
// it opens a change: applying (the write-ahead record, fsynced before the
// kernel is touched), applied (written and read back), verifying, then one of
// the terminal states verified, rolled-back, failed or drift. refused records
// a guard that stopped an apply (nothing was written).
const (
	StateProposed   State = "proposed"
	StateApproved   State = "approved"
	StateDenied     State = "denied"
	StateRefused    State = "refused"
	StateApplying   State = "applying"
	StateApplied    State = "applied"
	StateVerifying  State = "verifying"
	StateVerified   State = "verified"
	StateRolledBack State = "rolled-back"
	StateFailed     State = "failed"
	StateDrift      State = "drift"
	// StateKept closes an inconclusive change kept by configuration
	// (verify.inconclusive: keep).
	StateKept State = "kept"
)

// Open reports whether a change in state s may still have a value of ours in
// the kernel that nobody has judged: it must be resolved on start.
func (s State) Open() bool {
	return s == StateApplying || s == StateApplied || s == StateVerifying
}

// Value is one sysctl of a change: the value before, the value we write,
// and (when read) the live value.
type Value struct {
	Key  string `json:"key"`
	Old  string `json:"old"`
	New  string `json:"new"`
	Live string `json:"live,omitempty"`
}

// Record is one journal line.
type Record struct {
	Time time.Time `json:"time"`
	// Change is the change id (records about an apply); empty for
	// proposal-only records (proposed, approved, denied, refused).
	Change   string `json:"change,omitempty"`
	Proposal string `json:"proposal"`
	State    State  `json:"state"`
	Host     string `json:"host,omitempty"`
	Netns    string `json:"netns,omitempty"`
	// NetnsID is the namespace's inode when the change was made: a
	// namespace path reused by a new namespace is not ours.
	NetnsID uint64  `json:"netns_id,omitempty"`
	Finding string  `json:"finding,omitempty"`
	Subject string  `json:"subject,omitempty"`
	Values  []Value `json:"values,omitempty"`
	// Approver is who approved (or the standing rule of record).
	Approver string `json:"approver,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Guard names the guard that refused.
	Guard string `json:"guard,omitempty"`
	Error string `json:"error,omitempty"`
	Errno string `json:"errno,omitempty"`
	// PID is the process that wrote the record.
	PID int `json:"pid,omitempty"`
	// Verify carries the proposal's verification plan on the applied
	// record, so that a restarted process can resume it.
	Verify *diagnose.Verification `json:"verify,omitempty"`
}

// Journal is the append-only change journal: one JSON record per line,
// each fsynced before Append returns. Appends from several processes are
// serialised with an flock on the file.
type Journal struct {
	path string
}

// ErrJournal wraps journal failures.
var ErrJournal = errors.New("journal")

// JournalFile is the journal's name in the state directory.
const JournalFile = "journal.jsonl"

// OpenJournal opens (creating, 0600) the journal in the state directory,
// which must be safe (see OpenStateDir).
func OpenJournal(stateDir string) (*Journal, error) {
	if err := OpenStateDir(stateDir); err != nil {
		return nil, err
	}
	p := filepath.Join(stateDir, JournalFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	f.Close()
	if err := checkOwned(p, false); err != nil {
		return nil, err
	}
	if err := syncDir(stateDir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	return &Journal{path: p}, nil
}

// Path is the journal file.
func (j *Journal) Path() string { return j.path }

// Append writes r as one line and fsyncs it. Time and PID are filled when
// zero.
func (j *Journal) Append(r Record) error {
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	if r.PID == 0 {
		r.PID = os.Getpid()
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	b = append(b, '\n')
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	defer f.Close()
	l, err := lockFile(j.path+".lock", true)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	defer l.Unlock()
	// A previous writer killed mid-line leaves a torn line: start ours on
	// a fresh line so that it stays readable.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		if last, err := lastByte(j.path, st.Size()); err == nil && last != '\n' {
			b = append([]byte{'\n'}, b...)
		}
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("%w: append: %w", ErrJournal, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%w: fsync: %w", ErrJournal, err)
	}
	return nil
}

func lastByte(path string, size int64) (byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, size-1); err != nil {
		return 0, err
	}
	return b[0], nil
}

// Records reads every record in order. A torn line (a crash mid-append)
// is skipped and counted in bad.
func (j *Journal) Records() (recs []Record, bad int, err error) {
	b, err := os.ReadFile(j.path)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			bad++
			continue
		}
		recs = append(recs, r)
	}
	return recs, bad, sc.Err()
}

// Change is the folded history of one change id.
type Change struct {
	ID       string                 `json:"change"`
	Proposal string                 `json:"proposal"`
	State    State                  `json:"state"`
	Host     string                 `json:"host,omitempty"`
	Netns    string                 `json:"netns,omitempty"`
	NetnsID  uint64                 `json:"netns_id,omitempty"`
	Finding  string                 `json:"finding,omitempty"`
	Subject  string                 `json:"subject,omitempty"`
	Values   []Value                `json:"values"`
	Approver string                 `json:"approver,omitempty"`
	Reason   string                 `json:"reason,omitempty"`
	Error    string                 `json:"error,omitempty"`
	Errno    string                 `json:"errno,omitempty"`
	Started  time.Time              `json:"started"`
	Updated  time.Time              `json:"updated"`
	PID      int                    `json:"pid,omitempty"`
	Verify   *diagnose.Verification `json:"verify,omitempty"`
	// History lists the states in order.
	History []State `json:"history"`
}

// Changes folds records into changes, oldest first.
func Changes(recs []Record) []Change {
	idx := map[string]int{}
	var out []Change
	for _, r := range recs {
		if r.Change == "" {
			continue
		}
		i, ok := idx[r.Change]
		if !ok {
			i = len(out)
			idx[r.Change] = i
			out = append(out, Change{ID: r.Change, Proposal: r.Proposal, Started: r.Time})
		}
		c := &out[i]
		c.State = r.State
		c.Updated = r.Time
		c.History = append(c.History, r.State)
		c.PID = r.PID
		setIf(&c.Host, r.Host)
		setIf(&c.Netns, r.Netns)
		if r.NetnsID != 0 {
			c.NetnsID = r.NetnsID
		}
		setIf(&c.Finding, r.Finding)
		setIf(&c.Subject, r.Subject)
		setIf(&c.Approver, r.Approver)
		setIf(&c.Reason, r.Reason)
		c.Error, c.Errno = r.Error, r.Errno
		if len(r.Values) > 0 {
			c.Values = r.Values
		}
		if r.Verify != nil {
			c.Verify = r.Verify
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Started.Before(out[b].Started) })
	return out
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// ChangeByID returns one change.
func (j *Journal) ChangeByID(id string) (Change, error) {
	recs, _, err := j.Records()
	if err != nil {
		return Change{}, err
	}
	for _, c := range Changes(recs) {
		if c.ID == id {
			return c, nil
		}
	}
	return Change{}, fmt.Errorf("%w: change %q", ErrNotFound, id)
}

// ErrNotFound: no such proposal, approval or change.
var ErrNotFound = errors.New("not found")

// ProposalState is the latest journaled state of a proposal that has no
// change after it: proposed, approved, denied or refused (with the guard).
type ProposalState struct {
	Proposal string    `json:"proposal"`
	State    State     `json:"state"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host,omitempty"`
	Netns    string    `json:"netns,omitempty"`
	Finding  string    `json:"finding,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	Values   []Value   `json:"values,omitempty"`
	Approver string    `json:"approver,omitempty"`
	Guard    string    `json:"guard,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// OpenProposals folds the proposal-only records (no change id) into the
// latest state of each proposal, leaving out proposals whose latest record
// is a change's: those are shown by Changes. Oldest first.
func OpenProposals(recs []Record) []ProposalState {
	idx := map[string]int{}
	var out []ProposalState
	changed := map[string]time.Time{}
	for _, r := range recs {
		if r.Change != "" {
			changed[r.Proposal] = r.Time
			continue
		}
		i, ok := idx[r.Proposal]
		if !ok {
			i = len(out)
			idx[r.Proposal] = i
			out = append(out, ProposalState{Proposal: r.Proposal})
		}
		p := &out[i]
		p.State, p.Time, p.Guard, p.Reason = r.State, r.Time, r.Guard, r.Reason
		setIf(&p.Host, r.Host)
		setIf(&p.Netns, r.Netns)
		setIf(&p.Finding, r.Finding)
		setIf(&p.Subject, r.Subject)
		if r.Approver != "" {
			p.Approver = r.Approver
		}
		if len(r.Values) > 0 {
			p.Values = r.Values
		}
	}
	var open []ProposalState
	for _, p := range out {
		if t, ok := changed[p.Proposal]; ok && !t.Before(p.Time) {
			continue
		}
		open = append(open, p)
	}
	return open
}
