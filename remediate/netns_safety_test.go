package remediate

// Issue 12 against real namespaces: the lock is per namespace whatever path
// names it, persistence is for the host's namespace only, and a damaged
// journal never steers a write into another namespace. Each test makes its
// own throwaway namespaces; a test that must run "in a namespace that is not
// the host's" re-executes itself under `unshare -n`, so that even a bug
// could only write a namespace that dies with the child.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/internal/netns"
	"github.com/sockwarden/sockwarden/sample"
)

func needUnshare(t *testing.T) {
	t.Helper()
	needRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
}

// throwawayNetns makes a namespace for the test, released at its end.
func throwawayNetns(t *testing.T, tag string) string {
	t.Helper()
	path, release, err := netns.New(fmt.Sprintf("sw-%s-%d", tag, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release() })
	return path
}

// childInNewNetns runs this test binary's test named run in a fresh network
// namespace (unshare -n) with env added, and returns its output.
func childInNewNetns(t *testing.T, run string, env ...string) string {
	t.Helper()
	cmd := exec.Command("unshare", "--net", os.Args[0], "-test.run", "^"+run+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", run, err, out)
	}
	return string(out)
}

func resultLine(out string) []string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			return strings.Fields(rest)
		}
	}
	return nil
}

// pausingStore holds UseApproval (the step after every guard passed, before
// the write) until release is closed.
type pausingStore struct {
	Store
	reached chan struct{}
	release chan struct{}
}

func (s *pausingStore) UseApproval(id, change string, now time.Time) (Approval, error) {
	close(s.reached)
	<-s.release
	return s.Store.UseApproval(id, change, now)
}

// One apply per namespace, whatever path names it and whatever state
// directory each process has: apply A (by /run/netns/NAME) stops after its
// guards, before its write; applies B (by /proc/PID/ns/net) and C (by a bind
// mount elsewhere), each with its own state directory and an approved
// proposal of its own, are refused by the namespace lock and write nothing.
// Before the fix the lock was keyed by the path string inside the state
// directory: B and C passed every guard and wrote.
func TestNetnsOneApplyPerNamespace(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter (util-linux)")
	}
	nsA := throwawayNetns(t, "lock")
	// The same namespace by a process's file...
	holder := exec.Command("nsenter", "--net="+nsA, "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	nsB := fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	// ...and by a bind mount of its own.
	nsC := filepath.Join(t.TempDir(), "ns")
	os.WriteFile(nsC, nil, 0o444)
	if err := unix.Mount(nsA, nsC, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(nsC, unix.MNT_DETACH) })

	w := newWorld(t)
	w.relisten = true
	apply := func(e *Engine, ns string) (string, func() (Outcome, error)) {
		p := w.proposal("128")
		p.ID, p.Netns = "p-"+filepath.Base(filepath.Dir(ns))+"-"+filepath.Base(ns), ns
		if err := e.Store().RecordProposal(Pending{Proposal: p, Side: "kernel"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Approve(p.ID, ApproveOptions{}); err != nil {
			t.Fatal(err)
		}
		return p.ID, func() (Outcome, error) { return e.Apply(context.Background(), p.ID, ApplyOptions{}) }
	}
	st, _ := OpenFileStore(filepath.Join(t.TempDir(), "store-a"))
	ps := &pausingStore{Store: st, reached: make(chan struct{}), release: make(chan struct{})}
	w.store = ps
	eA := w.engine(nil)
	w.store = nil
	_, applyA := apply(eA, nsA)
	type res struct {
		out Outcome
		err error
	}
	doneA := make(chan res, 1)
	go func() { o, err := applyA(); doneA <- res{o, err} }()
	select {
	case <-ps.reached:
	case r := <-doneA:
		t.Fatalf("apply A ended before its write: %s (%s) %v", r.out.State, r.out.Reason, r.err)
	}

	for _, ns := range []string{nsB, nsC} {
		e := w.engine(nil) // a state directory of its own
		_, applyX := apply(e, ns)
		out, err := applyX()
		var busy *NetnsBusy
		if !errors.As(err, &busy) || out.State != StateRefused || out.Change != "" {
			close(ps.release)
			t.Fatalf("apply by %s while A holds the namespace: %s (%s) %v; want refused by the namespace lock", ns, out.State, out.Reason, err)
		}
		t.Logf("by %s: %s", ns, out.Reason)
		recs, _, _ := e.Journal().Records()
		for _, r := range recs {
			if r.Change != "" {
				t.Errorf("apply by %s journaled a change: %+v", ns, r)
			}
		}
	}
	close(ps.release)
	r := <-doneA
	if r.err != nil || r.out.State != StateVerified || w.somaxconn() != "1024" {
		t.Fatalf("apply A: %s (%s) %v, somaxconn %s", r.out.State, r.out.Reason, r.err, w.somaxconn())
	}
	// Released and removed: the next apply may take it.
	ents, _ := os.ReadDir(w.lockDir)
	if len(ents) != 0 {
		t.Fatalf("lock files left behind: %v", ents)
	}
}

// The lock file is not followed through a symlink, and one owned by
// someone else or readable by others is refused.
func TestNetnsLockFileChecks(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "locks")
	id := NetnsIdentity{Dev: 4, Ino: 12345}
	path := filepath.Join(dir, "netns-4-12345.lock")
	os.MkdirAll(dir, 0o700)
	target := filepath.Join(t.TempDir(), "elsewhere")
	os.WriteFile(target, nil, 0o600)
	os.Symlink(target, path)
	if _, err := lockNetns(dir, id); !errors.Is(err, ErrUnsafeState) {
		t.Fatalf("symlinked lock: %v, want ErrUnsafeState", err)
	}
	os.Remove(path)
	os.WriteFile(path, nil, 0o600)
	os.Chown(path, 65534, 65534)
	if _, err := lockNetns(dir, id); !errors.Is(err, ErrUnsafeState) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("foreign lock: %v", err)
	}
	os.Chown(path, 0, 0)
	os.Chmod(path, 0o644)
	if _, err := lockNetns(dir, id); !errors.Is(err, ErrUnsafeState) {
		t.Fatalf("readable lock: %v", err)
	}
	os.Chmod(path, 0o600)
	l, err := lockNetns(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockNetns(dir, id); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second lock: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	l.Unlock()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file not removed: %v", err)
	}
}

// persistChild applies a verified somaxconn change in its own namespace
// (fake /proc/sys, so only the persist decision is at stake) and reports
// whether the sysctl.d file was written.
func persistChild(t *testing.T, hostNetns string) (written bool, reason string) {
	w := newWorld(t)
	w.relisten = true
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Verify.Window, cfg.Verify.Interval, cfg.Verify.MinCleanIntervals = 250*time.Millisecond, 10*time.Millisecond, 2
	cfg.Remediate.Persist, cfg.Remediate.PersistDir = true, dir
	e, err := New(Options{Config: cfg, Host: w.host, ProcSys: w.root, Sampler: w, Diagnose: w.diagnose, LockDir: w.lockDir, HostNetns: hostNetns, Clock: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	id := w.propose(e)
	e.Approve(id, ApproveOptions{})
	out, err := e.Apply(context.Background(), id, ApplyOptions{})
	if err != nil || out.State != StateVerified {
		t.Fatalf("apply: %s (%s) %v", out.State, out.Reason, err)
	}
	_, err = os.Stat(filepath.Join(dir, PersistFile("net.core.somaxconn")))
	return err == nil, out.Reason
}

// Persistence is for the host's namespace only, by identity: a sockwarden
// inside `unshare -n` (as under `ip netns exec`), given no --netns, does not
// write the host's sysctl.d. Before the fix "no --netns" was taken as "the
// host" and the child wrote the file.
func TestNetnsPersistOnlyHostNamespace(t *testing.T) {
	if os.Getenv("SW_TEST_PERSIST_CHILD") != "" {
		written, reason := persistChild(t, os.Getenv("SW_TEST_PERSIST_HOST"))
		fmt.Printf("RESULT %v %s\n", written, strings.ReplaceAll(reason, " ", "_"))
		return
	}
	needUnshare(t)
	// The host stand-in is this process's namespace (PID 1's may be
	// unreadable to a test in a container): a positive control first.
	self := fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	if written, reason := persistChild(t, self); !written {
		t.Fatalf("in the host's namespace: not persisted: %s", reason)
	}
	for _, host := range []string{self, ""} {
		f := resultLine(childInNewNetns(t, "TestNetnsPersistOnlyHostNamespace", "SW_TEST_PERSIST_CHILD=1", "SW_TEST_PERSIST_HOST="+host))
		if len(f) != 2 {
			t.Fatalf("child (host %q) gave no result", host)
		}
		if f[0] != "false" || !strings.Contains(f[1], "not_persisted") {
			t.Fatalf("inside unshare -n (host namespace %q): persisted %s: %s", orStr(host, "PID 1's"), f[0], f[1])
		}
		t.Logf("host %q: %s", orStr(host, "PID 1's"), strings.ReplaceAll(f[1], "_", " "))
	}
}

// A damaged journal never steers a write elsewhere. A change to namespace
// A (somaxconn 64 -> 256) is killed during verification; its applying
// line, the only one that named A before the fix, is then damaged. resolve,
// run from another namespace B whose somaxconn happens to be 256 too, must
// roll A back and leave B alone. Before the fix it rolled B back to 64 and
// left A at 256, and the journal said rolled-back.
func TestNetnsDamagedJournalNeverSteersWrite(t *testing.T) {
	state, nsA := os.Getenv("SW_TEST_DMG_STATE"), os.Getenv("SW_TEST_DMG_NS")
	switch os.Getenv("SW_TEST_DMG_PHASE") {
	case "apply":
		damagedJournalApply(t, state, nsA)
		return
	case "resolve":
		sc := Sysctl{}
		if _, err := sc.Set("net.core.somaxconn", "256"); err != nil {
			t.Fatal(err)
		}
		e, err := New(Options{Config: damagedJournalConfig(state), Host: "h1", LockDir: filepath.Join(state, "run-locks")})
		if err != nil {
			t.Fatal(err)
		}
		outs, err := e.Resolve(context.Background())
		own, _ := sc.Read("net.core.somaxconn")
		st := "none"
		if len(outs) == 1 {
			st = string(outs[0].State)
		}
		fmt.Printf("RESULT %s %s\n", own, st)
		t.Logf("resolve: %+v %v", outs, err)
		return
	}
	needUnshare(t)
	hostGuard(t)
	nsA = throwawayNetns(t, "dmg")
	a := Sysctl{Netns: nsA}
	if _, err := a.Set("net.core.somaxconn", "64"); err != nil {
		t.Fatal(err)
	}
	state = filepath.Join(t.TempDir(), "state")
	env := []string{"SW_TEST_DMG_STATE=" + state, "SW_TEST_DMG_NS=" + nsA}
	childInNewNetns(t, "TestNetnsDamagedJournalNeverSteersWrite", append(env, "SW_TEST_DMG_PHASE=apply")...)
	if got, _ := a.Read("net.core.somaxconn"); got != "256" {
		t.Fatalf("after the killed apply: somaxconn in A %s, want 256", got)
	}
	// Damage the applying line in place (same length, not JSON).
	jp := filepath.Join(state, JournalFile)
	b, _ := os.ReadFile(jp)
	lines := bytes.SplitAfter(b, []byte("\n"))
	damaged := false
	for i, l := range lines {
		if bytes.Contains(l, []byte(`"state":"applying"`)) {
			lines[i] = append(bytes.Repeat([]byte("#"), len(l)-1), '\n')
			damaged = true
		}
	}
	if !damaged {
		t.Fatalf("no applying line in the journal:\n%s", b)
	}
	os.WriteFile(jp, bytes.Join(lines, nil), 0o600)

	f := resultLine(childInNewNetns(t, "TestNetnsDamagedJournalNeverSteersWrite", append(env, "SW_TEST_DMG_PHASE=resolve")...))
	if len(f) != 2 {
		t.Fatal("resolve child gave no result")
	}
	gotA, _ := a.Read("net.core.somaxconn")
	if f[0] != "256" || gotA != "64" || f[1] != string(StateRolledBack) {
		t.Fatalf("after resolve: B (resolve's own namespace) %s, want 256 untouched; A %s, want 64 restored; outcome %s, want rolled-back", f[0], gotA, f[1])
	}
}

func damagedJournalConfig(state string) config.Config {
	cfg := config.Defaults()
	cfg.StateDir = state
	return cfg
}

// damagedJournalApply writes change c-dmg to nsA through the engine's own
// commit, then dies at the first verification sample as a kill -9 would
// (no deferred step runs).
func damagedJournalApply(t *testing.T, state, nsA string) {
	e, err := New(Options{Config: damagedJournalConfig(state), Host: "h1", LockDir: filepath.Join(state, "run-locks"),
		Sampler: SamplerFunc(func(context.Context, string, int, time.Duration) ([]*sample.Sample, error) {
			os.Exit(0)
			return nil, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	p := diagnose.Proposal{ID: "p-dmg", Host: "h1", Netns: nsA, Finding: diagnose.KindAcceptQueueOverflow, Subject: "x",
		Changes: []diagnose.Change{{Key: "net.core.somaxconn", Current: "64", Proposed: "256"}}}
	out, err := e.commit(context.Background(), "c-dmg", p, Approval{Approver: Approver{User: "root"}}, Target{}, nil, ApplyOptions{Window: time.Minute, Interval: time.Second})
	t.Fatalf("commit returned: %s %v", out.State, err)
}
