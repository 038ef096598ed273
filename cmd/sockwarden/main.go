// Command sockwarden reads TCP socket state, says whether a connection
// problem is the application's or the kernel's, and, only when it is the
// kernel's, changes the right sysctl under guard.
//
// This package is the CLI and the agent's wiring, nothing else: each
// subcommand lives in its own file and calls the packages that do the work.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/internal/netns"
	"github.com/sockwarden/sockwarden/remediate"
)

// Exit codes, documented in the README and `sockwarden --help`.
const (
	exitOK       = 0
	exitFindings = 1 // diagnose found something worth a look
	exitUsage    = 2 // bad flags, bad config, unreadable input
	exitFailed   = 3 // an operation ran and failed (refused, rolled back)
	// 128+signal when interrupted: 130 for Ctrl-C (see run).
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// errQuiet ends a command with its exit status and nothing more on stderr:
// the command has printed its result already (findings, a refused or
// rolled-back outcome), and an error line would only repeat it.
var errQuiet = errors.New("quiet exit")

// quietExit is exit status code with nothing more to say.
func quietExit(code int) error { return withCode(code, errQuiet) }

// usageErr marks an error as the caller's (exit 2).
func usageErr(format string, a ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, a...))
}

// app holds what every subcommand needs: the loaded config and a logger.
type app struct {
	cfgFile  string
	logLevel string
	netns    string
	stateDir string

	cfg config.Config
	log *zap.Logger

	// fleet is the fleet store, opened on first use (storeConn) and
	// closed when the command returns.
	fleet fleetConn
}

// fleetConn is what the commands both builds carry (propose, approve,
// apply, ...) use of the fleet store: fleet.Store in the full build
// (full.go); the lean build never opens one, it hands the command to the
// full binary instead (lean.go).
type fleetConn interface {
	remediate.Store
	remediate.Rollout
	Endpoints() string
	FleetProposals() ([]remediate.Pending, error)
	Close() error
}

// fullName is the full build's file name, which the lean build looks for
// (lean.go) and packaging/build.sh installs; here, not in lean.go, so that
// the full build's tests name the same file.
const fullName = "sockwarden-full"

var version = "dev" // set with -ldflags "-X main.version=..."

func newRootCmd() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:   "sockwarden",
		Short: "Read TCP socket state, blame the app or the kernel, fix the kernel under guard",
		Long: `sockwarden reads TCP socket state the way an SRE reads ss: listeners and
their accept queues, state piles, ephemeral ports per destination, the drop
counters and the sysctls behind them. It says whether a connection problem
(refused, timeouts, resets, "running out of connections") is the
application's fault or the kernel's, and only when it is the kernel's does
it propose, and under guard apply, the right sysctl change.

Start with:
  sockwarden diagnose            read this host and print the verdict
  sockwarden sample              the raw census (states, listeners, counters)
  sockwarden collect b.tar.gz    capture a bundle to diagnose elsewhere

Configuration: ` + config.DefaultPath + ` (YAML, optional), environment
SOCKWARDEN_<SECTION>_<KEY>, then flags. A fleet shares approvals and rollout
limits through etcd: set fleet.etcd.endpoints (see "sockwarden help
proposals"). Every command that prints data takes -o text|json (diagnose
also -o markdown); each JSON document names its "schema" (docs/schema).
"sockwarden config show" says where each setting came from.
Exit status: 0 healthy or done, 1 findings, 2 usage or input error,
3 operation refused or failed, 130 interrupted (Ctrl-C).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			oneShotGC(cmd)
			warnDeprecated(cmd)
			if skipsConfig(cmd) {
				// version, help and completion work whatever the
				// config file or the environment hold.
				a.log = zap.NewNop()
				return nil
			}
			return a.load(cmd)
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.Version = buildVersion().line()
	root.Flags().BoolP("version", "V", false, "print the version and exit (sockwarden version -o json for the build details)")
	pf := root.PersistentFlags()
	pf.StringVar(&a.cfgFile, "config", "", "config file (default "+config.DefaultPath+", absent is fine)")
	pf.StringVar(&a.logLevel, "log-level", "", "log level: debug, info, warn, error (default from config: info)")
	pf.StringVar(&a.netns, "netns", "", "network namespace to work on: a file such as /run/netns/NAME or /proc/PID/ns/net")
	pf.StringVar(&a.stateDir, "state-dir", "", "state directory for approvals and the change journal (default /var/lib/sockwarden)")
	config.BindFlag(pf, "log-level", "log_level")
	config.BindFlag(pf, "netns", "netns")
	config.BindFlag(pf, "state-dir", "state_dir")

	root.AddCommand(newVersionCmd())
	for _, add := range subcommands {
		root.AddCommand(add(a))
	}
	closeAfter(root, a)
	addCompletions(root, a)
	return root
}

// closeAfter makes every command close what it opened (the fleet store's
// connection) when it returns, whatever it returns.
func closeAfter(c *cobra.Command, a *app) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			defer a.close()
			return run(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		closeAfter(sub, a)
	}
}

func (a *app) close() {
	if a.fleet != nil {
		a.fleet.Close()
		a.fleet = nil
	}
}

// subcommands is filled by each subcommand's file in an init function, so
// that files do not have to touch this one.
var subcommands []func(*app) *cobra.Command

func (a *app) load(cmd *cobra.Command) error {
	cfg, err := config.Load(config.Options{File: a.cfgFile, Flags: flagSet(cmd)})
	if err != nil {
		return withCode(exitUsage, err)
	}
	// A namespace path that names no network namespace is the caller's
	// mistake: say what the path is (absent, a directory, a file, another
	// kind of namespace) before anything is sampled or created. With
	// --from the command refuses --netns itself, whatever the path.
	if from := cmd.Flags().Lookup("from"); from == nil || !from.Changed {
		if err := netns.Check(cfg.Netns); err != nil {
			return withCode(exitUsage, err)
		}
	}
	a.cfg = cfg
	log, err := newLogger(cfg, cmd.ErrOrStderr())
	if err != nil {
		return withCode(exitUsage, err)
	}
	a.log = log
	return nil
}

// noConfig is the annotation of commands that must run whatever the
// configuration holds (version, config check).
const noConfig = "sockwarden/no-config"

// skipsConfig says whether cmd runs without loading the configuration:
// version, help, shell completion and those annotated noConfig.
func skipsConfig(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Annotations[noConfig] != "" {
			return true
		}
		switch c.Name() {
		case "help", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			return true
		}
	}
	return false
}

// oneShotGC lets a short-lived command's heap grow to five times its live
// size before the garbage collector runs (GOGC=400) unless GOGC is set.
// A census allocates a few MB, mostly kept to the end: with the default
// the collector ran twice in its first 20 ms, stopping the world for up to
// 3 ms while the dump and the owner scan kept both CPUs of a small machine
// busy (~10 % of the census's wall time, docs/PERFORMANCE.md), for no
// memory back. The agent and the lab, which run for hours, keep Go's
// default.
func oneShotGC(cmd *cobra.Command) {
	if os.Getenv("GOGC") != "" {
		return
	}
	for c := cmd; c != nil; c = c.Parent() {
		if c.Name() == "agent" || c.Name() == "lab" {
			return
		}
	}
	debug.SetGCPercent(400)
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCmd()
	err := handOff(root, args)
	if err == nil {
		root.SetArgs(args)
		err = root.Execute()
	}
	if sig := interrupted(); sig != 0 {
		// The operator pressed Ctrl-C (or systemd sent SIGTERM): exit
		// as a shell expects, 128+signal, without "context canceled".
		return 128 + int(sig)
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && !errors.Is(ee.err, errQuiet) {
			fmt.Fprintln(os.Stderr, "sockwarden:", ee.err)
		}
		return ee.code
	}
	// cobra's own errors (unknown flag, bad args) are usage errors.
	fmt.Fprintln(os.Stderr, "sockwarden:", err)
	return exitUsage
}
