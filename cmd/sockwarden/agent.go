//go:build !sockwarden_lean

package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sockwarden/sockwarden/agent"
	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/internal/journalzap"
)

func init() { subcommands = append(subcommands, newAgentCmd, newStatusCmd) }

func newAgentCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the agent: sample, diagnose, propose, apply approved changes, verify (systemd service)",
		Long: `The agent watches this host's network namespace (and those in agent.netns)
continuously and cheaply: every agent.tick it reads the TCP counters,
sockstat, the listeners' queues and new kernel log lines; it takes the full
census and a diagnosis only when one of those moves (drops rising, a
listener filling, TIME-WAIT or orphans climbing, a kernel log line), while
findings are open, or every agent.full_every ticks.

Modes (agent.mode):
  observe   findings only (logs, status, metrics)
  propose   confirmed kernel findings become pending proposals, announced
            once; the agent applies one after "sockwarden approve ID",
            verifies it and keeps it or rolls it back (default)
  auto      as propose, but proposals a standing approval covers
            (remediate.standing) are applied without an operator
Every guard of "sockwarden apply" holds in every mode.

In a fleet (fleet.etcd.endpoints set) proposals and approvals live in etcd,
so an operator approves from any host ("sockwarden proposals --fleet"), and
at most fleet.max_concurrent hosts have a change in flight at once; an
approved proposal waits for a free slot. While etcd does not answer nothing
is applied: the agent logs one warning per outage, keeps observing and
proposing locally, shows it in "sockwarden status" and as
sockwarden_fleet_store_up 0, and checks again at every tick.

Under systemd (packaging/sockwarden.service, Type=notify): READY=1 after the
first good sample, WATCHDOG=1 from the sampling loop, STATUS= one-liners,
RELOADING=1 on SIGHUP (a bad new config is refused and the old one kept),
STOPPING=1 on SIGTERM, which rolls back a change still being verified.
Logs go to journald with every field as SOCKWARDEN_<FIELD>, e.g.
  journalctl -u sockwarden SOCKWARDEN_KEY=net.core.somaxconn
Each finding is one entry when it appears, is confirmed, changes severity
and clears (SOCKWARDEN_EVENT), in every mode, observe included:
  journalctl -u sockwarden SOCKWARDEN_KIND=accept-queue-overflow
"sockwarden status" asks the running agent over agent.control_socket
(root only). Prometheus metrics: metrics.enabled, metrics.listen
(loopback by default). See docs/agent.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := agentLogger(a.cfg, a.log)
			defer log.Sync()
			ag, err := agent.New(agent.Options{
				Config: a.cfg,
				Load: func() (config.Config, error) {
					return config.Load(config.Options{File: a.cfgFile, Flags: flagSet(cmd)})
				},
				Version: version,
				Log:     log,
			})
			if err != nil {
				return withCode(exitFailed, err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			if err := ag.Run(ctx, hup); err != nil {
				return withCode(exitFailed, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.String("mode", "", "observe, propose or auto (default from config: propose)")
	f.Duration("tick", 0, "cheap-sample period (default from config: 10s)")
	f.Bool("metrics", false, "serve Prometheus metrics on metrics.listen")
	config.BindFlag(f, "mode", "agent.mode")
	config.BindFlag(f, "tick", "agent.tick")
	config.BindFlag(f, "metrics", "metrics.enabled")
	return cmd
}

// agentLogger sends the agent's logs to journald, one field per zap field,
// when asked (log_format: journald) or when stderr is already the journal
// (log_format: auto under systemd); otherwise it keeps the CLI's logger.
func agentLogger(cfg config.Config, base *zap.Logger) *zap.Logger {
	useJournal := cfg.LogFormat == "journald"
	if cfg.LogFormat == "auto" {
		if ok, _ := journal.StderrIsJournalStream(); ok {
			useJournal = true
		}
	}
	if !useJournal || !journalzap.Enabled() {
		return base
	}
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		lvl = zapcore.InfoLevel
	}
	return zap.New(journalzap.New(lvl, "sockwarden"))
}
