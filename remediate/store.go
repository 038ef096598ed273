package remediate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sockwarden/sockwarden/diagnose"
)

// Approver is who approved a proposal: a person or a standing rule from
// config. A person is the real uid of the process that approved (and its
// name), the effective uid when it differs, and the login uid the kernel
// keeps for the session (/proc/self/loginuid: who logged in, whatever su or
// sudo came after). SUDO_USER is an environment variable anyone can set: it
// is recorded, but only as a claim.
type Approver struct {
	UID  int    `json:"uid"`
	User string `json:"user,omitempty"`
	// EUID is the effective uid, when it differs from UID.
	EUID *int `json:"euid,omitempty"`
	// LoginUID is the audit login uid; nil when unset (4294967295: no
	// login session, e.g. a service) or unreadable.
	LoginUID  *uint32 `json:"loginuid,omitempty"`
	LoginUser string  `json:"login_user,omitempty"`
	// SudoUser is what SUDO_USER said: a claim, not a fact.
	SudoUser string `json:"sudo_user,omitempty"`
	// Standing is the standing rule of record ("net.core.somaxconn<=16384")
	// when no person approved.
	Standing string `json:"standing,omitempty"`
}

func (a Approver) String() string {
	if a.Standing != "" {
		return "standing:" + a.Standing
	}
	s := fmt.Sprintf("uid %d (%s)", a.UID, orStr(a.User, "?"))
	if a.EUID != nil {
		s += fmt.Sprintf(", euid %d", *a.EUID)
	}
	if a.LoginUID != nil {
		s += fmt.Sprintf(", loginuid %d (%s)", *a.LoginUID, orStr(a.LoginUser, "?"))
	}
	if a.SudoUser != "" {
		// Quoted without its quotes: an environment variable may hold
		// a newline, which must not reach a log or history line.
		q := strconv.Quote(a.SudoUser)
		s += ", claims SUDO_USER=" + q[1:len(q)-1]
	}
	return s
}

func orStr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// CurrentApprover is the calling user: real uid, effective uid when it
// differs, the login uid, and SUDO_USER as a claim.
func CurrentApprover() Approver {
	a := Approver{UID: os.Getuid(), SudoUser: os.Getenv("SUDO_USER")}
	a.User = userName(a.UID)
	if eu := os.Geteuid(); eu != a.UID {
		a.EUID = &eu
	}
	if id, ok := readLoginUID("/proc/self/loginuid"); ok {
		a.LoginUID = &id
		a.LoginUser = userName(int(id))
	}
	return a
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return ""
}

// readLoginUID reads an audit login uid; 4294967295 ((uid_t)-1) means
// unset.
func readLoginUID(path string) (uint32, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil || n == 4294967295 {
		return 0, false
	}
	return uint32(n), true
}

// Approval is an operator's decision about one proposal id. The id covers
// host, namespace, finding, subject, keys, current and proposed values, so
// an approval cannot be carried over to a different current value.
type Approval struct {
	Proposal string            `json:"proposal"`
	Host     string            `json:"host"`
	Netns    string            `json:"netns,omitempty"`
	Changes  []diagnose.Change `json:"changes"`
	Approver Approver          `json:"approver"`
	Comment  string            `json:"comment,omitempty"`
	// AllowRestart lets sockwarden restart the listener's systemd unit
	// (when config remediate.restart_unit is on too).
	AllowRestart bool      `json:"allow_restart,omitempty"`
	Created      time.Time `json:"created"`
	Expires      time.Time `json:"expires"`
	// Denied records a deny: the proposal must not be applied.
	Denied bool `json:"denied,omitempty"`
	// UsedBy is the change that consumed the approval (used once).
	UsedBy string    `json:"used_by,omitempty"`
	UsedAt time.Time `json:"used_at,omitzero"`
}

// Pending is a proposal recorded for approval.
type Pending struct {
	Proposal diagnose.Proposal `json:"proposal"`
	// Side of the finding behind the proposal, as diagnosed.
	Side diagnose.Side `json:"side"`
	// Recorded is when it was first recorded, LastSeen the latest
	// diagnosis that produced it again.
	Recorded time.Time `json:"recorded"`
	LastSeen time.Time `json:"last_seen"`
	// Source says who recorded it ("sockwarden propose", "agent").
	Source string `json:"source,omitempty"`
}

// Store keeps pending proposals and approvals. The local implementation is
// FileStore; a fleet's is EtcdStore, shared by every host.
type Store interface {
	// RecordProposal stores p; recording the same id again keeps the
	// first Recorded time and updates LastSeen.
	RecordProposal(p Pending) error
	Proposal(id string) (Pending, error)
	Proposals() ([]Pending, error)
	// PutApproval stores (replaces) the decision for a.Proposal.
	PutApproval(a Approval) error
	Approval(id string) (Approval, error)
	// UseApproval marks the approval of id used by change, atomically:
	// of two concurrent callers exactly one succeeds; the other gets
	// ErrApprovalUsed.
	// An approval that is denied or expired at now is not used either
	// (ErrApprovalDenied, ErrApprovalExpired).
	UseApproval(id, change string, now time.Time) (Approval, error)
}

// Approval errors.
var (
	ErrApprovalUsed    = errors.New("approval already used")
	ErrApprovalDenied  = errors.New("proposal denied")
	ErrApprovalExpired = errors.New("approval expired")
	ErrBadID           = errors.New("invalid id")
)

// Usable says whether the approval may be used at now: not a denial, not
// used already, not expired. It is the one definition of "approved": every
// Store's UseApproval, the engine's guard 4, the agent and the CLI's
// proposal list ask it. The error wraps ErrApprovalDenied, ErrApprovalUsed
// or ErrApprovalExpired.
func (a Approval) Usable(now time.Time) error {
	switch {
	case a.Denied:
		return fmt.Errorf("%w: proposal %s was denied by %s", ErrApprovalDenied, a.Proposal, a.Approver)
	case a.UsedBy != "":
		return fmt.Errorf("%w: the approval of %s was already used by change %s at %s; approvals are used once",
			ErrApprovalUsed, a.Proposal, a.UsedBy, a.UsedAt.Format(time.RFC3339))
	case a.Expires.IsZero() || !now.Before(a.Expires):
		return fmt.Errorf("%w: the approval of %s expired at %s", ErrApprovalExpired, a.Proposal, a.Expires.Format(time.RFC3339))
	}
	return nil
}

// idRE is compiled on first use: its {0,127} unrolls into 127 nested
// alternatives, ~1,700 allocations of package init that every command
// paid, a census included (docs/PERFORMANCE.md, "Start-up").
var idRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`) })

// ValidID checks a proposal or change id before it becomes a file name.
func ValidID(id string) error {
	if !idRE().MatchString(id) || strings.Contains(id, "..") {
		return fmt.Errorf("%w: %q", ErrBadID, id)
	}
	return nil
}

// FileStore is the local Store: one JSON file per proposal and per
// approval under the state directory, root-only (0700 directories, 0600
// files), written atomically.
type FileStore struct {
	dir string
}

var _ Store = (*FileStore)(nil)

// OpenFileStore opens the store under stateDir (see OpenStateDir).
func OpenFileStore(stateDir string) (*FileStore, error) {
	if err := OpenStateDir(stateDir); err != nil {
		return nil, err
	}
	for _, d := range []string{"proposals", "approvals", "locks"} {
		if _, err := subdir(stateDir, d); err != nil {
			return nil, err
		}
	}
	return &FileStore{dir: stateDir}, nil
}

func (s *FileStore) file(kind, id string) (string, error) {
	if err := ValidID(id); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, kind, id+".json"), nil
}

func (s *FileStore) lock() (*fileLock, error) {
	return waitLock(filepath.Join(s.dir, "locks", "store.lock"))
}

func (s *FileStore) read(kind, id string, v any) error {
	p, err := s.file(kind, id)
	if err != nil {
		return err
	}
	if err := checkOwned(p, false); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s %s", ErrNotFound, strings.TrimSuffix(kind, "s"), id)
		}
		return err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

func (s *FileStore) write(kind, id string, v any) error {
	p, err := s.file(kind, id)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(p, append(b, '\n'))
}

// RecordProposal implements Store.
func (s *FileStore) RecordProposal(p Pending) error {
	l, err := s.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	var old Pending
	if err := s.read("proposals", p.Proposal.ID, &old); err == nil && !old.Recorded.IsZero() {
		p.Recorded = old.Recorded
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if p.Recorded.IsZero() {
		p.Recorded = time.Now().UTC()
	}
	if p.LastSeen.IsZero() {
		p.LastSeen = p.Recorded
	}
	return s.write("proposals", p.Proposal.ID, p)
}

// Proposal implements Store.
func (s *FileStore) Proposal(id string) (Pending, error) {
	var p Pending
	err := s.read("proposals", id, &p)
	if err == nil && p.Proposal.ID != id {
		return Pending{}, fmt.Errorf("%w: proposal file %s holds id %q", ErrUnsafeState, id, p.Proposal.ID)
	}
	return p, err
}

// Proposals implements Store; newest first.
func (s *FileStore) Proposals() ([]Pending, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "proposals"))
	if err != nil {
		return nil, err
	}
	var out []Pending
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p, err := s.Proposal(id)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Recorded.After(out[j].Recorded) })
	return out, nil
}

// PutApproval implements Store.
func (s *FileStore) PutApproval(a Approval) error {
	l, err := s.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	return s.write("approvals", a.Proposal, a)
}

// Approval implements Store.
func (s *FileStore) Approval(id string) (Approval, error) {
	var a Approval
	err := s.read("approvals", id, &a)
	if err == nil && a.Proposal != id {
		return Approval{}, fmt.Errorf("%w: approval file %s holds id %q", ErrUnsafeState, id, a.Proposal)
	}
	return a, err
}

// UseApproval implements Store.
func (s *FileStore) UseApproval(id, change string, now time.Time) (Approval, error) {
	l, err := s.lock()
	if err != nil {
		return Approval{}, err
	}
	defer l.Unlock()
	a, err := s.Approval(id)
	if err != nil {
		return Approval{}, err
	}
	if err := a.Usable(now); err != nil {
		return a, err
	}
	a.UsedBy, a.UsedAt = change, now.UTC()
	return a, s.write("approvals", id, a)
}
