package remediate

// Unit tests of issue 12's safety items that need no namespace: a journal
// that cannot prove a change's target, a journal line over the limit,
// persistence undone by rollback, approvals against the journal.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/config"
)

// A change none of whose readable records carries its target (the applying
// line damaged, the rest from a journal that did not stamp every record) is
// left alone and reported, never rolled back in whatever namespace resolve
// happens to run in. Before the fix, Resolve restored somaxconn here
// (1024 -> 128).
func TestResolveUnprovenTargetLeftAlone(t *testing.T) {
	w := newWorld(t)
	e := w.engine(nil)
	vals := []Value{{Key: "net.core.somaxconn", Old: "128", New: "1024"}}
	j := e.Journal()
	// The applying record (which alone named the namespace) is torn.
	f, _ := os.OpenFile(j.Path(), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time":"2026-12-01T00:00:00Z","change":"c-9","proposal":"p","state":"applying","netns":"/run/netns/x","netn` + "\n")
	f.Close()
	for _, s := range []State{StateApplied, StateVerifying} {
		j.Append(Record{Change: "c-9", Proposal: "p", State: s, Values: vals, PID: 999999})
	}
	w.set("net.core.somaxconn", "1024")
	outs, err := e.Resolve(context.Background())
	if !errors.Is(err, ErrUnprovenTarget) || len(outs) != 1 {
		t.Fatalf("Resolve: %v, %d outcomes; want ErrUnprovenTarget and one outcome", err, len(outs))
	}
	if got := w.somaxconn(); got != "1024" {
		t.Fatalf("somaxconn %s: a change whose namespace cannot be proven was written back", got)
	}
	want := "cannot prove which namespace change c-9 touched: restore by hand: "
	if o := outs[0]; o.State != StateUnproven || !strings.HasPrefix(o.Reason, want) || !strings.Contains(o.Reason, `net.core.somaxconn="128"`) {
		t.Fatalf("outcome %s: %q; want unproven, %q..., naming the old value", o.State, o.Reason, want)
	}
	// Closed: reported once, not at every start.
	if outs, err := e.Resolve(context.Background()); len(outs) != 0 || err != nil {
		t.Fatalf("second Resolve: %d outcomes, %v", len(outs), err)
	}
	if c, _ := j.ChangeByID("c-9"); c.State != StateUnproven {
		t.Fatalf("journal state %s, want unproven", c.State)
	}
}

// Every record of a change carries the target: losing the applying line
// loses nothing about where the change was made.
func TestEveryChangeRecordCarriesTarget(t *testing.T) {
	w := newWorld(t)
	w.relisten = true
	e := w.engine(nil)
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	if err != nil || out.State != StateVerified {
		t.Fatalf("apply: %s %v", out.State, err)
	}
	own := ownTarget(t, e)
	recs, _, _ := e.Journal().Records()
	n := 0
	for _, r := range recs {
		if r.Change != out.Change {
			continue
		}
		n++
		if got := (Target{Host: r.Host, Netns: r.Netns, ID: NetnsIdentity{Dev: r.NetnsDev, Ino: r.NetnsID}}); got != own {
			t.Errorf("%s record carries target %+v, want %+v", r.State, got, own)
		}
	}
	if n != 4 {
		t.Fatalf("%d records of the change, want 4", n)
	}
}

// Two records of one change that disagree on the target prove nothing.
func TestChangesTargetConflict(t *testing.T) {
	recs := []Record{
		{Change: "c", State: StateApplying, Host: "h1", Netns: "/run/netns/a", NetnsID: 7, NetnsDev: 4},
		{Change: "c", State: StateApplied, Host: "h1", Netns: "/run/netns/b", NetnsID: 8, NetnsDev: 4},
	}
	c := Changes(recs)[0]
	if c.TargetConflict == "" || c.Netns != "/run/netns/a" {
		t.Fatalf("change %+v: want a conflict and the first target kept", c)
	}
	e := &Engine{opts: Options{Host: "h1"}}
	if _, err := e.proveTarget(c); !errors.Is(err, ErrUnprovenTarget) {
		t.Fatalf("proveTarget: %v, want ErrUnprovenTarget", err)
	}
}

// A line over the reader's limit names the file and line and is skipped;
// the records around it are read. Before the fix the scanner stopped with
// "token too long" and every command that reads the journal failed.
func TestJournalOverlongLineSkipped(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	j.Append(Record{Proposal: "p1", State: StateProposed})
	f, _ := os.OpenFile(j.Path(), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"proposal":"junk","reason":"` + strings.Repeat("x", MaxJournalLine+10) + "\"}\n")
	f.Close()
	j.Append(Record{Proposal: "p2", State: StateProposed})
	recs, damage, err := j.Read()
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Proposal)
	}
	if diff := cmp.Diff([]string{"p1", "p2"}, got); diff != "" {
		t.Fatalf("records (-want +got)\n%s", diff)
	}
	if len(damage) != 1 || !strings.Contains(damage[0], j.Path()+" line 2:") || !strings.Contains(damage[0], "over the") {
		t.Fatalf("damage %q: want one note naming %s line 2", damage, j.Path())
	}
	if _, bad, err := j.Records(); err != nil || bad != 1 {
		t.Fatalf("Records: bad %d, %v", bad, err)
	}
}

func TestReadRecordsLines(t *testing.T) {
	in := `{"proposal":"a","state":"proposed"}` + "\n" + `{"proposal":` + "\n\n" + strings.Repeat("y", 80) + "\n" + `{"proposal":"b","state":"proposed"}`
	recs, damage, err := readRecords(strings.NewReader(in), "j", 64)
	if err != nil || len(recs) != 2 || recs[1].Proposal != "b" {
		t.Fatalf("records %+v, %v", recs, err)
	}
	want := []string{"j line 2: not a record", "j line 4: 81 bytes"}
	if len(damage) != 2 || !strings.HasPrefix(damage[0], want[0]) || !strings.HasPrefix(damage[1], want[1]) {
		t.Fatalf("damage %q, want prefixes %q", damage, want)
	}
}

// Rollback of a verified, persisted change removes the sysctl.d file it
// wrote, or restores what the file held before. Before the fix the file
// stayed and the rolled-back value came back at the next boot.
func TestRollbackUndoesPersist(t *testing.T) {
	for _, before := range []string{"", "# an operator's own\nnet.core.somaxconn = 4096\n"} {
		t.Run(map[bool]string{true: "no file before", false: "file before"}[before == ""], func(t *testing.T) {
			w := newWorld(t)
			w.relisten = true
			dir := t.TempDir()
			file := filepath.Join(dir, PersistFile("net.core.somaxconn"))
			if before != "" {
				os.WriteFile(file, []byte(before), 0o644)
			}
			e := w.engine(func(c *config.Config) { c.Remediate.Persist = true; c.Remediate.PersistDir = dir })
			id := w.propose(e)
			e.Approve(id, ApproveOptions{})
			out, err := e.Apply(context.Background(), id, ApplyOptions{})
			if err != nil || out.State != StateVerified || out.Persisted != file {
				t.Fatalf("apply: %s (%s) persisted %q, %v", out.State, out.Reason, out.Persisted, err)
			}
			rb, err := e.Rollback(context.Background(), out.Change)
			if err != nil || rb.State != StateRolledBack || w.somaxconn() != "128" {
				t.Fatalf("rollback: %s (%s) %v", rb.State, rb.Reason, err)
			}
			b, err := os.ReadFile(file)
			switch {
			case before == "" && !errors.Is(err, os.ErrNotExist):
				t.Fatalf("%s still there after rollback (%q, %v)", file, b, err)
			case before != "" && string(b) != before:
				t.Fatalf("%s holds %q after rollback, want what it held before, %q", file, b, before)
			}
		})
	}
}

// intentStore checks, when an approval is used, that the journal already
// holds the change's write-ahead record.
type intentStore struct {
	Store
	j       *Journal
	checked bool
	err     error
}

func (s *intentStore) UseApproval(id, change string, now time.Time) (Approval, error) {
	s.checked = true
	if c, err := s.j.ChangeByID(change); err != nil || c.State != StateApplying {
		s.err = fmt.Errorf("approval of %s used by %s before the journal knew the change (%v)", id, change, err)
	}
	return s.Store.UseApproval(id, change, now)
}

// The approval is used only after the intent record is fsynced: a kill in
// between leaves a change the journal knows. Before the fix the approval
// was marked used first.
func TestApplyJournalsIntentBeforeUsingApproval(t *testing.T) {
	w := newWorld(t)
	w.relisten = true
	st, err := OpenFileStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	is := &intentStore{Store: st}
	w.store = is
	e := w.engine(nil)
	is.j = e.Journal()
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	if err != nil || out.State != StateVerified {
		t.Fatalf("apply: %s (%s) %v", out.State, out.Reason, err)
	}
	if !is.checked || is.err != nil {
		t.Fatalf("UseApproval called: %v; %v", is.checked, is.err)
	}
}

// A use that fails after the intent record (another process used the
// approval first) closes the change as refused, nothing written.
func TestApplyApprovalUsedAfterIntentRefused(t *testing.T) {
	w := newWorld(t)
	st, _ := OpenFileStore(filepath.Join(t.TempDir(), "store"))
	w.store = &raceStore{Store: st}
	e := w.engine(nil)
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	r := new(Refusal)
	if !errors.As(err, &r) || r.Guard != GuardApproval || !errors.Is(err, ErrApprovalUsed) || w.somaxconn() != "128" {
		t.Fatalf("apply: %s (%s) %v, somaxconn %s; want refused by guard 4, nothing written", out.State, out.Reason, err, w.somaxconn())
	}
	if h := states(t, e, out.Change); !cmp.Equal(h, []State{StateApplying, StateRefused}) {
		t.Fatalf("history %v, want applying, refused", h)
	}
}

// raceStore lets another process use the approval just before we do.
type raceStore struct{ Store }

func (s *raceStore) UseApproval(id, change string, now time.Time) (Approval, error) {
	s.Store.UseApproval(id, "c-other-process", now)
	return s.Store.UseApproval(id, change, now)
}

// deny or approve during verification changes nothing and says so, with
// what the change will do. Before the fix both returned nil (exit 0) and
// deny even erased the approval's used-by record.
func TestDenyApproveDuringVerificationInFlight(t *testing.T) {
	w := newWorld(t)
	w.relisten = true
	e := w.engine(nil)
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	var denyErr, approveErr error
	w.onVerifySample = func(n int) {
		if n == 1 {
			denyErr = e.Deny(id, "stop it")
			_, approveErr = e.Approve(id, ApproveOptions{})
		}
	}
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	if err != nil || out.State != StateVerified {
		t.Fatalf("apply: %s (%s) %v", out.State, out.Reason, err)
	}
	for name, err := range map[string]error{"deny": denyErr, "approve": approveErr} {
		if !errors.Is(err, ErrInFlight) || !strings.Contains(err.Error(), out.Change) || !strings.Contains(err.Error(), `"128" -> "1024"`) {
			t.Errorf("%s during verification: %v; want ErrInFlight naming %s and what it writes", name, err, out.Change)
		}
	}
	a, _ := e.Store().Approval(id)
	if a.Denied || a.UsedBy != out.Change {
		t.Fatalf("approval %+v: a deny in flight must change nothing", a)
	}
	recs, _, _ := e.Journal().Records()
	for _, r := range recs {
		if r.State == StateDenied {
			t.Fatalf("a deny in flight was journaled: %+v", r)
		}
	}
	// Settled: deny works again.
	if err := e.Deny(id, "later"); err != nil {
		t.Fatalf("deny after the change settled: %v", err)
	}
}

func TestApproveTTL(t *testing.T) {
	w := newWorld(t)
	e := w.engine(nil)
	id := w.propose(e)
	for _, ttl := range []time.Duration{-time.Hour, 169 * time.Hour} {
		if _, err := e.Approve(id, ApproveOptions{TTL: ttl}); !errors.Is(err, ErrBadTTL) {
			t.Errorf("--ttl %s: %v, want ErrBadTTL", ttl, err)
		}
	}
	if _, err := e.Store().Approval(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused --ttl stored an approval: %v", err)
	}
	a, err := e.Approve(id, ApproveOptions{})
	if err != nil || a.Expires.Sub(a.Created) != time.Hour {
		t.Fatalf("default ttl: %v %v", a.Expires.Sub(a.Created), err)
	}
}

func TestApproverString(t *testing.T) {
	one, alice := 1000, uint32(1000)
	tests := []struct {
		a    Approver
		want string
	}{
		{Approver{UID: 0, User: "root"}, "uid 0 (root)"},
		{Approver{UID: 0, User: "root", LoginUID: &alice, LoginUser: "alice", SudoUser: "alice"}, "uid 0 (root), loginuid 1000 (alice), claims SUDO_USER=alice"},
		{Approver{UID: 1000, User: "bob", EUID: new(int), SudoUser: "x\ny"}, `uid 1000 (bob), euid 0, claims SUDO_USER=x\ny`},
		{Approver{UID: one}, "uid 1000 (?)"},
		{Approver{Standing: "net.core.somaxconn<=16384"}, "standing:net.core.somaxconn<=16384"},
	}
	for _, tc := range tests {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.a, got, tc.want)
		}
	}
	dir := t.TempDir()
	for in, want := range map[string]int64{"1000\n": 1000, "4294967295": -1, "junk": -1} {
		p := filepath.Join(dir, "loginuid")
		os.WriteFile(p, []byte(in), 0o600)
		got, ok := readLoginUID(p)
		if (want < 0) == ok || (ok && int64(got) != want) {
			t.Errorf("loginuid %q: %d %v, want %d", in, got, ok, want)
		}
	}
	// The approver of record is the real uid, not SUDO_USER.
	t.Setenv("SUDO_USER", "mallory")
	a := CurrentApprover()
	if a.UID != os.Getuid() || !strings.Contains(a.String(), "claims SUDO_USER=mallory") || strings.HasPrefix(a.String(), "mallory") {
		t.Fatalf("CurrentApprover %+v: %q", a, a.String())
	}
}

// resolve leaves a change open, and says so, while another process holds
// its namespace's lock (an apply verifying there): restoring under it would
// confuse that apply's verification.
func TestResolveLeavesBusyNamespace(t *testing.T) {
	w := newWorld(t)
	e := w.engine(nil)
	vals := []Value{{Key: "net.core.somaxconn", Old: "128", New: "1024"}}
	r := Record{Change: "c-busy", Proposal: "p", State: StateVerifying, Values: vals, PID: 999999}
	own := ownTarget(t, e)
	own.stamp(&r)
	e.Journal().Append(r)
	w.set("net.core.somaxconn", "1024")
	l, err := lockNetns(w.lockDir, own.ID)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := e.Resolve(context.Background())
	if err != nil || len(outs) != 1 || !strings.Contains(outs[0].Reason, "left open") || w.somaxconn() != "1024" {
		t.Fatalf("Resolve under a busy namespace: %+v %v, somaxconn %s", outs, err, w.somaxconn())
	}
	l.Unlock()
	outs, err = e.Resolve(context.Background())
	if err != nil || len(outs) != 1 || outs[0].State != StateRolledBack || w.somaxconn() != "128" {
		t.Fatalf("Resolve once free: %+v %v, somaxconn %s", outs, err, w.somaxconn())
	}
}

// A persisted value must be the one the host boots with. Files applied
// after 90-sockwarden-KEY.conf at boot (a later name in any sysctl.d
// directory, a name not hidden by an earlier directory, /etc/sysctl.conf)
// that set the same key would undo it: those are found, and the change is
// then verified and kept but not persisted, saying which line to change.
func TestPersistBootOrder(t *testing.T) {
	key := "net.core.somaxconn"
	for _, tc := range []struct {
		name  string
		files map[string]string // path under the root -> content
		want  []string          // paths under the root that override
	}{
		{"nothing else", nil, nil},
		{"sysctl.conf", map[string]string{"etc/sysctl.conf": "# tuned\nnet.core.somaxconn = 1024\n"}, []string{"etc/sysctl.conf:2"}},
		{"later name, slash form", map[string]string{"usr/lib/sysctl.d/99-vendor.conf": "-net/core/somaxconn=512\n"}, []string{"usr/lib/sysctl.d/99-vendor.conf:1"}},
		{"earlier name", map[string]string{"usr/lib/sysctl.d/10-vendor.conf": "net.core.somaxconn = 512\n"}, nil},
		{"other key", map[string]string{"etc/sysctl.d/99-x.conf": "net.core.somaxconn_x = 1\nnet.ipv4.tcp_syncookies = 1\n"}, nil},
		{"hidden by /etc", map[string]string{
			"etc/sysctl.d/99-vendor.conf":     "# masked\n",
			"usr/lib/sysctl.d/99-vendor.conf": "net.core.somaxconn = 512\n",
		}, nil},
		{"debian link counted once", map[string]string{
			"etc/sysctl.conf":              "net.core.somaxconn = 1024\n",
			"etc/sysctl.d/99-sysctl.conf@": "../sysctl.conf",
		}, []string{"etc/sysctl.d/99-sysctl.conf:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range []string{"etc/sysctl.d", "usr/lib/sysctl.d"} {
				os.MkdirAll(filepath.Join(root, d), 0o755)
			}
			for p, body := range tc.files {
				if link, ok := strings.CutSuffix(p, "@"); ok {
					if err := os.Symlink(body, filepath.Join(root, link)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.WriteFile(filepath.Join(root, p), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			saved := bootSysctlDirs
			bootSysctlDirs = []string{filepath.Join(root, "usr/lib/sysctl.d")}
			t.Cleanup(func() { bootSysctlDirs = saved })
			got, err := bootOverrides(filepath.Join(root, "etc/sysctl.d"), key)
			if err != nil {
				t.Fatal(err)
			}
			var where []string
			for _, g := range got {
				where = append(where, strings.TrimPrefix(strings.Fields(g)[0], root+"/"))
			}
			if diff := cmp.Diff(tc.want, where); diff != "" {
				t.Errorf("(-want +got):\n%s\n%q", diff, got)
			}
		})
	}

	// Through the engine: verified and kept, not persisted, the line named.
	w := newWorld(t)
	w.relisten = true
	root := t.TempDir()
	dir := filepath.Join(root, "sysctl.d")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(root, "sysctl.conf"), []byte("net.core.somaxconn = 1024\n"), 0o644)
	saved := bootSysctlDirs
	bootSysctlDirs = nil
	t.Cleanup(func() { bootSysctlDirs = saved })
	e := w.engine(func(c *config.Config) { c.Remediate.Persist = true; c.Remediate.PersistDir = dir })
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	if err != nil || out.State != StateVerified || out.Persisted != "" {
		t.Fatalf("apply: %s (%s) persisted %q, %v", out.State, out.Reason, out.Persisted, err)
	}
	if _, err := os.Stat(filepath.Join(dir, PersistFile(key))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s written although sysctl.conf overrides it at boot: %v", PersistFile(key), err)
	}
	if !strings.Contains(out.Reason, "sysctl.conf:1 sets net.core.somaxconn = 1024") {
		t.Errorf("reason does not name the overriding line: %q", out.Reason)
	}
}
