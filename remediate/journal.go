package remediate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// StateUnproven closes a change whose namespace its journal cannot
	// prove (damaged or foreign records): nothing was written back; the
	// reason says how to restore it by hand.
	StateUnproven State = "unproven"
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
	// NetnsID and NetnsDev are the namespace's inode and device when the
	// change was made (see NetnsIdentity): a namespace path reused by a
	// new namespace is not ours. Every record of a change carries them
	// with Host and Netns, so that no single unreadable line leaves a
	// change whose namespace must be guessed.
	NetnsID  uint64  `json:"netns_id,omitempty"`
	NetnsDev uint64  `json:"netns_dev,omitempty"`
	Finding  string  `json:"finding,omitempty"`
	Subject  string  `json:"subject,omitempty"`
	Values   []Value `json:"values,omitempty"`
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
	// Persist, on the verifying record, names the sysctl.d files a
	// verified change will write and what each held before, so that a
	// rollback (by hand, or of a change killed while persisting) puts
	// them back.
	Persist []PersistNote `json:"persist,omitempty"`
}

// PersistNote is one sysctl.d file a change writes when verified, and its
// content before (Existed false: there was none).
type PersistNote struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed,omitempty"`
	Before  string `json:"before,omitempty"`
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
	l, err := waitLock(j.path + ".lock")
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
	if r.Change != "" {
		faultPoint("append-" + string(r.State) + "-unsynced")
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%w: fsync: %w", ErrJournal, err)
	}
	if r.Change != "" {
		faultPoint("append-" + string(r.State))
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

// MaxJournalLine is the longest journal line read. A longer line is not a
// record sockwarden wrote (the largest are a few KiB): it is skipped, named,
// and reading goes on, so that one damaged line never wedges every command.
const MaxJournalLine = 16 << 20

// Records reads every record in order. A line that is not a record (torn by
// a crash mid-append, damaged, over MaxJournalLine) is skipped and counted
// in bad; Read names each.
func (j *Journal) Records() (recs []Record, bad int, err error) {
	recs, damage, err := j.Read()
	return recs, len(damage), err
}

// Read is Records with a note per skipped line naming the file and the
// line number.
func (j *Journal) Read() (recs []Record, damage []string, err error) {
	f, err := os.Open(j.path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	defer f.Close()
	return readRecords(f, j.path, MaxJournalLine)
}

func readRecords(rd io.Reader, name string, max int) (recs []Record, damage []string, err error) {
	br := bufio.NewReaderSize(rd, 64<<10)
	for n := 1; ; n++ {
		line, long, rerr := readLine(br, max)
		if rerr != nil && rerr != io.EOF {
			return recs, damage, fmt.Errorf("%w: %s line %d: %w", ErrJournal, name, n, rerr)
		}
		switch line = bytes.TrimSpace(line); {
		case long > 0:
			damage = append(damage, fmt.Sprintf("%s line %d: %d bytes, over the %d-byte line limit: skipped", name, n, long, max))
		case len(line) == 0:
		default:
			var r Record
			if err := json.Unmarshal(line, &r); err != nil {
				damage = append(damage, fmt.Sprintf("%s line %d: not a record (%v): skipped", name, n, err))
			} else {
				recs = append(recs, r)
			}
		}
		if rerr == io.EOF {
			return recs, damage, nil
		}
	}
}

// readLine reads one line of at most max bytes. A longer line is read to
// its end and dropped: long is its length then.
func readLine(br *bufio.Reader, max int) (line []byte, long int, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if long == 0 && len(line)+len(chunk) <= max {
			line = append(line, chunk...)
		} else {
			long += len(line) + len(chunk)
			line = nil
		}
		if err != bufio.ErrBufferFull {
			return line, long, err
		}
	}
}

// Change is the folded history of one change id.
type Change struct {
	ID       string `json:"change"`
	Proposal string `json:"proposal"`
	State    State  `json:"state"`
	Host     string `json:"host,omitempty"`
	Netns    string `json:"netns,omitempty"`
	NetnsID  uint64 `json:"netns_id,omitempty"`
	NetnsDev uint64 `json:"netns_dev,omitempty"`
	// TargetConflict says how two records of the change disagree on its
	// target (host, namespace path or identity): such a change is never
	// written back.
	TargetConflict string                 `json:"target_conflict,omitempty"`
	Finding        string                 `json:"finding,omitempty"`
	Subject        string                 `json:"subject,omitempty"`
	Values         []Value                `json:"values"`
	Approver       string                 `json:"approver,omitempty"`
	Reason         string                 `json:"reason,omitempty"`
	Error          string                 `json:"error,omitempty"`
	Errno          string                 `json:"errno,omitempty"`
	Started        time.Time              `json:"started"`
	Updated        time.Time              `json:"updated"`
	PID            int                    `json:"pid,omitempty"`
	Verify         *diagnose.Verification `json:"verify,omitempty"`
	// Persist: the sysctl.d files the change writes once verified.
	Persist []PersistNote `json:"persist,omitempty"`
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
		switch {
		case r.NetnsID != 0 && c.NetnsID == 0:
			// The first record that carries the target sets it.
			c.Host, c.Netns, c.NetnsID, c.NetnsDev = r.Host, r.Netns, r.NetnsID, r.NetnsDev
		case r.NetnsID != 0:
			if r.Host != c.Host || r.Netns != c.Netns || r.NetnsID != c.NetnsID || r.NetnsDev != c.NetnsDev {
				c.TargetConflict = fmt.Sprintf("%s record says %q %q net:[%d] dev %d, earlier ones %q %q net:[%d] dev %d",
					r.State, r.Host, r.Netns, r.NetnsID, r.NetnsDev, c.Host, c.Netns, c.NetnsID, c.NetnsDev)
			}
		case c.NetnsID == 0:
			// Records without a target (journals written before every
			// record carried one) inform, never prove.
			setIf(&c.Host, r.Host)
			setIf(&c.Netns, r.Netns)
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
		if len(r.Persist) > 0 {
			c.Persist = r.Persist
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
