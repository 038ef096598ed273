package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
	"github.com/sockwarden/sockwarden/sample"
)

func newProposeCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "propose",
		Short: "Diagnose now and record the kernel-side proposals for approval",
		Long: `propose takes diagnose.samples samples diagnose.interval apart (as
sockwarden diagnose does), and records every proposal of the report in the
state directory, pending an operator's approval. It changes nothing in the
kernel. The agent records its proposals the same way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withEngine(cmd, nil, func(ctx context.Context, e *remediate.Engine) error {
				stop := countdown(cmd.ErrOrStderr(), "sampling", time.Duration(a.cfg.Diagnose.Samples-1)*a.cfg.Diagnose.Interval)
				series, err := sample.Series(ctx, sample.OptionsFrom(a.cfg.Sample, a.cfg.Netns, a.log), a.cfg.Diagnose.Samples, a.cfg.Diagnose.Interval, a.cfg.Sample.WatchInterval)
				stop()
				if err != nil {
					return withCode(exitFailed, err)
				}
				rep := diagnose.Run(series, a.cfg.Diagnose)
				ps, err := e.Propose(rep, "sockwarden propose")
				if err != nil {
					return withCode(exitFailed, err)
				}
				out := cmd.OutOrStdout()
				if asJSON {
					if ps == nil {
						ps = []remediate.Pending{}
					}
					return writeJSON(out, docOf(schemaProposals, "proposals", ps))
				}
				if len(ps) == 0 {
					fmt.Fprintln(out, "No kernel-side proposal: nothing to approve.")
					return nil
				}
				for _, p := range ps {
					writePending(out, p, nil, time.Now())
				}
				fmt.Fprintf(out, "Approve with: sockwarden approve ID [--ttl 1h]; then: sockwarden apply ID\n")
				return nil
			})
		},
	}
	jsonOutput(cmd, &asJSON)
	cmd.Flags().Int("samples", 0, "number of samples (default from config diagnose.samples)")
	cmd.Flags().Duration("interval", 0, "time between samples (default from config diagnose.interval)")
	config.BindFlag(cmd.Flags(), "samples", "diagnose.samples")
	config.BindFlag(cmd.Flags(), "interval", "diagnose.interval")
	return cmd
}
