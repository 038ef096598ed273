package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/remediate"
)

func newRollbackCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rollback CHANGE_ID",
		Short: "Restore a change's old value, only if the live value is still ours",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec := &recorded{op: "rollback", kind: "change", id: args[0], hint: "sockwarden history lists changes"}
			return a.withEngine(cmd, rec, func(ctx context.Context, e *remediate.Engine) error {
				if err := a.resolve(ctx, e, cmd.ErrOrStderr()); err != nil {
					return withCode(exitFailed, err)
				}
				out, err := e.Rollback(ctx, args[0])
				logOutcome(a.log, out)
				if errors.Is(err, remediate.ErrNotFound) {
					return usageErr("%v (sockwarden history lists changes)", err)
				}
				if werr := writeOutcome(cmd.OutOrStdout(), out, asJSON); werr != nil {
					return werr
				}
				if err != nil {
					return withCode(exitFailed, err)
				}
				if out.State != remediate.StateRolledBack {
					return quietExit(exitFailed)
				}
				return nil
			})
		},
	}
	jsonOutput(cmd, &asJSON)
	return cmd
}
