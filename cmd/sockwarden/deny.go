package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/remediate"
)

func newDenyCmd(a *app) *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "deny PROPOSAL_ID",
		Short: "Deny a recorded proposal (replaces any approval)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.openEngine(cmd, &recorded{op: "deny", kind: "proposal", id: args[0], hint: "sockwarden proposals lists them"})
			if err != nil {
				return err
			}
			if err := e.Deny(args[0], comment); errors.Is(err, remediate.ErrNotFound) || errors.Is(err, remediate.ErrBadID) {
				return usageErr("%v", err)
			} else if errors.Is(err, remediate.ErrInFlight) {
				return withCode(exitFailed, err)
			} else if err != nil {
				return withCode(exitFailed, err)
			}
			a.log.Info("proposal denied", zap.String("proposal", args[0]), zap.String("comment", comment))
			fmt.Fprintf(cmd.OutOrStdout(), "denied %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why (recorded in the journal)")
	return cmd
}
