package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/remediate"
)

func newApplyCmd(a *app) *cobra.Command {
	var o remediate.ApplyOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "apply PROPOSAL_ID",
		Short: "Apply an approved proposal under guard, verify it, keep or roll back",
		Long: `apply runs the whole guarded path once, in the foreground: three fresh
samples (--interval apart) re-diagnosed, the five guards in order (kernel
side, allowlist and bounds, fresh samples agree, approval, live value), the
journaled write and read-back, then verification for --verify-window, and
keep or roll back. Progress goes to stderr, the outcome to stdout.
--dry-run runs every guard and writes nothing.

In a fleet (fleet.etcd.endpoints set) the approval is read from etcd and used
once fleet-wide, and a sixth guard (6-fleet-slot) takes one of the fleet's
fleet.max_concurrent rollout slots before anything is written, holding it
until the change is kept or rolled back. With every slot taken, or etcd
unreachable, the apply is refused (journaled, nothing written, the approval
left unused): try again later.

Exit status: 0 verified (or kept, or a clean dry run), 3 refused, rolled
back, failed or drift, 2 usage.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, iv := o.Window, o.Interval
			if w == 0 {
				w = a.cfg.Verify.Window
			}
			if iv == 0 {
				iv = a.cfg.Verify.Interval
			}
			if w < 0 || iv < 0 || iv > w {
				return usageErr("--interval %s and --verify-window %s: both positive, the interval no longer than the window", iv, w)
			}
			rec := &recorded{op: "apply", kind: "proposal", id: args[0], hint: "sockwarden propose records proposals; sockwarden proposals lists them"}
			return a.withEngine(cmd, rec, func(ctx context.Context, e *remediate.Engine) error {
				pp, err := e.Store().Proposal(args[0])
				if errors.Is(err, remediate.ErrNotFound) {
					return usageErr("%v (sockwarden propose records proposals; sockwarden proposals lists them)", err)
				} else if err != nil && !errors.Is(err, remediate.ErrStoreUnavailable) {
					// An unreachable fleet store is left to Apply, which
					// refuses and journals it (fail closed).
					return withCode(exitFailed, err)
				}
				if err == nil && a.cfg.Netns != "" && a.cfg.Netns != pp.Proposal.Netns {
					return usageErr("proposal %s is for namespace %q, not --netns %q", args[0], pp.Proposal.Netns, a.cfg.Netns)
				}
				if !o.DryRun {
					if err := a.resolve(ctx, e, cmd.ErrOrStderr()); err != nil {
						return withCode(exitFailed, err)
					}
				}
				out, err := e.Apply(ctx, args[0], o)
				logOutcome(a.log, out)
				if werr := writeOutcome(cmd.OutOrStdout(), out, asJSON); werr != nil {
					return werr
				}
				if err != nil || !out.OK() {
					return quietExit(exitFailed)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.DryRun, "dry-run", false, "run every guard, print what would be written, write nothing")
	jsonOutput(cmd, &asJSON)
	f.DurationVar(&o.Window, "verify-window", 0, "verification window (default verify.window)")
	f.DurationVar(&o.Interval, "interval", 0, "sample interval for the fresh samples and the verification (default verify.interval)")
	return cmd
}
