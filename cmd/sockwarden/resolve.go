package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/remediate"
)

func newResolveCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "resolve",
		Short: "Settle changes left applied or verifying by a process that died (remediate.on_restart)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withEngine(cmd, nil, func(ctx context.Context, e *remediate.Engine) error {
				outs, err := e.Resolve(ctx)
				for _, o := range outs {
					logOutcome(a.log, o)
				}
				if asJSON {
					if outs == nil {
						outs = []remediate.Outcome{}
					}
					if werr := writeJSON(cmd.OutOrStdout(), docOf(schemaOutcomes, "outcomes", outs)); werr != nil {
						return werr
					}
					return withCode(exitFailed, err)
				}
				for _, o := range outs {
					writeOutcome(cmd.OutOrStdout(), o, false)
				}
				if len(outs) == 0 && err == nil {
					fmt.Fprintln(cmd.OutOrStdout(), "Nothing to resolve.")
				}
				return withCode(exitFailed, err)
			})
		},
	}
	jsonOutput(cmd, &asJSON)
	return cmd
}
