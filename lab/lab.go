// Package lab makes real TCP pathologies in throwaway network namespaces, so
// that every verdict of diagnose and every guard of remediate is proven on
// the running kernel rather than on fixtures.
//
// Each scenario gets a namespace of its own (internal/netns.New, pinned at
// /run/netns/sw-lab-...), sets its sysctls and firewall rules inside that
// namespace only, and starts the "application" as a child process inside
// it: the sockwarden binary (or the test binary) re-executed with a role in
// the SOCKWARDEN_LAB_CHILD environment variable. The child names itself
// (comm "backlog-app", "leaky-app" ...) so that owners show up in `ss -p`
// and in samples, may lower its own RLIMIT_NOFILE, generates its own load on
// 127.0.0.1 inside the namespace and exits by itself at its deadline.
//
// A scenario stops when its Duration ends, when the context given to Start
// is done, or when Stop is called, whichever comes first; stopping kills the
// child and removes the namespace, and with it every socket, sysctl and
// iptables rule the scenario made. Nothing is changed outside the namespace.
//
// Options.Netns builds a scenario in an existing namespace instead (a
// container's own, for instance): the machine's initial namespace is
// refused before anything is written, scenarios with firewall rules are
// refused, the old value of every sysctl set is recorded and written back
// on Stop, and the namespace itself is left in place.
package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/internal/netns"
)

// Sentinel errors.
var (
	// ErrUnknownScenario: the name is not one of Scenarios().
	ErrUnknownScenario = errors.New("unknown lab scenario")
	// ErrLab wraps failures to build a scenario.
	ErrLab = errors.New("lab")
)

// DefaultDuration bounds a scenario whose Options.Duration is zero.
const DefaultDuration = 10 * time.Minute

// ListenIP is where every scenario's application listens, inside its own
// namespace, each scenario on a port of its own (Scenario.Port): the kernel
// log is shared by all namespaces, and a distinct port keeps a SYN-flooding
// line of one scenario from being read as another's.
const ListenIP = "127.0.0.1"

// Options tune a scenario run.
type Options struct {
	// Duration bounds the scenario's life: it stops by itself after it
	// (DefaultDuration when zero).
	Duration time.Duration
	// Relisten makes the lab application call listen() again on its
	// listening socket when the namespace's net.core.somaxconn changes,
	// as a reload would, so that a somaxconn change can take effect.
	Relisten bool
	// Log receives progress and the child's stderr (debug). Nil: none.
	Log *zap.Logger
	// Netns, when set, is an existing network namespace (a path such as
	// /run/netns/NAME, /proc/PID/ns/net or a container's own
	// /proc/self/ns/net) to build the scenario in, instead of a fresh
	// throwaway one. The machine's initial namespace is refused (see
	// CheckNetns); so are scenarios that add firewall rules. The sysctls
	// the scenario sets are restored to their old values on Stop, and the
	// namespace is never removed.
	Netns string
}

// ErrHostNetns: Options.Netns names the machine's initial network
// namespace, whose sysctls the lab never writes.
var ErrHostNetns = errors.New("refusing the machine's initial network namespace")

// containerMarker exists inside a container whose PID 1 is its own init
// (systemd writes it at boot; systemd-nspawn, podman and others do too).
// Without it, PID 1's network namespace is the machine's initial one.
var containerMarker = "/run/systemd/container"

// CheckNetns refuses a namespace the lab must never change, and writes
// nothing:
//   - the namespace of the kernel's threads (kthreadd, PID 2 when the
//     caller sees the machine's PID namespace), which is by definition the
//     machine's initial network namespace;
//   - the namespace PID 1 lives in, unless /run/systemd/container exists,
//     which says that PID 1 is a container's own init (then that namespace
//     is the container's, not the machine's);
//   - a path that is not a namespace file, or any namespace when neither
//     PID 1's nor kthreadd's namespace can be read (no way to tell).
func CheckNetns(path string) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return fmt.Errorf("%w: cannot read namespace %s: %w", ErrLab, path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%w: %s is not a namespace file (want /run/netns/NAME or /proc/PID/ns/net)", ErrLab, path)
	}
	target, err := netns.ID(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLab, err)
	}
	known := false
	if kthread, ok := kthreaddNetns(); ok {
		known = true
		if target == kthread {
			return fmt.Errorf("%w: %w: %s is net:[%d], the namespace of the kernel's own threads (kthreadd): its sysctls are the host's",
				ErrLab, ErrHostNetns, path, target)
		}
	}
	initial, err := netns.ID("/proc/1/ns/net")
	if err != nil {
		if known {
			return nil // kthreadd's namespace is the initial one, and it is not the target
		}
		return fmt.Errorf("%w: cannot tell whether %s is the machine's initial namespace: %w", ErrLab, path, err)
	}
	if target != initial {
		return nil
	}
	_, err = os.Stat(containerMarker)
	if err == nil {
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: cannot tell whether %s is the machine's initial namespace: %w", ErrLab, path, err)
	}
	return fmt.Errorf("%w: %w: %s is net:[%d], the namespace of PID 1, and %s does not exist, so PID 1 is the machine's own init, not a container's: its sysctls are the host's",
		ErrLab, ErrHostNetns, path, target, containerMarker)
}

// kthreaddNetns returns the namespace of kthreadd (PID 2, parent 0) when the
// caller can see it, that is when it shares the machine's PID namespace.
func kthreaddNetns() (uint64, bool) {
	b, err := os.ReadFile("/proc/2/status")
	if err != nil {
		return 0, false
	}
	var name, ppid string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "Name":
			name = strings.TrimSpace(v)
		case "PPid":
			ppid = strings.TrimSpace(v)
		}
	}
	if name != "kthreadd" || ppid != "0" {
		return 0, false
	}
	id, err := netns.ID("/proc/2/ns/net")
	return id, err == nil
}

// Env is a running scenario.
type Env struct {
	// Name is the namespace name (`ss -N NAME`, `ip netns exec NAME`):
	// for Options.Netns, the last element of a /run/netns/NAME path, and
	// empty for any other path (use `nsenter --net=PATH` then).
	Name string
	// Netns is the namespace path, usable as --netns.
	Netns string
	// Scenario is the scenario's name.
	Scenario string
	// Listen is the application's listening address inside the namespace.
	Listen string
	// PID is the lab application's process id; Comm its process name.
	PID  int
	Comm string

	log     *zap.Logger
	release func() error
	// existing: the namespace was given (Options.Netns), not created.
	existing bool
	// restore holds the sysctls' values before the scenario set them,
	// written back in reverse order on Stop (existing namespaces only).
	restore []Sysctl
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the child has been reaped
	waitErr error         // the child's exit status (valid after exited)
	stderr  *tailBuffer

	stopOnce sync.Once
	stopErr  error
	done     chan struct{}
	early    atomic.Pointer[error] // why the scenario ended before Stop/Duration
}

var seq atomic.Uint64

// Start builds the scenario in a fresh namespace and returns once its
// application is listening and its load has begun. The scenario runs until
// opts.Duration ends, ctx is done or Stop is called.
func Start(ctx context.Context, name string, opts Options) (*Env, error) {
	sc, ok := lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownScenario, name, strings.Join(Names(), ", "))
	}
	if opts.Duration <= 0 {
		opts.Duration = DefaultDuration
	}
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("lab").With(zap.String("scenario", name))

	if opts.Netns != "" {
		// Every refusal comes before anything is written.
		if err := CheckNetns(opts.Netns); err != nil {
			return nil, err
		}
		if len(sc.Firewall) > 0 {
			return nil, fmt.Errorf("%w: %s adds iptables rules, which an existing namespace would keep: run it in a throwaway namespace (without Options.Netns / --in-netns)", ErrLab, name)
		}
	}
	if removed, err := CleanStale(); len(removed) > 0 || err != nil {
		log.Info("removed namespaces of dead lab runs", zap.Strings("names", removed), zap.Error(err))
	}
	var (
		nsName, path string
		release      func() error
	)
	if opts.Netns != "" {
		path = opts.Netns
		if filepath.Dir(filepath.Clean(path)) == netnsDir {
			nsName = filepath.Base(path)
		}
	} else {
		nsName = fmt.Sprintf("sw-lab-%d-%d", os.Getpid(), seq.Add(1))
		var err error
		path, release, err = netns.New(nsName)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrLab, name, err)
		}
	}
	e := &Env{
		Name: nsName, Netns: path, Scenario: name, Listen: fmt.Sprintf("%s:%d", ListenIP, sc.Port), Comm: sc.app.Comm,
		log: log.With(zap.String("netns", path)), release: release, existing: opts.Netns != "",
		exited: make(chan struct{}), done: make(chan struct{}), stderr: &tailBuffer{max: 4096},
	}
	close(e.exited) // no child yet; replaced by startChild
	if err := e.build(sc, opts); err != nil {
		e.Stop()
		return nil, fmt.Errorf("%w: %s: %w", ErrLab, name, err)
	}
	e.log.Info("scenario started", zap.Int("pid", e.PID), zap.String("comm", e.Comm),
		zap.Duration("duration", opts.Duration), zap.Bool("relisten", opts.Relisten))
	go e.supervise(ctx, opts.Duration)
	return e, nil
}

func (e *Env) build(sc Scenario, opts Options) error {
	var old *[]Sysctl
	if e.existing {
		old = &e.restore
	}
	if err := setSysctls(e.Netns, sc.Sysctls, old); err != nil {
		return err
	}
	if len(e.restore) > 0 {
		e.log.Info("sysctls set in an existing namespace; their old values are restored on stop", zap.Any("old", e.restore))
	}
	for _, rule := range sc.Firewall {
		if err := iptables(e.Netns, rule); err != nil {
			return err
		}
	}
	spec := sc.app
	spec.Addr = e.Listen
	spec.Relisten = opts.Relisten
	// The child outlives the parent's timer by a little only, and exits
	// within a second if the parent dies.
	spec.Deadline = time.Now().Add(opts.Duration + 5*time.Second)
	return e.startChild(spec)
}

// supervise stops the scenario when its time is up, ctx is done, or the
// application dies on its own.
func (e *Env) supervise(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
		e.log.Info("scenario duration over")
	case <-e.exited:
		err := fmt.Errorf("%w: %s: application %s exited early: %v: %s", ErrLab, e.Scenario, e.Comm, e.waitErr, e.stderr.String())
		e.early.Store(&err)
		e.log.Warn("application exited early", zap.Error(err))
	case <-e.done:
	}
	e.Stop()
}

// Stop kills the scenario's application and removes its namespace, or, in
// an existing namespace (Options.Netns), writes back the old values of the
// sysctls the scenario set and leaves the namespace in place. It is safe to
// call more than once and from several goroutines.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		var errs []error
		if e.cmd != nil && e.cmd.Process != nil {
			_ = e.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-e.exited:
			case <-time.After(2 * time.Second):
				_ = e.cmd.Process.Kill()
				<-e.exited
			}
		}
		if len(e.restore) > 0 {
			if err := e.restoreSysctls(); err != nil {
				errs = append(errs, err)
			}
		}
		if e.release != nil {
			if err := e.release(); err != nil {
				errs = append(errs, err)
			}
		}
		e.stopErr = errors.Join(errs...)
		e.log.Info("scenario stopped")
		close(e.done)
	})
	<-e.done
	return e.stopErr
}

// restoreSysctls writes back, in reverse order, the values the sysctls had
// before the scenario set them in an existing namespace.
func (e *Env) restoreSysctls() error {
	back := make([]Sysctl, 0, len(e.restore))
	for i := len(e.restore) - 1; i >= 0; i-- {
		back = append(back, e.restore[i])
	}
	if err := setSysctls(e.Netns, back, nil); err != nil {
		return fmt.Errorf("%w: %s: restore sysctls in %s: %w", ErrLab, e.Scenario, e.Netns, err)
	}
	e.log.Info("sysctls restored", zap.Any("values", back))
	return nil
}

// Done is closed once the scenario has stopped and its namespace is gone
// (or, in an existing namespace, its sysctls are restored).
func (e *Env) Done() <-chan struct{} { return e.done }

// Err says why the scenario ended on its own before its time (the
// application died), nil otherwise.
func (e *Env) Err() error {
	if p := e.early.Load(); p != nil {
		return *p
	}
	return nil
}

// PauseLoad stops the scenario's clients (its listeners, acceptors and held
// sockets stay), within milliseconds: the way to test that a verdict needs
// load (an idle host with old drop counters is not overflowing, a change
// verified without load is inconclusive). ResumeLoad starts them again.
func (e *Env) PauseLoad() error { return e.signal(syscall.SIGUSR1) }

// ResumeLoad undoes PauseLoad.
func (e *Env) ResumeLoad() error { return e.signal(syscall.SIGUSR2) }

func (e *Env) signal(sig syscall.Signal) error {
	select {
	case <-e.exited:
		return fmt.Errorf("%w: %s: application not running", ErrLab, e.Scenario)
	default:
	}
	if err := e.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%w: %s: signal %s: %w", ErrLab, e.Scenario, sig, err)
	}
	return nil
}

// Do runs fn on a thread inside the scenario's namespace (see netns.Do).
func (e *Env) Do(fn func() error) error { return netns.Do(e.Netns, fn) }

// startChild re-executes this binary as the scenario's application inside
// the namespace and waits for it to report ready.
func (e *Env) startChild(spec appSpec) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Args = []string{spec.Comm}
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Dir = "/"
	cmd.Stdin = nil
	// No Pdeathsig: the kernel sends it when the forking *thread* exits,
	// and Go ends pooled threads whenever a goroutine exits while locked
	// to one (netns.New does, by design), which killed applications at
	// random. The application watches its parent instead (see childMain).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	// A process forked from a thread inside the namespace starts inside it.
	if err := netns.Do(e.Netns, cmd.Start); err != nil {
		return fmt.Errorf("start application %s: %w", spec.Comm, err)
	}
	e.cmd = cmd
	e.PID = cmd.Process.Pid
	e.exited = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			e.stderr.WriteLine(sc.Text())
			e.log.Debug("application", zap.String("comm", spec.Comm), zap.String("line", sc.Text()))
		}
	}()
	ready := make(chan error, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, err := r.ReadString('\n')
		if err != nil {
			ready <- fmt.Errorf("application %s did not report ready: %w", spec.Comm, err)
			return
		}
		if strings.TrimSpace(line) != "ready" {
			ready <- fmt.Errorf("application %s said %q, want ready", spec.Comm, line)
			return
		}
		ready <- nil
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() {
		e.waitErr = cmd.Wait()
		close(e.exited)
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			<-e.exited
			return fmt.Errorf("%w: %v: %s", err, e.waitErr, e.stderr.String())
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return fmt.Errorf("application %s not ready after 30s: %s", spec.Comm, e.stderr.String())
	}
}

// iptables adds one iptables-legacy rule inside the namespace; the rule
// disappears with the namespace.
func iptables(path string, rule []string) error {
	bin, err := exec.LookPath("iptables-legacy")
	if err != nil {
		return fmt.Errorf("this scenario needs iptables-legacy (apt-get install -y iptables): %w", err)
	}
	args := append([]string{"-w", "5"}, rule...)
	var out []byte
	err = netns.Do(path, func() error {
		var err error
		out, err = exec.Command(bin, args...).CombinedOutput()
		return err
	})
	if err != nil {
		return fmt.Errorf("iptables-legacy %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// tailBuffer keeps the last lines a child wrote to stderr, for errors.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) WriteLine(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, s...)
	t.b = append(t.b, '\n')
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
