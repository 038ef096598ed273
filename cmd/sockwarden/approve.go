package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
)

func newApproveCmd(a *app) *cobra.Command {
	var o remediate.ApproveOptions
	cmd := &cobra.Command{
		Use:   "approve PROPOSAL_ID",
		Short: "Approve one recorded proposal (used once, expires after --ttl)",
		Long: `approve records that you, the operator, approve this exact proposal: its id
covers the host, the namespace, the key and both the current and the proposed
value. The approval is used by one apply, expires after --ttl (at most
remediate.max_approval_ttl), and names you: your real uid and login uid
(SUDO_USER is recorded only as a claim). It writes nothing to the
kernel; sockwarden apply does, after checking every guard again.

In a fleet (fleet.etcd.endpoints set) the approval is stored in etcd: approve
from any host (sockwarden proposals --fleet lists every host's proposals);
the proposal's own host applies it (its agent at the next tick), and the
approval is used once across the whole fleet.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("ttl") && o.TTL <= 0 {
				return usageErr("--ttl %s: an approval must last a positive time (at most remediate.max_approval_ttl, %s)", o.TTL, a.cfg.Remediate.MaxApprovalTTL)
			}
			e, err := a.openEngine(cmd, &recorded{op: "approve", kind: "proposal", id: args[0], hint: "sockwarden proposals lists them"})
			if err != nil {
				return err
			}
			ap, err := e.Approve(args[0], o)
			if errors.Is(err, remediate.ErrNotFound) || errors.Is(err, remediate.ErrBadID) {
				return usageErr("%v (sockwarden proposals lists them)", err)
			} else if errors.Is(err, remediate.ErrBadTTL) {
				return usageErr("%v", err)
			} else if err != nil {
				return withCode(exitFailed, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approved %s by %s until %s%s\n", ap.Proposal, ap.Approver, ap.Expires.Local().Format(time.RFC3339),
				map[bool]string{true: " (unit restart allowed)", false: ""}[ap.AllowRestart])
			if a.fleet != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "stored in etcd %s; host %s applies it (its agent at the next tick)\n", a.fleet.Endpoints(), orDash(ap.Host))
			}
			if p, err := e.Store().Proposal(args[0]); err == nil {
				if p.Side != diagnose.SideKernel {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: the finding behind %s is %s-side: apply will refuse it (guard 1)\n", args[0], p.Side)
				} else if !p.Proposal.Ready {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %s was not confirmed when recorded (%s); apply checks fresh samples first (guard 3)\n", args[0], p.Proposal.NotReadyReason)
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&o.TTL, "ttl", 0, "how long the approval stays valid (default remediate.approval_ttl, 1h; at most remediate.max_approval_ttl, 168h)")
	cmd.Flags().StringVar(&o.Comment, "comment", "", "why you approve (recorded in the journal)")
	cmd.Flags().BoolVar(&o.AllowRestart, "allow-restart", false, "allow restarting the listener's systemd unit so it listens again (needs remediate.restart_unit too)")
	return cmd
}
